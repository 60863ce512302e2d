//! Reference simulators for deepsky.
//!
//! deepsky's learning pipelines train on data that anyone can regenerate without network access.
//! This crate makes it: sky images with a truth catalogue ([`sky`]), galaxy cutout sets with rare
//! classes ([`cutouts`]), X-ray photon event lists ([`events`]), and a particle-level
//! electromagnetic calorimeter shower Monte Carlo ([`shower`]), the slow reference that the
//! fast-simulation GAN learns to replace.
//!
//! Each simulator is one function of a settings struct: [`sky::simulate_sky`] of
//! [`sky::SkyConfig`], [`cutouts::simulate_cutouts`] of [`cutouts::CutoutConfig`],
//! [`events::simulate_events`] of [`events::EventConfig`] and [`shower::simulate_showers`] of
//! [`shower::ShowerConfig`]. Settings implement [`deepsky_core::Validate`]: a simulator checks
//! them before any work and a problem is a [`deepsky_core::ConfigError`] naming its key
//! (`psf.fwhm`), wrapped in [`SimError::Config`].
//!
//! Every simulator takes a seed and gives bit-identical output for the same seed whatever the
//! number of threads: each object draws from its own generator ([`rng::stream_rng`]).
//! Simulators return plain in-memory results; [`files`] writes them in their documented FITS
//! and HDF5 layouts (with `deepsky-io`).
//!
//! ```
//! use deepsky_core::Validate;
//! use deepsky_sim::sky::{simulate_sky, SkyConfig};
//!
//! // Settings are checked before any work starts; a problem names its key.
//! let bad = SkyConfig { width: 0, ..SkyConfig::default() };
//! assert_eq!(bad.validate().unwrap_err().key, "width");
//!
//! // A small field: image, truth catalogue and WCS (`&()` ignores progress).
//! let cfg = SkyConfig { width: 48, height: 32, n_stars: 2, n_galaxies: 3, seed: 1, ..SkyConfig::default() };
//! let field = simulate_sky(&cfg, &())?;
//! assert_eq!(field.image.dim(), (32, 48));
//! assert!(field.catalog.len() >= 5);
//! // The same seed gives the same bits.
//! assert_eq!(simulate_sky(&cfg, &())?.image, field.image);
//! # Ok::<(), deepsky_sim::SimError>(())
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod rng;

pub use error::{Result, SimError};
pub mod cutouts;
pub mod events;
pub mod files;
pub mod output;
pub mod shower;
pub mod sky;

/// Receives progress from long simulations (the CLI shows it as a progress bar).
///
/// Called from worker threads, so it must be `Sync`. `()` ignores progress.
pub trait Progress: Sync {
    /// `n` more units of work (showers, sources, stamps) are done.
    fn inc(&self, n: u64);
}

impl Progress for () {
    fn inc(&self, _n: u64) {}
}
