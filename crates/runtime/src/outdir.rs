//! The output directory of a run (`-o/--out DIR`) and the files every pipeline writes there:
//! `report.json` (headline figures, a contract for scripts) and `provenance.json`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, RunError};

/// A run's output directory. Files in it are written atomically.
#[derive(Debug, Clone)]
pub struct OutDir {
    root: PathBuf,
}

impl OutDir {
    /// Create (if needed) and use `root`.
    pub fn create(root: impl AsRef<Path>) -> Result<OutDir> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| {
            RunError::input(format!(
                "{}: cannot create output directory: {e}",
                root.display()
            ))
        })?;
        Ok(OutDir { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Write `name` as pretty JSON, atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| RunError::failed(format!("{name}: cannot serialise: {e}")))?;
        text.push('\n');
        Ok(deepsky_io::atomic::write_atomic(
            self.path(name),
            text.as_bytes(),
        )?)
    }

    /// Write `<out>/report.json`, keys of every object in alphabetical order (whatever the
    /// field order of the report type), so that scripts diffing two reports see only values.
    pub fn write_report<T: Serialize>(&self, report: &T) -> Result<PathBuf> {
        let value = serde_json::to_value(report)
            .map_err(|e| RunError::failed(format!("report.json: cannot serialise: {e}")))?;
        self.write_json("report.json", &value)
    }

    /// Write text atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<PathBuf> {
        Ok(deepsky_io::atomic::write_atomic(
            self.path(name),
            text.as_bytes(),
        )?)
    }
}

/// Read a JSON file (a report.json, a provenance.json), with errors naming it: a missing or
/// unreadable file or bad JSON is bad input.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::input(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| RunError::input(format!("{}: not JSON: {e}", path.display())))
}

/// Write `bytes` to `path` atomically (a temporary file renamed when complete).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    deepsky_io::atomic::write_atomic(path, bytes)?;
    Ok(())
}
