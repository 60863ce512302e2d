//! Error types. Every error met while saving names the file it was writing.

use std::path::PathBuf;

/// Why a plot could not be drawn, independent of the file it was going to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrawError {
    /// The plot's data are inconsistent (lengths differ, no finite values, ...).
    #[error("invalid plot data: {0}")]
    InvalidData(String),
    /// The drawing backend failed (a plotters error, given as text because its type depends on
    /// the backend).
    #[error("drawing backend: {0}")]
    Backend(String),
    /// The SVG rendering could not be converted to PDF.
    #[error("PDF conversion: {0}")]
    Pdf(String),
}

impl DrawError {
    pub(crate) fn data(msg: impl Into<String>) -> Self {
        DrawError::InvalidData(msg.into())
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plot could not be drawn.
    #[error("cannot draw plot {path}: {source}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: DrawError,
    },
    /// Writing the file failed.
    #[error("cannot write plot {path}: {source}")]
    Io {
        /// The output file (the final name, not the temporary one written first).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file name's extension is not one of the supported formats.
    #[error("cannot write plot {path}: unknown format, expected a .png, .svg or .pdf extension")]
    UnknownFormat {
        /// The output file.
        path: PathBuf,
    },
    /// A helper (histogram filling, ROC computation, ...) was given inconsistent input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns any plotters error into a [`DrawError`]; plotters' error type is generic over the
/// backend, and text is all a caller can use from it.
pub(crate) trait BackendResult<T> {
    fn backend(self) -> Result<T, DrawError>;
}

impl<T, E: std::fmt::Display> BackendResult<T> for std::result::Result<T, E> {
    fn backend(self) -> Result<T, DrawError> {
        self.map_err(|e| DrawError::Backend(e.to_string()))
    }
}
