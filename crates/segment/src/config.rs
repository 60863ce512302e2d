//! The `deepsky segment` configuration: `[input]`, `[model]`, `[preprocess]`, `[data]`,
//! `[train]`, `[loss]`, `[calibrate]`, `[predict]`, `[deblend]`, `[output]`. Every key has a
//! default; `deepsky segment predict --dump-config` prints them all.
//!
//! ```
//! use deepsky_core::Validate;
//! use deepsky_segment::config::SegmentConfig;
//!
//! let mut cfg = SegmentConfig::default();
//! assert!(cfg.validate().is_ok());
//! cfg.predict.tile = 8;
//! assert_eq!(cfg.validate().unwrap_err().key, "predict.tile");
//! ```

use std::path::PathBuf;

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_detect::Preprocess;
use deepsky_nn::train::TrainConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::DataConfig;
use crate::model::LossConfig;
use crate::predict::PredictConfig;
use crate::segmentation::DeblendConfig;
use crate::unet::UNetConfig;

/// `[input]`: where images and the model come from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// HDU of the image (index or EXTNAME; empty: the primary HDU, or the first extension
    /// when the primary is empty).
    pub hdu: String,
    /// Trained model directory (model.json + model.safetensors); relative paths are relative
    /// to the working directory.
    pub model: PathBuf,
    /// HDU of the truth bitmask given with `--truth` (empty: `MASK`, else the first image).
    pub truth_hdu: String,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            hdu: String::new(),
            model: PathBuf::from("data/models/segment"),
            truth_hdu: String::new(),
        }
    }
}

/// `[calibrate]`: the per-plane thresholds chosen at the end of training.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrateConfig {
    /// Simulated fields (seeds after the training fields') the thresholds are chosen on.
    pub fields: usize,
    /// Each plane's threshold is the lowest whose false-positive rate on those fields is at
    /// most this (1e-3: one false pixel in a thousand, the rate cosmic-ray finders are
    /// compared at).
    pub fpr: f64,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            fields: 6,
            fpr: 1e-3,
        }
    }
}

impl Validate for CalibrateConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.fields >= 1, "fields", "must be at least 1")?;
        ensure(self.fpr > 0.0 && self.fpr < 1.0, "fpr", "must be in (0, 1)")
    }
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Write `cleaned.fits`: the image with cosmic-ray pixels inpainted.
    pub inpaint: bool,
    /// Write `probabilities.fits` (one float32 image per plane; 4 bytes per pixel per plane).
    pub probabilities: bool,
    /// Plot formats: any of png, svg, pdf.
    pub plots: Vec<String>,
    /// Largest image side drawn in the overlay plot (bigger images: their central crop).
    pub overlay_max_side: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            inpaint: true,
            probabilities: true,
            plots: vec!["png".into()],
            overlay_max_side: 512,
        }
    }
}

impl Validate for OutputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.overlay_max_side >= 32,
            "overlay_max_side",
            "must be at least 32",
        )?;
        for p in &self.plots {
            let known = deepsky_plot::Format::parse(p).is_some();
            ensure(known, "plots", "formats are png, svg, pdf")?;
        }
        Ok(())
    }
}

/// The whole config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// Inputs.
    pub input: InputConfig,
    /// Network (train; predict reads it from the model card).
    pub model: UNetConfig,
    /// Background and normalisation (train; predict reads it from the model card).
    pub preprocess: Preprocess,
    /// Training examples.
    pub data: DataConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// The loss.
    pub loss: LossConfig,
    /// Thresholds chosen after training.
    pub calibrate: CalibrateConfig,
    /// Tiling and thresholds.
    pub predict: PredictConfig,
    /// Source instances of the segmentation map.
    pub deblend: DeblendConfig,
    /// Outputs.
    pub output: OutputConfig,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            input: InputConfig::default(),
            model: UNetConfig::default(),
            preprocess: Preprocess::default(),
            data: DataConfig::default(),
            train: TrainConfig {
                epochs: 30,
                batch_size: 16,
                lr: 3e-3,
                patience: 8,
                checkpoint_every: 5,
                ..TrainConfig::default()
            },
            loss: LossConfig::default(),
            calibrate: CalibrateConfig::default(),
            predict: PredictConfig::default(),
            deblend: DeblendConfig::default(),
            output: OutputConfig::default(),
        }
    }
}

impl SegmentConfig {
    /// Seed of the initial weights, derived from the training seed so one seed fixes a run.
    pub fn model_seed(&self) -> u64 {
        self.train.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5e6
    }

    /// The first seed of the calibration fields: after the training fields'.
    pub fn calibration_seed(&self) -> u64 {
        self.data.field_seed + self.data.fields as u64
    }
}

impl Validate for SegmentConfig {
    /// Every section's checks, keys from the top of the file.
    fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate().map_err(|e| e.within("train"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        let m = self.model.size_multiple();
        ensure(
            self.data.crop % m == 0,
            "data.crop",
            &format!("must be a multiple of {m} (2^(levels-1) of model.widths)"),
        )?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.preprocess
            .validate()
            .map_err(|e| e.within("preprocess"))?;
        self.loss.validate().map_err(|e| e.within("loss"))?;
        self.calibrate
            .validate()
            .map_err(|e| e.within("calibrate"))?;
        self.predict.validate().map_err(|e| e.within("predict"))?;
        self.deblend.validate().map_err(|e| e.within("deblend"))?;
        self.output.validate().map_err(|e| e.within("output"))
    }
}

/// The plane names of `planes`, for messages.
pub fn plane_names(planes: &[MaskPlane]) -> String {
    planes
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}
