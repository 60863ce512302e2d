//! The `report.json` of each `deepsky detect` command, as types: [`PredictReport`] (`predict`
//! and `merge`), [`EvaluateReport`] (`evaluate`) and [`TrainReport`] (`train`).
//!
//! Their keys are a documented contract (README: outputs), so the types serialise to exactly
//! those keys; reading one back (as `detect merge` reads the shards' reports) fails on a missing
//! key, a value `null` included only where the report writes `null`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use deepsky_detect::report::{BackgroundLevels, ImageInfo, ImageRecord, PredictReport, PredictTiming, Totals};
//!
//! let record = ImageRecord {
//!     info: ImageInfo {
//!         image: "field.fits".into(),
//!         shape: [256, 256],
//!         background: BackgroundLevels { global_level: 500.0, global_rms: 17.0 },
//!         tiles: 1,
//!     },
//!     totals: Totals {
//!         n_detections: 3,
//!         per_class_counts: BTreeMap::from([("star".to_string(), 3)]),
//!         timing: PredictTiming::default(),
//!     },
//!     outputs: vec!["detections.reg".into()],
//!     plots: vec![],
//!     psf: None,
//!     mask: None,
//! };
//! let classes = vec!["star".to_string()];
//! let report = PredictReport::summarise(vec![record], false, Path::new("model"), &classes, 1);
//! let json = serde_json::to_value(&report).unwrap();
//! assert_eq!(json["n_detections"], 3);
//! assert_eq!(json["image"], "field.fits"); // a one-image run shows its image at the top
//! assert_eq!(json["outputs"][0], "catalog.fits");
//! let back: PredictReport = serde_json::from_value(json).unwrap();
//! assert_eq!(back, report);
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use deepsky_nn::train::{EpochRecord, TrainOutcome};
use ndarray::ArrayView2;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use deepsky_sim::sky::{simulate_sky, SkyConfig};

use crate::background::Background;
use crate::classical::{detect_classical, ClassicalConfig};
use crate::dataset::truth_objects;
use crate::detector::Detector;
use crate::error::DetectError;
use crate::measure::{MeasureConfig, MeasuredObject};
use crate::metrics::{evaluate, DetectedObject, EvalConfig, Evaluation, TruthObject};
use crate::predict::PredictConfig;

/// Deserialises an `Option` field that must be present (`null` for `None`): serde otherwise
/// reads a missing `Option` field as `None`.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// The files `predict` writes for the whole run, before each image's own.
pub const CATALOG_FILES: [&str; 2] = ["catalog.fits", "catalog.csv"];

/// An image's typical background, ADU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BackgroundLevels {
    /// Median of the mesh levels.
    pub global_level: f64,
    /// Median of the mesh noise values.
    pub global_rms: f64,
}

impl From<&Background> for BackgroundLevels {
    fn from(b: &Background) -> BackgroundLevels {
        BackgroundLevels {
            global_level: b.global_level,
            global_rms: b.global_rms,
        }
    }
}

/// Seconds spent per stage of `predict`, and the speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct PredictTiming {
    /// Reading the image and its header.
    pub read_s: f64,
    /// Background, tiles, network, NMS.
    pub detect_s: f64,
    /// Centroids, photometry, WCS.
    pub measure_s: f64,
    /// Megapixels over `detect_s + measure_s`.
    pub megapixels_per_s: f64,
}

impl PredictTiming {
    /// The timing of an image of `megapixels` from its stages' seconds.
    pub fn new(megapixels: f64, read_s: f64, detect_s: f64, measure_s: f64) -> PredictTiming {
        let seconds = detect_s + measure_s;
        PredictTiming {
            read_s,
            detect_s,
            measure_s,
            megapixels_per_s: megapixels / seconds.max(1e-9),
        }
    }
}

/// What was searched: one image and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image, as given to `--input`.
    pub image: String,
    /// `[rows, columns]`.
    pub shape: [usize; 2],
    /// Its background.
    pub background: BackgroundLevels,
    /// Tiles the network ran on.
    pub tiles: usize,
}

/// Detections counted, and the time it took: of one image, or summed over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Detections.
    pub n_detections: usize,
    /// Detections per class name.
    pub per_class_counts: BTreeMap<String, usize>,
    /// Seconds per stage.
    pub timing: PredictTiming,
}

/// One image of a `predict` run: an element of the report's `images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image.
    #[serde(flatten)]
    pub info: ImageInfo,
    /// Its detections.
    #[serde(flatten)]
    pub totals: Totals,
    /// Its own files (the region file), relative to the output folder.
    pub outputs: Vec<String>,
    /// Its plots, relative to the output folder.
    pub plots: Vec<String>,
    /// The PSF size used and where it came from, and the resampling it led to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psf: Option<PsfRecord>,
    /// The mask of `--mask` (or `input.mask`), when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskRecord>,
}

/// The mask applied to one image (`mask` in report.json): its pixels in `planes` were
/// treated as missing data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskRecord {
    /// The mask file, as given.
    pub path: String,
    /// The planes that hid pixels (`input.mask_planes`).
    pub planes: Vec<String>,
    /// Pixels hidden by those planes.
    pub masked_pixels: usize,
}

/// The PSF of one image as `predict` used it (`images[].psf` in report.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PsfRecord {
    /// PSF FWHM, pixels.
    pub fwhm_pixels: f64,
    /// Where it came from: `configuration predict.psf_fwhm_pixels`, `header keyword SEEING`,
    /// `measured from N stars`.
    pub source: String,
    /// The PSF FWHM the detector was trained on, pixels.
    pub trained_fwhm_pixels: f64,
    /// New pixels per image pixel of the searched image (1: searched as it is).
    pub resample_scale: f64,
}

impl ImageRecord {
    /// The record of `image` (as given to `--input`) of `shape`, searched in `tiles` tiles
    /// against `background`, with its measured `objects` (counted per name of `classes`) and
    /// `timing`; no files yet.
    pub fn new(
        image: &Path,
        shape: [usize; 2],
        background: &Background,
        tiles: usize,
        objects: &[MeasuredObject],
        classes: &[String],
        timing: PredictTiming,
    ) -> ImageRecord {
        let per_class_counts = classes
            .iter()
            .enumerate()
            .map(|(c, name)| {
                (
                    name.clone(),
                    objects.iter().filter(|r| r.class == c).count(),
                )
            })
            .collect();
        ImageRecord {
            info: ImageInfo {
                image: image.display().to_string(),
                shape,
                background: background.into(),
                tiles,
            },
            totals: Totals {
                n_detections: objects.len(),
                per_class_counts,
                timing,
            },
            outputs: Vec::new(),
            plots: Vec::new(),
            psf: None,
            mask: None,
        }
    }
}

/// The classical baseline's evaluation in a `predict --truth` report (`baseline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    /// Its scores.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// Seconds the classical detector took.
    pub timing_s: f64,
    /// Its settings.
    pub settings_classical: ClassicalConfig,
}

/// The evaluation keys of a one-image `predict --truth` report: the detector's scores at the
/// top level and the classical baseline's under `baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthReport {
    /// The detector's scores.
    #[serde(flatten)]
    pub detector: Evaluation,
    /// The classical baseline's.
    pub baseline: BaselineReport,
}

impl TruthReport {
    /// Score `objects` against `truth`, and beside them the classical baseline (`baseline`),
    /// run and timed on the same `image` and `background`; `classes` names the class indices.
    pub fn compute(
        image: ArrayView2<f32>,
        background: &Background,
        objects: &[MeasuredObject],
        truth: &[TruthObject],
        classes: &[String],
        eval: &EvalConfig,
        baseline: &ClassicalConfig,
    ) -> Result<TruthReport, DetectError> {
        let dets: Vec<DetectedObject> = objects.iter().map(DetectedObject::from).collect();
        let detector = evaluate(&dets, truth, classes, eval);
        let start = Instant::now();
        let found = detect_classical(image, None, background, baseline)?;
        let timing_s = start.elapsed().as_secs_f64();
        let dets: Vec<DetectedObject> = found.iter().map(DetectedObject::from).collect();
        Ok(TruthReport {
            detector,
            baseline: BaselineReport {
                evaluation: evaluate(&dets, truth, classes, eval),
                timing_s,
                settings_classical: baseline.clone(),
            },
        })
    }
}

/// The `report.json` of `detect predict` and `detect merge` without the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictSummary {
    /// A one-image run's image, at the top level; absent for runs over several images.
    #[serde(flatten)]
    pub image: Option<ImageInfo>,
    /// The image's detections, or the sums over every image.
    #[serde(flatten)]
    pub totals: Totals,
    /// The detector's directory.
    pub model: String,
    /// Its class names.
    pub classes: Vec<String>,
    /// Images searched by this run (or shard).
    pub n_images: usize,
    /// One record per image, in input order.
    pub images: Vec<ImageRecord>,
    /// Files written, relative to the output folder: the catalogue, then each image's.
    pub outputs: Vec<String>,
    /// Plots written, relative to the output folder.
    pub plots: Vec<String>,
    /// Images of the whole run (all shards).
    pub inputs_total: usize,
    /// The truth catalogue (`--truth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth: Option<String>,
    /// This shard, `K/N` (`--shard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Shards merged (`detect merge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_shards: Option<usize>,
    /// The score threshold used and where it came from (`config`, `calibrated`: the model's
    /// operating point, `fallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<ScoreThreshold>,
}

/// The score threshold of a `detect predict` run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreThreshold {
    /// The threshold.
    pub value: f32,
    /// Where it came from.
    pub source: crate::predict::ThresholdSource,
}

/// The `report.json` of `detect predict` and `detect merge`: the summary and, for a one-image
/// run with `--truth`, the evaluation's keys beside it (its `n_detections` is the summary's).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictReport {
    /// Counts, files and records.
    pub summary: PredictSummary,
    /// The evaluation against `summary.truth`.
    pub evaluation: Option<TruthReport>,
}

impl PredictReport {
    /// The report over per-image `records`, the same for a single run and a merge: for a run
    /// over one image (`multi` false) that image's figures at the top level, else the totals
    /// over all records; `inputs_total` images in the whole run.
    pub fn summarise(
        records: Vec<ImageRecord>,
        multi: bool,
        model_dir: &Path,
        classes: &[String],
        inputs_total: usize,
    ) -> PredictReport {
        let outputs = CATALOG_FILES
            .iter()
            .map(|s| s.to_string())
            .chain(records.iter().flat_map(|r| r.outputs.iter().cloned()))
            .collect();
        let plots = records
            .iter()
            .flat_map(|r| r.plots.iter().cloned())
            .collect();
        let (image, totals) = match &records[..] {
            [one] if !multi => (Some(one.info.clone()), one.totals.clone()),
            _ => (None, Self::totals(&records, classes)),
        };
        PredictReport {
            summary: PredictSummary {
                image,
                totals,
                model: model_dir.display().to_string(),
                classes: classes.to_vec(),
                n_images: records.len(),
                images: records,
                outputs,
                plots,
                inputs_total,
                truth: None,
                shard: None,
                merged_shards: None,
                score_threshold: None,
            },
            evaluation: None,
        }
    }

    /// The report of a whole run from the reports of its shards, given in shard order: their
    /// image records joined and summarised as one run over all the inputs, with
    /// `merged_shards`. Shards that ran over a different number of inputs or with another
    /// model than the first are an error naming both.
    pub fn merge(shards: Vec<PredictReport>) -> Result<PredictReport, DetectError> {
        let Some(first) = shards.first().map(|r| &r.summary) else {
            return Err(DetectError::Input("no shard report to merge".into()));
        };
        let (total, model, classes) = (
            first.inputs_total,
            first.model.clone(),
            first.classes.clone(),
        );
        let name = |s: &PredictSummary| s.shard.clone().unwrap_or_else(|| "?".into());
        if let Some(s) = shards
            .iter()
            .map(|r| &r.summary)
            .find(|s| s.inputs_total != total || s.model != model)
        {
            return Err(DetectError::Input(format!(
                "shard {} ran over {} images with model {:?}, shard {} over {total} with {model:?}: not the same run",
                name(s),
                s.inputs_total,
                s.model,
                name(first),
            )));
        }
        let count = shards.len();
        let threshold = first.score_threshold;
        let records = shards.into_iter().flat_map(|r| r.summary.images).collect();
        let mut merged = Self::summarise(records, total > 1, Path::new(&model), &classes, total);
        merged.summary.merged_shards = Some(count);
        merged.summary.score_threshold = threshold;
        Ok(merged)
    }

    /// Detections and seconds summed over `records`.
    fn totals(records: &[ImageRecord], classes: &[String]) -> Totals {
        let per_class_counts = classes
            .iter()
            .map(|c| {
                let n = records
                    .iter()
                    .map(|r| r.totals.per_class_counts.get(c).copied().unwrap_or(0))
                    .sum();
                (c.clone(), n)
            })
            .collect();
        let sum = |k: fn(&PredictTiming) -> f64| -> f64 {
            records.iter().map(|r| k(&r.totals.timing)).sum()
        };
        let megapixels: f64 = records
            .iter()
            .map(|r| r.info.shape.iter().map(|&n| n as f64).product::<f64>() / 1e6)
            .sum();
        let seconds = sum(|t| t.detect_s) + sum(|t| t.measure_s);
        Totals {
            n_detections: records.iter().map(|r| r.totals.n_detections).sum(),
            per_class_counts,
            timing: PredictTiming {
                read_s: sum(|t| t.read_s),
                detect_s: sum(|t| t.detect_s),
                measure_s: sum(|t| t.measure_s),
                megapixels_per_s: megapixels / seconds.max(1e-9),
            },
        }
    }
}

impl Serialize for PredictReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut v = serde_json::to_value(&self.summary).map_err(S::Error::custom)?;
        if let Some(e) = &self.evaluation {
            let e = serde_json::to_value(e).map_err(S::Error::custom)?;
            if let (Value::Object(o), Value::Object(m)) = (&mut v, e) {
                o.extend(m);
            }
        }
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PredictReport {
    /// The evaluation is read when the report names a truth catalogue, and must then be there.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PredictReport, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        let summary: PredictSummary =
            serde_json::from_value(v.clone()).map_err(D::Error::custom)?;
        let evaluation = match summary.truth {
            Some(_) => Some(serde_json::from_value(v).map_err(D::Error::custom)?),
            None => None,
        };
        Ok(PredictReport {
            summary,
            evaluation,
        })
    }
}

/// The `report.json` of `detect evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluateReport {
    /// The scores.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The catalogue's label (`--label`).
    pub label: String,
    /// The scored catalogue.
    pub catalog: String,
    /// The truth catalogue.
    pub truth: String,
    /// Plots written, relative to the output folder.
    pub plots: Vec<String>,
}

/// How the trained detector did on an unseen simulated field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationField {
    /// The field's simulator seed.
    pub seed: u64,
    /// Detections on it.
    pub n_detections: usize,
    /// Their evaluation against its truth.
    pub evaluation: Evaluation,
}

impl ValidationField {
    /// How `det` does on the simulated field `sky` (simulated with noise): through the same
    /// prediction (`predict`, with `on_tiles` as in [`crate::predict::predict`]) and
    /// measurement (`measure`, the Poisson term from the simulator's gain) users run, scored
    /// against the field's truth catalogue.
    pub fn run(
        det: &Detector,
        sky: &SkyConfig,
        predict: &PredictConfig,
        measure: &MeasureConfig,
        eval: &EvalConfig,
        on_tiles: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<ValidationField, DetectError> {
        let mut sky = sky.clone();
        sky.noise.enabled = true;
        let field = simulate_sky(&sky, &()).map_err(|e| DetectError::Sim(e.to_string()))?;
        let image = field.image.view();
        let pred = crate::predict::predict(det, image, None, predict, on_tiles)?;
        let (bkg, classes, gain) = (&pred.background, det.classes(), Some(sky.noise.gain));
        let objects =
            crate::measure::measure(image, bkg, &pred.detections, classes, measure, gain, None);
        let truth = truth_objects(&field.catalog);
        let dets: Vec<DetectedObject> = objects.iter().map(DetectedObject::from).collect();
        Ok(ValidationField {
            seed: sky.seed,
            n_detections: objects.len(),
            evaluation: evaluate(&dets, &truth, classes, eval),
        })
    }
}

/// Seconds spent per stage of `train`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainTiming {
    /// Simulating the training fields.
    pub simulate_s: f64,
    /// The training loop.
    pub train_s: f64,
}

/// The `report.json` of `detect train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The model's folder, relative to the output folder.
    pub model: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// Training examples per epoch.
    pub examples_per_epoch: usize,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Epoch (1-based) of the best validation loss.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The epoch a resumed run continued from.
    #[serde(deserialize_with = "nullable")]
    pub resumed_from_epoch: Option<usize>,
    /// Training loss of the first epoch.
    #[serde(deserialize_with = "nullable")]
    pub first_train_loss: Option<f64>,
    /// Training loss of the last epoch.
    #[serde(deserialize_with = "nullable")]
    pub final_train_loss: Option<f64>,
    /// Best validation loss.
    #[serde(deserialize_with = "nullable")]
    pub best_val_loss: Option<f64>,
    /// Every epoch's losses.
    pub history: Vec<EpochRecord>,
    /// The unseen field.
    pub validation_field: ValidationField,
    /// Seconds per stage.
    pub timing: TrainTiming,
    /// Plots written, relative to the output folder.
    pub plots: Vec<String>,
}

impl TrainReport {
    /// The report of a training run: the model in `model_dir` (relative to the output folder)
    /// with `parameters` parameters, trained on `examples_per_epoch` examples per epoch as
    /// `outcome` says.
    pub fn new(
        model_dir: &str,
        parameters: usize,
        examples_per_epoch: usize,
        outcome: &TrainOutcome,
        validation_field: ValidationField,
        timing: TrainTiming,
        plots: Vec<String>,
    ) -> TrainReport {
        let h = &outcome.state.history;
        TrainReport {
            model: model_dir.to_string(),
            parameters,
            examples_per_epoch,
            epochs_run: outcome.state.epochs_done,
            best_epoch: outcome.state.best_epoch,
            stopped_early: outcome.state.stopped_early,
            resumed_from_epoch: outcome.resumed_from,
            first_train_loss: h.first().map(|r| r.train_loss),
            final_train_loss: h.last().map(|r| r.train_loss),
            best_val_loss: outcome.state.best_val,
            history: h.clone(),
            validation_field,
            timing,
            plots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BBox;
    use crate::test_util::add_gaussian;
    use ndarray::Array2;

    fn record(image: &str, n: usize, detect_s: f64) -> ImageRecord {
        let objects: Vec<MeasuredObject> = (0..n)
            .map(|i| MeasuredObject {
                x: i as f64,
                y: 0.0,
                ra: f64::NAN,
                dec: f64::NAN,
                bbox: BBox::default(),
                class: i % 2,
                score: 0.5,
                flux: 1.0,
                flux_err: 1.0,
                point_source: None,
                aperture_masked: 0,
            })
            .collect();
        let bkg = Background::constant((100, 200), 10.0, 2.0);
        let classes = ["star", "galaxy"].map(String::from);
        let mut r = ImageRecord::new(
            Path::new(image),
            [100, 200],
            &bkg,
            4,
            &objects,
            &classes,
            PredictTiming::new(0.02, 0.5, detect_s, 0.5),
        );
        r.outputs = vec![format!("images/{image}/detections.reg")];
        r.plots = vec![format!("images/{image}/overlay.png")];
        r
    }

    fn classes() -> Vec<String> {
        ["star", "galaxy"].map(String::from).to_vec()
    }

    #[test]
    fn a_record_counts_per_class_and_times_its_stages() {
        let r = record("a", 5, 1.5);
        assert_eq!(r.totals.n_detections, 5);
        assert_eq!(r.totals.per_class_counts["star"], 3);
        assert_eq!(r.totals.per_class_counts["galaxy"], 2);
        assert_eq!(r.totals.timing.megapixels_per_s, 0.02 / 2.0);
        assert_eq!(r.info.background.global_rms, 2.0);
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "background",
                "image",
                "n_detections",
                "outputs",
                "per_class_counts",
                "plots",
                "shape",
                "tiles",
                "timing"
            ]
        );
        assert_eq!(v["shape"], serde_json::json!([100, 200]));
    }

    #[test]
    fn summaries_of_one_image_and_of_several() {
        let one = PredictReport::summarise(
            vec![record("a", 3, 1.0)],
            false,
            Path::new("m"),
            &classes(),
            1,
        );
        let v = serde_json::to_value(&one).unwrap();
        assert_eq!(v["image"], "a");
        assert_eq!(v["tiles"], 4);
        assert_eq!(v["n_images"], 1);
        assert_eq!(
            v["outputs"],
            serde_json::json!(["catalog.fits", "catalog.csv", "images/a/detections.reg"])
        );
        assert!(v.get("shard").is_none() && v.get("truth").is_none());

        let many = PredictReport::summarise(
            vec![record("a", 3, 1.0), record("b", 4, 2.0)],
            true,
            Path::new("m"),
            &classes(),
            5,
        );
        let v = serde_json::to_value(&many).unwrap();
        assert!(v.get("image").is_none() && v.get("tiles").is_none());
        assert_eq!(v["n_detections"], 7);
        assert_eq!(v["per_class_counts"]["star"], 4);
        assert_eq!(v["inputs_total"], 5);
        assert_eq!(v["timing"]["detect_s"], 3.0);
        // 0.04 Mpix in 3 + 1 seconds.
        assert_eq!(v["timing"]["megapixels_per_s"], 0.04 / 4.0);
        assert_eq!(v["plots"].as_array().unwrap().len(), 2);
        let back: PredictReport = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, many);

        // Shards of that run merge into the same report, with their number.
        let shard = |records: Vec<ImageRecord>, k: usize| {
            let mut r = PredictReport::summarise(records, true, Path::new("m"), &classes(), 5);
            r.summary.shard = Some(format!("{k}/2"));
            r
        };
        let merged = PredictReport::merge(vec![
            shard(vec![record("a", 3, 1.0)], 0),
            shard(vec![record("b", 4, 2.0)], 1),
        ])
        .unwrap();
        assert_eq!(merged.summary.merged_shards, Some(2));
        assert_eq!(merged.summary.images, many.summary.images);
        assert_eq!(merged.summary.totals, many.summary.totals);
        let mut other = shard(vec![record("b", 4, 2.0)], 1);
        other.summary.model = "n".into();
        let err = PredictReport::merge(vec![shard(vec![], 0), other]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("shard 1/2 ran over 5 images with model \"n\""),
            "{err}"
        );

        // A missing key is an error that names it.
        let mut broken = v;
        broken.as_object_mut().unwrap().remove("model");
        let err = serde_json::from_value::<PredictReport>(broken).unwrap_err();
        assert!(err.to_string().contains("model"), "{err}");
    }

    #[test]
    fn truth_reports_carry_the_evaluation_beside_the_summary() {
        // Two bright stars; the network "found" the first only.
        let mut image = Array2::<f32>::from_elem((64, 64), 100.0);
        add_gaussian(&mut image, 20.0, 20.0, 1.1, 4000.0);
        add_gaussian(&mut image, 40.0, 45.0, 1.1, 4000.0);
        let bkg = Background::constant((64, 64), 100.0, 2.0);
        // FITS centres: array index + 1.
        let star = Some(crate::classes::SourceClass::Star);
        let truth = [
            TruthObject::from_catalog((21.0, 21.0), [17, 17, 25, 25], 0, star, 40.0),
            TruthObject::from_catalog((46.0, 41.0), [42, 37, 50, 45], 0, star, 40.0),
        ];
        let found = MeasuredObject {
            x: 20.5,
            y: 20.5,
            ra: f64::NAN,
            dec: f64::NAN,
            bbox: BBox::new(16.0, 16.0, 25.0, 25.0),
            class: 0,
            score: 0.9,
            flux: 4000.0,
            flux_err: 100.0,
            point_source: None,
            aperture_masked: 0,
        };
        let eval = EvalConfig::default();
        let baseline = ClassicalConfig::default();
        let tr = TruthReport::compute(
            image.view(),
            &bkg,
            &[found],
            &truth,
            &classes(),
            &eval,
            &baseline,
        )
        .unwrap();
        assert_eq!(tr.detector.completeness, Some(0.5));
        assert_eq!(tr.detector.truth_ids(), [1]);
        assert_eq!(tr.baseline.evaluation.completeness, Some(1.0));
        assert_eq!(tr.baseline.evaluation.n_detections, 2);
        assert!(tr.baseline.timing_s >= 0.0);

        let mut report = PredictReport::summarise(
            vec![record("a", 1, 1.0)],
            false,
            Path::new("m"),
            &classes(),
            1,
        );
        report.summary.truth = Some("t.fits".into());
        report.evaluation = Some(tr);
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["completeness"], 0.5);
        assert_eq!(v["n_detections"], 1);
        assert_eq!(v["baseline"]["settings_classical"]["fwhm"], 2.5);
        assert_eq!(v["baseline"]["completeness"], 1.0);
        let back: PredictReport = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v);
        // With a truth catalogue named, its evaluation must be there; `null` must be written.
        let mut broken = v.clone();
        broken.as_object_mut().unwrap().remove("baseline");
        assert!(serde_json::from_value::<PredictReport>(broken).is_err());
        let mut broken = v;
        broken.as_object_mut().unwrap().remove("purity_snr_3_10");
        assert!(serde_json::from_value::<PredictReport>(broken).is_err());
    }
}
