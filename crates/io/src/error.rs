//! The error type of deepsky-io: every error names the file and what is wrong with it.

use std::path::{Path, PathBuf};

/// What kind of problem an [`IoError`] reports.
///
/// Callers use this to choose an exit code: everything except [`ErrorKind::Io`] is a problem
/// with the input (exit code 2 in the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be opened, read or written at the operating-system level.
    Io,
    /// The file is neither FITS nor HDF5 (or not the format the caller asked for).
    UnknownFormat,
    /// The file is FITS or HDF5 but its content is broken: truncated, a corrupt header card, …
    Corrupt,
    /// An HDU, dataset, group or column that was asked for does not exist.
    NotFound,
    /// The file holds something deepsky cannot represent (e.g. a complex column).
    Unsupported,
    /// The data given to a writer cannot be written as asked (wrong shape, type, …).
    InvalidInput,
}

/// An I/O error with the file it concerns and a one-line message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct IoError {
    path: PathBuf,
    kind: ErrorKind,
    message: String,
}

impl IoError {
    /// A new error about `path`.
    pub fn new(path: impl AsRef<Path>, kind: ErrorKind, message: impl Into<String>) -> Self {
        // Keep errors on one line whatever the underlying library printed.
        let message: String = message.into();
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        IoError {
            path: path.as_ref().to_path_buf(),
            kind,
            message,
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the problem lies in the input (bad file, missing item), not in the system.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self.kind, ErrorKind::Io)
    }

    pub(crate) fn from_std(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as E;
        let kind = match err.kind() {
            E::NotFound => ErrorKind::NotFound,
            // A path that cannot name a file (a directory where a file is wanted, a file where
            // a folder is, a symbolic-link loop) is the user's input, not a failing disk.
            E::IsADirectory | E::NotADirectory => ErrorKind::InvalidInput,
            _ if err.raw_os_error() == Some(libc::ELOOP) => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        };
        IoError::new(path, kind, err.to_string())
    }
}

/// Result alias for deepsky-io.
pub type Result<T> = std::result::Result<T, IoError>;
