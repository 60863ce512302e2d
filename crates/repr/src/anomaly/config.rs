//! The anomaly pipeline's configuration: `[input]`, `[model]`, `[train]`, `[cluster]`,
//! `[output]`. Every key has a default; `deepsky anomaly --dump-config` prints them all.

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_nn::train::TrainConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnomalyParams;
use crate::latent::ClusterConfig;
use crate::model::ModelConfig;
use crate::objects::InputConfig;

/// Which per-object number ranks anomalies.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// The negative ELBO for a VAE, the reconstruction error otherwise.
    Auto,
    /// Mean squared reconstruction error.
    Recon,
    /// Negative ELBO (VAE only).
    Elbo,
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Rows of the ranked catalogue.
    pub top_k: usize,
    /// Stamps in the gallery of the most anomalous objects.
    pub gallery: usize,
    /// Which score ranks the objects: `auto`, `recon` or `elbo`.
    pub score: ScoreKind,
    /// Plot formats: any of `png`, `svg`, `pdf`.
    pub plots: Vec<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            top_k: 50,
            gallery: 12,
            score: ScoreKind::Auto,
            plots: vec!["png".into(), "pdf".into()],
        }
    }
}

impl Validate for OutputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.top_k >= 1, "top_k", "must be at least 1")?;
        let known = |p: &String| deepsky_plot::Format::parse(p).is_some();
        ensure(
            self.plots.iter().all(known),
            "plots",
            "formats are png, svg, pdf",
        )
    }
}

/// The whole configuration of `deepsky anomaly`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// What to read.
    pub input: InputConfig,
    /// The autoencoder.
    pub model: ModelConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// Clustering of the latent vectors.
    pub cluster: ClusterConfig,
    /// Catalogue and plots.
    pub output: OutputConfig,
}

impl AnomalyConfig {
    /// Seed of the initial weights: derived from the training seed, so one seed fixes the run.
    pub fn model_seed(&self) -> u64 {
        self.train.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed
    }

    /// The hyper-parameters of the model: architecture, normalisation and initial seed (the
    /// training loop's settings are `train`, given to [`AnomalyParams::fit`] in its `Trainer`).
    pub fn params(&self) -> AnomalyParams {
        AnomalyParams {
            model: self.model.clone(),
            normalise: self.input.normalise,
            softening: self.input.softening,
            seed: self.model_seed(),
        }
    }
}

impl Validate for AnomalyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate().map_err(|e| e.within("train"))?;
        self.input.validate().map_err(|e| e.within("input"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        self.cluster.validate().map_err(|e| e.within("cluster"))?;
        self.output.validate().map_err(|e| e.within("output"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_within_its_section() {
        let mut cfg = AnomalyConfig::default();
        assert!(cfg.validate().is_ok());
        cfg.output.plots = vec!["png".into(), "gif".into()];
        assert_eq!(cfg.validate().unwrap_err().key, "output.plots");
        cfg.cluster.eps = 0.0;
        assert_eq!(cfg.validate().unwrap_err().key, "cluster.eps");
        cfg.model.widths = vec![8, 0];
        assert_eq!(cfg.validate().unwrap_err().key, "model.widths");
        cfg.input.softening = -1.0;
        assert_eq!(cfg.validate().unwrap_err().key, "input.softening");
        cfg.train.epochs = 0;
        assert_eq!(cfg.validate().unwrap_err().key, "train.epochs");
    }

    #[test]
    fn params_take_the_model_normalisation_and_derived_seed() {
        let cfg = AnomalyConfig::default();
        let p = cfg.params();
        assert_eq!(p.model, cfg.model);
        assert_eq!(p.softening, 3.0);
        assert_eq!(
            p.seed,
            cfg.train.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed
        );
    }
}
