//! The detector's loss: binary cross-entropy on the class scores against the assigner's soft
//! targets, and a generalised-IoU loss on the boxes of the positive anchors, both weighted by
//! the target scores and normalised by their sum (as in YOLOv8, without the DFL term: our
//! boxes are a few pixels across and a distribution over 16 bins per side buys nothing there).

use candle_core::{DType, Result, Tensor, D};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::assign::{assign, AssignConfig, Target};
use crate::boxes::BBox;
use crate::model::Outputs;

/// Loss weights (`[train.loss]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the box (GIoU) term.
    pub box_gain: f64,
    /// Weight of the class (BCE) term.
    pub cls_gain: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            box_gain: 7.5,
            cls_gain: 0.5,
        }
    }
}

/// The loss and its parts.
pub struct Loss {
    /// Weighted sum, the value to minimise.
    pub total: Tensor,
    /// Number of positive anchors in the batch.
    pub positives: usize,
}

/// `BCE(σ(x), z)` element-wise, stable for large |x|.
pub fn bce_with_logits(x: &Tensor, z: &Tensor) -> Result<Tensor> {
    let log1p_exp = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (x.relu()? - (x * z)?)? + log1p_exp
}

/// Generalised IoU of matching rows of two `(n, 4)` box tensors `[x0, y0, x1, y1]`.
pub fn giou(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let col = |x: &Tensor, i: usize| x.narrow(D::Minus1, i, 1);
    let (px0, py0, px1, py1) = (col(p, 0)?, col(p, 1)?, col(p, 2)?, col(p, 3)?);
    let (tx0, ty0, tx1, ty1) = (col(t, 0)?, col(t, 1)?, col(t, 2)?, col(t, 3)?);
    let iw = (px1.minimum(&tx1)? - px0.maximum(&tx0)?)?.relu()?;
    let ih = (py1.minimum(&ty1)? - py0.maximum(&ty0)?)?.relu()?;
    let inter = (iw * ih)?;
    let ap = ((&px1 - &px0)?.relu()? * (&py1 - &py0)?.relu()?)?;
    let at = ((&tx1 - &tx0)? * (&ty1 - &ty0)?)?;
    let union = ((ap + at)? - &inter)?.affine(1.0, 1e-7)?;
    let iou = (&inter / &union)?;
    let cw = (px1.maximum(&tx1)? - px0.minimum(&tx0)?)?;
    let ch = (py1.maximum(&ty1)? - py0.minimum(&ty0)?)?;
    let c = (cw * ch)?.affine(1.0, 1e-7)?;
    let penalty = ((&c - &union)? / &c)?;
    (iou - penalty)?.squeeze(D::Minus1)
}

/// Loss of a batch: `targets[b]` are image `b`'s truth boxes; `anchors` from
/// [`crate::model::anchors`] for the batch's image size.
pub fn detection_loss(
    out: &Outputs,
    targets: &[Vec<Target>],
    anchors: &[(f32, f32, f32)],
    assign_cfg: &AssignConfig,
    cfg: &LossConfig,
) -> Result<Loss> {
    let (b, a, nc) = out.logits.dims3()?;
    if a != anchors.len() || b != targets.len() {
        candle_core::bail!(
            "loss: {b} images × {a} anchors, given {} target lists and {} anchors",
            targets.len(),
            anchors.len()
        )
    }
    let dev = out.logits.device();
    // The assignment looks at the predictions but is not differentiated through.
    let scores: Vec<f32> = candle_nn::ops::sigmoid(&out.logits.detach())?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let flat_boxes: Vec<f32> = out
        .boxes
        .detach()
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut cls_target = vec![0f32; b * a * nc];
    let mut pos_idx: Vec<u32> = Vec::new();
    let mut pos_box: Vec<f32> = Vec::new();
    let mut pos_w: Vec<f32> = Vec::new();
    for (i, tgts) in targets.iter().enumerate() {
        if tgts.is_empty() {
            continue;
        }
        let boxes: Vec<BBox> = flat_boxes[i * a * 4..(i + 1) * a * 4]
            .chunks_exact(4)
            .map(|c| BBox::new(c[0], c[1], c[2], c[3]))
            .collect();
        let s = &scores[i * a * nc..(i + 1) * a * nc];
        for p in assign(anchors, s, &boxes, nc, tgts, assign_cfg) {
            let t = &tgts[p.target];
            cls_target[(i * a + p.anchor) * nc + t.class] = p.score;
            pos_idx.push((i * a + p.anchor) as u32);
            pos_box.extend_from_slice(&[t.bbox.x0, t.bbox.y0, t.bbox.x1, t.bbox.y1]);
            pos_w.push(p.score);
        }
    }
    let norm = (pos_w.iter().map(|&w| w as f64).sum::<f64>()).max(1.0);
    let target = Tensor::from_vec(cls_target, (b, a, nc), dev)?.to_dtype(out.logits.dtype())?;
    let cls = (bce_with_logits(&out.logits, &target)?.sum_all()? / norm)?;
    let mut total = (cls * cfg.cls_gain)?;
    let positives = pos_idx.len();
    if positives > 0 {
        let idx = Tensor::from_vec(pos_idx, positives, dev)?;
        let pred = out.boxes.reshape((b * a, 4))?.index_select(&idx, 0)?;
        let tb = Tensor::from_vec(pos_box, (positives, 4), dev)?.to_dtype(pred.dtype())?;
        let w = Tensor::from_vec(pos_w, positives, dev)?.to_dtype(pred.dtype())?;
        let g = giou(&pred, &tb)?;
        let box_loss = ((g.neg()? + 1.0)? * w)?.sum_all()?;
        total = (total + (box_loss / norm)? * cfg.box_gain)?;
    }
    Ok(Loss { total, positives })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn giou_of_identical_disjoint_and_nested_boxes() {
        let d = Device::Cpu;
        let p = Tensor::new(
            &[[0f32, 0., 2., 2.], [0., 0., 1., 1.], [0., 0., 4., 4.]],
            &d,
        )
        .unwrap();
        let t = Tensor::new(
            &[[0f32, 0., 2., 2.], [2., 0., 3., 1.], [1., 1., 3., 3.]],
            &d,
        )
        .unwrap();
        let g: Vec<f32> = giou(&p, &t).unwrap().to_vec1().unwrap();
        assert!((g[0] - 1.0).abs() < 1e-5);
        // Disjoint: IoU 0, hull 3×1 = 3, union 2 → -1/3.
        assert!((g[1] + 1.0 / 3.0).abs() < 1e-5);
        // Nested: IoU 4/16, hull = union → 0.25.
        assert!((g[2] - 0.25).abs() < 1e-5);
    }

    #[test]
    fn bce_matches_the_definition() {
        let d = Device::Cpu;
        let x = Tensor::new(&[-30f32, -1.0, 0.0, 2.0, 40.0], &d).unwrap();
        let z = Tensor::new(&[0f32, 1.0, 0.5, 0.0, 1.0], &d).unwrap();
        let l: Vec<f32> = bce_with_logits(&x, &z).unwrap().to_vec1().unwrap();
        for (i, (&xi, &zi)) in [-30f32, -1.0, 0.0, 2.0, 40.0]
            .iter()
            .zip(&[0f32, 1.0, 0.5, 0.0, 1.0])
            .enumerate()
        {
            let p = 1.0 / (1.0 + (-(xi as f64)).exp());
            let want =
                -(zi as f64 * p.max(1e-300).ln() + (1.0 - zi as f64) * (1.0 - p).max(1e-300).ln());
            assert!((l[i] as f64 - want).abs() < 1e-4, "{i}: {} vs {want}", l[i]);
        }
    }
}
