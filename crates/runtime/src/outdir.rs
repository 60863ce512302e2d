//! The output directory of a run (`-o/--out DIR`) and the files every pipeline writes there:
//! `report.json` (headline figures, a contract for scripts) and `provenance.json`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, RunError};

/// The folder inside `-o DIR` where a run writes until it is complete.
pub const STAGING: &str = ".staging";

/// A run's output directory. Files in it are written atomically, and a run's files are
/// published together: everything is written into `DIR/.staging/` and moved into `DIR` only
/// when the run succeeds ([`OutDir::publish`]). A run that fails or is interrupted leaves
/// `DIR` as the previous run left it (its staging folder keeps the checkpoints for
/// `--resume`), so `DIR` never mixes two runs' products.
#[derive(Debug, Clone)]
pub struct OutDir {
    /// Where the products are published.
    published: PathBuf,
    /// Where this run writes them.
    root: PathBuf,
}

impl OutDir {
    /// Create (if needed) `published` and a fresh staging folder in it. With `resume`, the
    /// staging folder of an interrupted run is kept, and a completed run's checkpoints are
    /// copied into it, so that training continues from either.
    pub fn create(published: impl AsRef<Path>) -> Result<OutDir> {
        Self::create_for(published, false)
    }

    /// [`OutDir::create`], keeping what `--resume` needs.
    pub fn create_for(published: impl AsRef<Path>, resume: bool) -> Result<OutDir> {
        let published = published.as_ref().to_path_buf();
        let root = published.join(STAGING);
        let fail = |what: &str, p: &Path, e: std::io::Error| {
            RunError::input(format!("{}: cannot {what}: {e}", p.display()))
        };
        std::fs::create_dir_all(&published)
            .map_err(|e| fail("create output directory", &published, e))?;
        if !resume && root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|e| fail("remove the previous run's staging folder", &root, e))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| fail("create the staging folder", &root, e))?;
        let checkpoints = published.join("checkpoints");
        if resume && !root.join("checkpoints").exists() && checkpoints.is_dir() {
            copy_dir(&checkpoints, &root.join("checkpoints"))
                .map_err(|e| fail("copy checkpoints for --resume", &checkpoints, e))?;
        }
        Ok(OutDir { published, root })
    }

    /// Where this run writes: the staging folder until [`OutDir::publish`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The output directory the user named (`-o`), where products appear when published.
    pub fn published_root(&self) -> &Path {
        &self.published
    }

    /// Where `name` will be once published (for messages to the user).
    pub fn published(&self, name: &str) -> PathBuf {
        self.published.join(name)
    }

    /// Move every staged product into the output directory, then remove the staging folder.
    /// Files replace their namesakes atomically (rename); a folder (plots, model) replaces
    /// the previous one as a whole. Products of the previous run that this run does not make
    /// stay.
    pub fn publish(&self) -> Result<()> {
        let fail = |p: &Path, e: std::io::Error| {
            RunError::failed(format!("{}: cannot publish: {e}", p.display()))
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map_err(|e| fail(&self.root, e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| fail(&self.root, e))?;
        entries.sort();
        for from in entries {
            let name = from.file_name().expect("a directory entry has a name");
            let to = self.published.join(name);
            if from.is_dir() && to.exists() {
                let old = self
                    .published
                    .join(format!(".replaced-{}", name.to_string_lossy()));
                if old.exists() {
                    std::fs::remove_dir_all(&old).map_err(|e| fail(&old, e))?;
                }
                std::fs::rename(&to, &old).map_err(|e| fail(&to, e))?;
                std::fs::rename(&from, &to).map_err(|e| fail(&from, e))?;
                std::fs::remove_dir_all(&old).map_err(|e| fail(&old, e))?;
            } else {
                std::fs::rename(&from, &to).map_err(|e| fail(&from, e))?;
            }
        }
        std::fs::remove_dir(&self.root).map_err(|e| fail(&self.root, e))?;
        Ok(())
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

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
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
