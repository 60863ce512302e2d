//! deepsky as one library: every step of the `deepsky` pipelines as a public type or function.
//!
//! Each module is one of the workspace's crates, re-exported so that one dependency gives all
//! of them (the `deepsky` command-line tool, package `deepsky-cli`, is a thin layer over
//! these):
//!
//! | module | crate | what it offers |
//! | --- | --- | --- |
//! | [`config`], [`mask`], [`math`], [`metrics`], [`pixel`] | `deepsky-core` | validated configs ([`Validate`], [`ConfigError`]), mask planes, special functions, ROC/AUC, 0-based ↔ FITS pixel conventions |
//! | [`io`] | `deepsky-io` | FITS and HDF5 into `ndarray` and `polars`, WCS, the calorimeter layouts, atomic writes |
//! | [`sim`] | `deepsky-sim` | reference simulators (sky fields, cutouts, X-ray events, showers) and their files |
//! | [`plot`] | `deepsky-plot` | publication plots in one style (PNG, SVG, PDF) |
//! | [`nn`] | `deepsky-nn` | the training loops (supervised and adversarial), layers, seeded init, checkpoints |
//! | [`repr`] | `deepsky-repr` | autoencoders, latent PCA and clustering, the anomaly model |
//! | [`detect`] | `deepsky-detect` | the YOLO-style detector, classical baseline, measurement, catalogues, metrics |
//! | [`fastsim`] | `deepsky-fastsim` | the shower and image GANs and their validation |
//! | [`segment`] | `deepsky-segment` | the U-Net pixel masks (cosmic rays, trails, saturation, bad columns, footprints), segmentation maps, inpainting |
//! | [`runtime`] | `deepsky-runtime` | layered TOML configs, provenance, progress, output folders, shards, Slurm |
//!
//! ```
//! use deepsky::sim::sky::{simulate_sky, SkyConfig};
//!
//! let cfg = SkyConfig { width: 48, height: 32, n_stars: 2, n_galaxies: 1, seed: 3, ..SkyConfig::default() };
//! let field = simulate_sky(&cfg, &())?;
//! assert_eq!(field.image.dim(), (32, 48));
//! # Ok::<(), deepsky::sim::SimError>(())
//! ```

pub use deepsky_core::{config, mask, math, metrics, pixel, ConfigError, Validate};
pub use deepsky_detect as detect;
pub use deepsky_fastsim as fastsim;
pub use deepsky_io as io;
pub use deepsky_nn as nn;
pub use deepsky_plot as plot;
pub use deepsky_repr as repr;
pub use deepsky_runtime as runtime;
pub use deepsky_segment as segment;
pub use deepsky_sim as sim;

// The README's Rust examples run as this crate's doctests, so the architecture section cannot
// drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
