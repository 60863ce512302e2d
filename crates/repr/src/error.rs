//! The error type of deepsky-repr.

use deepsky_core::config::ConfigError;
use deepsky_io::IoError;
use deepsky_nn::NnError;

/// What went wrong in reading objects, fitting, scoring or analysing them.
///
/// [`ReprError::is_bad_input`] tells a caller whether the user can fix it by changing the
/// input or the settings (the command line's exit code 2) or whether the work failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReprError {
    /// A setting that cannot work, naming its key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The network or its training failed.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// The input or a saved model does not fit what was asked (wrong shape, missing column,
    /// too few objects, an unreadable saved file).
    #[error("{0}")]
    BadInput(String),
    /// A computation failed: `what` names the step.
    #[error("{what}: {message}")]
    Failed {
        /// The step (`PCA baseline`, `clustering`, …).
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl ReprError {
    /// A problem with the input.
    pub fn bad_input(message: impl std::fmt::Display) -> ReprError {
        ReprError::BadInput(message.to_string())
    }

    /// A failed step.
    pub fn failed(what: &'static str, message: impl std::fmt::Display) -> ReprError {
        ReprError::Failed {
            what,
            message: message.to_string(),
        }
    }

    /// True when the input or the settings are at fault, not the computation.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReprError::Config(_) | ReprError::BadInput(_) => true,
            ReprError::Io(e) => e.is_bad_input(),
            ReprError::Nn(e) => matches!(
                e,
                NnError::Config(_) | NnError::Invalid(_) | NnError::Checkpoint { .. }
            ),
            ReprError::Failed { .. } => false,
        }
    }
}

/// Result alias of deepsky-repr.
pub type Result<T, E = ReprError> = std::result::Result<T, E>;
