//! An autoencoder with its weights and normalisation ([`AeModel`]): initialise or load it,
//! train it through deepsky-nn's shared loop, score objects, save it.

use std::path::Path;

use candle_core::{Device, Tensor};
use deepsky_nn::init::SeededVarMap;
use deepsky_nn::train::{Batch, TrainOutcome, TrainTask, Trainer};
use deepsky_nn::NnError;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::model::{normal_noise, Autoencoder, InputShape, ModelConfig};
use crate::normalise::Normaliser;

/// Everything needed to rebuild a trained model: written as `model.json` beside
/// `model.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Layout version of this file.
    pub format_version: u32,
    /// Architecture.
    pub model: ModelConfig,
    /// Shape of one example.
    pub input_shape: InputShape,
    /// The fitted normalisation, applied before the model.
    pub normaliser: Normaliser,
    /// Seed of the initial weights.
    pub seed: u64,
}

/// An autoencoder network with its weights, the normalisation of its inputs and the card that
/// rebuilds it: freshly initialised ([`AeModel::init`]), trained in place ([`AeModel::fit`]) or
/// loaded ([`AeModel::load`]).
pub struct AeModel {
    vars: SeededVarMap,
    network: Autoencoder,
    card: ModelCard,
    device: Device,
}

struct AeTask<'a> {
    model: &'a Autoencoder,
    data: &'a Tensor,
    seed: u64,
}

fn select(data: &Tensor, indices: &[usize]) -> candle_core::Result<Tensor> {
    let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    let idx = Tensor::from_vec(idx, indices.len(), data.device())?;
    data.index_select(&idx, 0)
}

impl TrainTask for AeTask<'_> {
    fn len(&self) -> usize {
        self.data.dim(0).unwrap_or(0)
    }
    fn loss(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
        let x = select(self.data, b.indices)?;
        let noise = if self.model.config().variational && b.train {
            Some(normal_noise(
                b.indices.len(),
                self.model.config().latent,
                self.seed,
                &format!("vae/{}", b.step),
                x.device(),
            )?)
        } else {
            None
        };
        self.model.objective(&x, b.train, noise.as_ref())
    }
}

/// Rows `(n, features)` as a tensor `(n, *shape)`.
pub fn to_tensor(
    rows: &Array2<f32>,
    shape: &[usize],
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut dims = vec![rows.nrows()];
    dims.extend_from_slice(shape);
    let flat: Vec<f32> = rows.iter().copied().collect();
    Tensor::from_vec(flat, dims, device)
}

impl AeModel {
    /// A model with fresh seeded weights for examples of `shape`, normalised by `normaliser`.
    pub fn init(
        model: &ModelConfig,
        shape: &[usize],
        normaliser: Normaliser,
        seed: u64,
        device: &Device,
    ) -> Result<AeModel, NnError> {
        model.validate_for(shape).map_err(|e| e.within("model"))?;
        let vars = SeededVarMap::new(seed);
        let network = Autoencoder::new(model, shape, vars.builder(device).pp("ae"))?;
        Ok(AeModel {
            vars,
            network,
            card: ModelCard {
                format_version: 1,
                model: model.clone(),
                input_shape: shape.to_vec(),
                normaliser,
                seed,
            },
            device: device.clone(),
        })
    }

    /// The network.
    pub fn network(&self) -> &Autoencoder {
        &self.network
    }

    /// How to rebuild the model: architecture, input shape, normalisation, seed.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The fitted normalisation of its inputs.
    pub fn normaliser(&self) -> &Normaliser {
        &self.card.normaliser
    }

    /// Shape of one example.
    pub fn input_shape(&self) -> &[usize] {
        &self.card.input_shape
    }

    /// The variables (weights and batch-norm statistics), by name.
    pub fn varmap(&self) -> &candle_nn::VarMap {
        self.vars.varmap()
    }

    /// Where it computes.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Train on already-normalised rows, with the loop `trainer` describes (settings,
    /// checkpoints, resume, hooks).
    pub fn fit(
        &self,
        normalised: &Array2<f32>,
        trainer: Trainer<'_>,
    ) -> Result<TrainOutcome, NnError> {
        let data = to_tensor(normalised, &self.card.input_shape, &self.device)?;
        let task = AeTask {
            model: &self.network,
            data: &data,
            seed: trainer.config().seed,
        };
        trainer.run(&task, self.vars.varmap())
    }

    /// Scores for already-normalised rows, in batches.
    pub fn score(&self, normalised: &Array2<f32>, batch: usize) -> Result<AeScores, NnError> {
        let n = normalised.nrows();
        let mut recon = Vec::with_capacity(n);
        let mut kl = Vec::new();
        let mut latent = Vec::with_capacity(n * self.card.model.latent);
        let data = to_tensor(normalised, &self.card.input_shape, &self.device)?;
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let x = data.narrow(0, start, len)?;
            let losses = self.network.losses(&x, false, None)?;
            recon.extend(losses.recon.to_vec1::<f32>()?.into_iter().map(f64::from));
            if let Some(k) = losses.kl {
                kl.extend(k.to_vec1::<f32>()?.into_iter().map(f64::from));
            }
            latent.extend(losses.mu.flatten_all()?.to_vec1::<f32>()?);
            start += len;
        }
        let latent =
            Array2::from_shape_vec((n, self.card.model.latent), latent).expect("latent shape");
        let neg_elbo = if kl.is_empty() {
            None
        } else {
            Some(
                recon
                    .iter()
                    .zip(&kl)
                    .map(|(r, k)| r + self.card.model.beta * k)
                    .collect(),
            )
        };
        Ok(AeScores {
            recon,
            neg_elbo,
            latent,
        })
    }

    /// Reconstructions of selected normalised rows (for galleries), as rows.
    pub fn reconstruct_rows(&self, normalised: &Array2<f32>) -> Result<Array2<f32>, NnError> {
        let x = to_tensor(normalised, &self.card.input_shape, &self.device)?;
        let (xhat, _) = self.network.reconstruct(&x, false, None)?;
        let v = xhat.flatten_all()?.to_vec1::<f32>()?;
        Ok(Array2::from_shape_vec(normalised.raw_dim(), v).expect("same shape"))
    }

    /// Write `model.safetensors` and `model.json` into `dir` (atomically each).
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        deepsky_nn::checkpoint::save_model(self.vars.varmap(), &self.card, dir)
    }

    /// Load a model saved by [`AeModel::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<AeModel, NnError> {
        let path = dir.join("model.json");
        let card: ModelCard = deepsky_nn::checkpoint::load_card(dir, "deepsky")?;
        if card.format_version != 1 {
            return Err(NnError::checkpoint(
                &path,
                format!(
                    "model format {} is not supported by this deepsky (1)",
                    card.format_version
                ),
            ));
        }
        let t = AeModel::init(
            &card.model,
            &card.input_shape,
            card.normaliser.clone(),
            card.seed,
            device,
        )?;
        deepsky_nn::checkpoint::load_varmap(t.vars.varmap(), &dir.join("model.safetensors"))?;
        Ok(t)
    }
}

/// Per-object results of scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct AeScores {
    /// Mean squared reconstruction error (in normalised units).
    pub recon: Vec<f64>,
    /// Negative ELBO per feature (VAE only): reconstruction error + β·KL/features.
    pub neg_elbo: Option<Vec<f64>>,
    /// Latent vectors (the encoder's means), (n, latent).
    pub latent: Array2<f32>,
}
