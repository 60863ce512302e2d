//! The error type of the detection crate.

/// Everything that can go wrong in detection, background estimation, photometry or reading
/// images and catalogues.
///
/// Non-exhaustive so that new failure kinds can be added without breaking callers that match on it.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DetectError {
    /// A configuration value is out of its valid range; the message names the key and the value.
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] deepsky_core::ConfigError),
    /// Two arrays that must describe the same pixels (image, mask, background maps) differ in shape.
    #[error("shape mismatch: {what} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which array was wrong ("mask", "background").
        what: &'static str,
        /// The shape of the image, `[rows, cols]`.
        expected: [usize; 2],
        /// The shape that was passed, `[rows, cols]`.
        got: [usize; 2],
    },
    /// The image has no rows or no columns.
    #[error("empty image: shape {0:?}")]
    EmptyImage([usize; 2]),
    /// Every pixel is NaN, infinite or masked, so there is nothing to estimate a background from.
    #[error("no valid pixels: every pixel of the {rows}x{cols} image is NaN, infinite or masked")]
    NoValidPixels {
        /// Image rows.
        rows: usize,
        /// Image columns.
        cols: usize,
    },
    /// An argument of a function call (not a configuration value) is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Input data that cannot be used: a file without the image or columns detection needs;
    /// the message names the file.
    #[error("{0}")]
    Input(String),
    /// A file could not be read or is not what it claims to be.
    #[error(transparent)]
    Io(#[from] deepsky_io::IoError),
    /// The network failed.
    #[error(transparent)]
    Nn(#[from] deepsky_nn::NnError),
    /// The simulator failed while making a training or validation field.
    #[error("simulating a field: {0}")]
    Sim(String),
}

impl From<candle_core::Error> for DetectError {
    fn from(e: candle_core::Error) -> DetectError {
        DetectError::Nn(deepsky_nn::NnError::Candle(e))
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, DetectError>;

/// Checks that an optional mask has the image's shape.
pub(crate) fn check_mask(
    shape: [usize; 2],
    mask: Option<&ndarray::ArrayView2<'_, bool>>,
) -> Result<()> {
    if let Some(m) = mask {
        let got = [m.nrows(), m.ncols()];
        if got != shape {
            return Err(DetectError::ShapeMismatch {
                what: "mask",
                expected: shape,
                got,
            });
        }
    }
    Ok(())
}
