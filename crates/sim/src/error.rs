//! The error type of the simulators.

/// What went wrong in a simulation request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A parameter is out of its valid range or unknown; the message names the parameter,
    /// the value given and what is allowed.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter {
        /// The parameter's name as the user writes it (e.g. `energy_gev`).
        name: String,
        /// What is wrong and what is allowed.
        message: String,
    },
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
