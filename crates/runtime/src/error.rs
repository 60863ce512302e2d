//! How a pipeline run can end badly, and the exit code each outcome maps to.

use std::fmt;

/// Why a run stopped. Each kind has its documented exit code ([`RunError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input file, bad config or bad command line: exit code 2.
    #[error("{0}")]
    Input(String),
    /// Anything else that went wrong while working: exit code 1.
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C or SIGTERM: exit code 130. Outputs already committed stay; nothing half-written
    /// is left under a final name.
    #[error("interrupted")]
    Interrupted,
}

impl RunError {
    /// A bad input or configuration (exit code 2).
    pub fn input(message: impl fmt::Display) -> RunError {
        RunError::Input(message.to_string())
    }
    /// A failure while working (exit code 1).
    pub fn failed(message: impl fmt::Display) -> RunError {
        RunError::Failed(message.to_string())
    }
    /// 0 is success; 1 failure; 2 bad input or config; 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Input(_) => 2,
            RunError::Failed(_) => 1,
            RunError::Interrupted => 130,
        }
    }
    /// The word provenance.json records as the run's status.
    pub fn status(&self) -> &'static str {
        match self {
            RunError::Input(_) => "bad-input",
            RunError::Failed(_) => "failed",
            RunError::Interrupted => "interrupted",
        }
    }
}

impl From<deepsky_io::IoError> for RunError {
    fn from(e: deepsky_io::IoError) -> Self {
        if e.is_bad_input() {
            RunError::Input(e.to_string())
        } else {
            RunError::Failed(e.to_string())
        }
    }
}

/// Shorthand for results of the runtime and the pipelines.
pub type Result<T, E = RunError> = std::result::Result<T, E>;
