//! Anomaly detection with an autoencoder, the linfa way: [`AnomalyParams`] (architecture,
//! normalisation, seed) are fitted on [`Objects`] into an [`AnomalyModel`] (the fitted
//! normalisation, the trained autoencoder and a PCA-reconstruction baseline), which scores
//! objects into [`AnomalyScores`]. What follows scoring — the latent embedding and clusters,
//! the ranking and metrics ([`analysis`]), the tables ([`products`]), the figures ([`plots`])
//! and `report.json` ([`report`]) — are functions of those scores, so a merge of shards,
//! which has scores but no model, runs the same steps.
//!
//! ```
//! use candle_core::Device;
//! use deepsky_nn::train::{TrainConfig, Trainer};
//! use deepsky_repr::anomaly::{AnomalyParams, ScoreKind, ScoreName};
//! use deepsky_repr::model::{ArchKind, ModelConfig};
//! use deepsky_repr::normalise::NormaliseKind;
//! use deepsky_repr::objects::Objects;
//! use ndarray::Array2;
//!
//! // 40 table rows on a line in 3-D; row 7 is off the line.
//! let mut rows = Array2::from_shape_fn((40, 3), |(i, j)| (i as f32 / 20.0 - 1.0) * (j as f32 + 1.0));
//! rows[[7, 2]] = 5.0;
//! let objects = Objects {
//!     rows,
//!     shape: vec![3],
//!     ids: (1..=40).collect(),
//!     labels: None,
//!     label_names: vec![],
//!     feature_names: vec!["a".into(), "b".into(), "c".into()],
//! };
//! let params = AnomalyParams {
//!     model: ModelConfig { kind: ArchKind::Dense, widths: vec![8], latent: 1, ..Default::default() },
//!     normalise: NormaliseKind::Standardise,
//!     softening: 3.0,
//!     seed: 1,
//! };
//! let train = TrainConfig { epochs: 20, batch_size: 8, lr: 1e-2, val_fraction: 0.0, ..Default::default() };
//! let (model, outcome) = params.fit(&objects, Trainer::new(&train), &Device::Cpu).unwrap();
//! assert_eq!(outcome.state.epochs_done, 20);
//! let scores = model.score(&objects, ScoreKind::Auto).unwrap();
//! assert_eq!(scores.score_name, ScoreName::Recon);
//! // The PCA baseline with one component finds the row off the line.
//! let worst = (0..40).max_by(|&a, &b| scores.baseline[a].total_cmp(&scores.baseline[b]));
//! assert_eq!(worst, Some(7));
//! ```

pub mod analysis;
pub mod config;
pub mod plots;
pub mod products;
pub mod report;

use std::path::Path;

use candle_core::Device;
use deepsky_core::config::ConfigError;
use deepsky_nn::train::{TrainOutcome, Trainer};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

pub use analysis::AnomalyResult;
pub use config::{AnomalyConfig, OutputConfig, ScoreKind};

use crate::error::{ReprError, Result};
use crate::fit::AeModel;
use crate::latent::PcaModel;
use crate::model::ModelConfig;
use crate::normalise::{NormaliseKind, Normaliser};
use crate::objects::Objects;

/// The file of the PCA baseline in a model directory, beside the autoencoder's
/// `model.safetensors` and `model.json`.
pub const BASELINE_FILE: &str = "baseline_pca.json";

/// Objects per batch when scoring.
const SCORE_BATCH: usize = 256;

/// Hyper-parameters of an anomaly model: everything [`AnomalyParams::fit`] needs besides the
/// objects and the training loop's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyParams {
    /// Architecture of the autoencoder.
    pub model: ModelConfig,
    /// Which normalisation to fit on the objects.
    pub normalise: NormaliseKind,
    /// asinh softening in units of each stamp's noise.
    pub softening: f32,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl AnomalyParams {
    /// Fit the normalisation on `objects`, train the autoencoder on them with the loop
    /// `trainer` describes (settings, checkpoints, resume, hooks), then fit the PCA baseline
    /// with as many components as the latent space on the same training objects. Returns the
    /// model and how training went.
    pub fn fit(
        &self,
        objects: &Objects,
        trainer: Trainer<'_>,
        device: &Device,
    ) -> Result<(AnomalyModel, TrainOutcome)> {
        self.model
            .validate_for(&objects.shape)
            .map_err(|e| e.within("model"))?;
        let normaliser = Normaliser::fit(self.normalise, self.softening, &objects.rows);
        let ae = AeModel::init(&self.model, &objects.shape, normaliser, self.seed, device)?;
        let x = ae.normaliser().apply(&objects.rows);
        let outcome = ae.fit(&x, trainer)?;
        // Fitted on the training objects only and saved with the model, so that applying the
        // model (in one job or in shards) scores the baseline identically.
        let train_rows = x.select(Axis(0), &outcome.train_indices);
        let baseline = PcaModel::fit(&train_rows, self.model.latent)
            .map_err(|e| ReprError::failed("PCA baseline", e))?;
        Ok((AnomalyModel { ae, baseline }, outcome))
    }
}

/// A fitted anomaly model: the autoencoder (with its normalisation) and the PCA baseline.
pub struct AnomalyModel {
    ae: AeModel,
    baseline: PcaModel,
}

impl AnomalyModel {
    /// The files of a saved model, in a model directory.
    pub const FILES: [&'static str; 3] = ["model.safetensors", "model.json", BASELINE_FILE];

    /// Load a model directory written by [`AnomalyModel::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<AnomalyModel> {
        let ae = AeModel::load(dir, device)?;
        let baseline = PcaModel::load(&dir.join(BASELINE_FILE)).map_err(ReprError::bad_input)?;
        Ok(AnomalyModel { ae, baseline })
    }

    /// Write [`AnomalyModel::FILES`] into `dir` (created if missing), each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ReprError::failed("model directory", format!("{}: {e}", dir.display())))?;
        self.ae.save(dir)?;
        self.baseline
            .save(&dir.join(BASELINE_FILE))
            .map_err(|e| ReprError::failed("PCA baseline", e))
    }

    /// The autoencoder.
    pub fn autoencoder(&self) -> &AeModel {
        &self.ae
    }

    /// The PCA-reconstruction baseline.
    pub fn baseline(&self) -> &PcaModel {
        &self.baseline
    }

    /// The normalisation applied to objects before both models.
    pub fn normaliser(&self) -> &Normaliser {
        self.ae.normaliser()
    }

    /// Shape of one example.
    pub fn input_shape(&self) -> &[usize] {
        self.ae.input_shape()
    }

    /// Score every object: reconstruction error, negative ELBO (VAE), latent vector, baseline
    /// error, and the ranking score `kind` picks.
    pub fn score(&self, objects: &Objects, kind: ScoreKind) -> Result<AnomalyScores> {
        if objects.shape != self.input_shape() {
            return Err(ReprError::bad_input(format!(
                "the model expects examples of shape {:?}, the input has {:?}",
                self.input_shape(),
                objects.shape
            )));
        }
        let x = self.normaliser().apply(&objects.rows);
        if self.baseline.features() != x.ncols() {
            return Err(ReprError::bad_input(
                "the saved PCA baseline does not match the input's features",
            ));
        }
        let s = self.ae.score(&x, SCORE_BATCH)?;
        let score_name = match kind {
            ScoreKind::Elbo if s.neg_elbo.is_none() => {
                return Err(ConfigError::at(
                    "score",
                    "`elbo` needs a variational model (model.variational = true)",
                )
                .within("output")
                .into());
            }
            ScoreKind::Elbo => ScoreName::NegElbo,
            ScoreKind::Auto if s.neg_elbo.is_some() => ScoreName::NegElbo,
            ScoreKind::Auto | ScoreKind::Recon => ScoreName::Recon,
        };
        let score = match (&s.neg_elbo, score_name) {
            (Some(e), ScoreName::NegElbo) => e.clone(),
            _ => s.recon.clone(),
        };
        let baseline = self.baseline.reconstruction_error(&x);
        Ok(AnomalyScores {
            recon: s.recon,
            neg_elbo: s.neg_elbo,
            latent: s.latent,
            baseline,
            score,
            score_name,
        })
    }

    /// The normalised rows of the objects at `indices` and their reconstructions, `(k,
    /// features)` each (for galleries). Normalisation is per row, so these rows equal the
    /// same rows of the whole set normalised.
    pub fn reconstruct(
        &self,
        objects: &Objects,
        indices: &[usize],
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let rows = self
            .normaliser()
            .apply(&objects.rows.select(Axis(0), indices));
        let recon = self.ae.reconstruct_rows(&rows)?;
        Ok((rows, recon))
    }
}

/// Which number ranks the objects.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScoreName {
    /// Mean squared reconstruction error.
    Recon,
    /// Negative ELBO per feature (VAE).
    NegElbo,
}

impl ScoreName {
    /// The name in reports and file attributes: `recon` or `neg_elbo`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreName::Recon => "recon",
            ScoreName::NegElbo => "neg_elbo",
        }
    }

    /// One line saying what the score is, for column descriptions.
    pub fn description(self) -> &'static str {
        match self {
            ScoreName::NegElbo => "negative ELBO per feature (normalised units)",
            ScoreName::Recon => "mean squared reconstruction error (normalised units)",
        }
    }
}

/// Per-object numbers of an anomaly model, in the order of the objects.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyScores {
    /// Mean squared reconstruction error (normalised units).
    pub recon: Vec<f64>,
    /// Negative ELBO per feature (VAE only).
    pub neg_elbo: Option<Vec<f64>>,
    /// Latent vectors (the encoder's means), `(n, latent)`.
    pub latent: Array2<f32>,
    /// PCA-reconstruction error with as many components as the latent space.
    pub baseline: Vec<f64>,
    /// The ranking score: `neg_elbo` or `recon`, as `score_name` says.
    pub score: Vec<f64>,
    /// Which score ranks.
    pub score_name: ScoreName,
}

impl AnomalyScores {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.score.len()
    }

    /// True when there are no objects.
    pub fn is_empty(&self) -> bool {
        self.score.is_empty()
    }

    /// The scores of consecutive blocks of objects (shards) as one set, in the order given.
    /// `neg_elbo` is kept when every part has it; the score name is the first part's.
    pub fn concat(parts: &[AnomalyScores]) -> Result<AnomalyScores> {
        let first = parts
            .first()
            .ok_or_else(|| ReprError::bad_input("no scores to concatenate"))?;
        fn cat<F: Fn(&AnomalyScores) -> &[f64]>(parts: &[AnomalyScores], f: F) -> Vec<f64> {
            parts.iter().flat_map(|p| f(p).iter().copied()).collect()
        }
        let latents: Vec<_> = parts.iter().map(|p| p.latent.view()).collect();
        let latent = ndarray::concatenate(Axis(0), &latents).map_err(|e| {
            ReprError::bad_input(format!("shards have different latent sizes: {e}"))
        })?;
        let neg_elbo = if parts.iter().all(|p| p.neg_elbo.is_some()) {
            Some(
                parts
                    .iter()
                    .flat_map(|p| p.neg_elbo.iter().flatten().copied())
                    .collect(),
            )
        } else {
            None
        };
        Ok(AnomalyScores {
            recon: cat(parts, |p| &p.recon),
            neg_elbo,
            latent,
            baseline: cat(parts, |p| &p.baseline),
            score: cat(parts, |p| &p.score),
            score_name: first.score_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: usize, offset: f64, elbo: bool) -> AnomalyScores {
        let v: Vec<f64> = (0..n).map(|i| offset + i as f64).collect();
        AnomalyScores {
            recon: v.clone(),
            neg_elbo: elbo.then(|| v.iter().map(|x| x + 0.5).collect()),
            latent: Array2::from_shape_fn((n, 2), |(i, j)| (offset as f32) + (i * 2 + j) as f32),
            baseline: v.iter().map(|x| -x).collect(),
            score: v,
            score_name: if elbo {
                ScoreName::NegElbo
            } else {
                ScoreName::Recon
            },
        }
    }

    #[test]
    fn concat_joins_shards_in_order() {
        let all = AnomalyScores::concat(&[part(2, 0.0, true), part(3, 10.0, true)]).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all.recon, vec![0.0, 1.0, 10.0, 11.0, 12.0]);
        assert_eq!(all.baseline[3], -11.0);
        assert_eq!(all.neg_elbo.as_ref().unwrap()[2], 10.5);
        assert_eq!(all.latent.row(2).to_vec(), vec![10.0, 11.0]);
        assert_eq!(all.score_name, ScoreName::NegElbo);
        let mixed = AnomalyScores::concat(&[part(2, 0.0, true), part(1, 5.0, false)]).unwrap();
        assert_eq!(mixed.neg_elbo, None);
        let mut odd = part(1, 0.0, false);
        odd.latent = Array2::zeros((1, 3));
        let e = AnomalyScores::concat(&[part(2, 0.0, false), odd]).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("latent sizes"),
            "{e}"
        );
    }

    #[test]
    fn score_names_read_as_in_reports() {
        assert_eq!(ScoreName::NegElbo.as_str(), "neg_elbo");
        assert_eq!(
            serde_json::to_string(&ScoreName::Recon).unwrap(),
            "\"recon\""
        );
        assert!(ScoreName::Recon.description().starts_with("mean squared"));
    }
}
