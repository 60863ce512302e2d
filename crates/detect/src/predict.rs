//! Running a trained detector over an image of any size: background and noise on the whole
//! image, then square tiles with overlap, batched through the network, decoded, and merged at
//! the seams.
//!
//! Memory is bounded by the tile batch, not the image: the network only ever sees
//! `batch × tile × tile` pixels, and the whole-image arrays are the image itself, its
//! background and noise maps (12 bytes per pixel: 200 MB for 4k × 4k).
//!
//! Seams: the tiles overlap by `overlap` pixels, and each tile is responsible for the part of
//! the image nearer its centre than its neighbours' (the boundary runs through the middle of
//! each overlap). A detection is kept only by the tile responsible for its centre, so an
//! object near a seam, which two tiles both see whole, is reported once; a final NMS removes
//! the rare pair whose centres fall either side of the boundary.

use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::background::{estimate_background, normalise_asinh, Background};
use crate::boxes::{nms, BBox, Scored};
use crate::error::{DetectError, Result};
use crate::model::{anchors, SIZE_MULTIPLE};
use crate::trained::{images_tensor, TrainedDetector};

/// Settings of prediction (`[predict]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// Tile side, pixels (a multiple of 16).
    pub tile: usize,
    /// Overlap of neighbouring tiles, pixels: at least the size of the largest object that
    /// must be found whole.
    pub overlap: usize,
    /// Tiles per forward pass.
    pub batch: usize,
    /// Smallest class score reported.
    pub score_threshold: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub iou_threshold: f32,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig {
            tile: 256,
            overlap: 32,
            batch: 4,
            score_threshold: 0.25,
            iou_threshold: 0.5,
        }
    }
}

impl PredictConfig {
    /// Range checks, with the key that is wrong.
    pub fn check(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.tile < 32 || self.tile % SIZE_MULTIPLE != 0 {
            return bad("tile", "must be a multiple of 16, at least 32");
        }
        if self.overlap >= self.tile / 2 {
            return bad("overlap", "must be less than half the tile");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.score_threshold) {
            return bad("score_threshold", "must be in [0, 1)");
        }
        if !(self.iou_threshold > 0.0 && self.iou_threshold <= 1.0) {
            return bad("iou_threshold", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// Start positions of tiles of side `tile` covering `n` pixels with at least `overlap` between
/// neighbours; the last tile ends at the edge.
pub fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let step = tile - overlap;
    let mut v: Vec<usize> = (0..)
        .map(|k| k * step)
        .take_while(|&s| s + tile < n)
        .collect();
    v.push(n - tile);
    v.dedup();
    v
}

/// Number of tiles [`predict`] runs on an `h × w` image.
pub fn tile_count(h: usize, w: usize, cfg: &PredictConfig) -> usize {
    let (th, tw) = tile_shape(h, w, cfg);
    tile_starts(h, th, cfg.overlap).len() * tile_starts(w, tw, cfg.overlap).len()
}

/// Tile shape for an `h × w` image: images smaller than a tile run as one tile of the image
/// rounded up to 16 pixels.
fn tile_shape(h: usize, w: usize, cfg: &PredictConfig) -> (usize, usize) {
    (
        cfg.tile.min(h.next_multiple_of(SIZE_MULTIPLE)),
        cfg.tile.min(w.next_multiple_of(SIZE_MULTIPLE)),
    )
}

/// For tiles starting at `starts` (side `tile`), the range `[lo, hi)` of centres each is
/// responsible for: boundaries in the middle of each overlap.
fn responsibility(starts: &[usize], tile: usize) -> Vec<(f32, f32)> {
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let lo = if k == 0 {
            f32::NEG_INFINITY
        } else {
            0.5 * (s as f32 + (starts[k - 1] + tile) as f32)
        };
        let hi = if k + 1 == starts.len() {
            f32::INFINITY
        } else {
            0.5 * (starts[k + 1] as f32 + (s + tile) as f32)
        };
        out.push((lo, hi));
    }
    out
}

/// Detections of one image with the background used.
pub struct Prediction {
    /// Detections by decreasing score, boxes in continuous 0-based pixels of the image.
    pub detections: Vec<Scored>,
    /// Background and noise maps.
    pub background: Background,
    /// Number of tiles run.
    pub tiles: usize,
}

/// Run `det` over `image` (NaN = masked). `on_tiles(done, total)` is called after each batch
/// of tiles; returning false stops the run (Ctrl-C) with [`deepsky_nn::NnError::Interrupted`].
pub fn predict(
    det: &TrainedDetector,
    image: ArrayView2<f32>,
    mask: Option<ArrayView2<bool>>,
    cfg: &PredictConfig,
    on_tiles: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Prediction> {
    if let Err((k, m)) = cfg.check() {
        return Err(DetectError::InvalidConfig(format!("predict.{k}: {m}")));
    }
    let (h, w) = image.dim();
    if h == 0 || w == 0 {
        return Err(DetectError::Input("the image is empty".into()));
    }
    let pre = &det.card.preprocess;
    let background = estimate_background(image, mask, &pre.background)?;
    let (th, tw) = tile_shape(h, w, cfg);
    let rows = tile_starts(h, th, cfg.overlap);
    let cols = tile_starts(w, tw, cfg.overlap);
    let (row_resp, col_resp) = (responsibility(&rows, th), responsibility(&cols, tw));
    let mut tiles: Vec<(usize, usize)> = Vec::new();
    for (i, _) in rows.iter().enumerate() {
        for (j, _) in cols.iter().enumerate() {
            tiles.push((i, j));
        }
    }
    let anchors = anchors(th, tw);
    let nc = det.net.num_classes();
    let mut found: Vec<Scored> = Vec::new();
    let total = tiles.len();
    for (done, chunk) in tiles.chunks(cfg.batch).enumerate() {
        let mut norm_tiles = Vec::with_capacity(chunk.len());
        for &(i, j) in chunk {
            let (r0, c0) = (rows[i], cols[j]);
            let (r1, c1) = ((r0 + th).min(h), (c0 + tw).min(w));
            let part = normalise_asinh(
                image.slice(s![r0..r1, c0..c1]),
                &Background {
                    level: background.level.slice(s![r0..r1, c0..c1]).to_owned(),
                    rms: background.rms.slice(s![r0..r1, c0..c1]).to_owned(),
                    global_level: background.global_level,
                    global_rms: background.global_rms,
                },
                pre.softening,
            )?;
            // Masked pixels read as background (0 after normalisation); so does the padding
            // of an image smaller than a tile.
            let mut t = Array2::<f32>::zeros((th, tw));
            t.slice_mut(s![..r1 - r0, ..c1 - c0]).assign(&part);
            if let Some(m) = mask {
                for ((r, c), v) in t.slice_mut(s![..r1 - r0, ..c1 - c0]).indexed_iter_mut() {
                    if m[[r0 + r, c0 + c]] {
                        *v = 0.0;
                    }
                }
            }
            norm_tiles.push(t);
        }
        let refs: Vec<&Array2<f32>> = norm_tiles.iter().collect();
        let x = images_tensor(&refs, &det.device)?;
        let out = det.net.forward(&x, false)?;
        let scores: Vec<f32> = candle_nn::ops::sigmoid(&out.logits)?
            .flatten_all()?
            .to_vec1()?;
        let boxes: Vec<f32> = out.boxes.flatten_all()?.to_vec1()?;
        let a = anchors.len();
        for (k, &(i, j)) in chunk.iter().enumerate() {
            let (r0, c0) = (rows[i] as f32, cols[j] as f32);
            let mut local = Vec::new();
            for an in 0..a {
                let sc = &scores[(k * a + an) * nc..(k * a + an + 1) * nc];
                let (class, &score) = sc
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .expect("at least one class");
                if score < cfg.score_threshold {
                    continue;
                }
                let b = &boxes[(k * a + an) * 4..(k * a + an + 1) * 4];
                let bbox = BBox::new(b[0], b[1], b[2], b[3]).shifted(c0, r0);
                let (cx, cy) = bbox.centre();
                let (ylo, yhi) = row_resp[i];
                let (xlo, xhi) = col_resp[j];
                if cx < xlo
                    || cx >= xhi
                    || cy < ylo
                    || cy >= yhi
                    || cx >= w as f32
                    || cy >= h as f32
                {
                    continue;
                }
                local.push(Scored {
                    bbox: bbox.clipped(w as f32, h as f32),
                    class,
                    score,
                });
            }
            found.extend(nms(local, cfg.iou_threshold));
        }
        if !on_tiles(((done + 1) * cfg.batch).min(total), total) {
            return Err(DetectError::Nn(deepsky_nn::NnError::Interrupted));
        }
    }
    let detections = nms(found, cfg.iou_threshold);
    Ok(Prediction {
        detections,
        background,
        tiles: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_and_responsibilities_partition_it() {
        for (n, tile, overlap) in [
            (1000usize, 256usize, 32usize),
            (256, 256, 32),
            (300, 256, 32),
            (4096, 256, 32),
        ] {
            let st = tile_starts(n, tile, overlap);
            assert_eq!(st[0], 0);
            assert_eq!(st.last().unwrap() + tile.min(n), n.max(tile.min(n)));
            for w in st.windows(2) {
                assert!(w[0] + tile >= w[1] + overlap, "{st:?}");
            }
            let r = responsibility(&st, tile);
            for k in 1..r.len() {
                assert_eq!(r[k - 1].1, r[k].0);
                // The boundary is inside both tiles, at least overlap/2 from each edge.
                assert!(r[k].0 >= st[k] as f32 + overlap as f32 / 2.0 - 0.5);
                assert!(r[k].0 <= (st[k - 1] + tile) as f32 - overlap as f32 / 2.0 + 0.5);
            }
        }
    }
}

#[cfg(test)]
mod masked_tests {
    use super::*;
    use candle_core::Device;

    /// NaN pixels (a masked block, as a bad amplifier or a chip gap leaves them) neither stop
    /// prediction nor create detections; sources away from them are found as without the mask.
    #[test]
    fn nan_block_is_ignored_and_the_rest_found_as_before() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/detect");
        let det = TrainedDetector::load(&dir, &Device::Cpu).unwrap();
        let sky = deepsky_sim::sky::SkyConfig {
            width: 160,
            height: 160,
            seed: 77,
            ..Default::default()
        };
        let field = deepsky_sim::sky::simulate_sky(&sky, &()).unwrap();
        let cfg = PredictConfig {
            score_threshold: 0.15,
            iou_threshold: 0.3,
            ..Default::default()
        };
        let clean = predict(&det, field.image.view(), None, &cfg, &mut |_, _| true).unwrap();
        let mut img = field.image.clone();
        img.slice_mut(s![40..80, 40..80]).fill(f32::NAN);
        let masked = predict(&det, img.view(), None, &cfg, &mut |_, _| true).unwrap();
        assert!(masked.background.level.iter().all(|v| v.is_finite()));
        let inside = |b: &BBox| {
            let (x, y) = b.centre();
            (42.0..78.0).contains(&x) && (42.0..78.0).contains(&y)
        };
        assert!(masked.detections.iter().all(|d| !inside(&d.bbox)));
        // Away from the block (8 pixels of margin), the same sources.
        let far = |b: &BBox| {
            let (x, y) = b.centre();
            !((32.0..88.0).contains(&x) && (32.0..88.0).contains(&y))
        };
        let a: Vec<_> = clean.detections.iter().filter(|d| far(&d.bbox)).collect();
        let found = a
            .iter()
            .filter(|d| {
                masked.detections.iter().any(|m| {
                    let ((x0, y0), (x1, y1)) = (d.bbox.centre(), m.bbox.centre());
                    (x0 - x1).hypot(y0 - y1) < 1.0
                })
            })
            .count();
        assert!(a.len() > 50, "{} detections", a.len());
        assert!(
            found as f64 >= 0.9 * a.len() as f64,
            "{found} of {}",
            a.len()
        );
    }
}
