//! Reference simulators for deepsky.
//!
//! deepsky's learning pipelines train on data that anyone can regenerate without network access.
//! This crate makes it: sky images with a truth catalogue ([`sky`]), galaxy cutout sets with rare
//! classes ([`cutouts`]), X-ray photon event lists ([`events`]), and a particle-level
//! electromagnetic calorimeter shower Monte Carlo ([`shower`]), the slow reference that the
//! fast-simulation GAN learns to replace.
//!
//! Every simulator takes a seed and gives bit-identical output for the same seed whatever the
//! number of threads: each object draws from its own generator ([`rng::stream_rng`]).
//! Simulators return plain in-memory results; writing them to FITS/HDF5 is the job of
//! `deepsky-io` and the `deepsky simulate` command.

#![warn(missing_docs)]

pub mod error;
pub mod rng;

pub use error::{Result, SimError};
pub mod cutouts;
pub mod events;
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
