//! The operating point: each plane's probability threshold, chosen on simulated fields that
//! training never saw (the seeds after the training fields'): for the artefact planes the
//! lowest threshold whose false-positive rate there is at most `calibrate.fpr`; for source
//! footprints (`DETECTED`) the one with the best F1 score, since a footprint's faint edge is
//! as uncertain as the noise and a 1e-3 false-positive rate would cut most of it away. Stored in the model card, so that
//! `predict` uses it unless the config overrides it.

use deepsky_core::mask::MaskPlane;
use deepsky_detect::{DetectError, Result};
use deepsky_sim::sky::simulate_sky;
use ndarray::{Array2, Axis};

use crate::config::SegmentConfig;
use crate::metrics::{PlaneScore, Split};
use crate::model::{PlaneThreshold, Segmenter};
use crate::predict::{predict, PredictConfig, Prediction};

/// A simulated field with noise and its truth bitmask, as a user's image would come.
pub struct TruthField {
    /// Image, ADU (sky subtracted for some imagers).
    pub image: Array2<f32>,
    /// Truth bits.
    pub bits: Array2<u32>,
}

/// The field of `seed` under `cfg.data` (imager and artefacts drawn as for training), with
/// noise.
pub fn truth_field(cfg: &SegmentConfig, seed: u64) -> Result<TruthField> {
    let (mut sky, subtracted) = cfg.data.field_sky(seed);
    sky.noise.enabled = true;
    let f = simulate_sky(&sky, &())
        .map_err(|e| DetectError::Sim(format!("calibration field of seed {seed}: {e}")))?;
    let mut image = f.image;
    if subtracted {
        let s = sky.noise.sky_adu() as f32;
        image.mapv_inplace(|v| v - s);
    }
    Ok(TruthField {
        image,
        bits: f.masks.bits,
    })
}

/// Probabilities of each plane split by the truth, over the finite pixels.
pub fn splits(pred: &Prediction, image: &Array2<f32>, truth: &Array2<u32>) -> Vec<Split> {
    let valid = image.mapv(f32::is_finite);
    pred.planes
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let t = truth.mapv(|b| p.is_set(b));
            Split::new(
                pred.probabilities.index_axis(Axis(0), k),
                t.view(),
                valid.view(),
            )
        })
        .collect()
}

/// Scores of each plane at the prediction's thresholds.
pub fn evaluate(pred: &Prediction, image: &Array2<f32>, truth: &Array2<u32>) -> Vec<PlaneScore> {
    splits(pred, image, truth)
        .iter()
        .zip(&pred.thresholds)
        .map(|(s, &(p, t, _))| s.score(p.name(), t))
        .collect()
}

/// Choose each plane's threshold on `cfg.calibrate.fields` unseen simulated fields.
pub fn calibrate(seg: &Segmenter, cfg: &SegmentConfig) -> Result<Vec<PlaneThreshold>> {
    let net = seg.compile()?;
    let planes = seg.planes();
    let mut per_plane: Vec<Vec<Split>> = planes.iter().map(|_| Vec::new()).collect();
    let predict_cfg = PredictConfig {
        thresholds: Default::default(),
        ..cfg.predict.clone()
    };
    for k in 0..cfg.calibrate.fields {
        let f = truth_field(cfg, cfg.calibration_seed() + k as u64)?;
        let pred = predict(seg, &net, f.image.view(), &predict_cfg, &|_, _| true)?;
        for (acc, s) in per_plane.iter_mut().zip(splits(&pred, &f.image, &f.bits)) {
            acc.push(s);
        }
    }
    Ok(planes
        .iter()
        .zip(per_plane)
        .map(|(p, parts)| {
            let s = Split::merge(parts);
            let (threshold, rule) = if *p == MaskPlane::Detected {
                (s.threshold_best_f1(), "f1")
            } else {
                (s.threshold_at_fpr(cfg.calibrate.fpr), "fpr")
            };
            let (tpr, fpr) = s.rates(threshold);
            PlaneThreshold {
                plane: p.name().to_string(),
                threshold,
                fpr,
                tpr,
                auc: Some(s.auc()).filter(|a| a.is_finite()),
                rule: rule.into(),
            }
        })
        .collect())
}
