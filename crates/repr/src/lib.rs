//! Representation learning for deepsky: autoencoders that compress stamps or table rows into a
//! few numbers, and what is done with them — PCA and clustering of the latent space, and an
//! anomaly score per object.
//!
//! - [`objects`]: the objects to learn from ([`objects::Objects`]), read from HDF5 stamps,
//!   stamps cut from a FITS image around a catalogue, or table columns.
//! - [`model::Autoencoder`]: dense or convolutional, plain or variational (β-VAE), built from a
//!   [`model::ModelConfig`].
//! - [`normalise::Normaliser`]: per-stamp asinh or per-column standardisation, fitted on the
//!   training set and saved with the model.
//! - [`fit::AeModel`]: an autoencoder with its weights and normalisation: initialise, train
//!   through deepsky-nn's shared loop, score (reconstruction error, negative ELBO, latent
//!   vectors), save, load.
//! - [`latent`]: PCA (and the PCA-reconstruction baseline) and clustering via linfa.
//! - [`anomaly`]: the anomaly pipeline as a library: [`anomaly::AnomalyParams`] fit into an
//!   [`anomaly::AnomalyModel`] that scores objects; analysis, tables, figures and reports of
//!   the scores; the pipeline's config ([`anomaly::AnomalyConfig`]).
//!
//! ```
//! use candle_core::Device;
//! use deepsky_repr::fit::AeModel;
//! use deepsky_repr::model::{ArchKind, ModelConfig};
//! use deepsky_repr::normalise::Normaliser;
//! use deepsky_nn::train::{TrainConfig, Trainer};
//! use ndarray::Array2;
//!
//! // 64 points on a line in 4-D compress into one latent number.
//! let x = Array2::from_shape_fn((64, 4), |(i, j)| (i as f32 / 32.0 - 1.0) * (j as f32 + 1.0));
//! let cfg = ModelConfig { kind: ArchKind::Dense, widths: vec![16], latent: 1, ..Default::default() };
//! let ae = AeModel::init(&cfg, &[4], Normaliser::Identity, 1, &Device::Cpu).unwrap();
//! let train = TrainConfig { epochs: 30, batch_size: 16, lr: 1e-2, val_fraction: 0.0, ..Default::default() };
//! let out = ae.fit(&x, Trainer::new(&train)).unwrap();
//! let h = &out.state.history;
//! assert!(h.last().unwrap().train_loss < h[0].train_loss);
//! let scores = ae.score(&x, 32).unwrap();
//! assert_eq!(scores.latent.dim(), (64, 1));
//! ```
#![deny(missing_docs)]

pub mod anomaly;
pub mod error;
pub mod fit;
pub mod latent;
pub mod model;
pub mod normalise;
pub mod objects;

pub use error::{ReprError, Result};
