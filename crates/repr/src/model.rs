//! Autoencoders: dense, convolutional, and their variational (β-VAE) forms, built from a
//! [`ModelConfig`] with the candle idiom `Autoencoder::new(&cfg, input, vb)`.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_nn::layers::{self, Act, Conv2d, Norm, NormKind};
use deepsky_nn::layers::{dense, Dense};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Dense (fully connected) or convolutional.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArchKind {
    /// Flattens the input; hidden layers of `widths`.
    Dense,
    /// Stride-2 3×3 convolutions with `widths` channels, then a dense bottleneck; the decoder
    /// mirrors it with nearest-neighbour upsampling and 3×3 convolutions.
    Conv,
}

/// The `[model]` section: architecture, sizes, activation, normalisation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `dense` or `conv`.
    pub kind: ArchKind,
    /// Hidden widths (dense) or channels per stride-2 stage (conv), from input to bottleneck.
    pub widths: Vec<usize>,
    /// Size of the latent vector.
    pub latent: usize,
    /// `relu`, `silu`, `gelu`, `leaky` or `tanh`.
    pub activation: Act,
    /// `none`, `batch` or `layer`.
    pub norm: NormKind,
    /// Variational autoencoder (encoder gives a mean and log-variance).
    pub variational: bool,
    /// Weight of the KL term of the β-VAE.
    pub beta: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ArchKind::Conv,
            widths: vec![16, 32, 64],
            latent: 8,
            activation: Act::Silu,
            norm: NormKind::Batch,
            variational: false,
            beta: 1.0,
        }
    }
}

/// Shape of one example: `[features]` for tables, `[channels, height, width]` for stamps.
pub type InputShape = Vec<usize>;

impl Validate for ModelConfig {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(self.latent >= 1, "latent", "must be at least 1")?;
        ensure(
            !self.widths.is_empty() && !self.widths.contains(&0),
            "widths",
            "needs at least one non-zero width",
        )?;
        ensure(self.beta >= 0.0, "beta", "must be >= 0")
    }
}

impl ModelConfig {
    /// Check the config, and that it fits examples of shape `input`; keys relative to the
    /// `[model]` section.
    pub fn validate_for(&self, input: &[usize]) -> std::result::Result<(), ConfigError> {
        self.validate()?;
        let bad = |k: &str, m: String| Err(ConfigError::at(k, m));
        if self.kind == ArchKind::Conv {
            if input.len() != 3 {
                return bad("kind", format!("`conv` needs image stamps, the input has shape {input:?}; use `dense` for tables"));
            }
            let f = 1usize << self.widths.len();
            if input[1] % f != 0 || input[2] % f != 0 {
                return bad(
                    "widths",
                    format!(
                        "{} stride-2 stages need stamp sizes divisible by {f}, the stamps are {}x{}",
                        self.widths.len(),
                        input[1],
                        input[2]
                    ),
                );
            }
        }
        Ok(())
    }
}

struct DenseBlock {
    linear: Dense,
    norm: Norm,
}

struct ConvBlock {
    conv: Conv2d,
    norm: Norm,
}

enum Encoder {
    Dense(Vec<DenseBlock>),
    Conv(Vec<ConvBlock>),
}

enum Decoder {
    Dense(Vec<DenseBlock>, Dense),
    Conv {
        from_latent: Dense,
        blocks: Vec<ConvBlock>,
        out: Conv2d,
        /// (channels, height, width) at the bottleneck.
        bottleneck: (usize, usize, usize),
    },
}

/// What the encoder gives for a batch.
pub struct Encoded {
    /// Latent means (the latent vector of a plain autoencoder), (batch, latent).
    pub mu: Tensor,
    /// Log-variances for a VAE.
    pub logvar: Option<Tensor>,
}

/// Per-example losses of a batch.
pub struct Losses {
    /// Mean squared reconstruction error per example, (batch,).
    pub recon: Tensor,
    /// KL divergence per example divided by the number of input features (VAE only).
    pub kl: Option<Tensor>,
    /// The latent means the losses were computed from, (batch, latent).
    pub mu: Tensor,
}

/// An autoencoder of any of the configured kinds.
pub struct Autoencoder {
    cfg: ModelConfig,
    input: InputShape,
    encoder: Encoder,
    to_mu: Dense,
    to_logvar: Option<Dense>,
    decoder: Decoder,
}

fn conv3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    layers::conv2d(cin, cout, 3, stride, 1, vb)
}

impl Autoencoder {
    /// Build the model for examples of shape `input`; parameters come from `vb`.
    pub fn new(cfg: &ModelConfig, input: &[usize], vb: VarBuilder) -> Result<Autoencoder> {
        if let Err(e) = cfg.validate_for(input) {
            candle_core::bail!("{}", e.within("model"));
        }
        let features: usize = input.iter().product();
        let act_norm = cfg.norm;
        let enc_vb = vb.pp("encoder");
        let dec_vb = vb.pp("decoder");
        let (encoder, flat) = match cfg.kind {
            ArchKind::Dense => {
                let mut blocks = vec![];
                let mut din = features;
                for (i, &w) in cfg.widths.iter().enumerate() {
                    blocks.push(DenseBlock {
                        linear: dense(din, w, enc_vb.pp(format!("fc{i}")))?,
                        norm: Norm::new(act_norm, w, false, enc_vb.pp(format!("norm{i}")))?,
                    });
                    din = w;
                }
                (Encoder::Dense(blocks), din)
            }
            ArchKind::Conv => {
                let mut blocks = vec![];
                let mut cin = input[0];
                for (i, &c) in cfg.widths.iter().enumerate() {
                    blocks.push(ConvBlock {
                        conv: conv3(cin, c, 2, enc_vb.pp(format!("conv{i}")))?,
                        norm: Norm::new(act_norm, c, true, enc_vb.pp(format!("norm{i}")))?,
                    });
                    cin = c;
                }
                let f = 1usize << cfg.widths.len();
                (Encoder::Conv(blocks), cin * (input[1] / f) * (input[2] / f))
            }
        };
        let to_mu = dense(flat, cfg.latent, enc_vb.pp("mu"))?;
        let to_logvar = if cfg.variational {
            Some(dense(flat, cfg.latent, enc_vb.pp("logvar"))?)
        } else {
            None
        };
        let decoder = match cfg.kind {
            ArchKind::Dense => {
                let mut blocks = vec![];
                let mut din = cfg.latent;
                for (i, &w) in cfg.widths.iter().rev().enumerate() {
                    blocks.push(DenseBlock {
                        linear: dense(din, w, dec_vb.pp(format!("fc{i}")))?,
                        norm: Norm::new(act_norm, w, false, dec_vb.pp(format!("norm{i}")))?,
                    });
                    din = w;
                }
                let out = dense(din, features, dec_vb.pp("out"))?;
                Decoder::Dense(blocks, out)
            }
            ArchKind::Conv => {
                let f = 1usize << cfg.widths.len();
                let c_last = *cfg.widths.last().expect("checked non-empty");
                let bottleneck = (c_last, input[1] / f, input[2] / f);
                let from_latent = dense(cfg.latent, flat, dec_vb.pp("from_latent"))?;
                let mut blocks = vec![];
                let chans: Vec<usize> = cfg.widths.iter().rev().copied().collect();
                for i in 0..chans.len() {
                    let cin = chans[i];
                    let cout = if i + 1 < chans.len() {
                        chans[i + 1]
                    } else {
                        chans[i]
                    };
                    blocks.push(ConvBlock {
                        conv: conv3(cin, cout, 1, dec_vb.pp(format!("conv{i}")))?,
                        norm: Norm::new(act_norm, cout, true, dec_vb.pp(format!("norm{i}")))?,
                    });
                }
                let out = conv3(
                    *chans.last().expect("non-empty"),
                    input[0],
                    1,
                    dec_vb.pp("out"),
                )?;
                Decoder::Conv {
                    from_latent,
                    blocks,
                    out,
                    bottleneck,
                }
            }
        };
        Ok(Autoencoder {
            cfg: cfg.clone(),
            input: input.to_vec(),
            encoder,
            to_mu,
            to_logvar,
            decoder,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Shape of one example.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// Encode a batch `(batch, *input)`.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<Encoded> {
        let act = self.cfg.activation;
        let h = match &self.encoder {
            Encoder::Dense(blocks) => {
                let mut h = x.flatten_from(1)?;
                for b in blocks {
                    h = act.apply(&b.norm.forward_t(&b.linear.forward(&h)?, train)?)?;
                }
                h
            }
            Encoder::Conv(blocks) => {
                let mut h = x.clone();
                for b in blocks {
                    h = act.apply(&b.norm.forward_t(&b.conv.forward(&h)?, train)?)?;
                }
                h.flatten_from(1)?
            }
        };
        Ok(Encoded {
            mu: self.to_mu.forward(&h)?,
            logvar: match &self.to_logvar {
                // Bounded so that exp() cannot overflow early in training.
                Some(l) => Some(l.forward(&h)?.clamp(-10f32, 10f32)?),
                None => None,
            },
        })
    }

    /// Decode latent vectors `(batch, latent)` into `(batch, *input)`.
    pub fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let act = self.cfg.activation;
        let b = z.dim(0)?;
        match &self.decoder {
            Decoder::Dense(blocks, out) => {
                let mut h = z.clone();
                for blk in blocks {
                    h = act.apply(&blk.norm.forward_t(&blk.linear.forward(&h)?, train)?)?;
                }
                let mut shape = vec![b];
                shape.extend_from_slice(&self.input);
                out.forward(&h)?.reshape(shape)
            }
            Decoder::Conv {
                from_latent,
                blocks,
                out,
                bottleneck: (c, hh, ww),
            } => {
                let mut h = act
                    .apply(&from_latent.forward(z)?)?
                    .reshape((b, *c, *hh, *ww))?;
                for blk in blocks {
                    // Upsample ×2 and convolve, as one op.
                    let y = blk.conv.forward_upsampled(&h, 2)?;
                    h = act.apply(&blk.norm.forward_t(&y, train)?)?;
                }
                out.forward(&h)
            }
        }
    }

    /// Reconstruct a batch; with `noise` (standard normal, `(batch, latent)`) a VAE samples
    /// its latent, otherwise it uses the mean.
    pub fn reconstruct(
        &self,
        x: &Tensor,
        train: bool,
        noise: Option<&Tensor>,
    ) -> Result<(Tensor, Encoded)> {
        let enc = self.encode(x, train)?;
        let z = match (&enc.logvar, noise) {
            (Some(logvar), Some(eps)) => (&enc.mu + (logvar * 0.5)?.exp()?.mul(eps)?)?,
            _ => enc.mu.clone(),
        };
        Ok((self.decode(&z, train)?, enc))
    }

    /// Per-example losses. `noise` as in [`Autoencoder::reconstruct`].
    pub fn losses(&self, x: &Tensor, train: bool, noise: Option<&Tensor>) -> Result<Losses> {
        let (xhat, enc) = self.reconstruct(x, train, noise)?;
        let recon = (xhat - x)?.sqr()?.flatten_from(1)?.mean(D::Minus1)?;
        let features: usize = self.input.iter().product();
        let kl = match &enc.logvar {
            Some(logvar) => {
                let kl = ((enc.mu.sqr()? + logvar.exp()?)? - logvar)?.affine(1.0, -1.0)?;
                Some((kl.sum(D::Minus1)? * (0.5 / features as f64))?)
            }
            None => None,
        };
        Ok(Losses {
            recon,
            kl,
            mu: enc.mu,
        })
    }

    /// The training objective for a batch: mean reconstruction error, plus β·KL for a VAE.
    pub fn objective(&self, x: &Tensor, train: bool, noise: Option<&Tensor>) -> Result<Tensor> {
        let l = self.losses(x, train, noise)?;
        let recon = l.recon.mean_all()?;
        match l.kl {
            Some(kl) => recon + (kl.mean_all()? * self.cfg.beta)?,
            None => Ok(recon),
        }
    }
}

/// Standard-normal noise `(batch, latent)` from a seeded stream, for the VAE's sampling.
pub fn normal_noise(
    rows: usize,
    cols: usize,
    seed: u64,
    purpose: &str,
    device: &Device,
) -> Result<Tensor> {
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = deepsky_nn::init::named_rng(seed, purpose);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_vec(v, (rows, cols), device)?.to_dtype(DType::F32)
}
