//! Task-aligned target assignment (TOOD / YOLOv8): which anchors learn which truth box.
//!
//! For each truth box the candidates are the anchor points inside it (a box is widened to at
//! least one cell of the level around its centre, so that a one-pixel-wide bad column or a
//! cosmic-ray track still has candidates on every level). Each candidate's alignment is
//! `score^α · IoU^β`, the predicted probability of the true class times the overlap of the
//! predicted box, so that the anchors that already classify *and* localise best are taught
//! most; the `top_k` best become positives. An anchor claimed by two boxes keeps the one it
//! overlaps most. The class target of a positive is its alignment normalised so that the best
//! anchor of each box gets that box's best IoU: classification confidence learns to predict
//! localisation quality, which is what NMS and the score threshold then rank by.

use deepsky_core::config::{ensure, ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::boxes::BBox;

/// Assigner settings (`[train.assign]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AssignConfig {
    /// Positives per truth box.
    pub top_k: usize,
    /// Exponent of the class score in the alignment.
    pub alpha: f32,
    /// Exponent of the IoU in the alignment.
    pub beta: f32,
}

impl Default for AssignConfig {
    fn default() -> Self {
        AssignConfig {
            top_k: 10,
            alpha: 0.5,
            beta: 6.0,
        }
    }
}

impl Validate for AssignConfig {
    /// Range checks, keys relative to the `[assign]` section.
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.top_k >= 1, "top_k", "must be at least 1")
    }
}

/// A truth box with its class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// Box in the image's continuous pixel coordinates.
    pub bbox: BBox,
    /// Class index.
    pub class: usize,
}

/// A positive anchor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Positive {
    /// Anchor index.
    pub anchor: usize,
    /// Index of its truth box.
    pub target: usize,
    /// Soft class target in [0, 1] (normalised alignment).
    pub score: f32,
}

/// Assign truth boxes to anchors for one image.
///
/// `anchors` are `(x, y, stride)` (see [`crate::model::anchors`]), `scores` the predicted
/// class probabilities `anchors × classes` row-major, `boxes` the predicted boxes.
pub fn assign(
    anchors: &[(f32, f32, f32)],
    scores: &[f32],
    boxes: &[BBox],
    num_classes: usize,
    targets: &[Target],
    cfg: &AssignConfig,
) -> Vec<Positive> {
    struct Cand {
        anchor: usize,
        target: usize,
        align: f32,
        iou: f32,
    }
    let mut chosen: Vec<Cand> = Vec::new();
    for (g, t) in targets.iter().enumerate() {
        let (cx, cy) = t.bbox.centre();
        let mut cands: Vec<(usize, f32, f32, f32)> = Vec::new(); // anchor, align, iou, dist²
        for (a, &(ax, ay, s)) in anchors.iter().enumerate() {
            let hw = (0.5 * t.bbox.width()).max(0.5 * s);
            let hh = (0.5 * t.bbox.height()).max(0.5 * s);
            if (ax - cx).abs() > hw || (ay - cy).abs() > hh {
                continue;
            }
            let iou = boxes[a].iou(&t.bbox);
            let p = scores[a * num_classes + t.class].clamp(0.0, 1.0);
            let align = p.powf(cfg.alpha) * iou.powf(cfg.beta);
            let d2 = (ax - cx).powi(2) + (ay - cy).powi(2);
            cands.push((a, align, iou, d2));
        }
        // Best alignment first; before the network has learnt anything (all alignments 0)
        // the anchors nearest the centre.
        cands.sort_by(|x, y| {
            y.1.total_cmp(&x.1)
                .then(x.3.total_cmp(&y.3))
                .then(x.0.cmp(&y.0))
        });
        for &(anchor, align, iou, _) in cands.iter().take(cfg.top_k) {
            chosen.push(Cand {
                anchor,
                target: g,
                align,
                iou,
            });
        }
    }
    // One truth box per anchor: the one it overlaps most (ties: the smaller box, whose
    // candidates are scarcer).
    chosen.sort_by(|x, y| {
        x.anchor.cmp(&y.anchor).then(y.iou.total_cmp(&x.iou)).then(
            targets[x.target]
                .bbox
                .area()
                .total_cmp(&targets[y.target].bbox.area()),
        )
    });
    chosen.dedup_by_key(|c| c.anchor);
    let mut max_align = vec![0f32; targets.len()];
    let mut max_iou = vec![0f32; targets.len()];
    for c in &chosen {
        max_align[c.target] = max_align[c.target].max(c.align);
        max_iou[c.target] = max_iou[c.target].max(c.iou);
    }
    chosen
        .into_iter()
        .map(|c| Positive {
            anchor: c.anchor,
            target: c.target,
            score: if max_align[c.target] > 0.0 {
                c.align / max_align[c.target] * max_iou[c.target]
            } else {
                0.0
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::anchors;

    #[test]
    fn every_target_gets_positives_even_thin_ones() {
        let a = anchors(32, 32);
        let nc = 2;
        // Untrained network: every predicted box is a 6×6 square on its anchor, p = 0.01.
        let boxes: Vec<BBox> = a
            .iter()
            .map(|&(x, y, _)| BBox::new(x - 3.0, y - 3.0, x + 3.0, y + 3.0))
            .collect();
        let scores = vec![0.01; a.len() * nc];
        let targets = [
            Target {
                bbox: BBox::new(8.0, 8.0, 15.0, 15.0),
                class: 0,
            },
            // A one-pixel-wide column between anchor columns.
            Target {
                bbox: BBox::new(25.0, 0.0, 26.0, 32.0),
                class: 1,
            },
        ];
        let cfg = AssignConfig::default();
        let pos = assign(&a, &scores, &boxes, nc, &targets, &cfg);
        for g in 0..2 {
            let n = pos.iter().filter(|p| p.target == g).count();
            assert!(n >= 3 && n <= cfg.top_k, "target {g}: {n} positives");
        }
        // No anchor twice; the best anchor of each box has target = its IoU.
        let mut anchors_seen: Vec<usize> = pos.iter().map(|p| p.anchor).collect();
        anchors_seen.sort();
        anchors_seen.dedup();
        assert_eq!(anchors_seen.len(), pos.len());
        let best0 = pos
            .iter()
            .filter(|p| p.target == 0)
            .map(|p| p.score)
            .fold(0f32, f32::max);
        let best_iou0 = pos
            .iter()
            .filter(|p| p.target == 0)
            .map(|p| boxes[p.anchor].iou(&targets[0].bbox))
            .fold(0f32, f32::max);
        assert!((best0 - best_iou0).abs() < 1e-6 && best0 > 0.3);
    }

    #[test]
    fn better_predictions_win_the_positives() {
        let a = anchors(32, 32);
        let t = Target {
            bbox: BBox::new(4.0, 4.0, 12.0, 12.0),
            class: 0,
        };
        // Anchor 5 (stride 4, row 0 col 5 → (22, 2)) is outside; the candidates are those
        // near (8, 8). Make one candidate predict the box exactly.
        let mut boxes: Vec<BBox> = a
            .iter()
            .map(|&(x, y, _)| BBox::new(x - 1.0, y - 1.0, x + 1.0, y + 1.0))
            .collect();
        let exact = a
            .iter()
            .position(|&(x, y, s)| s == 4.0 && x == 6.0 && y == 10.0)
            .unwrap();
        boxes[exact] = t.bbox;
        let scores = vec![0.5; a.len()];
        let cfg = AssignConfig {
            top_k: 1,
            ..Default::default()
        };
        let pos = assign(&a, &scores, &boxes, 1, &[t], &cfg);
        assert_eq!(pos.len(), 1);
        assert_eq!(pos[0].anchor, exact);
        assert!((pos[0].score - 1.0).abs() < 1e-6);
    }
}
