//! Source detection in sky images: a YOLO-style detector trained on simulated fields, and
//! everything around it that astronomers' images need, each step a function a program (or a
//! Python binding) can call on its own.
//!
//! - [`background`]: background and noise maps on a mesh (as SExtractor estimates them) and
//!   the asinh normalisation that turns a high-dynamic-range float image into network input.
//! - [`model`]: the network (conv–BN–SiLU, C2f stages, a feature pyramid, anchor-free heads at
//!   strides 4, 8 and 16; [`model::CompiledNet`]: the same network compiled for CPU inference);
//!   [`assign`]: task-aligned target assignment; [`loss`]: BCE + GIoU.
//! - [`dataset`]: training examples cut from simulated fields of randomised imagers (and from
//!   labelled real images) with flips, rotations, flux scaling and fresh noise; [`detector`]:
//!   a [`Detector`] (network, weights and model card), trained through deepsky-nn's shared
//!   loop, saved and loaded.
//! - [`predict`]: tiling with overlap, seams merged by responsibility and NMS ([`boxes`]).
//! - [`measure`]: the measurement step (windowed centroid, aperture photometry
//!   ([`photometry`]), S/N, sky position); [`classes`]: what the class names mean.
//! - [`calibrate`]: the operating point — the score threshold that keeps a stated purity over
//!   simulated fields of many imagers, stored in the model card as predict's default;
//!   [`stargal`]: star or galaxy by a point-source test against the image's PSF ([`psf`]:
//!   the PSF from the config, the header or the image's stars; [`resample`]: into the trained
//!   range); [`labelled`]: a user's image and catalogue as truth, for training and evaluation.
//! - [`classical`]: the classical baseline (matched filter, threshold, connected components,
//!   deblending).
//! - [`metrics`]: completeness, purity, F1 per S/N bin and mAP@0.5 against a truth catalogue.
//! - [`catalog`]: images and catalogues in and out (the catalogue as a DataFrame with its
//!   units, DS9 regions, truth and SExtractor catalogues read back); [`figures`]: the overlay
//!   and S/N plots; [`report`]: the `report.json` of each `deepsky detect` command;
//!   [`config`]: the whole `deepsky detect` configuration.
//!
//! Non-maximum suppression on its own:
//!
//! ```
//! use deepsky_detect::boxes::{nms, BBox, Scored};
//!
//! // Two boxes on one star and one on its neighbour: NMS keeps one per object.
//! let b = |x: f32, s: f32| Scored { bbox: BBox::new(x, 10.0, x + 6.0, 16.0), class: 0, score: s };
//! let kept = nms(vec![b(10.0, 0.9), b(10.5, 0.6), b(30.0, 0.8)], 0.5);
//! assert_eq!(kept.len(), 2);
//! assert_eq!(kept[0].score, 0.9);
//! ```
//!
//! The whole of `deepsky detect predict --truth` as library calls: read an image, run the
//! bundled detector, measure, make the catalogue and the region file, and score it:
//!
//! ```
//! use std::path::Path;
//! use candle_core::Device;
//! use deepsky_detect::metrics::{evaluate, DetectedObject, EvalConfig};
//! use deepsky_detect::{catalog, measure, predict, Detector};
//!
//! let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
//! let (image, header) = catalog::read_image(&data.join("sky_field.fits"), "")?;
//! let detector = Detector::load(&data.join("models/detect"), &Device::Cpu)?;
//! let cfg = predict::PredictConfig::default();
//! let found = predict::predict(&detector, image.view(), None, &cfg, &mut |_, _| true)?;
//!
//! let m = measure::MeasureConfig::default();
//! let wcs = deepsky_io::wcs::Wcs::from_header(&header).ok();
//! let classes = detector.classes();
//! let (bkg, gain) = (&found.background, m.effective_gain(&header));
//! let objects =
//!     measure::measure(image.view(), bkg, &found.detections, classes, &m, gain, wcs.as_ref());
//! let (table, _units) = catalog::catalog_frame(&objects, classes, None);
//! assert_eq!(table.height(), objects.len());
//! assert!(catalog::regions(&objects, classes, Path::new("sky_field.fits")).contains("box("));
//!
//! let truth = catalog::read_truth(&data.join("sky_field_truth.fits"), "CATALOG", classes)?;
//! let dets: Vec<DetectedObject> = objects.iter().map(DetectedObject::from).collect();
//! let score = evaluate(&dets, &truth, classes, &EvalConfig::default());
//! assert!(score.completeness.unwrap() > 0.5 && score.purity.unwrap() > 0.8);
//! # Ok::<(), deepsky_detect::DetectError>(())
//! ```
#![deny(missing_docs)]

pub mod assign;
pub mod background;
pub mod boxes;
pub mod calibrate;
pub mod catalog;
pub mod classes;
pub mod classical;
pub mod config;
pub mod dataset;
pub mod detector;
pub mod error;
pub mod figures;
pub mod labelled;
pub mod loss;
pub mod measure;
pub mod metrics;
pub mod model;
pub mod photometry;
pub mod predict;
pub mod psf;
pub mod report;
pub mod resample;
pub mod stargal;
#[cfg(test)]
mod test_util;

use deepsky_core::config::{ensure, ConfigError, Validate};
use ndarray::{Array2, ArrayView2};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use config::DetectConfig;
pub use detector::Detector;
pub use error::{DetectError, Result};

/// What happens to an image before the network sees it (saved in the model card, so that
/// prediction repeats training's preprocessing exactly).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Preprocess {
    /// Background and noise estimation.
    pub background: background::BackgroundConfig,
    /// The network sees `asinh((image − background) / (softening · noise))`: linear for faint
    /// pixels, logarithmic for bright ones, so a 3σ source and a saturated star both fit.
    pub softening: f32,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            background: background::BackgroundConfig::default(),
            softening: 1.0,
        }
    }
}

impl Validate for Preprocess {
    /// Range checks, keys relative to the `[preprocess]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.background
            .validate()
            .map_err(|e| e.within("background"))?;
        ensure(self.softening > 0.0, "softening", "must be positive")
    }
}

impl Preprocess {
    /// Background-subtract and normalise a whole image.
    pub fn normalise(&self, image: ArrayView2<f32>) -> Result<Array2<f32>> {
        let bkg = background::estimate_background(image, None, &self.background)?;
        background::normalise_asinh(image, &bkg, self.softening)
    }
}
