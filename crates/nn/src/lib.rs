//! The neural-network machinery deepsky's models share: one training loop for the
//! autoencoders, the detector and the GANs, so that they all checkpoint, resume, schedule and
//! stop early the same way.
//!
//! - [`train::Trainer`] runs a [`train::TrainTask`] (a loss over a batch of indices) with AdamW
//!   ([`optim`]), a warm-up + cosine/step schedule ([`schedule`]), seeded shuffling, a
//!   validation split, early stopping, gradient clipping and checkpoints ([`checkpoint`]).
//! - [`init::SeededVarMap`] makes parameter initialisation depend on the seed only.
//! - [`gan::GanTrainer`] trains a [`gan::GanTask`] (critic and generator losses) with two
//!   optimisers, a moving average of the generator's weights, checkpoints and `--resume`.
//! - [`device::parse_device`] reads `--device` (`cpu`, or `cuda[:N]` with the `cuda` feature).
//! - [`infer`]: trained conv layers compiled for CPU inference (batch norm folded, activation
//!   fused, one image per thread in reused buffers), for models whose predictions must be fast.
//!
//! ```
//! use candle_core::{Device, Tensor, Module};
//! use deepsky_nn::{init::SeededVarMap, train::{Batch, TrainConfig, TrainTask, Trainer}};
//!
//! // Fit y = 3x - 1 with one linear unit.
//! struct Line { model: candle_nn::Linear, x: Tensor, y: Tensor }
//! impl TrainTask for Line {
//!     fn len(&self) -> usize { 64 }
//!     fn loss(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
//!         let idx = Tensor::new(b.indices.iter().map(|&i| i as u32).collect::<Vec<_>>(), &Device::Cpu)?;
//!         let pred = self.model.forward(&self.x.index_select(&idx, 0)?)?;
//!         candle_nn::loss::mse(&pred, &self.y.index_select(&idx, 0)?)
//!     }
//! }
//! let vars = SeededVarMap::new(7);
//! let model = candle_nn::linear(1, 1, vars.builder(&Device::Cpu).pp("line")).unwrap();
//! let xs: Vec<f32> = (0..64).map(|i| i as f32 / 32.0 - 1.0).collect();
//! let x = Tensor::from_vec(xs.clone(), (64, 1), &Device::Cpu).unwrap();
//! let y = Tensor::from_vec(xs.iter().map(|v| 3.0 * v - 1.0).collect::<Vec<f32>>(), (64, 1), &Device::Cpu).unwrap();
//! let task = Line { model, x, y };
//! let cfg = TrainConfig { epochs: 60, batch_size: 16, lr: 0.05, val_fraction: 0.0, ..Default::default() };
//! let out = Trainer::new(&cfg).run(&task, vars.varmap()).unwrap();
//! assert!(out.state.history.last().unwrap().train_loss < 1e-2);
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod device;
mod error;
pub mod gan;
pub mod infer;
pub mod init;
pub mod layers;
pub mod optim;
pub mod schedule;
pub mod train;

pub use error::{NnError, Result};
