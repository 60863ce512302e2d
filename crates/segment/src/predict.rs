//! Prediction on images of any size: the whole image is background-subtracted and normalised
//! once (as in training), cut into tiles that overlap by at least the network's receptive
//! radius, each tile run through the compiled U-Net on its own core, and each output pixel
//! taken from the one tile whose core holds it — so tiling gives the same probabilities as one
//! tile covering the image, and memory per worker is one tile.
//!
//! NaN or infinite input pixels get the `NO_DATA` plane (and no other); the network sees them
//! as background.

use std::collections::BTreeMap;

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_detect::background::{self, Background};
use deepsky_detect::{DetectError, Result};
use ndarray::{s, Array2, Array3, ArrayView2};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::Segmenter;
use crate::unet::{CompiledUNet, OutputKind, UNetWorkspace};

/// Settings of `deepsky segment predict` (`[predict]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// Side of the tiles the image is cut into, pixels (rounded up to the network's size
    /// multiple). Larger tiles waste less on overlap; each worker holds one tile's feature maps
    /// (about 100 bytes per pixel for the bundled model).
    pub tile: usize,
    /// Probability thresholds per plane (`{ COSMIC_RAY = 0.5, … }`); planes not given use the
    /// model's calibrated threshold, else 0.5.
    pub thresholds: BTreeMap<String, f32>,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            tile: 512,
            thresholds: BTreeMap::new(),
        }
    }
}

impl Validate for PredictConfig {
    /// Range checks, keys relative to the `[predict]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(
            (32..=8192).contains(&self.tile),
            "tile",
            "must be 32 to 8192 pixels",
        )?;
        for (name, t) in &self.thresholds {
            if MaskPlane::from_name(name).is_none() {
                return Err(ConfigError::at(
                    "thresholds",
                    format!("unknown plane `{name}`; valid: COSMIC_RAY, SATURATED, BAD_COLUMN, TRAIL, DETECTED"),
                ));
            }
            ensure(
                (0.0..=1.0).contains(t),
                "thresholds",
                "each threshold must be within [0, 1]",
            )?;
        }
        Ok(())
    }
}

impl PredictConfig {
    /// The threshold of `plane` and where it comes from (`config`, `model` or `default`).
    pub fn threshold_for(&self, seg: &Segmenter, plane: MaskPlane) -> (f32, &'static str) {
        if let Some((_, &t)) = self
            .thresholds
            .iter()
            .find(|(n, _)| MaskPlane::from_name(n) == Some(plane))
        {
            return (t, "config");
        }
        match seg
            .card()
            .thresholds
            .iter()
            .find(|t| t.plane == plane.name())
        {
            Some(t) => (t.threshold, "model"),
            None => (0.5, "default"),
        }
    }
}

/// What prediction gives for one image.
pub struct Prediction {
    /// The planes of `probabilities`, in order.
    pub planes: Vec<MaskPlane>,
    /// Probability of each plane at each pixel, `(planes, height, width)`.
    pub probabilities: Array3<f32>,
    /// The bitmask: each plane's bit where its probability reaches its threshold, and
    /// `NO_DATA` where the input is not finite.
    pub bits: Array2<u32>,
    /// The thresholds used, per plane, with their source.
    pub thresholds: Vec<(MaskPlane, f32, &'static str)>,
    /// Background level and noise of the image.
    pub background: Background,
    /// Number of tiles run.
    pub tiles: usize,
}

/// The tiles of an `h × w` image: `(core rows, core cols, window rows, window cols)` with
/// cores of side `tile − 2·margin` covering the image once, windows the cores grown by
/// `margin` and clipped to the image, every start a multiple of `multiple`.
pub fn tiles(
    h: usize,
    w: usize,
    tile: usize,
    margin: usize,
    multiple: usize,
) -> Vec<[std::ops::Range<usize>; 4]> {
    let round_up = |v: usize| v.div_ceil(multiple) * multiple;
    let core = round_up(tile.saturating_sub(2 * margin).max(multiple));
    let starts = |n: usize| (0..n).step_by(core).collect::<Vec<_>>();
    let mut out = Vec::new();
    for r in starts(h) {
        for c in starts(w) {
            let (r1, c1) = ((r + core).min(h), (c + core).min(w));
            out.push([
                r..r1,
                c..c1,
                r.saturating_sub(margin)..(r1 + margin).min(h),
                c.saturating_sub(margin)..(c1 + margin).min(w),
            ]);
        }
    }
    out
}

/// The overlap of tiles: the receptive radius rounded up to the size multiple.
pub fn margin(net: &CompiledUNet) -> usize {
    let m = net.config().size_multiple();
    net.config().receptive_radius().div_ceil(m) * m
}

/// The side of the tiles and their overlap for `net` under `cfg`.
fn tiling(net: &CompiledUNet, cfg: &PredictConfig) -> (usize, usize, usize) {
    let multiple = net.config().size_multiple();
    let margin = margin(net);
    let tile = (cfg.tile.div_ceil(multiple) * multiple).max(2 * margin + multiple);
    (tile, margin, multiple)
}

/// Number of tiles [`predict`] runs on an `h × w` image.
pub fn tile_count(net: &CompiledUNet, h: usize, w: usize, cfg: &PredictConfig) -> usize {
    let (tile, margin, multiple) = tiling(net, cfg);
    tiles(h, w, tile, margin, multiple).len()
}

/// Segment `image` (ADU; NaN for missing pixels) with `seg` compiled as `net`;
/// `on_tiles(done, total)` after each tile, returning false to stop (an interrupted run
/// returns [`deepsky_nn::NnError::Interrupted`], as the detector's prediction does).
pub fn predict(
    seg: &Segmenter,
    net: &CompiledUNet,
    image: ArrayView2<f32>,
    cfg: &PredictConfig,
    on_tiles: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<Prediction> {
    cfg.validate().map_err(|e| e.within("predict"))?;
    let (h, w) = image.dim();
    let radius = net.config().receptive_radius();
    if h.min(w) < radius {
        return Err(DetectError::Input(format!(
            "the image is {w}×{h} pixels, smaller than the network's receptive field ({radius} pixels)"
        )));
    }
    if !image.iter().any(|v| v.is_finite()) {
        return Err(DetectError::Input(
            "every pixel is NaN or infinite: nothing to segment".into(),
        ));
    }
    let pre = seg.preprocess();
    let bkg = background::estimate_background(image, None, &pre.background)?;
    let x = background::normalise_asinh(image, &bkg, pre.softening)?;

    let planes = seg.planes();
    let np = planes.len();
    let (tile, margin, multiple) = tiling(net, cfg);
    let list = tiles(h, w, tile, margin, multiple);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let softmax = net.config().output == OutputKind::Softmax;
    let results: Vec<Option<Array3<f32>>> = list
        .par_iter()
        .map_init(UNetWorkspace::default, |ws, [cr, cc, wr, wc]| {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            let (th, tw) = (wr.len(), wc.len());
            let (ph, pw) = (
                th.div_ceil(multiple) * multiple,
                tw.div_ceil(multiple) * multiple,
            );
            let mut input = vec![0.0f32; ph * pw];
            for (i, row) in x
                .slice(s![wr.clone(), wc.clone()])
                .rows()
                .into_iter()
                .enumerate()
            {
                for (j, &v) in row.iter().enumerate() {
                    input[i * pw + j] = v;
                }
            }
            let logits = net.forward_with(&input, ph, pw, ws);
            let plane = ph * pw;
            let (r0, c0) = (cr.start - wr.start, cc.start - wc.start);
            let mut core = Array3::<f32>::zeros((np, cr.len(), cc.len()));
            for i in 0..cr.len() {
                for j in 0..cc.len() {
                    let k = (r0 + i) * pw + (c0 + j);
                    if softmax {
                        let m = (0..=np)
                            .map(|c| logits[c * plane + k])
                            .fold(f32::MIN, f32::max);
                        let z: f32 = (0..=np).map(|c| (logits[c * plane + k] - m).exp()).sum();
                        for c in 0..np {
                            core[[c, i, j]] = (logits[c * plane + k] - m).exp() / z;
                        }
                    } else {
                        for c in 0..np {
                            core[[c, i, j]] = sigmoid(logits[c * plane + k]);
                        }
                    }
                }
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if !on_tiles(n, list.len()) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Some(core)
        })
        .collect();
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(DetectError::Nn(deepsky_nn::NnError::Interrupted));
    }
    let mut probabilities = Array3::<f32>::zeros((np, h, w));
    for ([cr, cc, _, _], core) in list.iter().zip(results) {
        let core = core.expect("every tile ran");
        probabilities
            .slice_mut(s![.., cr.clone(), cc.clone()])
            .assign(&core);
    }
    let thresholds: Vec<(MaskPlane, f32, &'static str)> = planes
        .iter()
        .map(|&p| {
            let (t, source) = cfg.threshold_for(seg, p);
            (p, t, source)
        })
        .collect();
    let bits = bitmask(image, &probabilities, &thresholds);
    Ok(Prediction {
        planes,
        probabilities,
        bits,
        thresholds,
        background: bkg,
        tiles: list.len(),
    })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Each plane's bit where its probability reaches its threshold; `NO_DATA` (alone) where the
/// image is not finite.
pub fn bitmask(
    image: ArrayView2<f32>,
    probabilities: &Array3<f32>,
    thresholds: &[(MaskPlane, f32, &'static str)],
) -> Array2<u32> {
    let (h, w) = image.dim();
    let mut bits = Array2::<u32>::zeros((h, w));
    for (k, &(plane, t, _)) in thresholds.iter().enumerate() {
        let p = probabilities.index_axis(ndarray::Axis(0), k);
        ndarray::Zip::from(&mut bits).and(&p).for_each(|b, &v| {
            if v >= t {
                *b |= plane.bit();
            }
        });
    }
    ndarray::Zip::from(&mut bits).and(&image).for_each(|b, &v| {
        if !v.is_finite() {
            *b = MaskPlane::NoData.bit();
        }
    });
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_cores_cover_the_image_once_and_windows_overlap_by_the_margin() {
        for (h, w, tile, margin, m) in [
            (100, 130, 64, 16, 4),
            (37, 37, 512, 24, 8),
            (256, 64, 96, 8, 8),
        ] {
            let mut count = Array2::<u32>::zeros((h, w));
            for [cr, cc, wr, wc] in tiles(h, w, tile, margin, m) {
                assert_eq!(cr.start % m, 0);
                assert_eq!(wr.start % m, 0);
                assert_eq!(wc.start % m, 0);
                assert!(wr.start + margin <= cr.start || wr.start == 0);
                assert!(cr.end + margin <= wr.end || wr.end == h);
                assert!(cc.end + margin <= wc.end || wc.end == w);
                count.slice_mut(s![cr, cc]).mapv_inplace(|v| v + 1);
            }
            assert!(count.iter().all(|&c| c == 1), "{h}x{w}");
        }
    }
}
