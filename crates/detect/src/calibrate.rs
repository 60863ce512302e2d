//! The operating point: the score threshold at which the detector keeps a stated purity on
//! images it has not seen, whatever the imager.
//!
//! A network's score is a ranking, not a probability: which threshold gives purity 0.9 depends
//! on the training and on the images. [`calibrate`] runs the detector once at a low threshold
//! over simulated fields of many imagers (the training's domain randomisation with seeds of
//! their own, never the training fields' and never an evaluation's), pools the detections
//! of all fields, and picks the lowest threshold whose pooled purity reaches the target. The
//! result ([`OperatingPoint`]) is stored in the model card, and `predict.score_threshold`
//! defaults to it, so that the default means the same thing on every camera's images.
//!
//! Pooling rather than one threshold per field: a user's image is one draw of an imager, and
//! the threshold must hold on the typical one. The per-imager purity at the chosen threshold
//! is kept too (`per_field`), so how much it varies is on record.
//!
//! ```
//! use deepsky_detect::calibrate::threshold_for_purity;
//!
//! // Scores of six detections and whether each matched a true source.
//! let scored = [(0.9, true), (0.8, true), (0.7, false), (0.6, true), (0.5, false), (0.4, false)];
//! // Purity >= 0.75 holds down to 0.6 (3 of 4), not below.
//! assert_eq!(threshold_for_purity(&scored, 0.75), Some(0.6));
//! ```

use deepsky_core::config::{ensure, ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_sim::sky::simulate_sky;

use crate::dataset::{truth_objects, DataConfig, Imager};
use crate::detector::Detector;
use crate::error::{DetectError, Result};
use crate::measure::MeasureConfig;
use crate::metrics::{ratio, DetectedObject, EvalConfig, TruthObject};
use crate::predict::PredictConfig;

/// How the operating point is chosen (`[calibrate]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrateConfig {
    /// Simulated fields (each its own imager when `[data.randomise]` is set).
    pub fields: usize,
    /// Seed of the first field; keep it away from the training and evaluation seeds.
    pub field_seed: u64,
    /// Purity the threshold must keep over all calibration fields together.
    pub purity: f64,
    /// The lowest threshold considered (detections are collected down to it).
    pub min_threshold: f32,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            fields: 24,
            field_seed: 20_000,
            purity: 0.92,
            min_threshold: 0.02,
        }
    }
}

impl Validate for CalibrateConfig {
    /// Range checks, keys relative to the `[calibrate]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(self.fields >= 1, "fields", "must be at least 1")?;
        ensure(
            self.purity > 0.0 && self.purity < 1.0,
            "purity",
            "must be in (0, 1)",
        )?;
        ensure(
            (0.0..1.0).contains(&self.min_threshold),
            "min_threshold",
            "must be in [0, 1)",
        )
    }
}

/// The calibrated operating point of a detector (in `model.json`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct OperatingPoint {
    /// The score threshold `predict.score_threshold` defaults to.
    pub score_threshold: f32,
    /// The purity it was chosen to keep.
    pub purity_target: f64,
    /// Purity over all calibration fields at that threshold.
    pub purity: f64,
    /// Completeness (sources with S/N ≥ `evaluate.min_snr`) over all calibration fields.
    pub completeness: f64,
    /// Test-time orientations the calibration ran with (scores average over them, so another
    /// setting shifts the score distribution).
    pub orientations: usize,
    /// Calibration fields: seeds `field_seed …`.
    pub field_seed: u64,
    /// Each field's imager and result at the threshold.
    pub per_field: Vec<FieldPoint>,
}

/// One calibration field at the chosen threshold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FieldPoint {
    /// Simulator seed.
    pub seed: u64,
    /// PSF FWHM, pixels.
    pub psf_fwhm_pixels: f64,
    /// Pixel scale, arcsec.
    pub pixel_scale: f64,
    /// Detections kept and how many matched a true object.
    pub n_detections: usize,
    /// Matched detections.
    pub n_matched: usize,
    /// Purity.
    pub purity: Option<f64>,
    /// Completeness (S/N ≥ `evaluate.min_snr`).
    pub completeness: Option<f64>,
}

/// The lowest score `t` among `scored` (score, matched) such that the detections with score
/// ≥ `t` have purity ≥ `purity`; `None` when even the best-scored detection is false.
pub fn threshold_for_purity(scored: &[(f32, bool)], purity: f64) -> Option<f32> {
    let mut sorted: Vec<(f32, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut kept, mut matched, mut best) = (0usize, 0usize, None);
    let mut i = 0;
    while i < sorted.len() {
        // All detections of one score are kept or dropped together.
        let s = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == s {
            kept += 1;
            matched += sorted[i].1 as usize;
            i += 1;
        }
        // (With a little slack, so that 3 of 5 counts as purity 0.6.)
        if matched as f64 >= purity * kept as f64 - 1e-9 {
            best = Some(s);
        }
    }
    best
}

/// Purity and completeness of `det` at score threshold `threshold` on a field of `imager`
/// (simulated with noise; matched as in [`calibrate_on`]).
pub fn field_point(
    det: &Detector,
    imager: &Imager,
    predict: &PredictConfig,
    measure: &MeasureConfig,
    eval: &EvalConfig,
    threshold: f32,
) -> Result<FieldPoint> {
    Ok(run_field(det, imager, predict, measure, eval, threshold)?.at(threshold))
}

/// Simulate a field of `imager`, find and measure its sources at `threshold` and match them.
fn run_field(
    det: &Detector,
    imager: &Imager,
    predict: &PredictConfig,
    measure: &MeasureConfig,
    eval: &EvalConfig,
    threshold: f32,
) -> Result<FieldRun> {
    let mut low = predict.clone();
    low.score_threshold = Some(threshold);
    let mut sky = imager.sky.clone();
    sky.noise.enabled = true;
    let field = simulate_sky(&sky, &())
        .map_err(|e| DetectError::Sim(format!("calibration field seed {}: {e}", sky.seed)))?;
    let mut image = field.image;
    if imager.sky_subtracted {
        let level = sky.noise.sky_adu() as f32;
        image.mapv_inplace(|v| v - level);
    }
    let pred = crate::predict::predict(det, image.view(), None, &low, &mut |_, _| true)?;
    let objects = crate::measure::measure(
        image.view(),
        &pred.background,
        &pred.detections,
        det.classes(),
        measure,
        Some(sky.noise.gain),
        None,
    );
    let dets: Vec<DetectedObject> = objects.iter().map(DetectedObject::from).collect();
    let truth = truth_objects(&field.catalog);
    let fwhm = imager.psf_fwhm_pixels();
    let dm = match_by_score(&dets, &truth, eval.match_radius.max(fwhm));
    let counted = |t: usize| !truth[t].artefact && truth[t].snr >= eval.min_snr;
    Ok(FieldRun {
        seed: sky.seed,
        psf_fwhm_pixels: fwhm,
        pixel_scale: sky.pixel_scale,
        dets: dets
            .iter()
            .zip(&dm)
            .map(|(d, m)| (d.score as f32, m.is_some(), m.is_some_and(counted)))
            .collect(),
        n_counted: (0..truth.len()).filter(|&t| counted(t)).count(),
    })
}

/// For each detection, the truth object it matches when detections claim the nearest
/// unclaimed truth object within `radius` in order of decreasing score (as precision–recall
/// curves match): a detection's status then depends only on better-scored ones, so the
/// matches at any threshold above the collection threshold are these. (Matching by distance
/// alone, as [`crate::metrics::match_by_distance`] does for one catalogue, would let a
/// low-scored duplicate that will be cut take the match from the detection that stays.)
fn match_by_score(
    dets: &[DetectedObject],
    truth: &[TruthObject],
    radius: f64,
) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
    let mut taken = vec![false; truth.len()];
    let mut out = vec![None; dets.len()];
    for d in order {
        let best = (0..truth.len())
            .filter(|&t| !taken[t])
            .map(|t| (truth[t].distance(dets[d].x, dets[d].y), t))
            .filter(|&(r, _)| r as f64 <= radius)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, t)) = best {
            taken[t] = true;
            out[d] = Some(t);
        }
    }
    out
}

/// One calibration field's detections and truth, matched.
struct FieldRun {
    seed: u64,
    psf_fwhm_pixels: f64,
    pixel_scale: f64,
    /// (score, matched a true object, matched a source counted in the completeness).
    dets: Vec<(f32, bool, bool)>,
    /// Sources counted in the completeness.
    n_counted: usize,
}

impl FieldRun {
    /// Counted sources found by detections scored ≥ `threshold`.
    fn found_at(&self, threshold: f32) -> usize {
        self.dets.iter().filter(|d| d.0 >= threshold && d.2).count()
    }

    /// The field's result at `threshold`.
    fn at(&self, threshold: f32) -> FieldPoint {
        let above = self.dets.iter().filter(|d| d.0 >= threshold);
        let (n, m) = above.fold((0, 0), |(n, m), d| (n + 1, m + d.1 as usize));
        FieldPoint {
            seed: self.seed,
            psf_fwhm_pixels: self.psf_fwhm_pixels,
            pixel_scale: self.pixel_scale,
            n_detections: n,
            n_matched: m,
            purity: ratio(m, n),
            completeness: ratio(self.found_at(threshold), self.n_counted),
        }
    }
}

/// Choose `det`'s operating point on `cfg.fields` fields simulated by `data`'s imagers (seeds
/// `cfg.field_seed …`): [`calibrate_on`] those imagers.
pub fn calibrate(
    det: &Detector,
    data: &DataConfig,
    predict: &PredictConfig,
    measure: &MeasureConfig,
    eval: &EvalConfig,
    cfg: &CalibrateConfig,
    on_field: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<OperatingPoint> {
    let imagers: Vec<Imager> = (0..cfg.fields)
        .map(|k| data.imager_of_seed(cfg.field_seed + k as u64))
        .collect();
    calibrate_on(det, &imagers, predict, measure, eval, cfg, on_field)
}

/// Choose `det`'s operating point on one simulated field (with noise) of each of `imagers`,
/// predicting with `predict` (its threshold replaced by `cfg.min_threshold`) and measuring
/// with `measure`; a detection is true when it lies within max(`eval.match_radius`, PSF
/// FWHM) of a truth object (`cfg.fields` is not used). `on_field(done, total)` is called
/// after each field; returning false stops with [`deepsky_nn::NnError::Interrupted`].
pub fn calibrate_on(
    det: &Detector,
    imagers: &[Imager],
    predict: &PredictConfig,
    measure: &MeasureConfig,
    eval: &EvalConfig,
    cfg: &CalibrateConfig,
    on_field: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<OperatingPoint> {
    cfg.validate().map_err(|e| e.within("calibrate"))?;
    let mut runs = Vec::with_capacity(imagers.len());
    for (k, imager) in imagers.iter().enumerate() {
        runs.push(run_field(
            det,
            imager,
            predict,
            measure,
            eval,
            cfg.min_threshold,
        )?);
        if !on_field(k + 1, imagers.len()) {
            return Err(DetectError::Nn(deepsky_nn::NnError::Interrupted));
        }
    }
    let pooled: Vec<(f32, bool)> = runs
        .iter()
        .flat_map(|r| r.dets.iter().map(|&(s, m, _)| (s, m)))
        .collect();
    let threshold = threshold_for_purity(&pooled, cfg.purity).ok_or_else(|| {
        DetectError::InvalidArgument(format!(
            "calibration: no score threshold reaches purity {} on {} fields",
            cfg.purity,
            imagers.len()
        ))
    })?;
    let (mut kept, mut matched, mut found, mut counted) = (0, 0, 0, 0);
    let per_field: Vec<FieldPoint> = runs.iter().map(|r| r.at(threshold)).collect();
    for (p, r) in per_field.iter().zip(&runs) {
        kept += p.n_detections;
        matched += p.n_matched;
        found += r.found_at(threshold);
        counted += r.n_counted;
    }
    Ok(OperatingPoint {
        score_threshold: threshold,
        purity_target: cfg.purity,
        purity: ratio(matched, kept).unwrap_or(f64::NAN),
        completeness: ratio(found, counted).unwrap_or(f64::NAN),
        orientations: predict.orientations,
        field_seed: cfg.field_seed,
        per_field,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_lowest_that_keeps_the_purity() {
        let s = [
            (0.9, true),
            (0.8, false),
            (0.7, true),
            (0.6, true),
            (0.2, false),
        ];
        // ≥0.9: 1/1; ≥0.8: 1/2; ≥0.7: 2/3; ≥0.6: 3/4; ≥0.2: 3/5.
        assert_eq!(threshold_for_purity(&s, 0.75), Some(0.6));
        assert_eq!(threshold_for_purity(&s, 0.6), Some(0.2));
        assert_eq!(threshold_for_purity(&s, 0.9), Some(0.9));
        assert_eq!(threshold_for_purity(&[(0.5, false)], 0.5), None);
        // Ties are kept or dropped together.
        let t = [(0.9, true), (0.5, true), (0.5, false), (0.5, false)];
        assert_eq!(threshold_for_purity(&t, 0.6), Some(0.9));
        assert_eq!(threshold_for_purity(&t, 0.5), Some(0.5));
    }
}
