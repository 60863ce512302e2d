//! Pixel masks for sky images: which pixels are cosmic-ray hits, saturated or bled into, bad
//! columns, satellite trails, or source footprints — the masking step astronomers run before
//! detection and photometry (LACosmic, deepCR, MaxiMask), as a U-Net trained on simulated
//! fields.
//!
//! - [`unet`]: the U-Net (encoder–decoder with skip connections, configurable depth and
//!   widths, per-plane sigmoid or per-pixel softmax) and its compiled CPU form.
//! - [`dataset`]: training crops of simulated fields of randomised imagers with per-pixel
//!   truth masks from the simulator's artefact models; [`model`]: a [`Segmenter`] (network,
//!   weights, model card) trained through deepsky-nn's shared loop.
//! - [`predict`]: tiles with overlap for any image size, identical to one tile; the bitmask
//!   (bits of [`deepsky_core::mask::MaskPlane`], `NO_DATA` for NaN pixels).
//! - [`calibrate`]: per-plane thresholds at a target false-positive rate on unseen fields;
//!   [`metrics`]: ROC, area, true-positive rate at a false-positive rate, against a truth mask.
//! - [`segmentation`]: the `DETECTED` plane as numbered, deblended sources (SExtractor's
//!   segmentation map); [`inpaint`]: cosmic-ray pixels replaced by their neighbours' median.
//! - [`figures`]: the overlay plot of the masks.
//! - [`config`]: the whole `deepsky segment` configuration.
//!
//! Errors are the detection crate's [`deepsky_detect::DetectError`] (same kinds: input,
//! configuration, I/O, network, simulation).
//!
//! Segment an image with a freshly initialised network (a trained one loads with
//! [`Segmenter::load`]) and build the outputs `deepsky segment predict` writes:
//!
//! ```
//! use candle_core::Device;
//! use deepsky_core::mask::MaskPlane;
//! use deepsky_segment::{inpaint, predict, segmentation, unet::UNetConfig, Segmenter};
//! use ndarray::Array2;
//!
//! let model = UNetConfig { widths: vec![4, 8], convs: 1, ..Default::default() };
//! let seg = Segmenter::init(&model, &Default::default(), Default::default(), 1, &Device::Cpu)?;
//! let net = seg.compile()?;
//! let mut image = Array2::from_shape_fn((64, 80), |(r, c)| 100.0 + ((r * 31 + c * 17) % 7) as f32);
//! image[[5, 5]] = f32::NAN;
//! let cfg = predict::PredictConfig { tile: 48, ..Default::default() };
//! let pred = predict::predict(&seg, &net, image.view(), &cfg, &|_, _| true)?;
//! assert_eq!(pred.probabilities.dim(), (5, 64, 80));
//! assert!(MaskPlane::NoData.is_set(pred.bits[[5, 5]]));
//!
//! let detected = pred.bits.mapv(|b| MaskPlane::Detected.is_set(b));
//! let (map, sources) = segmentation::segment_sources(image.view(), &pred.background, detected.view(), &Default::default());
//! assert_eq!(map.dim(), image.dim());
//! let cr = pred.bits.mapv(|b| MaskPlane::CosmicRay.is_set(b));
//! let nan = image.mapv(|v| !v.is_finite());
//! let cleaned = inpaint::inpaint_median(image.view(), cr.view(), nan.view());
//! assert_eq!(cleaned.dim(), image.dim());
//! # let _ = sources;
//! # Ok::<(), deepsky_detect::DetectError>(())
//! ```
#![deny(missing_docs)]

pub mod calibrate;
pub mod config;
pub mod dataset;
pub mod figures;
pub mod inpaint;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod segmentation;
pub mod unet;

pub use config::SegmentConfig;
pub use model::Segmenter;
