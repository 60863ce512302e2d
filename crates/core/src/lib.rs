//! The small pieces every deepsky crate shares, so that each exists once.
//!
//! deepsky's crates each own one concern (I/O, simulation, networks, detection, fast
//! simulation, plots, the pipeline runtime). A few things cut across all of them; they live
//! here, in a leaf crate with no heavy dependencies, the way `polars-error` serves polars:
//!
//! - [`config`]: [`ConfigError`] (which key is wrong, from which file, and why) and the
//!   [`Validate`] trait that every settings struct implements, keys relative to its own
//!   section, so that a pipeline composes its sections' checks with [`ConfigError::within`].
//! - [`math`]: special functions (ln Γ, the regularised incomplete gamma function, erf, erfc,
//!   the normal CDF) used by the simulators and the detector.
//! - [`mask`]: the planes of deepsky's bitmask images (`MP_<PLANE>` header cards), shared by
//!   the simulator's truth masks, `deepsky segment` and `detect predict --mask`.
//! - [`metrics`]: ROC curves and their area, used by the anomaly ranking, the detector's
//!   evaluation and the fast-simulation classifier test.
//! - [`pixel`]: the one conversion between deepsky's continuous 0-based pixel coordinates and
//!   FITS 1-based ones (SExtractor's, DS9's, WCS's).
//!
//! ```
//! use deepsky_core::config::{ensure, ConfigError, Validate};
//! use deepsky_core::metrics::roc_curve;
//! use deepsky_core::pixel;
//!
//! struct Train { epochs: usize }
//! impl Validate for Train {
//!     fn validate(&self) -> Result<(), ConfigError> {
//!         ensure(self.epochs > 0, "epochs", "must be at least 1")
//!     }
//! }
//! let err = Train { epochs: 0 }.validate().unwrap_err().within("train");
//! assert_eq!(err.to_string(), "config: `train.epochs`: must be at least 1");
//!
//! // A perfect ranking has an area of 1.
//! let roc = roc_curve(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]).unwrap();
//! assert_eq!(roc.auc, 1.0);
//!
//! // The centre of the first pixel: 0.5 here, 1.0 in FITS.
//! assert_eq!(pixel::to_fits(0.5), 1.0);
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod mask;
pub mod math;
pub mod metrics;
pub mod pixel;

pub use config::{ConfigError, Validate};
