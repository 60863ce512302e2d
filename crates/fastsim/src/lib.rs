//! Fast Monte Carlo: conditional GANs that learn a slow simulator and replace it, and the
//! field's validation of how close they come.
//!
//! - [`shower_gan`]: a conditional GAN for calorimeter showers in the CaloGAN layout
//!   (generator and spectrally normalised critic in [`model`], conditioning and tensors in
//!   [`data`]), trained by deepsky-nn's adversarial loop ([`deepsky_nn::gan`]); a saved
//!   generator ([`shower_gan::LoadedSimulator`]) makes showers at any incident energy.
//! - [`image_gan`]: a DCGAN-style image GAN on galaxy cutouts, trained by the same loop.
//! - Validation: high-level [`observables`], per-observable [`metrics`] (χ² separation power,
//!   Wasserstein-1) and a classifier [`two_sample`] test (ROC AUC; 0.5 is indistinguishable),
//!   put together against two reference samples with a speed measurement in [`validate`];
//!   [`stamps`] does the same for generated images.
//! - The pipeline's pieces: its [`config`], the training showers
//!   ([`data::TrainingSet`], either layout), the incident energies of a [`generate`] run, and
//!   every `report.json` as a typed struct ([`report`], [`generate::GenerateReport`],
//!   [`validate::ValidationReport`]).
//!
//! ```no_run
//! use candle_core::Device;
//! use deepsky_fastsim::shower_gan::LoadedSimulator;
//!
//! let sim = LoadedSimulator::load("data/models/fastsim".as_ref(), &Device::Cpu)?;
//! // Ten 50 GeV electrons, seed 1, in batches of 10 000.
//! let showers = sim.simulator().generate(&[50.0; 10], "e-", 1, 10_000, &Device::Cpu)?;
//! assert_eq!(showers.layer_1.shape(), &[10, 12, 12]);
//! # Ok::<(), deepsky_fastsim::FastsimError>(())
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod data;
mod error;
pub mod generate;
pub mod image_gan;
pub mod metrics;
pub mod model;
pub mod observables;
pub mod report;
pub mod shower_gan;
pub mod stamps;
pub mod two_sample;
pub mod validate;

pub use error::{FastsimError, Result};
