//! The fastsim pipeline's configuration: `[data]`, `[model]`, `[train]`, `[loss]`,
//! `[progress]`, `[generate]`, `[validate]`, `[speed]`, `[images]`, `[output]`. Every key
//! has a default; `deepsky fastsim train --dump-config` prints them all with their docs.
//!
//! ```
//! use deepsky_core::Validate;
//! use deepsky_fastsim::config::FastsimConfig;
//!
//! let mut cfg = FastsimConfig::default();
//! cfg.validate.bins = 2;
//! assert_eq!(cfg.validate().unwrap_err().key, "validate.bins");
//! ```

use std::path::PathBuf;

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_io::calo::ShowerLayout;
use deepsky_nn::gan::GanConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::image_gan::ImageGanConfig;
use crate::model::ShowerGanConfig;
use crate::shower_gan::ShowerLossConfig;
use crate::two_sample::ClassifierConfig;

/// One training file and its particle.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SampleFile {
    /// HDF5 file in the CaloGAN or CaloChallenge (504 voxels) layout.
    pub path: PathBuf,
    /// Particle (`e-`, `e+`, `gamma`); empty: the file's `particle` attribute, which
    /// `deepsky simulate showers` writes.
    pub particle: String,
}

/// `[data]`: the showers to learn.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training files (one per particle type; several particle types make the GAN
    /// conditional on the particle too).
    pub samples: Vec<SampleFile>,
    /// Also train on the showers' mirror images (η and φ reflected). Right only when the
    /// detector and the beam are mirror-symmetric about the shower axis, as the project's
    /// simulator is; off by default.
    pub mirror: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            samples: vec![SampleFile {
                path: "data/showers_calogan.h5".into(),
                particle: String::new(),
            }],
            mirror: false,
        }
    }
}

/// `[generate]`: what `generate` makes (overridable on the command line).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Trained model directory used by `generate` and `validate` (`--model` overrides).
    pub model: PathBuf,
    /// Number of showers.
    pub showers: usize,
    /// Fixed incident energy, GeV (0: uniform in `energy_range_gev`).
    pub energy_gev: f64,
    /// Incident energy range, GeV (empty: the model's training range).
    pub energy_range_gev: Vec<f64>,
    /// Particle (empty: the model's first).
    pub particle: String,
    /// Showers per forward pass.
    pub batch: usize,
    /// Output layout: `calogan`, `calochallenge`, or empty for the training file's.
    #[serde(with = "layout_or_empty")]
    #[schemars(with = "String")]
    pub layout: Option<ShowerLayout>,
    /// Noise seed.
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            model: "data/models/fastsim".into(),
            showers: 1000,
            energy_gev: 0.0,
            energy_range_gev: Vec::new(),
            particle: String::new(),
            batch: 1000,
            layout: None,
            seed: 1,
        }
    }
}

/// `[validate]`: reference Monte Carlo and the comparison.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidateConfig {
    /// Two independent held-out reference files (same particle and energy spectrum). Empty:
    /// run the project's simulator for both, over the model's training energy range
    /// (uniform), with seeds `reference_seed` and `reference_seed + 1`.
    pub reference: Vec<PathBuf>,
    /// Showers per simulated reference sample.
    pub reference_showers: usize,
    /// Seed of the first simulated reference sample (must differ from the training file's).
    pub reference_seed: u64,
    /// Histogram bins per observable.
    pub bins: usize,
    /// Seed of the generated showers compared with the reference.
    pub seed: u64,
    /// The two-sample classifier (`[validate.classifier]`).
    pub classifier: ClassifierConfig,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        ValidateConfig {
            reference: Vec::new(),
            reference_showers: 2000,
            reference_seed: 1001,
            bins: 40,
            seed: 2,
            classifier: ClassifierConfig::default(),
        }
    }
}

/// `[speed]`: showers/s of generator and reference simulator, side by side.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpeedConfig {
    /// Incident energies, GeV.
    pub energies_gev: Vec<f64>,
    /// Generator batch sizes.
    pub batches: Vec<usize>,
    /// Generated showers per (energy, batch) point: at least this many, and at least two
    /// batches.
    pub generated_showers: usize,
    /// Minimum simulator time per energy, seconds (at least 4 showers are simulated).
    pub simulator_seconds: f64,
}

impl Default for SpeedConfig {
    fn default() -> Self {
        SpeedConfig {
            energies_gev: vec![1.0, 10.0, 100.0],
            batches: vec![1, 100, 10_000],
            generated_showers: 2000,
            simulator_seconds: 2.0,
        }
    }
}

/// `[train.validation]`-like periodic check during training.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProgressConfig {
    /// Write validation plots and χ² every this many epochs (0: never).
    pub every: usize,
    /// Showers generated for each periodic check (at the energies of as many training
    /// showers).
    pub showers: usize,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        ProgressConfig {
            every: 50,
            showers: 500,
        }
    }
}

/// `[images]`: the image GAN (`deepsky fastsim images`) on galaxy cutouts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// HDF5 file with `/images` (N, H, W) and optionally `/labels`.
    pub path: PathBuf,
    /// Train on the stamps with this `/labels` value only (-1: all stamps).
    pub label: i64,
    /// Generated stamps written to `generated.h5` and compared with the training stamps.
    pub generate: usize,
    /// Noise seed of the generated stamps.
    pub seed: u64,
    /// Network sizes (`[images.model]`).
    pub model: ImageGanConfig,
    /// Adversarial training (`[images.train]`).
    pub train: GanConfig,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            path: "data/cutouts.h5".into(),
            label: 0,
            generate: 1000,
            seed: 1,
            model: ImageGanConfig::default(),
            train: GanConfig {
                epochs: 60,
                batch_size: 64,
                lr_generator: 1e-3,
                lr_critic: 4e-3,
                ema_decay: 0.99,
                ..GanConfig::default()
            },
        }
    }
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Plot formats: png, svg, pdf.
    pub plots: Vec<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            plots: vec!["png".into(), "pdf".into()],
        }
    }
}

/// The whole fastsim config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FastsimConfig {
    /// Training showers.
    pub data: DataConfig,
    /// Network sizes.
    pub model: ShowerGanConfig,
    /// Adversarial training.
    pub train: GanConfig,
    /// Loss weights.
    pub loss: ShowerLossConfig,
    /// Periodic validation during training.
    pub progress: ProgressConfig,
    /// Generation.
    pub generate: GenerateConfig,
    /// Validation.
    pub validate: ValidateConfig,
    /// Speed measurement.
    pub speed: SpeedConfig,
    /// The image GAN.
    pub images: ImagesConfig,
    /// Output formats.
    pub output: OutputConfig,
}

impl Validate for FastsimConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate().map_err(|e| e.within("train"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        self.images
            .model
            .validate()
            .map_err(|e| e.within("images.model"))?;
        self.images
            .train
            .validate()
            .map_err(|e| e.within("images.train"))?;
        ensure(
            self.images.generate >= 2,
            "images.generate",
            "must be at least 2",
        )?;
        self.validate
            .classifier
            .validate()
            .map_err(|e| e.within("validate.classifier"))?;
        ensure(
            !self.data.samples.is_empty(),
            "data.samples",
            "needs at least one file",
        )?;
        ensure(
            self.loss.energy_weight >= 0.0 && self.loss.energy_weight.is_finite(),
            "loss.energy_weight",
            "must be a finite number >= 0",
        )?;
        ensure(
            self.generate.showers > 0,
            "generate.showers",
            "must be at least 1",
        )?;
        ensure(
            self.generate.batch > 0,
            "generate.batch",
            "must be at least 1",
        )?;
        ensure(
            self.generate.energy_gev >= 0.0 && self.generate.energy_gev.is_finite(),
            "generate.energy_gev",
            "must be a finite energy in GeV (0: use energy_range_gev)",
        )?;
        ensure(
            self.generate.energy_range_gev.is_empty()
                || (self.generate.energy_range_gev.len() == 2
                    && self.generate.energy_range_gev[0] > 0.0
                    && self.generate.energy_range_gev[0] < self.generate.energy_range_gev[1]),
            "generate.energy_range_gev",
            "must be [min, max] with 0 < min < max",
        )?;
        ensure(
            self.validate.reference.is_empty() || self.validate.reference.len() == 2,
            "validate.reference",
            "must name two independent reference files (or none, to simulate them)",
        )?;
        ensure(
            self.validate.reference_showers >= 100,
            "validate.reference_showers",
            "must be at least 100",
        )?;
        ensure(
            (5..=500).contains(&self.validate.bins),
            "validate.bins",
            "must be in 5..=500",
        )?;
        ensure(
            !self.speed.energies_gev.is_empty()
                && self.speed.energies_gev.iter().all(|e| {
                    (deepsky_sim::shower::MIN_ENERGY_GEV..=deepsky_sim::shower::MAX_ENERGY_GEV)
                        .contains(e)
                }),
            "speed.energies_gev",
            "needs at least one energy, each in 0.1..=1000 GeV (the simulator's range)",
        )?;
        ensure(
            !self.speed.batches.is_empty() && self.speed.batches.iter().all(|b| *b > 0),
            "speed.batches",
            "needs at least one batch size, each at least 1",
        )?;
        ensure(
            self.progress.every == 0 || self.progress.showers >= 10,
            "progress.showers",
            "must be at least 10 (or progress.every = 0)",
        )?;
        ensure(
            self.speed.simulator_seconds > 0.0,
            "speed.simulator_seconds",
            "must be positive",
        )?;
        for p in &self.output.plots {
            let known = deepsky_plot::Format::parse(p).is_some();
            ensure(known, "output.plots", "formats are png, svg, pdf")?;
        }
        Ok(())
    }
}

/// `generate.layout` in TOML: a layout name, or the empty string for "the training file's".
mod layout_or_empty {
    use deepsky_io::calo::ShowerLayout;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<ShowerLayout>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.map_or("", |l| l.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ShowerLayout>, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Ok(None);
        }
        // The message the config loader shows under `generate.layout`.
        name.parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("must be calogan or calochallenge"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_each_check_names_its_key() {
        FastsimConfig::default().validate().unwrap();
        let key = |edit: &dyn Fn(&mut FastsimConfig)| {
            let mut c = FastsimConfig::default();
            edit(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(key(&|c| c.data.samples.clear()), "data.samples");
        assert_eq!(
            key(&|c| c.generate.energy_range_gev = vec![5.0, 1.0]),
            "generate.energy_range_gev"
        );
        assert_eq!(
            key(&|c| c.validate.reference = vec!["a.h5".into()]),
            "validate.reference"
        );
        assert_eq!(
            key(&|c| c.speed.energies_gev = vec![5000.0]),
            "speed.energies_gev"
        );
        assert_eq!(
            key(&|c| c.output.plots = vec!["gif".into()]),
            "output.plots"
        );
        assert_eq!(key(&|c| c.images.generate = 1), "images.generate");
    }

    #[test]
    fn the_output_layout_is_a_name_or_empty() {
        let c: GenerateConfig = serde_json::from_str(r#"{"layout": "calochallenge"}"#).unwrap();
        assert_eq!(c.layout, Some(ShowerLayout::CaloChallenge));
        let c: GenerateConfig = serde_json::from_str(r#"{"layout": ""}"#).unwrap();
        assert_eq!(c.layout, None);
        assert_eq!(serde_json::to_value(&c).unwrap()["layout"], "");
        let err = serde_json::from_str::<GenerateConfig>(r#"{"layout": "root"}"#).unwrap_err();
        assert!(
            err.to_string().contains("calogan or calochallenge"),
            "{err}"
        );
    }
}
