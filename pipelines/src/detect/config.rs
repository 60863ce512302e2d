//! The detect pipeline's configuration: `[input]`, `[model]`, `[preprocess]`, `[data]`,
//! `[train]`, `[assign]`, `[loss]`, `[predict]`, `[photometry]`, `[baseline]`, `[evaluate]`,
//! `[output]`. Every key has a default; `deepsky detect predict --dump-config` prints them all.

use std::path::PathBuf;

use deepsky_detect::assign::AssignConfig;
use deepsky_detect::classical::ClassicalConfig;
use deepsky_detect::dataset::DataConfig;
use deepsky_detect::loss::LossConfig;
use deepsky_detect::metrics::EvalConfig;
use deepsky_detect::model::DetectorConfig;
use deepsky_detect::predict::PredictConfig;
use deepsky_detect::Preprocess;
use deepsky_nn::train::TrainConfig;
use deepsky_runtime::config::{ensure, ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[input]`: where images and the model come from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// HDU of the image (index or EXTNAME; empty: the primary HDU, or the first extension
    /// when the primary is empty).
    pub hdu: String,
    /// Trained model directory (model.json + model.safetensors) used by `predict`; relative
    /// paths are relative to the working directory. The bundled one is trained on simulated
    /// 0.4″/pixel fields with 1″ seeing.
    pub model: PathBuf,
    /// Truth catalogue HDU (`--truth`).
    pub truth_hdu: String,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            hdu: String::new(),
            model: PathBuf::from("data/models/detect"),
            truth_hdu: "CATALOG".into(),
        }
    }
}

/// `[photometry]`: what is measured at each detection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PhotometryConfig {
    /// Radius of the circular aperture, pixels.
    pub aperture_radius: f64,
    /// Gain in e⁻/ADU for the Poisson part of the flux error; 0 reads the image's GAIN card
    /// (and uses background noise only when there is none).
    pub gain: f64,
    /// Refine positions with a Gaussian-windowed centroid (SExtractor's XWIN/YWIN) of this
    /// σ in pixels; 0 keeps the box centres.
    pub centroid_sigma: f64,
}

impl Default for PhotometryConfig {
    fn default() -> Self {
        PhotometryConfig {
            aperture_radius: 2.5,
            gain: 0.0,
            centroid_sigma: 1.2,
        }
    }
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Plot formats: any of png, svg, pdf.
    pub plots: Vec<String>,
    /// Largest image side drawn in the overlay plot; bigger images are shown as their
    /// central crop of this size (a 4k×4k overlay is unreadable).
    pub overlay_max_side: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            plots: vec!["png".into()],
            overlay_max_side: 512,
        }
    }
}

/// The whole config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Inputs.
    pub input: InputConfig,
    /// Network (train; predict reads it from the model card).
    pub model: DetectorConfig,
    /// Background and normalisation (train; predict reads it from the model card).
    pub preprocess: Preprocess,
    /// Training examples.
    pub data: DataConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// Target assignment.
    pub assign: AssignConfig,
    /// Loss weights.
    pub loss: LossConfig,
    /// Tiling and thresholds.
    pub predict: PredictConfig,
    /// Positions and fluxes.
    pub photometry: PhotometryConfig,
    /// The classical baseline run beside the network when a truth catalogue is given.
    pub baseline: ClassicalConfig,
    /// Matching to the truth.
    pub evaluate: EvalConfig,
    /// Plots.
    pub output: OutputConfig,
}

impl DetectConfig {
    /// Seed of the initial weights, derived from the training seed so one seed fixes a run.
    pub fn model_seed(&self) -> u64 {
        self.train.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xde7
    }
}

impl Validate for DetectConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate().map_err(|e| e.within("train"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.predict.validate().map_err(|e| e.within("predict"))?;
        self.baseline.validate().map_err(|e| e.within("baseline"))?;
        self.preprocess
            .background
            .validate()
            .map_err(|e| e.within("preprocess.background"))?;
        ensure(
            self.preprocess.softening > 0.0,
            "preprocess.softening",
            "must be positive",
        )?;
        ensure(
            self.photometry.aperture_radius > 0.0,
            "photometry.aperture_radius",
            "must be positive",
        )?;
        ensure(
            self.photometry.gain >= 0.0,
            "photometry.gain",
            "must be >= 0",
        )?;
        ensure(
            self.photometry.centroid_sigma >= 0.0,
            "photometry.centroid_sigma",
            "must be >= 0",
        )?;
        ensure(self.assign.top_k >= 1, "assign.top_k", "must be at least 1")?;
        ensure(
            self.evaluate.match_radius > 0.0,
            "evaluate.match_radius",
            "must be positive",
        )?;
        ensure(
            self.evaluate.snr_edges.windows(2).all(|w| w[0] < w[1])
                && !self.evaluate.snr_edges.is_empty(),
            "evaluate.snr_edges",
            "must be increasing",
        )?;
        ensure(
            self.output.overlay_max_side >= 32,
            "output.overlay_max_side",
            "must be at least 32",
        )?;
        crate::common::check_plot_formats(&self.output.plots)
    }
}
