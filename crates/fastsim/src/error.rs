//! The error type of the fast-simulation crate.

/// Everything that can go wrong while training, running or validating a fast simulator.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum FastsimError {
    /// A configuration value is out of range; the message names the key and the value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] deepsky_core::ConfigError),
    /// Input data that cannot be used (wrong shapes, too few showers, NaN energies …).
    #[error("{0}")]
    Input(String),
    /// A file could not be read or written; the error names it.
    #[error(transparent)]
    Io(#[from] deepsky_io::IoError),
    /// The network or its training loop failed.
    #[error(transparent)]
    Nn(#[from] deepsky_nn::NnError),
}

impl From<candle_core::Error> for FastsimError {
    fn from(e: candle_core::Error) -> FastsimError {
        FastsimError::Nn(deepsky_nn::NnError::Candle(e))
    }
}

/// Result with [`FastsimError`].
pub type Result<T> = std::result::Result<T, FastsimError>;

/// A fastsim error inside a candle-typed callback (the GAN task's losses): candle's own error
/// as it was, anything else as its message.
pub(crate) fn to_candle(e: FastsimError) -> candle_core::Error {
    match e {
        FastsimError::Nn(deepsky_nn::NnError::Candle(c)) => c,
        e => candle_core::Error::Msg(e.to_string()),
    }
}
