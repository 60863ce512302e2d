//! The `deepsky detect` configuration: `[input]`, `[model]`, `[preprocess]`, `[data]`,
//! `[train]`, `[assign]`, `[loss]`, `[predict]`, `[photometry]`, `[baseline]`, `[evaluate]`,
//! `[output]`. Every key has a default; `deepsky detect predict --dump-config` prints them all.
//!
//! ```
//! use deepsky_core::Validate;
//! use deepsky_detect::config::DetectConfig;
//!
//! let mut cfg = DetectConfig::default();
//! assert!(cfg.validate().is_ok());
//! cfg.photometry.aperture_radius = 0.0;
//! assert_eq!(cfg.validate().unwrap_err().key, "photometry.aperture_radius");
//! ```

use std::path::PathBuf;

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_nn::train::TrainConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::assign::AssignConfig;
use crate::classical::ClassicalConfig;
use crate::dataset::DataConfig;
use crate::loss::LossConfig;
use crate::measure::MeasureConfig;
use crate::metrics::EvalConfig;
use crate::model::DetectorConfig;
use crate::predict::PredictConfig;
use crate::Preprocess;

/// `[input]`: where images and the model come from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// HDU of the image (index or EXTNAME; empty: the primary HDU, or the first extension
    /// when the primary is empty).
    pub hdu: String,
    /// Trained model directory (model.json + model.safetensors) used by `predict`; relative
    /// paths are relative to the working directory. The bundled one is trained on simulated
    /// fields of many imagers (PSF 1.5–8 pixels, 0.15–0.6″ pixels; `trained_on` in its
    /// model.json).
    pub model: PathBuf,
    /// Truth catalogue HDU (`--truth`).
    pub truth_hdu: String,
    /// Bitmask image (`MP_<PLANE>` cards, as `deepsky segment predict` writes in mask.fits)
    /// whose pixels in `mask_planes` are treated as missing data, like NaN pixels; `--mask`
    /// overrides it. Empty: no mask.
    pub mask: PathBuf,
    /// The mask planes that hide pixels (names of [`MaskPlane`]; default `COSMIC_RAY`,
    /// `BAD_COLUMN`, `TRAIL`, `NO_DATA`: not `DETECTED`, which marks the sources themselves,
    /// nor `SATURATED`, whose pixels are the cores of bright stars that must still be found).
    pub mask_planes: Vec<String>,
    /// HDU of the mask (index or EXTNAME; empty: `MASK` if present, else the first image).
    pub mask_hdu: String,
}

impl InputConfig {
    /// The planes of `mask_planes`, checked (see [`Validate`]).
    pub fn mask_planes(&self) -> Result<Vec<MaskPlane>, ConfigError> {
        self.mask_planes
            .iter()
            .map(|name| {
                MaskPlane::from_name(name).ok_or_else(|| {
                    let valid: Vec<&str> = MaskPlane::ALL.iter().map(|p| p.name()).collect();
                    ConfigError::at(
                        "mask_planes",
                        format!("unknown plane `{name}`; valid: {}", valid.join(", ")),
                    )
                })
            })
            .collect()
    }
}

impl Validate for InputConfig {
    /// Mask plane names, keys relative to the `[input]` section.
    fn validate(&self) -> Result<(), ConfigError> {
        self.mask_planes().map(|_| ())
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            hdu: String::new(),
            model: PathBuf::from("data/models/detect"),
            truth_hdu: "CATALOG".into(),
            mask: PathBuf::new(),
            mask_planes: [
                MaskPlane::CosmicRay,
                MaskPlane::BadColumn,
                MaskPlane::Trail,
                MaskPlane::NoData,
            ]
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
            mask_hdu: String::new(),
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

impl Validate for OutputConfig {
    /// Range checks, keys relative to the `[output]` section.
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
    pub photometry: MeasureConfig,
    /// Star/galaxy by the point-source test against the image's PSF.
    pub star_galaxy: crate::stargal::StarGalaxyConfig,
    /// The classical baseline run beside the network when a truth catalogue is given.
    pub baseline: ClassicalConfig,
    /// Matching to the truth.
    pub evaluate: EvalConfig,
    /// The operating point chosen at the end of training (and by `detect calibrate`).
    pub calibrate: crate::calibrate::CalibrateConfig,
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
    /// Every section's checks, keys from the top of the file.
    fn validate(&self) -> Result<(), ConfigError> {
        self.input.validate().map_err(|e| e.within("input"))?;
        self.train.validate().map_err(|e| e.within("train"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        self.data.validate().map_err(|e| e.within("data"))?;
        self.predict.validate().map_err(|e| e.within("predict"))?;
        self.baseline.validate().map_err(|e| e.within("baseline"))?;
        self.preprocess
            .validate()
            .map_err(|e| e.within("preprocess"))?;
        self.photometry
            .validate()
            .map_err(|e| e.within("photometry"))?;
        self.assign.validate().map_err(|e| e.within("assign"))?;
        self.evaluate.validate().map_err(|e| e.within("evaluate"))?;
        self.calibrate
            .validate()
            .map_err(|e| e.within("calibrate"))?;
        self.star_galaxy
            .validate()
            .map_err(|e| e.within("star_galaxy"))?;
        self.output.validate().map_err(|e| e.within("output"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_from_the_top_of_the_file() {
        let key = |f: &dyn Fn(&mut DetectConfig)| {
            let mut c = DetectConfig::default();
            f(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(
            key(&|c| c.preprocess.softening = 0.0),
            "preprocess.softening"
        );
        assert_eq!(
            key(&|c| c.preprocess.background.mesh_size = 2),
            "preprocess.background.mesh_size"
        );
        assert_eq!(key(&|c| c.photometry.gain = -1.0), "photometry.gain");
        assert_eq!(key(&|c| c.assign.top_k = 0), "assign.top_k");
        assert_eq!(
            key(&|c| c.evaluate.snr_edges = vec![3.0, 1.0]),
            "evaluate.snr_edges"
        );
        assert_eq!(key(&|c| c.evaluate.snr_edges.clear()), "evaluate.snr_edges");
        assert_eq!(
            key(&|c| c.output.overlay_max_side = 8),
            "output.overlay_max_side"
        );
        assert_eq!(
            key(&|c| c.output.plots = vec!["gif".into()]),
            "output.plots"
        );
        assert_eq!(key(&|c| c.predict.tile = 100), "predict.tile");
        assert_eq!(key(&|c| c.baseline.fwhm = 0.0), "baseline.fwhm");
        assert_eq!(
            key(&|c| c.input.mask_planes = vec!["COSMIC_RAY".into(), "CR".into()]),
            "input.mask_planes"
        );
        // The first failing section is reported, in file order.
        assert_eq!(
            key(&|c| {
                c.output.overlay_max_side = 8;
                c.photometry.gain = -1.0;
            }),
            "photometry.gain"
        );
    }

    #[test]
    fn mask_planes_default_to_the_artefacts_but_not_sources_and_unknown_names_list_the_valid_ones()
    {
        let input = InputConfig::default();
        assert!(input.mask.as_os_str().is_empty());
        let planes = input.mask_planes().unwrap();
        assert_eq!(planes.len(), MaskPlane::ALL.len() - 2);
        assert!(!planes.contains(&MaskPlane::Detected));
        assert!(!planes.contains(&MaskPlane::Saturated));
        let lower = InputConfig {
            mask_planes: vec!["cosmic_ray".into(), "MP_TRAIL".into()],
            ..input.clone()
        };
        assert_eq!(
            lower.mask_planes().unwrap(),
            [MaskPlane::CosmicRay, MaskPlane::Trail]
        );
        let bad = InputConfig {
            mask_planes: vec!["CR".into()],
            ..input
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.key, "mask_planes");
        assert!(
            e.message.contains("`CR`") && e.message.contains("COSMIC_RAY, SATURATED"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_model_seed_follows_the_training_seed() {
        let mut c = DetectConfig::default();
        let a = c.model_seed();
        c.train.seed += 1;
        assert_ne!(c.model_seed(), a);
        assert_eq!(
            DetectConfig::default().model_seed(),
            DetectConfig::default()
                .train
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ 0xde7
        );
    }

    #[test]
    fn sections_read_from_toml_and_unknown_keys_fail() {
        let cfg: DetectConfig = serde_json::from_str(
            r#"{"photometry": {"aperture_radius": 3.0}, "output": {"plots": ["pdf"]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.photometry.aperture_radius, 3.0);
        assert_eq!(cfg.photometry.centroid_sigma, 1.2);
        assert_eq!(cfg.output.plots, ["pdf"]);
        assert!(
            serde_json::from_str::<DetectConfig>(r#"{"photometry": {"radius": 3.0}}"#).is_err()
        );
    }
}
