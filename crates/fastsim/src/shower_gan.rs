//! The conditional shower GAN: training ([`ShowerGan`], a [`GanTask`] for deepsky-nn's
//! adversarial loop) and generation from a saved model ([`FastSimulator`]).
//!
//! Losses: the hinge loss (critic: `relu(1 − D(real)) + relu(1 + D(fake))`, generator:
//! `−D(fake)`) with a spectrally normalised critic, plus the energy-consistency term: in every
//! batch, the mean and the spread of the response `E_sum / E_incident` (cells plus overflow)
//! of generated showers must match those of the real showers of the same batch, in units of
//! the real spread. Generated showers are made at the batch's own incident energies, so the
//! term compares like with like.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use deepsky_core::config::Validate;
use deepsky_io::calo::{CaloGanShowers, ShowerLayout};
use deepsky_nn::gan::GanTask;
use deepsky_nn::init::{named_rng, SeededVarMap};
use deepsky_nn::train::Batch;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{Conditioning, ShowerTensors, N_CELLS};
use crate::error::{to_candle, FastsimError, Result};
use crate::model::{Critic, Generator, ShowerGanConfig};

/// The `kind` written into model cards of shower generators.
pub const MODEL_KIND: &str = "deepsky-fastsim-showers";

/// Loss weights (the `[loss]` section).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShowerLossConfig {
    /// Weight of the energy-consistency term.
    pub energy_weight: f64,
}

impl Default for ShowerLossConfig {
    fn default() -> Self {
        ShowerLossConfig { energy_weight: 1.0 }
    }
}

/// What a saved generator is and was trained on (`model.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShowerModelCard {
    /// Always [`MODEL_KIND`].
    pub kind: String,
    /// deepsky version that wrote it.
    pub version: String,
    /// Network sizes and readout threshold.
    pub model: ShowerGanConfig,
    /// How energy and particle map to the condition.
    pub conditioning: Conditioning,
    /// Showers trained on.
    pub trained_showers: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Layout of the training file: generated files use it.
    pub layout: ShowerLayout,
}

/// The two networks in training, with the generator's moving average.
pub struct ShowerGan {
    /// Model card (updated with the epochs when saved).
    pub card: ShowerModelCard,
    generator_vars: SeededVarMap,
    ema_vars: SeededVarMap,
    critic_vars: SeededVarMap,
    generator: Generator,
    ema: Generator,
    critic: Critic,
    data: Option<ShowerTensors>,
    loss: ShowerLossConfig,
    seed: u64,
    /// [`crate::data::mirror_permutations`] as index tensors on the device, built once.
    mirror: [Tensor; 4],
}

impl ShowerGan {
    /// Fresh networks initialised from `seed`.
    pub fn new(
        cfg: &ShowerGanConfig,
        conditioning: Conditioning,
        layout: ShowerLayout,
        seed: u64,
        device: &Device,
    ) -> Result<ShowerGan> {
        cfg.validate().map_err(|e| e.within("model"))?;
        let cond_dim = conditioning.dim();
        let generator_vars = SeededVarMap::new(seed);
        let ema_vars = SeededVarMap::new(seed);
        let critic_vars = SeededVarMap::new(seed ^ 0x5eed_c417);
        let generator = Generator::new(cfg, cond_dim, generator_vars.builder(device))?;
        let ema = Generator::new(cfg, cond_dim, ema_vars.builder(device))?;
        let critic = Critic::new(cfg, cond_dim, critic_vars.builder(device), device)?;
        let [m0, m1, m2, m3] =
            crate::data::mirror_permutations().map(|perm| Tensor::new(perm, device));
        Ok(ShowerGan {
            card: ShowerModelCard {
                kind: MODEL_KIND.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                model: cfg.clone(),
                conditioning,
                trained_showers: 0,
                epochs: 0,
                layout,
            },
            generator_vars,
            ema_vars,
            critic_vars,
            generator,
            ema,
            critic,
            data: None,
            loss: ShowerLossConfig::default(),
            seed,
            mirror: [m0?, m1?, m2?, m3?],
        })
    }

    /// Attach the training showers and the loss weights (before [`deepsky_nn::gan::train_gan`]),
    /// and start the generator's output biases at the mean shower of the data.
    ///
    /// The cell head's bias becomes the log of each cell's (and overflow's) mean share of its
    /// layer, the energy head's the log of the mean layer fractions. The generator's cells
    /// are expected energies that its roulette ([`crate::model`]) turns into hits and empty
    /// cells, so it starts from the mean shower, its outer cells hit about as often as the
    /// data's, instead of spreading every layer evenly over its cells.
    pub fn set_data(&mut self, data: ShowerTensors, loss: ShowerLossConfig) -> Result<()> {
        self.card.trained_showers = data.len();
        let mut cell_bias = Vec::with_capacity(N_CELLS + 3);
        let mut layer_means = Vec::with_capacity(3);
        let mut off = 0;
        for (l, &k) in crate::data::LAYER_CELLS.iter().enumerate() {
            let x = Tensor::cat(
                &[
                    &data.cells.narrow(1, off, k)?,
                    &data.overflow.narrow(1, l, 1)?,
                ],
                1,
            )?;
            off += k;
            let sum = x.sum_keepdim(1)?;
            let share = x.broadcast_div(&(&sum + 1e-6)?)?;
            let b = ((share.mean(0)? + 1e-7)?.log()?).to_vec1::<f32>()?;
            cell_bias.extend(b);
            layer_means.push(
                sum.broadcast_div(&data.incident_mev)?
                    .mean_all()?
                    .to_scalar::<f32>()?,
            );
        }
        let total: f32 = layer_means.iter().sum();
        let energy_bias: Vec<f32> = std::iter::once(0.0)
            .chain(
                layer_means
                    .iter()
                    .map(|m| (m / total.max(1e-6)).max(1e-6).ln()),
            )
            .collect();
        let response = (data.cells.sum_keepdim(1)? + data.overflow.sum_keepdim(1)?)?
            .broadcast_div(&data.incident_mev)?;
        self.generator.fit_response(&response)?;
        let vars = self
            .generator_vars
            .varmap()
            .data()
            .lock()
            .expect("varmap lock");
        let device = data.cells.device().clone();
        for (name, values) in [("cells.bias", cell_bias), ("energy.bias", energy_bias)] {
            let var = vars.get(name).ok_or_else(|| {
                FastsimError::Input(format!("generator has no variable `{name}`"))
            })?;
            let n = values.len();
            var.set(&Tensor::from_vec(values, n, &device)?)?;
        }
        // Small head weights: the generator starts at the mean shower and learns the
        // variations around it, instead of starting from large random ones.
        for name in ["cells.weight", "energy.weight"] {
            let var = vars.get(name).ok_or_else(|| {
                FastsimError::Input(format!("generator has no variable `{name}`"))
            })?;
            var.set(&(var.as_tensor() * 0.1)?)?;
        }
        drop(vars);
        let raw = self.critic.raw_features(
            &data.cells,
            &data.overflow,
            &data.cond,
            &data.incident_mev,
        )?;
        self.critic.fit_standardisation(&raw)?;
        self.data = Some(data);
        self.loss = loss;
        Ok(())
    }

    fn data(&self) -> candle_core::Result<&ShowerTensors> {
        self.data
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("no training data attached".into()))
    }

    /// Number of generator parameters.
    pub fn generator_parameters(&self) -> usize {
        crate::model::parameter_count(self.generator_vars.varmap())
    }

    /// Number of critic parameters (spectral-norm vectors included).
    pub fn critic_parameters(&self) -> usize {
        crate::model::parameter_count(self.critic_vars.varmap())
    }

    /// Save the moving-average generator and its card (`model.safetensors`, `model.json`).
    pub fn save(&self, dir: &Path, epochs: usize) -> Result<()> {
        let mut card = self.card.clone();
        card.epochs = epochs;
        deepsky_nn::checkpoint::save_model(self.ema_vars.varmap(), &card, dir)?;
        Ok(())
    }

    /// A simulator over the current moving-average weights (for validation during training).
    pub fn simulator(&self) -> FastSimulator<'_> {
        FastSimulator {
            card: &self.card,
            generator: &self.ema,
        }
    }

    /// The real showers of a batch. With mirror images on, each shower comes in one of its
    /// four reflections, drawn from the stream `(seed, "mirror/step")` (the same for the
    /// critic's and the generator's pass over the batch); the rows are then grouped by
    /// reflection, which the losses do not see.
    fn batch_tensors(&self, b: &Batch<'_>) -> candle_core::Result<BatchTensors> {
        let d = self.data()?;
        let device = d.cells.device();
        let mut groups: [Vec<u32>; 4] = Default::default();
        if d.mirror {
            let mut rng = named_rng(self.seed, &format!("mirror/{}", b.step));
            for &i in b.indices {
                groups[rng.random_range(0..4usize)].push(i as u32);
            }
        } else {
            groups[0] = b.indices.iter().map(|&i| i as u32).collect();
        }
        let mut parts: [Vec<Tensor>; 4] = Default::default();
        for (image, rows) in groups.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let rows = Tensor::new(rows, device)?;
            let mut cells = d.cells.index_select(&rows, 0)?;
            if image > 0 {
                cells = cells.index_select(&self.mirror[image], 1)?;
            }
            for (part, t) in parts.iter_mut().zip([
                cells,
                d.overflow.index_select(&rows, 0)?,
                d.incident_mev.index_select(&rows, 0)?,
                d.cond.index_select(&rows, 0)?,
            ]) {
                part.push(t);
            }
        }
        let [cells, overflow, incident, cond] = parts.map(|p| Tensor::cat(&p, 0));
        Ok(BatchTensors {
            cells: cells?,
            overflow: overflow?,
            incident: incident?,
            cond: cond?,
        })
    }

    fn noise_for(&self, b: &Batch<'_>, purpose: &str) -> candle_core::Result<Tensor> {
        let mut rng = named_rng(self.seed, &format!("{purpose}/{}", b.step));
        let n = b.indices.len();
        let mut z = Vec::new();
        self.generator.draw_noise(&mut rng, n, &mut z);
        Tensor::from_vec(
            z,
            (n, self.generator.noise_dim()),
            self.data()?.cells.device(),
        )
    }
}

struct BatchTensors {
    cells: Tensor,
    overflow: Tensor,
    incident: Tensor,
    cond: Tensor,
}

/// Mean and standard deviation of a (N, 1) tensor, as tensors.
fn mean_std(x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let mean = x.mean_all()?;
    let var = x.broadcast_sub(&mean)?.sqr()?.mean_all()?;
    Ok((mean, (var + 1e-12)?.sqrt()?))
}

impl GanTask for ShowerGan {
    fn len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }
    fn generator_vars(&self) -> &VarMap {
        self.generator_vars.varmap()
    }
    fn critic_vars(&self) -> &VarMap {
        self.critic_vars.varmap()
    }
    fn ema_vars(&self) -> &VarMap {
        self.ema_vars.varmap()
    }

    fn fingerprint(&self) -> String {
        serde_json::json!({
            "model": self.card.model,
            "conditioning": self.card.conditioning,
            "trained_showers": self.card.trained_showers,
            "mirror": self.data.as_ref().is_some_and(|d| d.mirror),
            "loss": self.loss,
        })
        .to_string()
    }

    fn critic_loss(&self, b: &Batch<'_>, sub: usize) -> candle_core::Result<Tensor> {
        let r = self.batch_tensors(b)?;
        let z = self.noise_for(b, &format!("critic-noise/{sub}"))?;
        let fake = self
            .generator
            .forward(&z, &r.cond, &r.incident)
            .map_err(to_candle)?;
        let c = &self.critic;
        let real_f = c
            .features(&r.cells, &r.overflow, &r.cond, &r.incident)
            .map_err(to_candle)?;
        let fake_f = c
            .features(
                &fake.cells.detach(),
                &fake.overflow.detach(),
                &r.cond,
                &r.incident,
            )
            .map_err(to_candle)?;
        // One pass over real and fake together: one power iteration per critic step.
        let scores = c
            .forward_t(&Tensor::cat(&[&real_f, &fake_f], 0)?, true)
            .map_err(to_candle)?;
        let n = b.indices.len();
        let real = scores.narrow(0, 0, n)?;
        let fake = scores.narrow(0, n, n)?;
        let l_real = (1.0 - real)?.relu()?.mean_all()?;
        let l_fake = (fake + 1.0)?.relu()?.mean_all()?;
        l_real + l_fake
    }

    fn generator_loss(
        &self,
        b: &Batch<'_>,
    ) -> candle_core::Result<(Tensor, Vec<(&'static str, f64)>)> {
        let r = self.batch_tensors(b)?;
        let z = self.noise_for(b, "generator-noise")?;
        let fake = self
            .generator
            .forward(&z, &r.cond, &r.incident)
            .map_err(to_candle)?;
        let feats = self
            .critic
            .features(&fake.cells, &fake.overflow, &r.cond, &r.incident)
            .map_err(to_candle)?;
        let adv = self
            .critic
            .forward_t(&feats, false)
            .map_err(to_candle)?
            .mean_all()?
            .neg()?;
        let response = |cells: &Tensor, overflow: &Tensor| -> candle_core::Result<Tensor> {
            (cells.sum_keepdim(1)? + overflow.sum_keepdim(1)?)?.broadcast_div(&r.incident)
        };
        let (m_real, s_real) = mean_std(&response(&r.cells, &r.overflow)?)?;
        let (m_fake, s_fake) = mean_std(&response(&fake.cells, &fake.overflow)?)?;
        let unit = (s_real.detach() + 1e-3)?;
        let energy =
            ((m_fake - m_real)?.div(&unit)?.sqr()? + (s_fake - s_real)?.div(&unit)?.sqr()?)?;
        let total = (&adv + (&energy * self.loss.energy_weight)?)?;
        let adv_v = adv.to_scalar::<f32>()? as f64;
        let energy_v = energy.to_scalar::<f32>()? as f64;
        Ok((total, vec![("adversarial", adv_v), ("energy", energy_v)]))
    }
}

/// A trained generator, ready to make showers.
pub struct FastSimulator<'a> {
    /// The model card.
    pub card: &'a ShowerModelCard,
    generator: &'a Generator,
}

/// A generator loaded from a model directory (owns its weights).
pub struct LoadedSimulator {
    /// The model card.
    pub card: ShowerModelCard,
    _vars: VarMap,
    generator: Generator,
}

impl LoadedSimulator {
    /// Load `dir/model.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedSimulator> {
        let card: ShowerModelCard =
            deepsky_nn::checkpoint::load_card(dir, "fastsim shower generator")?;
        if card.kind != MODEL_KIND {
            return Err(FastsimError::Input(format!(
                "{}: model kind is `{}`, expected `{MODEL_KIND}`",
                dir.join("model.json").display(),
                card.kind
            )));
        }
        let bad =
            |m: String| FastsimError::Input(format!("{}: {m}", dir.join("model.json").display()));
        card.model
            .validate()
            .map_err(|e| bad(format!("model.{}: {}", e.key, e.message)))?;
        let c = &card.conditioning;
        if c.particles.is_empty() {
            return Err(bad("conditioning lists no particle".into()));
        }
        if !(c.e_min_gev.is_finite() && c.e_min_gev > 0.0 && c.e_min_gev <= c.e_max_gev) {
            return Err(bad(format!(
                "conditioning energy range {}..{} GeV is not 0 < min <= max",
                c.e_min_gev, c.e_max_gev
            )));
        }
        let vars = SeededVarMap::new(0);
        let generator = Generator::new(&card.model, card.conditioning.dim(), vars.builder(device))?;
        deepsky_nn::checkpoint::load_varmap(vars.varmap(), &dir.join("model.safetensors"))?;
        Ok(LoadedSimulator {
            card,
            _vars: vars.varmap().clone(),
            generator,
        })
    }

    /// The simulator over these weights.
    pub fn simulator(&self) -> FastSimulator<'_> {
        FastSimulator {
            card: &self.card,
            generator: &self.generator,
        }
    }
}

impl FastSimulator<'_> {
    /// Generate one shower per incident energy (GeV) for `particle`, in batches of `batch`.
    /// The noise of shower `i` comes from its own stream, seeded from `seed` and `i`, so the
    /// showers do not depend on the batch size.
    pub fn generate(
        &self,
        energies_gev: &[f32],
        particle: &str,
        seed: u64,
        batch: usize,
        device: &Device,
    ) -> Result<CaloGanShowers> {
        let p = self.card.conditioning.particle_index(particle)?;
        if let Some(e) = energies_gev.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
            return Err(FastsimError::Input(format!(
                "incident energy {e} GeV is not a positive number"
            )));
        }
        let batch = batch.max(1);
        // Shower i draws its noise from its own stream, seeded from the run's stream and i:
        // independent of the batch size, and drawn in parallel (one stream for all showers
        // made the draws a serial part as long as the whole generator on two threads).
        let base: u64 = named_rng(seed, "generate").random();
        let dim = self.generator.noise_dim();
        let mut cells = Vec::with_capacity(energies_gev.len() * N_CELLS);
        let mut overflow = Vec::with_capacity(energies_gev.len() * 3);
        let mut z = Vec::new();
        for (c, chunk) in energies_gev.chunks(batch).enumerate() {
            let n = chunk.len();
            z.clear();
            z.resize(n * dim, 0.0);
            z.par_chunks_mut(dim).enumerate().for_each(|(j, noise)| {
                let shower = (c * batch + j) as u64;
                let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(
                    base ^ shower.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                self.generator.fill_noise(&mut rng, noise);
            });
            let cond = self.card.conditioning.encode(chunk, &vec![p; n]);
            let cond = Tensor::from_vec(cond, (n, self.card.conditioning.dim()), device)?;
            let inc: Vec<f32> = chunk.iter().map(|e| e * 1000.0).collect();
            let (c, o) = self.generator.generate_fast(&z, &cond, &inc)?;
            cells.extend(c);
            overflow.extend(o);
        }
        let n = energies_gev.len();
        let cells = ndarray::ArrayView2::from_shape((n, N_CELLS), &cells).expect("N × 504 cells");
        let overflow = ndarray::ArrayView2::from_shape((n, 3), &overflow).expect("N × 3 overflow");
        Ok(CaloGanShowers::from_cells(cells, overflow, energies_gev))
    }
}
