//! Scoring a catalogue of detections against a truth catalogue, the same way for the neural
//! detector, the classical baseline and SExtractor.
//!
//! Matching (the rules of benchmarks/sextractor/evaluate.py, so that SExtractor is scored
//! exactly like deepsky): a detection and a truth object are a candidate pair when their
//! distance is at most `match_radius` (default 2.5 pixels, the PSF FWHM of the bundled
//! fields). The distance is between centres for stars and galaxies; for objects whose centre
//! is ill-defined (saturated stars with bleed trails, cosmic-ray tracks, bad columns) it is
//! the distance to the truth box (0 inside it). Pairs are taken greedily by increasing
//! distance (ties: truth row, then detection row), each detection and each truth object at
//! most once.
//!
//! - Completeness in an S/N bin: matched truth sources (stars, galaxies, saturated stars) with
//!   truth S/N in the bin, over all truth sources in the bin; `completeness` overall counts the
//!   sources with S/N ≥ `min_snr`. Artefacts have their own per-class completeness.
//! - Purity: detections matched to any truth object (any S/N, artefacts included: they are
//!   real features of the image, and whether they are *classified* as artefacts is what the
//!   per-class numbers say) over all detections. Per bin, detections are binned by their
//!   measured S/N.
//! - F1: `2PC/(P+C)`.
//! - mAP@0.5: per class, detections of that class ranked by score, true positive when their box
//!   overlaps an unclaimed truth box of that class with IoU ≥ 0.5; all-point interpolated area
//!   under precision–recall (PASCAL VOC 2010+). Truth sources below `min_snr` are "difficult":
//!   detections claiming them are neither true nor false positives, and they do not count in
//!   recall. `ap50_agnostic` does the same ignoring classes (for detectors without them).

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::pixel::from_fits;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::boxes::BBox;
use crate::classes::{has_centre, is_artefact, SourceClass};

/// A truth object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthObject {
    /// Centre, continuous 0-based pixels.
    pub x: f32,
    /// Centre, continuous 0-based pixels.
    pub y: f32,
    /// Box.
    pub bbox: BBox,
    /// Class index.
    pub class: usize,
    /// Truth S/N (NaN where undefined).
    pub snr: f64,
    /// Cosmic ray, bad column: not a source.
    pub artefact: bool,
    /// Matched by distance to its box rather than its centre (saturated stars, artefacts).
    pub match_box: bool,
}

impl TruthObject {
    /// A truth object from a catalogue's values: its centre `(x, y)` in FITS 1-based pixels,
    /// its box as 1-based inclusive pixel indices `[xmin, ymin, xmax, ymax]`, its class index,
    /// its S/N, and which of the simulator's classes that index is (`None` for a class it does
    /// not know: then it is a source matched by its box).
    pub fn from_catalog(
        (x, y): (f64, f64),
        [xmin, ymin, xmax, ymax]: [i64; 4],
        class: usize,
        kind: Option<SourceClass>,
        snr: f64,
    ) -> TruthObject {
        TruthObject {
            x: from_fits(x) as f32,
            y: from_fits(y) as f32,
            bbox: BBox::from_fits_pixels(xmin, ymin, xmax, ymax),
            class,
            snr,
            artefact: kind.is_some_and(is_artefact),
            match_box: !kind.is_some_and(has_centre),
        }
    }

    /// Distance of a point from this object under the matching rule.
    pub fn distance(&self, x: f32, y: f32) -> f32 {
        if self.match_box {
            let dx = (self.bbox.x0 - x).max(x - self.bbox.x1).max(0.0);
            let dy = (self.bbox.y0 - y).max(y - self.bbox.y1).max(0.0);
            (dx * dx + dy * dy).sqrt()
        } else {
            ((x - self.x).powi(2) + (y - self.y).powi(2)).sqrt()
        }
    }
}

/// A detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectedObject {
    /// Centre, continuous 0-based pixels.
    pub x: f32,
    /// Centre, continuous 0-based pixels.
    pub y: f32,
    /// Box, when the detector gives one.
    pub bbox: Option<BBox>,
    /// Class, when the detector gives one.
    pub class: Option<usize>,
    /// Ranking score (probability, or S/N for detectors without one).
    pub score: f64,
    /// Measured S/N (for purity per bin).
    pub snr: f64,
}

/// Settings of the evaluation (`[evaluate]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Smallest matching radius, pixels.
    pub match_radius: f64,
    /// Sources fainter than this do not count in the overall completeness and in mAP.
    pub min_snr: f64,
    /// Edges of the S/N bins (the last bin is open).
    pub snr_edges: Vec<f64>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            match_radius: 2.5,
            min_snr: 3.0,
            snr_edges: vec![0.0, 3.0, 5.0, 10.0, 20.0, 50.0],
        }
    }
}

/// One S/N bin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnrBin {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge (None: open).
    #[serde(deserialize_with = "crate::report::nullable")]
    pub hi: Option<f64>,
    /// Truth sources in the bin.
    pub n_truth: usize,
    /// Of which found.
    pub n_found: usize,
    /// `n_found / n_truth` (None for an empty bin).
    #[serde(deserialize_with = "crate::report::nullable")]
    pub completeness: Option<f64>,
    /// Detections whose measured S/N is in the bin.
    pub n_detected: usize,
    /// Of which matched.
    pub n_matched: usize,
    /// `n_matched / n_detected`.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub purity: Option<f64>,
    /// F1 of the bin's completeness and purity.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub f1: Option<f64>,
}

/// Per-class results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassResult {
    /// Truth objects of the class (sources: S/N ≥ min_snr).
    pub n_truth: usize,
    /// Of which matched by any detection.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub completeness: Option<f64>,
    /// Of the matched ones, the fraction whose detection has this class.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub class_accuracy: Option<f64>,
    /// AP at IoU 0.5.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub ap50: Option<f64>,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Completeness for sources with S/N ≥ min_snr.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub completeness: Option<f64>,
    /// Purity over all detections.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub purity: Option<f64>,
    /// F1 of the two.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub f1: Option<f64>,
    /// Completeness for sources with 3 ≤ S/N < 10 (the regime where detectors differ).
    #[serde(deserialize_with = "crate::report::nullable")]
    pub completeness_snr_3_10: Option<f64>,
    /// Purity of detections with measured 3 ≤ S/N < 10.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub purity_snr_3_10: Option<f64>,
    /// Mean AP@0.5 over the classes with truth objects (None without classes).
    #[serde(deserialize_with = "crate::report::nullable")]
    pub map50: Option<f64>,
    /// AP@0.5 ignoring classes.
    #[serde(deserialize_with = "crate::report::nullable")]
    pub ap50_agnostic: Option<f64>,
    /// Detections.
    pub n_detections: usize,
    /// Truth sources with S/N ≥ min_snr.
    pub n_truth: usize,
    /// Per S/N bin.
    pub snr_bins: Vec<SnrBin>,
    /// Per class, by name.
    pub per_class: std::collections::BTreeMap<String, ClassResult>,
    /// The settings used.
    pub settings: EvalConfig,
    /// For each detection, the index of its matched truth object.
    #[serde(skip)]
    pub det_match: Vec<Option<usize>>,
    /// For each truth object, the index of its matched detection.
    #[serde(skip)]
    pub truth_match: Vec<Option<usize>>,
}

impl Validate for EvalConfig {
    /// Range checks, keys relative to the `[evaluate]` section.
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.match_radius > 0.0, "match_radius", "must be positive")?;
        ensure(
            self.snr_edges.windows(2).all(|w| w[0] < w[1]) && !self.snr_edges.is_empty(),
            "snr_edges",
            "must be increasing",
        )
    }
}

impl Evaluation {
    /// For each detection, the 1-based row of the truth object it matched, -1 for none (the
    /// catalogue's `truth_id` column).
    pub fn truth_ids(&self) -> Vec<i64> {
        self.det_match
            .iter()
            .map(|m| m.map(|i| i as i64 + 1).unwrap_or(-1))
            .collect()
    }

    /// The sources of `truth` (the catalogue this evaluation scored) that no detection matched
    /// and that count in the completeness (not artefacts, S/N ≥ `min_snr`).
    pub fn missed(&self, truth: &[TruthObject]) -> Vec<TruthObject> {
        truth
            .iter()
            .zip(&self.truth_match)
            .filter(|(t, m)| m.is_none() && !t.artefact && t.snr >= self.settings.min_snr)
            .map(|(t, _)| *t)
            .collect()
    }
}

pub(crate) fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn f1(p: Option<f64>, c: Option<f64>) -> Option<f64> {
    match (p, c) {
        (Some(p), Some(c)) if p + c > 0.0 => Some(2.0 * p * c / (p + c)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    }
}

/// Greedy one-to-one matching by centre distance (see the module docs).
pub fn match_by_distance(
    dets: &[DetectedObject],
    truth: &[TruthObject],
    match_radius: f64,
) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    // Truth objects on a grid by every cell their box (widened by the radius) touches.
    const CELL: f32 = 32.0;
    let r = match_radius as f32;
    let mut grid: std::collections::HashMap<(i32, i32), Vec<usize>> = Default::default();
    for (i, t) in truth.iter().enumerate() {
        let (x0, y0) = (t.bbox.x0.min(t.x) - r, t.bbox.y0.min(t.y) - r);
        let (x1, y1) = (t.bbox.x1.max(t.x) + r, t.bbox.y1.max(t.y) + r);
        for cy in (y0 / CELL).floor() as i32..=(y1 / CELL).floor() as i32 {
            for cx in (x0 / CELL).floor() as i32..=(x1 / CELL).floor() as i32 {
                grid.entry((cx, cy)).or_default().push(i);
            }
        }
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (d, det) in dets.iter().enumerate() {
        let key = ((det.x / CELL).floor() as i32, (det.y / CELL).floor() as i32);
        if let Some(list) = grid.get(&key) {
            for &t in list {
                let dist = truth[t].distance(det.x, det.y);
                if dist <= r {
                    pairs.push((dist, d, t));
                }
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
    let mut dm = vec![None; dets.len()];
    let mut tm = vec![None; truth.len()];
    for (_, d, t) in pairs {
        if dm[d].is_none() && tm[t].is_none() {
            dm[d] = Some(t);
            tm[t] = Some(d);
        }
    }
    (dm, tm)
}

/// Average precision at IoU ≥ 0.5 of `dets` against `truth` (indices), with `difficult` truth
/// objects neither rewarded nor penalised.
fn average_precision(
    dets: &[&DetectedObject],
    truth: &[&TruthObject],
    difficult: &dyn Fn(&TruthObject) -> bool,
) -> Option<f64> {
    let n_pos = truth.iter().filter(|t| !difficult(t)).count();
    if n_pos == 0 {
        return None;
    }
    let mut order: Vec<&&DetectedObject> = dets.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut claimed = vec![false; truth.len()];
    let mut tp = Vec::new();
    for d in order {
        let Some(b) = d.bbox else { continue };
        let mut best = (0.5f32, None);
        for (i, t) in truth.iter().enumerate() {
            let iou = b.iou(&t.bbox);
            if iou >= best.0 && !claimed[i] {
                best = (iou, Some(i));
            }
        }
        match best.1 {
            Some(i) if difficult(truth[i]) => claimed[i] = true, // ignored
            Some(i) => {
                claimed[i] = true;
                tp.push(true);
            }
            None => tp.push(false),
        }
    }
    // Precision/recall curve, then the all-point interpolated area.
    let mut prec = Vec::with_capacity(tp.len());
    let mut rec = Vec::with_capacity(tp.len());
    let (mut ntp, mut nfp) = (0usize, 0usize);
    for &t in &tp {
        if t {
            ntp += 1
        } else {
            nfp += 1
        }
        prec.push(ntp as f64 / (ntp + nfp) as f64);
        rec.push(ntp as f64 / n_pos as f64);
    }
    for i in (0..prec.len().saturating_sub(1)).rev() {
        prec[i] = prec[i].max(prec[i + 1]);
    }
    let mut ap = 0.0;
    let mut last_r = 0.0;
    for i in 0..prec.len() {
        ap += (rec[i] - last_r) * prec[i];
        last_r = rec[i];
    }
    Some(ap)
}

/// Evaluate detections against truth; `class_names[i]` names class `i`.
pub fn evaluate(
    dets: &[DetectedObject],
    truth: &[TruthObject],
    class_names: &[String],
    cfg: &EvalConfig,
) -> Evaluation {
    let (dm, tm) = match_by_distance(dets, truth, cfg.match_radius);
    let is_source = |t: &TruthObject| !t.artefact;
    let counted = |t: &TruthObject| is_source(t) && t.snr >= cfg.min_snr;
    let n_truth = truth.iter().filter(|t| counted(t)).count();
    let n_found = truth
        .iter()
        .zip(&tm)
        .filter(|(t, m)| counted(t) && m.is_some())
        .count();
    let n_matched = dm.iter().filter(|m| m.is_some()).count();
    let completeness = ratio(n_found, n_truth);
    let purity = ratio(n_matched, dets.len());
    let in_bin = |v: f64, lo: f64, hi: Option<f64>| v >= lo && hi.is_none_or(|h| v < h);
    let bin_stats = |lo: f64, hi: Option<f64>| {
        let nt = truth
            .iter()
            .filter(|t| is_source(t) && in_bin(t.snr, lo, hi))
            .count();
        let nf = truth
            .iter()
            .zip(&tm)
            .filter(|(t, m)| is_source(t) && in_bin(t.snr, lo, hi) && m.is_some())
            .count();
        let nd = dets.iter().filter(|d| in_bin(d.snr, lo, hi)).count();
        let nm = dets
            .iter()
            .zip(&dm)
            .filter(|(d, m)| in_bin(d.snr, lo, hi) && m.is_some())
            .count();
        let (c, p) = (ratio(nf, nt), ratio(nm, nd));
        SnrBin {
            lo,
            hi,
            n_truth: nt,
            n_found: nf,
            completeness: c,
            n_detected: nd,
            n_matched: nm,
            purity: p,
            f1: f1(p, c),
        }
    };
    let snr_bins: Vec<SnrBin> = cfg
        .snr_edges
        .iter()
        .enumerate()
        .map(|(i, &lo)| bin_stats(lo, cfg.snr_edges.get(i + 1).copied()))
        .collect();
    let mid = bin_stats(3.0, Some(10.0));
    let difficult = |t: &TruthObject| is_source(t) && !(t.snr >= cfg.min_snr);
    let has_classes = dets.iter().any(|d| d.class.is_some());
    let mut per_class = std::collections::BTreeMap::new();
    let mut aps = Vec::new();
    for (c, name) in class_names.iter().enumerate() {
        let members: Vec<usize> = (0..truth.len())
            .filter(|&i| truth[i].class == c && !difficult(&truth[i]))
            .collect();
        let found: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| tm[i].is_some())
            .collect();
        let right = found
            .iter()
            .filter(|&&i| dets[tm[i].expect("found")].class == Some(c))
            .count();
        let ap = if has_classes {
            let cd: Vec<&DetectedObject> = dets.iter().filter(|d| d.class == Some(c)).collect();
            let ct: Vec<&TruthObject> = truth.iter().filter(|t| t.class == c).collect();
            average_precision(&cd, &ct, &difficult)
        } else {
            None
        };
        if let Some(a) = ap {
            aps.push(a);
        }
        per_class.insert(
            name.clone(),
            ClassResult {
                n_truth: members.len(),
                completeness: ratio(found.len(), members.len()),
                class_accuracy: if has_classes {
                    ratio(right, found.len())
                } else {
                    None
                },
                ap50: ap,
            },
        );
    }
    let all_d: Vec<&DetectedObject> = dets.iter().collect();
    let all_t: Vec<&TruthObject> = truth.iter().collect();
    Evaluation {
        completeness,
        purity,
        f1: f1(purity, completeness),
        completeness_snr_3_10: mid.completeness,
        purity_snr_3_10: mid.purity,
        map50: (has_classes && !aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64),
        // Without boxes (a catalogue of positions only) there is no AP to speak of.
        ap50_agnostic: if dets.iter().any(|d| d.bbox.is_some()) {
            average_precision(&all_d, &all_t, &difficult)
        } else {
            None
        },
        n_detections: dets.len(),
        n_truth,
        snr_bins,
        per_class,
        settings: cfg.clone(),
        det_match: dm,
        truth_match: tm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(x: f32, y: f32, class: usize, snr: f64) -> TruthObject {
        TruthObject {
            x,
            y,
            bbox: BBox::new(x - 3.0, y - 3.0, x + 3.0, y + 3.0),
            class,
            snr,
            artefact: false,
            match_box: false,
        }
    }
    fn det(x: f32, y: f32, class: usize, score: f64) -> DetectedObject {
        DetectedObject {
            x,
            y,
            bbox: Some(BBox::new(x - 3.0, y - 3.0, x + 3.0, y + 3.0)),
            class: Some(class),
            score,
            snr: 8.0,
        }
    }

    #[test]
    fn counts_completeness_purity_and_ap() {
        let t = vec![
            truth(10.0, 10.0, 0, 8.0),
            truth(50.0, 10.0, 0, 4.0),
            truth(90.0, 10.0, 1, 30.0),
            truth(130.0, 10.0, 1, 1.0), // too faint to count
        ];
        let d = vec![
            det(10.5, 10.0, 0, 0.9),  // match t0
            det(90.0, 11.0, 0, 0.8),  // match t2 with the wrong class
            det(200.0, 50.0, 1, 0.7), // false
            det(130.0, 10.0, 1, 0.6), // the faint one: real, so not impure
            det(10.0, 13.0, 0, 0.5),  // near t0 but t0 is taken, beyond 2.5 px of anything else
        ];
        let names = vec!["star".to_string(), "galaxy".to_string()];
        let e = evaluate(&d, &t, &names, &EvalConfig::default());
        assert_eq!(e.n_truth, 3);
        assert_eq!(e.completeness, Some(2.0 / 3.0));
        assert_eq!(e.purity, Some(3.0 / 5.0));
        // 3 ≤ S/N < 10: t0 found, t1 missed.
        assert_eq!(e.completeness_snr_3_10, Some(0.5));
        assert_eq!(e.det_match, vec![Some(0), Some(2), None, Some(3), None]);
        // Stars: dets 0.9 (TP t0), 0.8 (IoU with t2 only: FP), 0.5 (IoU 0.33 with t0, claimed → FP):
        // recall 1/2 at precision 1 → AP 0.5. Galaxies: 0.7 FP, 0.6 claims the difficult one
        // (ignored); t2 never found → AP 0.
        assert_eq!(e.per_class["star"].ap50, Some(0.5));
        assert_eq!(e.per_class["galaxy"].ap50, Some(0.0));
        assert_eq!(e.map50, Some(0.25));
        assert_eq!(e.per_class["galaxy"].class_accuracy, Some(0.0));
        assert_eq!(e.per_class["star"].class_accuracy, Some(1.0));
    }

    #[test]
    fn perfect_detections_score_one() {
        let t: Vec<TruthObject> = (0..20)
            .map(|i| truth(10.0 + 20.0 * i as f32, 40.0, i % 2, 12.0))
            .collect();
        let d: Vec<DetectedObject> = t.iter().map(|t| det(t.x, t.y, t.class, 0.9)).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let e = evaluate(&d, &t, &names, &EvalConfig::default());
        assert_eq!(
            (e.completeness, e.purity, e.f1, e.map50),
            (Some(1.0), Some(1.0), Some(1.0), Some(1.0))
        );
        assert_eq!(e.ap50_agnostic, Some(1.0));
    }

    #[test]
    fn truth_ids_and_missed_sources() {
        let faint = truth(50.0, 10.0, 0, 2.0);
        let mut cosmic = truth(90.0, 10.0, 1, 9.0);
        cosmic.artefact = true;
        let t = vec![
            truth(10.0, 10.0, 0, 8.0),
            truth(30.0, 10.0, 0, 8.0),
            faint,
            cosmic,
        ];
        let d = vec![det(200.0, 200.0, 0, 0.9), det(10.0, 10.5, 0, 0.8)];
        let names = vec!["star".to_string(), "cosmic_ray".to_string()];
        let e = evaluate(&d, &t, &names, &EvalConfig::default());
        assert_eq!(e.truth_ids(), vec![-1, 1]);
        // The faint source and the artefact do not count as missed.
        assert_eq!(e.missed(&t), vec![t[1]]);
    }

    #[test]
    fn truth_from_catalogue_values() {
        use crate::classes::SourceClass;
        let star = TruthObject::from_catalog(
            (11.0, 21.0),
            [9, 19, 13, 23],
            0,
            Some(SourceClass::Star),
            7.0,
        );
        assert_eq!((star.x, star.y), (10.5, 20.5));
        assert_eq!(star.bbox, BBox::new(8.0, 18.0, 13.0, 23.0));
        assert!(!star.artefact && !star.match_box);
        let column = TruthObject::from_catalog(
            (5.0, 50.0),
            [5, 1, 5, 99],
            4,
            Some(SourceClass::BadColumn),
            f64::NAN,
        );
        assert!(column.artefact && column.match_box);
        let saturated = TruthObject::from_catalog(
            (5.0, 5.0),
            [1, 1, 9, 9],
            3,
            Some(SourceClass::SaturatedStar),
            900.0,
        );
        assert!(!saturated.artefact && saturated.match_box);
        // Unknown classes: sources matched by their box.
        let other = TruthObject::from_catalog((5.0, 5.0), [1, 1, 9, 9], 7, None, 5.0);
        assert!(!other.artefact && other.match_box);
        assert_eq!(other.distance(4.0, 4.0), 0.0);
    }

    #[test]
    fn settings_are_validated_and_evaluations_read_back() {
        assert!(EvalConfig::default().validate().is_ok());
        let bad = EvalConfig {
            match_radius: 0.0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "match_radius");
        let bad = EvalConfig {
            snr_edges: vec![5.0, 5.0],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "snr_edges");
        let t = vec![truth(10.0, 10.0, 0, 8.0)];
        let e = evaluate(
            &[det(10.0, 10.0, 0, 0.9)],
            &t,
            &["star".into()],
            &EvalConfig::default(),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["snr_bins"][5]["hi"], serde_json::Value::Null);
        assert!(v.get("det_match").is_none());
        let back: Evaluation = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v);
        // `null` values must be written: a missing one is an error.
        let mut broken = v;
        broken.as_object_mut().unwrap().remove("map50");
        assert!(serde_json::from_value::<Evaluation>(broken).is_err());
    }
}
