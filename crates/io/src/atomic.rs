//! Atomic output files: write to a temporary name beside the target, rename when complete.
//!
//! An interrupted run therefore never leaves a half-written file under the final name, and the
//! previous output (if any) stays intact until the new one is complete.

use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};

/// A file being written under a temporary name; [`AtomicPath::commit`] renames it into place.
///
/// Dropping it without committing removes the temporary file.
#[derive(Debug)]
pub struct AtomicPath {
    target: PathBuf,
    temp: PathBuf,
    committed: bool,
}

impl AtomicPath {
    /// Prepare to write `target`. The temporary file is `.<name>.<pid>.tmp` in the same folder,
    /// so the final rename never crosses file systems. Missing parent folders are created.
    pub fn new(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if target.is_dir() {
            return Err(IoError::new(
                &target,
                crate::ErrorKind::InvalidInput,
                "is a directory; give the output a file name",
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| {
                IoError::new(&target, crate::ErrorKind::InvalidInput, "not a file path")
            })?
            .to_string_lossy()
            .into_owned();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| IoError::from_std(&parent, e))?;
        let temp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        if temp.exists() {
            std::fs::remove_file(&temp).map_err(|e| IoError::from_std(&temp, e))?;
        }
        Ok(AtomicPath {
            target,
            temp,
            committed: false,
        })
    }

    /// Where to write now.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Where the file will be once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Move the finished temporary file to its final name (replacing an older one).
    pub fn commit(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| IoError::from_std(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicPath {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Write `bytes` to `target` atomically.
pub fn write_atomic(target: impl AsRef<Path>, bytes: &[u8]) -> Result<PathBuf> {
    let out = AtomicPath::new(target)?;
    std::fs::write(out.temp_path(), bytes).map_err(|e| IoError::from_std(out.temp_path(), e))?;
    out.commit()
}
