//! The shower GAN's two networks.
//!
//! Both start from the training sample: the generator's output biases at its mean shower,
//! the critic's input scaling at its feature spreads ([`crate::shower_gan::ShowerGan::set_data`]).
//!
//! **Generator.** An MLP maps noise and the condition to three things: the response
//! `r = E_sum / E_incident` (in units of the training sample's mean and spread of `r`, clipped
//! at 0), the split of that energy over the three layers (softmax), and, per layer, how the layer's energy spreads over its cells and its
//! overflow (a softmax over `cells + 1`). The products are each cell's *expected* energy:
//! non-negative, summing to `r · E_incident` by construction.
//!
//! A real shower's outer cells are not filled thinly: a few are hit by a stray particle that
//! leaves anywhere from 10 keV to 10 MeV, the rest are empty. A softmax alone gives every cell
//! a little energy, which leaves too few cells empty and widens the energy-weighted lateral
//! width. So cells whose expected energy `e` is below a per-layer quantum `q` play Russian
//! roulette: with probability `e / q` the cell is hit and gets a deposit drawn log-uniformly
//! over a fixed three decades with mean `q`, otherwise it is empty. The expected energy is
//! unchanged, so the layer sums stay right on average, and the hit probability follows the
//! cell's share: shower cores are never punched through. The backward pass treats the
//! roulette as the identity in `e` (its expectation) and differentiates the deposits in `q`,
//! which is learned. The deposits' range is not: learned, it grew to 45–75 e-folds, so that
//! half of all hits fell below the readout threshold — a way to empty cells that the gradient
//! of the deposits favours but that leaves too few small deposits (high-level classifier AUC
//! 0.79–0.81 against 0.66–0.71 with the range fixed, two seeds each). Cells at or below the readout threshold are then zeroed. The
//! energy-consistency term of the loss ([`crate::shower_gan`]) keeps the distribution of `r`
//! right.
//!
//! **Critic.** An MLP with spectral normalisation on every linear layer (Miyato et al. 2018)
//! sees every cell as `log(1 + E/threshold)`, the overflow, a few differentiable high-level
//! features (response, layer fractions, depth, lateral widths, log layer energies, layer
//! occupancies, hottest cells) and the condition, each standardised with the training sample's mean and
//! spread. Spectral normalisation bounds the critic's Lipschitz constant with first-order
//! gradients only: WGAN-GP's gradient penalty needs the gradient of a gradient, which candle
//! computes only with a process-wide switch (`CANDLE_GRAD_DO_NOT_DETACH`) that would slow every
//! other backward pass, and deepsky-nn's fused CPU ops have no second derivative.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Linear, VarBuilder};
use deepsky_core::config::{ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{cell_positions_mm, LAYER_CELLS, N_CELLS};
use crate::error::Result;

/// Network sizes (the `[model]` section of a fastsim config).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShowerGanConfig {
    /// Noise dimension.
    pub latent: usize,
    /// Generator hidden layer widths.
    pub generator: Vec<usize>,
    /// Critic hidden layer widths.
    pub critic: Vec<usize>,
    /// Readout threshold: cells at or below it are empty, MeV (applied to training data, to
    /// generated showers and, in validation, to the reference).
    pub cell_threshold_mev: f64,
}

impl Default for ShowerGanConfig {
    fn default() -> Self {
        ShowerGanConfig {
            latent: 32,
            generator: vec![256, 256],
            critic: vec![256, 256],
            cell_threshold_mev: 0.01,
        }
    }
}

impl Validate for ShowerGanConfig {
    /// Range checks, keys relative to the `[model]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: &str| Err(ConfigError::at(k, m));
        if self.latent == 0 || self.latent > 4096 {
            return bad("latent", "must be in 1..=4096");
        }
        if self.generator.is_empty() || self.generator.contains(&0) {
            return bad(
                "generator",
                "needs at least one hidden layer, each wider than 0",
            );
        }
        if self.critic.is_empty() || self.critic.contains(&0) {
            return bad(
                "critic",
                "needs at least one hidden layer, each wider than 0",
            );
        }
        if !(self.cell_threshold_mev.is_finite() && self.cell_threshold_mev >= 0.0) {
            return bad("cell_threshold_mev", "must be a finite number >= 0");
        }
        Ok(())
    }
}

const LEAK: f64 = 0.2;

fn leaky(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::leaky_relu(x, LEAK)?)
}

/// Starting quantum of the roulette, MeV: the mean deposit of an occasionally hit cell of the
/// bundled showers (2.5–3.5 MeV in the three layers).
const ROULETTE_QUANTUM_MEV: f64 = 3.0;
/// Range of the roulette's deposits, e-folds: three decades, as in the rarely hit cells of
/// the bundled showers (their 5 % and 95 % deposits are 0.02 and 12 MeV).
const ROULETTE_SPREAD: f64 = 6.9;

/// A deposit of the roulette is `q · norm · e^{s·v}` for `v` uniform in [0, 1) and
/// `s` = [`ROULETTE_SPREAD`]: log-uniform over `s` e-folds, with mean `q` for
/// `norm = s / (e^s − 1)`.
fn roulette_norm() -> f32 {
    let s = ROULETTE_SPREAD as f32;
    s / (s.exp() - 1.0)
}

/// The generator: noise and condition in, cells and overflow (MeV) out.
pub struct Generator {
    latent: usize,
    trunk: Vec<Linear>,
    /// Log amplitude of the per-cell noise added to each cell's logit (learned).
    cell_noise: Tensor,
    /// Per layer, log of the roulette quantum in MeV (learned).
    log_quantum: Tensor,
    /// (504,) layer index of every cell, to spread per-layer values over the cells.
    cell_layer: Tensor,
    energy_head: Linear,
    cell_head: Linear,
    threshold_mev: f64,
    /// Mean and spread of the training showers' response (no gradient; saved with the
    /// weights): the response head's output is in these units, so that an untrained head's
    /// O(1) outputs already give responses of the right size.
    response_mean: Var,
    response_std: Var,
}

/// What the generator makes for a batch.
pub struct Generated {
    /// (N, 504) cell energies, MeV, zero at or below the threshold.
    pub cells: Tensor,
    /// (N, 3) overflow per layer, MeV.
    pub overflow: Tensor,
}

impl Generator {
    /// Build under `vb` (variables `trunk.i`, `energy`, `cells`).
    pub fn new(cfg: &ShowerGanConfig, cond_dim: usize, vb: VarBuilder) -> Result<Generator> {
        let mut trunk = Vec::new();
        let mut width = cfg.latent;
        for (i, &w) in cfg.generator.iter().enumerate() {
            // The condition enters every layer, not only the first.
            trunk.push(candle_nn::linear(
                width + cond_dim,
                w,
                vb.pp(format!("trunk.{i}")),
            )?);
            width = w;
        }
        let cell_noise =
            vb.get_with_hints(N_CELLS + 3, "cell_noise", candle_nn::Init::Const(-1.0))?;
        let log_quantum = vb.get_with_hints(
            3,
            "roulette_log_quantum",
            candle_nn::Init::Const(ROULETTE_QUANTUM_MEV.ln()),
        )?;
        let cell_layer: Vec<u32> = LAYER_CELLS
            .iter()
            .enumerate()
            .flat_map(|(l, &k)| std::iter::repeat(l as u32).take(k))
            .collect();
        let cell_layer = Tensor::new(cell_layer, vb.device())?;
        let response_mean = Var::from_tensor(&vb.get_with_hints(
            1,
            "response_mean",
            candle_nn::Init::Const(1.0),
        )?)?;
        let response_std = Var::from_tensor(&vb.get_with_hints(
            1,
            "response_std",
            candle_nn::Init::Const(0.05),
        )?)?;
        Ok(Generator {
            latent: cfg.latent,
            trunk,
            cell_noise,
            log_quantum,
            cell_layer,
            energy_head: candle_nn::linear(width, 4, vb.pp("energy"))?,
            cell_head: candle_nn::linear(width, N_CELLS + 3, vb.pp("cells"))?,
            threshold_mev: cfg.cell_threshold_mev,
            response_mean,
            response_std,
        })
    }

    fn readout_mask(&self, cells: &Tensor) -> Result<Tensor> {
        let hard = cells.gt(self.threshold_mev)?.to_dtype(cells.dtype())?;
        let soft = candle_nn::ops::sigmoid(
            &((cells / self.threshold_mev.max(1e-9))? + 1e-12)?
                .log()?
                .affine(4.0, 0.0)?,
        )?;
        Ok((hard + (&soft - soft.detach())?)?)
    }

    /// Generation without gradients, as fast as the CPU allows: the matrix products through
    /// candle, everything after the output heads (response, layer split, per-layer softmax
    /// with the per-cell noise, roulette, threshold) in one pass per shower over host memory, in
    /// parallel over showers. The same arithmetic as [`Generator::forward`] (a test holds
    /// them equal); that path's dozen tensor operations over (N, 507) arrays, each allocating
    /// its result, cost more than the matrix products. `noise` is the (N, noise_dim) noise in
    /// row-major order, `incident_mev` one energy per shower. Returns (N × 504 cells,
    /// N × 3 overflow), MeV.
    pub fn generate_fast(
        &self,
        noise: &[f32],
        cond: &Tensor,
        incident_mev: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        use rayon::prelude::*;
        let n = incident_mev.len();
        let dim = self.noise_dim();
        let device = cond.device();
        let z = Tensor::from_slice(noise, (n, dim), device)?;
        let mut h = z.narrow(1, 0, self.latent)?;
        for l in &self.trunk {
            h = leaky(&l.forward(&Tensor::cat(&[&h, cond], 1)?)?)?;
        }
        let e = self.energy_head.forward(&h)?.to_vec2::<f32>()?;
        let logits = self
            .cell_head
            .forward(&h)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let amp: Vec<f32> = self.cell_noise.exp()?.to_vec1::<f32>()?;
        let mean = self.response_mean.as_tensor().to_vec1::<f32>()?[0];
        let std = self.response_std.as_tensor().to_vec1::<f32>()?[0];
        let thr = self.threshold_mev as f32;
        let quantum = self.log_quantum.exp()?.to_vec1::<f32>()?;
        let spread = ROULETTE_SPREAD as f32;
        let scale: Vec<f32> = quantum.iter().map(|q| q * roulette_norm()).collect();
        let width = N_CELLS + 3;
        let mut cells = vec![0f32; n * N_CELLS];
        let mut overflow = vec![0f32; n * 3];
        cells
            .par_chunks_mut(N_CELLS)
            .zip(overflow.par_chunks_mut(3))
            .enumerate()
            .for_each(|(i, (cell_out, over_out))| {
                let e = &e[i];
                let response = (e[0] * std + mean).max(0.0);
                let m = e[1].max(e[2]).max(e[3]);
                let split = [(e[1] - m).exp(), (e[2] - m).exp(), (e[3] - m).exp()];
                let total: f32 = split.iter().sum();
                let energy = response * incident_mev[i];
                let logits = &logits[i * width..(i + 1) * width];
                let eps = &noise[i * dim + self.latent..i * dim + self.latent + width];
                let uniform = &noise[i * dim + self.latent + width..(i + 1) * dim];
                let mut share = [0f32; 289];
                let (mut off_in, mut off_out) = (0, 0);
                for (l, &k) in LAYER_CELLS.iter().enumerate() {
                    let layer_mev = split[l] / total * energy;
                    let s = &mut share[..k + 1];
                    let mut mx = f32::NEG_INFINITY;
                    for j in 0..=k {
                        s[j] = logits[off_in + j] + eps[off_in + j] * amp[off_in + j];
                        mx = mx.max(s[j]);
                    }
                    let mut sum = 0f32;
                    for v in s.iter_mut() {
                        *v = (*v - mx).exp();
                        sum += *v;
                    }
                    for j in 0..k {
                        let mut v = s[j] / sum * layer_mev;
                        let p = v / quantum[l];
                        if p < 1.0 {
                            let u = uniform[off_out + j];
                            v = if u < p {
                                ((u / (p + 1e-30)).clamp(0.0, 1.0) * spread).exp() * scale[l]
                            } else {
                                0.0
                            };
                        }
                        cell_out[off_out + j] = if v > thr { v } else { 0.0 };
                    }
                    let v = s[k] / sum * layer_mev;
                    over_out[l] = if v > thr { v } else { 0.0 };
                    off_in += k + 1;
                    off_out += k;
                }
            });
        Ok((cells, overflow))
    }

    /// Set the response units from the training showers' responses (N, 1).
    pub fn fit_response(&self, response: &Tensor) -> Result<()> {
        let mean = response.mean_all()?;
        let std = response.broadcast_sub(&mean)?.sqr()?.mean_all()?.sqrt()?;
        self.response_mean.set(&mean.reshape(1)?)?;
        self.response_std
            .set(&std.clamp(1e-3, f32::MAX)?.reshape(1)?)?;
        Ok(())
    }

    /// Noise values per shower: the latent vector, then one value per cell and overflow
    /// (standard normal), then one roulette draw per cell (uniform in [0, 1)).
    ///
    /// A shower's cells fluctuate nearly independently (a few particles more or less in a
    /// cell); a low-dimensional latent vector alone can only make smooth showers, so each
    /// cell's logit also gets its own noise, with a learned amplitude per cell.
    pub fn noise_dim(&self) -> usize {
        self.latent + 2 * N_CELLS + 3
    }

    /// Append the noise of `n` showers to `out`, shower after shower, in the layout of
    /// [`Generator::noise_dim`]: shower `i`'s noise is the `i`-th draw of `rng` whatever `n`.
    pub fn draw_noise(&self, rng: &mut impl rand::Rng, n: usize, out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + n * self.noise_dim(), 0.0);
        for shower in out[start..].chunks_exact_mut(self.noise_dim()) {
            self.fill_noise(rng, shower);
        }
    }

    /// Fill one shower's noise ([`Generator::noise_dim`] values) from `rng`.
    pub fn fill_noise(&self, rng: &mut impl rand::Rng, out: &mut [f32]) {
        use rand_distr::{Distribution, StandardNormal};
        let (normal, uniform) = out.split_at_mut(self.latent + N_CELLS + 3);
        normal.fill_with(|| StandardNormal.sample(rng));
        uniform.fill_with(|| rng.random::<f32>());
    }

    /// Russian roulette on expected cell energies `expected` (N, 504) with uniform draws
    /// `uniform` (N, 504): see the module documentation. The value is the rolled shower, the
    /// gradient is the identity in `expected` plus the deposits' dependence on `q`.
    fn roulette(&self, expected: &Tensor, uniform: &Tensor) -> Result<Tensor> {
        let q = self
            .log_quantum
            .exp()?
            .index_select(&self.cell_layer, 0)?
            .unsqueeze(0)?;
        let dtype = expected.dtype();
        let fixed = expected.detach();
        let p = fixed.broadcast_div(&q.detach())?;
        let small = p.lt(1.0)?.to_dtype(dtype)?;
        let hit = uniform.lt(&p)?.to_dtype(dtype)?;
        // Given a hit, u / p is uniform in [0, 1): it places the deposit within its range.
        let v = (uniform / (&p + 1e-30)?)?.clamp(0.0, 1.0)?;
        let scale = (q * f64::from(roulette_norm()))?;
        let deposit = v
            .affine(ROULETTE_SPREAD, 0.0)?
            .exp()?
            .broadcast_mul(&scale)?;
        let rolled = ((hit * deposit)? + (expected - &fixed)?)?;
        let kept = (expected * (1.0 - &small)?)?;
        Ok(((small * rolled)? + kept)?)
    }

    /// Showers for noise `z` (N, [`Generator::noise_dim`]), condition `cond` (N, c) and
    /// incident energies `incident_mev` (N, 1).
    pub fn forward(&self, z: &Tensor, cond: &Tensor, incident_mev: &Tensor) -> Result<Generated> {
        let latent = z.narrow(1, 0, self.latent)?;
        let cell_eps = z.narrow(1, self.latent, N_CELLS + 3)?;
        let mut h = latent;
        for l in &self.trunk {
            h = leaky(&l.forward(&Tensor::cat(&[&h, cond], 1)?)?)?;
        }
        let e = self.energy_head.forward(&h)?;
        let response = e
            .narrow(1, 0, 1)?
            .broadcast_mul(&self.response_std.as_tensor().detach())?
            .broadcast_add(&self.response_mean.as_tensor().detach())?
            .relu()?;
        let split = candle_nn::ops::softmax(&e.narrow(1, 1, 3)?, D::Minus1)?;
        let layer_mev = split.broadcast_mul(&(response * incident_mev)?)?;
        let logits =
            (self.cell_head.forward(&h)? + cell_eps.broadcast_mul(&self.cell_noise.exp()?)?)?;
        let mut cells = Vec::with_capacity(3);
        let mut overflow = Vec::with_capacity(3);
        let mut off = 0;
        for (l, &k) in LAYER_CELLS.iter().enumerate() {
            let share = candle_nn::ops::softmax(&logits.narrow(1, off, k + 1)?, D::Minus1)?;
            let spread = share.broadcast_mul(&layer_mev.narrow(1, l, 1)?)?;
            cells.push(spread.narrow(1, 0, k)?);
            overflow.push(spread.narrow(1, k, 1)?);
            off += k + 1;
        }
        let expected = Tensor::cat(&cells, 1)?;
        let uniform = z.narrow(1, self.latent + N_CELLS + 3, N_CELLS)?;
        let cells = self.roulette(&expected, &uniform)?;
        // Readout threshold: the forward pass zeroes cells at or below it; the backward pass
        // sees a smooth step, sigmoid(4·ln(E/threshold)) (a straight-through estimator), so
        // the generator can learn to move a cell across the threshold in either direction —
        // with the hard mask alone a zeroed cell gets no gradient and empty cells cannot be
        // learned.
        let mask = self.readout_mask(&cells)?;
        let cells = (cells * mask)?;
        let overflow = Tensor::cat(&overflow, 1)?;
        let omask = overflow
            .gt(self.threshold_mev)?
            .to_dtype(overflow.dtype())?;
        Ok(Generated {
            cells,
            overflow: (overflow * omask)?,
        })
    }
}

/// A linear layer with spectral normalisation: the weight is divided by an estimate of its
/// largest singular value, kept by one power iteration per training forward pass. The
/// iteration vector `u` is a variable of the map (it receives no gradient, so the optimiser
/// leaves it alone) so that checkpoints carry it and a resumed run continues exactly.
pub struct SnLinear {
    weight: Tensor,
    bias: Tensor,
    u: Var,
}

impl SnLinear {
    /// `in_dim → out_dim` under `vb` (`weight`, `bias`, `sn_u`).
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<SnLinear> {
        let lin = candle_nn::linear(in_dim, out_dim, vb.clone())?;
        let u = vb.get_with_hints(
            out_dim,
            "sn_u",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let u = Var::from_tensor(&u)?;
        Ok(SnLinear {
            weight: lin.weight().clone(),
            bias: lin.bias().expect("linear has a bias").clone(),
            u,
        })
    }

    /// Apply the layer; `train` advances the power iteration.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let w = &self.weight;
        let sigma = spectral_sigma(w, &self.u, train)?;
        let w_sn = w.broadcast_div(&sigma)?;
        Ok(x.matmul(&w_sn.t()?)?.broadcast_add(&self.bias)?)
    }
}

/// The largest singular value of `w` (out, in), estimated by one step of the power
/// iteration from the stored vector `u`; `train` advances the iteration (stores the new `u`).
/// The result `uᵀ W v` is differentiable in `w`, with `u` and `v` held constant (Miyato et al.
/// 2018). Shared by [`SnLinear`] and the image GAN's spectrally normalised convolution.
pub(crate) fn spectral_sigma(w: &Tensor, u: &Var, train: bool) -> candle_core::Result<Tensor> {
    let wd = w.detach();
    let u0 = normalise(&u.as_tensor().detach())?;
    let v = normalise(&wd.t()?.matmul(&u0.unsqueeze(1)?)?.squeeze(1)?)?;
    let u1 = if train {
        let next = normalise(&wd.matmul(&v.unsqueeze(1)?)?.squeeze(1)?)?;
        u.set(&next)?;
        next
    } else {
        u0
    };
    u1.unsqueeze(0)?
        .matmul(&w.matmul(&v.unsqueeze(1)?)?)?
        .reshape(())
}

fn normalise(v: &Tensor) -> candle_core::Result<Tensor> {
    let n = (v.sqr()?.sum_all()?.sqrt()? + 1e-12)?;
    v.broadcast_div(&n)
}

/// Per-layer geometry the critic's differentiable features need.
struct LayerGeometry {
    /// (cells, 4): eta, phi, eta², phi² in units of 100 mm.
    moments: Tensor,
}

/// The critic: showers and condition in, one score per shower out.
pub struct Critic {
    hidden: Vec<SnLinear>,
    out: SnLinear,
    geometry: Vec<LayerGeometry>,
    threshold_mev: f64,
    /// Mean and spread of every raw feature over the training showers (variables without
    /// gradient, so checkpoints carry them): the critic sees standardised features, so that a
    /// response of 0.98 ± 0.03 weighs as much as a cell spanning [0, 1].
    feature_mean: Var,
    feature_std: Var,
}

/// Number of high-level features the critic computes from a shower: response, layer
/// fractions, depth, log layer energies, lateral widths, layer occupancies, log hottest cell
/// per layer.
const HIGH_LEVEL: usize = 1 + 3 + 1 + 3 + 3 + 3 + 3;

impl Critic {
    /// Build under `vb` (variables `hidden.i`, `out`).
    pub fn new(
        cfg: &ShowerGanConfig,
        cond_dim: usize,
        vb: VarBuilder,
        device: &Device,
    ) -> Result<Critic> {
        let mut hidden = Vec::new();
        let mut width = N_CELLS + 3 + HIGH_LEVEL + cond_dim;
        for (i, &w) in cfg.critic.iter().enumerate() {
            hidden.push(SnLinear::new(width, w, vb.pp(format!("hidden.{i}")))?);
            width = w;
        }
        let out = SnLinear::new(width, 1, vb.pp("out"))?;
        let n_features = N_CELLS + 3 + HIGH_LEVEL + cond_dim;
        let feature_mean = Var::from_tensor(&vb.get_with_hints(
            n_features,
            "feature_mean",
            candle_nn::Init::Const(0.0),
        )?)?;
        let feature_std = Var::from_tensor(&vb.get_with_hints(
            n_features,
            "feature_std",
            candle_nn::Init::Const(1.0),
        )?)?;
        let geometry = cell_positions_mm()
            .iter()
            .map(|pos| {
                let m: Vec<f32> = pos
                    .iter()
                    .flat_map(|&(x, y)| {
                        let (x, y) = (x / 100.0, y / 100.0);
                        [x as f32, y as f32, (x * x) as f32, (y * y) as f32]
                    })
                    .collect();
                Ok(LayerGeometry {
                    moments: Tensor::from_vec(m, (pos.len(), 4), device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Critic {
            hidden,
            out,
            geometry,
            threshold_mev: cfg.cell_threshold_mev.max(1e-3),
            feature_mean,
            feature_std,
        })
    }

    /// Set the feature standardisation from the raw features of the training showers. A
    /// feature that never varies there (a cell no training shower reaches) gets a unit of
    /// 0.01, so that a generator filling it stands out.
    pub fn fit_standardisation(&self, raw: &Tensor) -> Result<()> {
        let mean = raw.mean(0)?;
        let std = raw
            .broadcast_sub(&mean)?
            .sqr()?
            .mean(0)?
            .sqrt()?
            .clamp(1e-2, f32::MAX)?;
        self.feature_mean.set(&mean)?;
        self.feature_std.set(&std)?;
        Ok(())
    }

    /// The critic's input for showers: [`Critic::raw_features`], standardised.
    pub fn features(
        &self,
        cells: &Tensor,
        overflow: &Tensor,
        cond: &Tensor,
        incident_mev: &Tensor,
    ) -> Result<Tensor> {
        let raw = self.raw_features(cells, overflow, cond, incident_mev)?;
        let mean = self.feature_mean.as_tensor().detach();
        let std = self.feature_std.as_tensor().detach();
        Ok(raw.broadcast_sub(&mean)?.broadcast_div(&std)?)
    }

    /// Scaled log cells and overflow, high-level features and the condition, (N, features).
    pub fn raw_features(
        &self,
        cells: &Tensor,
        overflow: &Tensor,
        cond: &Tensor,
        incident_mev: &Tensor,
    ) -> Result<Tensor> {
        // log(1 + E/threshold) puts the threshold, a MeV and 100 GeV on one scale (0.7, 4.6,
        // 16 for a 10 keV threshold); dividing by 16 keeps the inputs near [0, 1].
        let scale = 1.0 / 16.0;
        let logc = ((cells / self.threshold_mev)? + 1.0)?
            .log()?
            .affine(scale, 0.0)?;
        let logo = ((overflow / self.threshold_mev)? + 1.0)?
            .log()?
            .affine(scale, 0.0)?;
        let mut layer_e = Vec::with_capacity(3);
        let mut widths = Vec::with_capacity(3);
        let mut occupancy = Vec::with_capacity(3);
        let mut hottest = Vec::with_capacity(3);
        let mut off = 0;
        for (l, &k) in LAYER_CELLS.iter().enumerate() {
            let c = cells.narrow(1, off, k)?;
            off += k;
            // tanh(E/threshold): 0 for an empty cell, ~1 well above the threshold, with a
            // gradient for cells just above it: a differentiable count of occupied cells.
            occupancy.push((&c / self.threshold_mev)?.tanh()?.mean_keepdim(1)?);
            hottest.push((c.max_keepdim(1)? + 1.0)?.log()?);
            let e = c.sum_keepdim(1)?;
            let m = c.matmul(&self.geometry[l].moments)?;
            let safe = (&e + 1e-3)?;
            let m = m.broadcast_div(&safe)?;
            let mean = m.narrow(1, 0, 2)?;
            let var = (m.narrow(1, 2, 2)? - mean.sqr()?)?.relu()?.sum_keepdim(1)?;
            widths.push((var + 1e-4)?.sqrt()?);
            layer_e.push(e);
        }
        let layer_e = Tensor::cat(&layer_e, 1)?;
        let total = (layer_e.sum_keepdim(1)? + 1e-3)?;
        let response = total.broadcast_div(incident_mev)?;
        let frac = layer_e.broadcast_div(&total)?;
        let depth = frac.matmul(&Tensor::new(&[[0f32], [1.0], [2.0]], cells.device())?)?;
        let log_layer = ((layer_e / 1.0)? + 1.0)?.log()?.affine(1.0 / 12.0, 0.0)?;
        let widths = Tensor::cat(&widths, 1)?;
        let occupancy = Tensor::cat(&occupancy, 1)?;
        let hottest = Tensor::cat(&hottest, 1)?;
        Ok(Tensor::cat(
            &[
                &logc, &logo, &response, &frac, &depth, &log_layer, &widths, &occupancy, &hottest,
                cond,
            ],
            1,
        )?)
    }

    /// Scores (N, 1) for critic features.
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = features.clone();
        for l in &self.hidden {
            h = leaky(&l.forward_t(&h, train)?)?;
        }
        self.out.forward_t(&h, train)
    }
}

/// Number of scalar parameters of the variables in a map (the `sn_u` buffers included).
pub fn parameter_count(map: &candle_nn::VarMap) -> usize {
    map.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// A tensor of standard-normal noise (N, latent) from a seeded stream.
pub fn noise(rng: &mut impl rand::Rng, n: usize, latent: usize, device: &Device) -> Result<Tensor> {
    use rand_distr::{Distribution, StandardNormal};
    let v: Vec<f32> = (0..n * latent)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    Ok(Tensor::from_vec(v, (n, latent), device)?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsky_nn::init::SeededVarMap;
    use rand::{Rng, SeedableRng};

    #[test]
    fn roulette_keeps_expected_energies_and_empties_small_cells() {
        let cfg = ShowerGanConfig {
            latent: 4,
            generator: vec![8],
            critic: vec![8],
            cell_threshold_mev: 0.0,
        };
        let vars = SeededVarMap::new(1);
        let g = Generator::new(&cfg, 1, vars.builder(&Device::Cpu)).unwrap();
        // Expected energies far below, near and above the 3 MeV quantum, in every cell.
        let levels = [0.03f32, 0.3, 1.5, 5.0];
        let expected: Vec<f32> = (0..N_CELLS).map(|j| levels[j % 4]).collect();
        let rows = 4000;
        let e = Var::from_vec(expected.clone(), (1, N_CELLS), &Device::Cpu).unwrap();
        let e_rows = e.as_tensor().broadcast_as((rows, N_CELLS)).unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let u: Vec<f32> = (0..rows * N_CELLS).map(|_| rng.random::<f32>()).collect();
        let u = Tensor::from_vec(u, (rows, N_CELLS), &Device::Cpu).unwrap();
        let y = g.roulette(&e_rows, &u).unwrap();
        let values = y.to_vec2::<f32>().unwrap();
        for (level_index, &level) in levels.iter().enumerate() {
            let column = |j: usize| values.iter().map(move |r| r[j]);
            let cells: Vec<usize> = (level_index..N_CELLS).step_by(4).collect();
            let total: f64 = cells.iter().flat_map(|&j| column(j)).map(f64::from).sum();
            let mean = total / (cells.len() * rows) as f64;
            let empty = cells
                .iter()
                .flat_map(|&j| column(j))
                .filter(|&v| v == 0.0)
                .count() as f64
                / (cells.len() * rows) as f64;
            if level < 3.0 {
                // Relative error of the mean: a hit with probability p = level / q, and a
                // log-uniform deposit over s e-folds has E[x²] / E[x]² = s/2 · coth(s/2).
                let (p, s) = (level as f64 / 3.0, ROULETTE_SPREAD);
                let moment = s / 2.0 / (s / 2.0).tanh();
                let sigma = ((moment / p - 1.0) / (cells.len() * rows) as f64).sqrt();
                let deviation = mean / level as f64 - 1.0;
                assert!(
                    deviation.abs() < 4.0 * sigma,
                    "{level}: mean {mean}, σ {sigma}"
                );
                let miss = 1.0 - level as f64 / 3.0;
                assert!((empty - miss).abs() < 0.01, "{level}: {empty} empty");
            } else {
                assert!(column(level_index).all(|v| v == level));
            }
        }
        // The gradient passes the roulette as the identity in the expected energies.
        let grads = y.sum_all().unwrap().backward().unwrap();
        let de = grads.get(&e).unwrap().to_vec2::<f32>().unwrap();
        assert!(de[0].iter().all(|&d| (d - rows as f32).abs() < 1e-3));
    }

    #[test]
    fn fast_generation_equals_the_tensor_forward_pass() {
        let cfg = ShowerGanConfig {
            latent: 8,
            generator: vec![32, 32],
            critic: vec![16],
            cell_threshold_mev: 0.01,
        };
        let vars = SeededVarMap::new(3);
        let g = Generator::new(&cfg, 2, vars.builder(&Device::Cpu)).unwrap();
        // Larger noise amplitudes and a response spread than at initialisation, so that the
        // comparison covers the whole output path.
        g.fit_response(&Tensor::new(&[[0.9f32], [1.0], [1.1]], &Device::Cpu).unwrap())
            .unwrap();
        let n = 37;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let mut noise_host = Vec::new();
        g.draw_noise(&mut rng, n, &mut noise_host);
        let z = Tensor::from_vec(noise_host.clone(), (n, g.noise_dim()), &Device::Cpu).unwrap();
        let cond: Vec<f32> = (0..n * 2).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect();
        let cond = Tensor::from_vec(cond, (n, 2), &Device::Cpu).unwrap();
        let inc: Vec<f32> = (0..n).map(|i| 1000.0 + 2500.0 * i as f32).collect();
        let inc_t = Tensor::from_vec(inc.clone(), (n, 1), &Device::Cpu).unwrap();
        let slow = g.forward(&z, &cond, &inc_t).unwrap();
        let (cells, overflow) = g.generate_fast(&noise_host, &cond, &inc).unwrap();
        let slow_cells = slow.cells.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let slow_over = slow
            .overflow
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (mut compared, mut differ) = (0, 0);
        for (a, b) in slow_cells
            .iter()
            .zip(&cells)
            .chain(slow_over.iter().zip(&overflow))
        {
            // A cell within rounding of the threshold may fall on either side.
            if (a - 0.01).abs() < 1e-5 || (b - 0.01).abs() < 1e-5 {
                continue;
            }
            compared += 1;
            // So may a roulette draw within rounding of its hit probability.
            if (a - b).abs() > 1e-4 * a.abs().max(1e-3) {
                differ += 1;
            }
        }
        assert!(compared > n * 500);
        assert!(differ <= 2, "{differ} of {compared} cells differ");
        let empty = cells.iter().filter(|&&c| c == 0.0).count();
        assert!(empty > n * 50 && empty < n * 500, "{empty} empty cells");
        let total: f32 = cells.iter().sum::<f32>() + overflow.iter().sum::<f32>();
        assert!(total > 0.5 * inc.iter().sum::<f32>(), "{total}");
    }
}
