//! The error type of the simulators.

use deepsky_core::ConfigError;

/// What went wrong in a simulation request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A setting of a simulator's configuration is out of range; the error names its key
    /// (relative to the configuration, e.g. `psf.fwhm`) and says what is allowed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An argument of a library call (not a configuration setting) is out of its valid range or
    /// unknown; the message names the argument, the value given and what is allowed.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter {
        /// The argument's name as the user writes it (e.g. `depth_bin_x0`).
        name: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A result could not be written; the error names the file.
    #[error(transparent)]
    Io(#[from] deepsky_io::IoError),
    /// A result's columns do not make a table (a bug: they have different lengths).
    #[error("{0}")]
    Table(String),
    /// The caller's stop check asked the simulation to stop (Ctrl-C); nothing was returned.
    #[error("interrupted")]
    Interrupted,
}

impl SimError {
    /// Shorthand for [`SimError::InvalidParameter`].
    pub fn invalid(name: impl Into<String>, message: impl Into<String>) -> Self {
        SimError::InvalidParameter {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Result alias for the simulators.
pub type Result<T> = std::result::Result<T, SimError>;
