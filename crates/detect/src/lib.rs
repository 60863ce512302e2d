//! Source detection in sky images: a YOLO-style detector trained on simulated fields, and
//! everything around it that astronomers' images need.
//!
//! - [`background`]: background and noise maps on a mesh (as SExtractor estimates them) and
//!   the asinh normalisation that turns a high-dynamic-range float image into network input.
//! - [`model`]: the network (conv–BN–SiLU, C2f stages, a feature pyramid, anchor-free heads at
//!   strides 4, 8 and 16); [`assign`]: task-aligned target assignment; [`loss`]: BCE + GIoU.
//! - [`dataset`]: training examples cut from simulated fields with flips, rotations, flux
//!   scaling and fresh noise; [`trained`]: training through deepsky-nn's shared loop, and
//!   save/load.
//! - [`predict`]: tiling with overlap, seams merged by responsibility and NMS ([`boxes`]).
//! - [`classical`]: the classical baseline (matched filter, threshold, connected components,
//!   deblending); [`photometry`]: aperture fluxes.
//! - [`metrics`]: completeness, purity, F1 per S/N bin and mAP@0.5 against a truth catalogue.
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
#![deny(missing_docs)]

pub mod assign;
pub mod background;
pub mod boxes;
pub mod classical;
pub mod dataset;
pub mod error;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod photometry;
pub mod predict;
pub mod trained;

use ndarray::{Array2, ArrayView2};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

impl Preprocess {
    /// Background-subtract and normalise a whole image.
    pub fn normalise(&self, image: ArrayView2<f32>) -> Result<Array2<f32>> {
        let bkg = background::estimate_background(image, None, &self.background)?;
        background::normalise_asinh(image, &bkg, self.softening)
    }
}
