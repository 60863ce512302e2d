//! Errors of the training machinery.

use std::path::{Path, PathBuf};

/// What went wrong while building, training or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A setting that cannot work (bad device, impossible shapes, too few examples); a user's
    /// fix.
    #[error("{0}")]
    Config(String),
    /// A settings struct failed its checks: the key and why.
    #[error(transparent)]
    Invalid(#[from] deepsky_core::ConfigError),
    /// A checkpoint or model file that is missing, unreadable or does not match the model.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The computation failed (candle error).
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}: loss is {loss}; lower train.lr or enable train.grad_clip")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// The value seen.
        loss: f64,
    },
    /// The user asked the run to stop (Ctrl-C); the last checkpoint is intact.
    #[error("interrupted")]
    Interrupted,
}

impl NnError {
    /// A configuration problem.
    pub fn config(message: impl std::fmt::Display) -> NnError {
        NnError::Config(message.to_string())
    }
    /// A checkpoint problem with `path`.
    pub fn checkpoint(path: &Path, message: impl std::fmt::Display) -> NnError {
        NnError::Checkpoint {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Result of the nn crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;
