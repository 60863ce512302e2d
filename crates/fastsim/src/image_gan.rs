//! A DCGAN-style image GAN for galaxy cutouts, trained by the same adversarial loop as the
//! shower GAN ([`deepsky_nn::gan::GanTrainer`]): [`ImageGan`] is the [`GanTask`];
//! [`LoadedImageGenerator`] makes images from a saved model.
//!
//! **Pixels.** Galaxy stamps span four decades (sky noise of ~20 ADU, cores of 10⁴ ADU) and
//! are sky-subtracted, so they are negative in places: a logarithm does not apply, and a
//! linear scale would leave the whole noise floor and the galaxies' outskirts at 0 in front of
//! a few bright cores. The networks see `asinh(x / softening) / scale`, clipped to `[-1, 1]`:
//! linear within about one softening of zero (the noise keeps its Gaussian shape), logarithmic
//! above. The softening defaults to the pixels' robust noise level (1.4826 × the median absolute
//! deviation, over all training pixels); `scale` is the 99.9 % quantile of `|asinh(x /
//! softening)|`, so only the brightest 0.1 % of pixels are clipped. Both are kept in the model
//! card ([`ImageNormalisation`]), and generated images are mapped back to pixel units by the
//! inverse `softening · sinh(scale · y)`.
//!
//! **Generator.** DCGAN with nearest-neighbour upsampling instead of transposed convolutions
//! (which make checkerboard artefacts): a linear layer maps the noise to `4C` channels of
//! 4 × 4, then each stage upsamples ×2 and applies a 3 × 3 convolution, a normalisation
//! (configurable; see [`ImageGanConfig::norm`]) and a leaky ReLU, halving the channels down to
//! `C`, until the image size; a last 3 × 3 convolution to one channel and `tanh` give the
//! normalised image (Radford et al. 2016, with the upsampling of Odena et al. 2016).
//!
//! **Critic.** Strided 4 × 4 convolutions (stride 2) from the image down to 4 × 4, doubling
//! the channels from `C` (at most `8C`), leaky ReLU 0.2, and a linear layer to one score;
//! every layer is spectrally normalised ([`SnConv2d`], and [`SnLinear`] from [`crate::model`])
//! and trained with the hinge loss, as the shower critic, for the same reason: WGAN-GP's
//! gradient penalty needs second derivatives, which candle does not keep (it detaches
//! gradients) and deepsky-nn's fused CPU convolution does not have.
//!
//! **Reproducibility.** Parameters come from [`SeededVarMap`]s (one per network), noise from
//! [`named_rng`] streams keyed by purpose and training step, and the spectral-norm vectors and
//! batch-norm statistics are variables of the networks' maps, so checkpoints carry them and a
//! resumed run equals an uninterrupted one.
//!
//! Which images to learn is the caller's choice (an `Array3`); [`read_cutouts`] reads a
//! deepsky cutout file, optionally keeping one label (0: normal galaxies).
//!
//! ```no_run
//! use candle_core::Device;
//! use deepsky_fastsim::image_gan::{read_cutouts, ImageGan, ImageGanConfig};
//! use deepsky_nn::gan::{GanConfig, GanTrainer};
//!
//! let galaxies = read_cutouts("data/cutouts.h5".as_ref(), Some(0))?;
//! let mut gan = ImageGan::new(&ImageGanConfig::default(), 1, &Device::Cpu)?;
//! gan.set_data(&galaxies)?;
//! let train = GanConfig { epochs: 50, batch_size: 64, ..Default::default() };
//! GanTrainer::new(&train).run(&gan)?;
//! let fakes = gan.generate(16, 7)?; // (16, 32, 32), pixel units
//! gan.save("out/model".as_ref(), 50)?;
//! # Ok::<(), deepsky_fastsim::FastsimError>(())
//! ```

use std::path::Path;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Module, Shape, Tensor, Var,
};
use candle_nn::{VarBuilder, VarMap};
use deepsky_core::config::{ConfigError, Validate};
use deepsky_nn::gan::GanTask;
use deepsky_nn::init::{named_rng, SeededVarMap};
use deepsky_nn::layers::{conv2d, conv2d_no_bias, upsample_nearest, Conv2d, Norm, NormKind};
use deepsky_nn::train::Batch;
use ndarray::{Array3, Axis};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{to_candle, FastsimError, Result};
use crate::model::{noise, parameter_count, spectral_sigma, SnLinear};

/// The `kind` written into model cards of image generators.
pub const MODEL_KIND: &str = "deepsky-fastsim-images";

/// The quantile of `|asinh(x / softening)|` that maps to 1 in the normalised images.
pub const SCALE_QUANTILE: f64 = 0.999;

/// Negative slope of the leaky ReLUs (the DCGAN value).
const LEAK: f64 = 0.2;

/// Images per generator pass in [`ImageSampler::generate`].
const GENERATE_BATCH: usize = 256;

/// Network sizes and pixel normalisation (the `[model]` section of an image-GAN config).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageGanConfig {
    /// Noise dimension.
    pub latent: usize,
    /// Base channel count `C`: the generator starts at `4C` channels at 4 × 4 and ends at `C`;
    /// the critic starts at `C` and doubles per stage (at most `8C`).
    pub channels: usize,
    /// Image side in pixels: a power of two in 16..=128 (the training images must have it).
    pub image_size: usize,
    /// Normalisation in the generator's stages: `layer` (the default), `batch` or `none`.
    /// Batch norm is the DCGAN choice, but its running statistics are those of the trained
    /// generator, not of the moving average one generates with, and in training an image
    /// depends on the rest of its batch; layer norm (over channels and pixels of one image)
    /// has neither problem, and in short runs on the bundled cutouts (six seeds each) it gave
    /// the steadiest brightness and concentration of the three. The critic is never
    /// normalised (spectral normalisation only).
    pub norm: NormKind,
    /// Softening of the asinh stretch, in pixel units; absent: the training pixels' robust
    /// noise level (1.4826 × median absolute deviation).
    pub asinh_softening: Option<f32>,
}

impl Default for ImageGanConfig {
    fn default() -> Self {
        ImageGanConfig {
            latent: 64,
            channels: 32,
            image_size: 32,
            norm: NormKind::Layer,
            asinh_softening: None,
        }
    }
}

impl Validate for ImageGanConfig {
    /// Range checks, keys relative to the `[model]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: String| Err(ConfigError::at(k, m));
        if self.latent == 0 || self.latent > 4096 {
            return bad(
                "latent",
                format!("must be in 1..=4096, got {}", self.latent),
            );
        }
        if self.channels == 0 || self.channels > 512 {
            return bad(
                "channels",
                format!("must be in 1..=512, got {}", self.channels),
            );
        }
        if !(self.image_size.is_power_of_two() && (16..=128).contains(&self.image_size)) {
            return bad(
                "image_size",
                format!(
                    "must be a power of two in 16..=128 (16, 32, 64 or 128), got {}",
                    self.image_size
                ),
            );
        }
        if let Some(s) = self.asinh_softening {
            if !(s.is_finite() && s > 0.0) {
                return bad(
                    "asinh_softening",
                    format!("must be a finite number > 0, got {s}"),
                );
            }
        }
        Ok(())
    }
}

impl ImageGanConfig {
    /// Number of ×2 stages between 4 × 4 and the image size.
    fn stages(&self) -> usize {
        (self.image_size / 4).trailing_zeros() as usize
    }
}

/// How pixel values map to the networks' `[-1, 1]`: `y = clip(asinh(x / softening) / scale)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ImageNormalisation {
    /// Softening of the asinh stretch, pixel units.
    pub softening: f32,
    /// The [`SCALE_QUANTILE`] of `|asinh(x / softening)|` over the training pixels.
    pub scale: f32,
}

impl ImageNormalisation {
    /// Fit to training images: `softening` as given, or the robust noise level of all pixels;
    /// the scale from the stretched pixels.
    pub fn fit(images: &Array3<f32>, softening: Option<f32>) -> Result<ImageNormalisation> {
        if images.is_empty() {
            return Err(FastsimError::Input("no training images".into()));
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            let (_, h, w) = images.dim();
            return Err(FastsimError::Input(format!(
                "image {} has a non-finite pixel ({})",
                i / (h * w),
                images.iter().nth(i).copied().unwrap_or(f32::NAN)
            )));
        }
        let softening = match softening {
            Some(s) => s,
            None => {
                let mut v: Vec<f32> = images.iter().copied().collect();
                let median = quantile(&mut v, 0.5);
                let mut dev: Vec<f32> = images.iter().map(|x| (x - median).abs()).collect();
                let mad = 1.4826 * quantile(&mut dev, 0.5);
                if !(mad > 0.0 && mad.is_finite()) {
                    return Err(FastsimError::Input(
                        "cannot estimate the asinh softening: the pixels' median absolute \
                         deviation is 0; set model.asinh_softening"
                            .into(),
                    ));
                }
                mad
            }
        };
        let mut stretched: Vec<f32> = images
            .iter()
            .map(|x| (x / softening).asinh().abs())
            .collect();
        let scale = quantile(&mut stretched, SCALE_QUANTILE);
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(FastsimError::Input(format!(
                "the training images are blank at softening {softening}: the {} quantile of \
                 their stretched pixels is {scale}",
                SCALE_QUANTILE
            )));
        }
        Ok(ImageNormalisation { softening, scale })
    }

    /// Pixel units → `[-1, 1]` (values beyond the scale are clipped).
    pub fn apply(&self, images: &Array3<f32>) -> Array3<f32> {
        let (s, k) = (self.softening, 1.0 / self.scale);
        images.mapv(|x| ((x / s).asinh() * k).clamp(-1.0, 1.0))
    }

    /// `[-1, 1]` → pixel units (the inverse of [`apply`](Self::apply) below the clip).
    pub fn invert(&self, normalised: &Array3<f32>) -> Array3<f32> {
        let (s, k) = (self.softening, self.scale);
        normalised.mapv(|y| s * (y * k).sinh())
    }
}

/// The `q` quantile (nearest rank) of `v`, reordering `v`.
fn quantile(v: &mut [f32], q: f64) -> f32 {
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(i, f32::total_cmp).1
}

/// Read galaxy cutouts from a deepsky cutout file (`/images`, (N, H, W)), keeping only the
/// stamps whose `/labels` entry equals `label` when one is given (0 is a normal galaxy; 1 lens,
/// 2 merger, 3 artefact).
pub fn read_cutouts(path: &Path, label: Option<i64>) -> Result<Array3<f32>> {
    let io = |e: deepsky_io::IoError| FastsimError::Input(e.to_string());
    let f = deepsky_io::h5::H5Reader::open(path).map_err(io)?;
    let images = f.read_f32("/images").map_err(io)?;
    let images = images.into_dimensionality::<ndarray::Ix3>().map_err(|_| {
        FastsimError::Input(format!(
            "{}: `/images` must have 3 dimensions (N, H, W)",
            path.display()
        ))
    })?;
    let Some(label) = label else {
        return Ok(images);
    };
    let labels = f.read_f32("/labels").map_err(io)?;
    if labels.len() != images.len_of(Axis(0)) {
        return Err(FastsimError::Input(format!(
            "{}: {} labels for {} images",
            path.display(),
            labels.len(),
            images.len_of(Axis(0))
        )));
    }
    let keep: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l as i64 == label)
        .map(|(i, _)| i)
        .collect();
    Ok(images.select(Axis(0), &keep))
}

/// Leaky ReLU with slope [`LEAK`]. On the CPU (f32/f64) one custom op with a one-pass
/// backward: candle-nn's `leaky_relu` is `max(x, 0) + min(x, 0)·slope`, five full-size ops
/// forward and about twenty backward (the masks of `maximum` and `minimum`), which made it
/// the most expensive part of a generator step. Elsewhere `(1 − slope)·relu(x) + slope·x`.
fn leaky(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(LeakyRelu(LEAK))
    } else {
        x.relu()?.affine(1.0 - LEAK, 0.0)? + x.affine(LEAK, 0.0)?
    }
}

/// The contiguous slice of a CPU storage as f32 or f64.
fn cpu_slice<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    let v = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("leaky-relu: expected a contiguous tensor"),
    }
}

/// `x ↦ x` for `x ≥ 0`, `slope · x` below (CPU op); its backward is [`LeakyReluGrad`].
struct LeakyRelu(f64);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => {
                let k = self.0 as f32;
                let x = cpu_slice::<f32>(s, l)?;
                CpuStorage::F32(
                    x.iter()
                        .map(|&v| if v >= 0.0 { v } else { v * k })
                        .collect(),
                )
            }
            CpuStorage::F64(_) => {
                let k = self.0;
                let x = cpu_slice::<f64>(s, l)?;
                CpuStorage::F64(
                    x.iter()
                        .map(|&v| if v >= 0.0 { v } else { v * k })
                        .collect(),
                )
            }
            _ => candle_core::bail!("leaky-relu: only f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = arg.apply_op2_no_bwd(&grad.contiguous()?, &LeakyReluGrad(self.0))?;
        Ok(Some(g))
    }
}

/// `(x, dy) ↦ dy` where `x ≥ 0`, `slope · dy` elsewhere: the input gradient of [`LeakyRelu`].
struct LeakyReluGrad(f64);

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn go<T: candle_core::WithDType + PartialOrd>(x: &[T], dy: &[T], k: T) -> Vec<T> {
            x.iter()
                .zip(dy)
                .map(|(&x, &g)| if x >= T::zero() { g } else { g * k })
                .collect()
        }
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "leaky-relu-grad: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(go(
                cpu_slice::<f32>(s1, l1)?,
                cpu_slice::<f32>(s2, l2)?,
                self.0 as f32,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(go(
                cpu_slice::<f64>(s1, l1)?,
                cpu_slice::<f64>(s2, l2)?,
                self.0,
            )),
            _ => candle_core::bail!("leaky-relu-grad: only f32 and f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Channels of generator stage `j` (0 is the 4 × 4 input): `4C` halved per stage, at least `C`.
fn generator_channels(c: usize, j: usize) -> usize {
    ((4 * c) >> j.min(2)).max(c)
}

/// The DCGAN generator: noise (N, latent) in, normalised images (N, 1, S, S) in `(-1, 1)` out.
pub struct ImageGenerator {
    input: candle_nn::Linear,
    input_norm: Norm,
    stages: Vec<(Conv2d, Norm)>,
    out: Conv2d,
    c0: usize,
}

impl ImageGenerator {
    /// Build under `vb` (variables `input`, `input_norm`, `stage.i.conv`, `stage.i.norm`,
    /// `out`).
    pub fn new(cfg: &ImageGanConfig, vb: VarBuilder) -> Result<ImageGenerator> {
        let c = cfg.channels;
        let c0 = generator_channels(c, 0);
        let input = candle_nn::linear(cfg.latent, c0 * 16, vb.pp("input"))?;
        let input_norm = Norm::new(cfg.norm, c0, true, vb.pp("input_norm"))?;
        let mut stages = Vec::new();
        let mut cin = c0;
        for j in 1..=cfg.stages() {
            let cout = generator_channels(c, j);
            let vs = vb.pp(format!("stage.{}", j - 1));
            // Batch norm removes each channel's mean: a bias before it would be dead weight.
            // (Layer norm removes the mean over all channels, so channel biases still count.)
            let conv = match cfg.norm {
                NormKind::Batch => conv2d_no_bias(cin, cout, 3, 1, 1, vs.pp("conv"))?,
                _ => conv2d(cin, cout, 3, 1, 1, vs.pp("conv"))?,
            };
            let norm = Norm::new(cfg.norm, cout, true, vs.pp("norm"))?;
            stages.push((conv, norm));
            cin = cout;
        }
        let out = conv2d(cin, 1, 3, 1, 1, vb.pp("out"))?;
        Ok(ImageGenerator {
            input,
            input_norm,
            stages,
            out,
            c0,
        })
    }

    /// Images for noise `z`; `train` selects batch statistics for batch norm.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let h = self.input.forward(z)?.reshape((n, self.c0, 4, 4))?;
        let mut h = leaky(&self.input_norm.forward_t(&h, train)?)?;
        for (conv, norm) in &self.stages {
            let up = upsample_nearest(&h, 2)?;
            h = leaky(&norm.forward_t(&conv.forward(&up)?, train)?)?;
        }
        self.out.forward(&h)?.tanh()
    }
}

/// A 2-D convolution with spectral normalisation: the kernel, seen as the matrix
/// `(out, in·k·k)`, is divided by an estimate of its largest singular value, kept by one power
/// iteration per training forward pass. As in [`SnLinear`], the iteration vector `u` is a
/// variable of the map that receives no gradient (the optimiser leaves it alone), so that
/// checkpoints carry it.
///
/// The convolution is deepsky-nn's fast im2col one; since a convolution is linear in its
/// kernel, `conv(x, W / σ) = conv(x, W) / σ`, which is what is computed (same values, same
/// gradients, no custom kernel tensor). Variables: `weight` (out, in, k, k), `bias`, `sn_u`.
pub struct SnConv2d {
    conv: Conv2d,
    weight: Tensor,
    bias: Tensor,
    u: Var,
    cout: usize,
}

impl SnConv2d {
    /// A `kernel × kernel` convolution from `cin` to `cout` channels with the given stride and
    /// zero padding, under `vb`.
    pub fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<SnConv2d> {
        let conv = conv2d_no_bias(cin, cout, kernel, stride, padding, vb.clone())?;
        // The variable the convolution was just built with (the map returns the existing one).
        let weight = vb.get((cout, cin, kernel, kernel), "weight")?;
        let bound = 1.0 / ((cin * kernel * kernel) as f64).sqrt();
        let bias = vb.get_with_hints(
            cout,
            "bias",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let u = vb.get_with_hints(
            cout,
            "sn_u",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        Ok(SnConv2d {
            conv,
            weight,
            bias,
            u: Var::from_tensor(&u)?,
            cout,
        })
    }

    /// Apply the layer to (N, in, H, W); `train` advances the power iteration.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let w = self.weight.reshape((self.cout, ()))?;
        let sigma = spectral_sigma(&w, &self.u, train)?;
        self.conv
            .forward(x)?
            .broadcast_div(&sigma)?
            .broadcast_add(&self.bias.reshape((1, self.cout, 1, 1))?)
    }
}

/// The critic: normalised images (N, 1, S, S) in, one score per image (N, 1) out.
pub struct ImageCritic {
    down: Vec<SnConv2d>,
    out: SnLinear,
}

impl ImageCritic {
    /// Build under `vb` (variables `down.i`, `out`).
    pub fn new(cfg: &ImageGanConfig, vb: VarBuilder) -> Result<ImageCritic> {
        let c = cfg.channels;
        let mut down = Vec::new();
        let mut cin = 1;
        for i in 0..cfg.stages() {
            let cout = c << i.min(3);
            down.push(SnConv2d::new(
                cin,
                cout,
                4,
                2,
                1,
                vb.pp(format!("down.{i}")),
            )?);
            cin = cout;
        }
        let out = SnLinear::new(cin * 16, 1, vb.pp("out"))?;
        Ok(ImageCritic { down, out })
    }

    /// Scores for images; `train` advances the spectral norms' power iterations.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = images.clone();
        for l in &self.down {
            h = leaky(&l.forward_t(&h, train)?)?;
        }
        self.out
            .forward_t(&h.flatten_from(1)?, train)
            .map_err(to_candle)
    }
}

/// What a saved image generator is and was trained on (`model.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageModelCard {
    /// Always [`MODEL_KIND`].
    pub kind: String,
    /// deepsky version that wrote it.
    pub version: String,
    /// Network sizes and the normalisation settings.
    pub model: ImageGanConfig,
    /// The pixel normalisation fitted to the training images (None until images are attached).
    pub normalisation: Option<ImageNormalisation>,
    /// Images trained on.
    pub trained_images: usize,
    /// Epochs trained.
    pub epochs: usize,
}

/// The image GAN in training: both networks, the generator's moving average and the data.
pub struct ImageGan {
    /// Model card (normalisation set by [`set_data`](Self::set_data), epochs when saved).
    pub card: ImageModelCard,
    generator_vars: SeededVarMap,
    ema_vars: SeededVarMap,
    critic_vars: SeededVarMap,
    generator: ImageGenerator,
    ema: ImageGenerator,
    critic: ImageCritic,
    data: Option<Tensor>,
    seed: u64,
    device: Device,
}

impl ImageGan {
    /// Fresh networks initialised from `seed` (noise during training is drawn from it too).
    pub fn new(cfg: &ImageGanConfig, seed: u64, device: &Device) -> Result<ImageGan> {
        cfg.validate().map_err(|e| e.within("model"))?;
        let generator_vars = SeededVarMap::new(seed);
        let ema_vars = SeededVarMap::new(seed);
        let critic_vars = SeededVarMap::new(seed ^ 0x5eed_c417);
        let generator = ImageGenerator::new(cfg, generator_vars.builder(device))?;
        let ema = ImageGenerator::new(cfg, ema_vars.builder(device))?;
        let critic = ImageCritic::new(cfg, critic_vars.builder(device))?;
        Ok(ImageGan {
            card: ImageModelCard {
                kind: MODEL_KIND.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                model: cfg.clone(),
                normalisation: None,
                trained_images: 0,
                epochs: 0,
            },
            generator_vars,
            ema_vars,
            critic_vars,
            generator,
            ema,
            critic,
            data: None,
            seed,
            device: device.clone(),
        })
    }

    /// Attach the training images (N, S, S) in pixel units (before
    /// [`deepsky_nn::gan::train_gan`]): fits the normalisation, which the card keeps.
    pub fn set_data(&mut self, images: &Array3<f32>) -> Result<()> {
        let (n, h, w) = images.dim();
        let s = self.card.model.image_size;
        if (h, w) != (s, s) {
            return Err(FastsimError::Input(format!(
                "training images are {h}×{w} pixels, model.image_size is {s}"
            )));
        }
        if n < 2 {
            return Err(FastsimError::Input(format!(
                "need at least 2 training images, got {n}"
            )));
        }
        let norm = ImageNormalisation::fit(images, self.card.model.asinh_softening)?;
        // In logical (C) order whatever the memory order of `images`.
        let y: Vec<f32> = norm.apply(images).iter().copied().collect();
        let y = Tensor::from_vec(y, (n, 1, s, s), &self.device)?;
        self.card.normalisation = Some(norm);
        self.card.trained_images = n;
        self.data = Some(y);
        Ok(())
    }

    /// Number of generator parameters (batch-norm statistics included).
    pub fn generator_parameters(&self) -> usize {
        parameter_count(self.generator_vars.varmap())
    }

    /// Number of critic parameters (spectral-norm vectors included).
    pub fn critic_parameters(&self) -> usize {
        parameter_count(self.critic_vars.varmap())
    }

    /// Save the moving-average generator and its card (`model.safetensors`, `model.json`);
    /// the card needs the normalisation, so images must have been attached.
    pub fn save(&self, dir: &Path, epochs: usize) -> Result<()> {
        if self.card.normalisation.is_none() {
            return Err(FastsimError::Input(
                "cannot save an image generator before training images are attached \
                 (the card would have no pixel normalisation)"
                    .into(),
            ));
        }
        let mut card = self.card.clone();
        card.epochs = epochs;
        deepsky_nn::checkpoint::save_model(self.ema_vars.varmap(), &card, dir)?;
        Ok(())
    }

    /// A sampler over the current moving-average weights.
    pub fn sampler(&self) -> ImageSampler<'_> {
        ImageSampler {
            card: &self.card,
            generator: &self.ema,
            device: &self.device,
        }
    }

    /// `n` images (N, S, S) in pixel units from the moving-average generator; see
    /// [`ImageSampler::generate`].
    pub fn generate(&self, n: usize, seed: u64) -> Result<Array3<f32>> {
        self.sampler().generate(n, seed)
    }

    fn data(&self) -> candle_core::Result<&Tensor> {
        self.data
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("no training images attached".into()))
    }

    fn real(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
        let d = self.data()?;
        let idx: Vec<u32> = b.indices.iter().map(|&i| i as u32).collect();
        d.index_select(&Tensor::new(idx, d.device())?, 0)
    }

    fn noise_for(&self, b: &Batch<'_>, purpose: &str) -> candle_core::Result<Tensor> {
        let mut rng = named_rng(self.seed, &format!("{purpose}/{}", b.step));
        noise(
            &mut rng,
            b.indices.len(),
            self.card.model.latent,
            &self.device,
        )
        .map_err(to_candle)
    }
}

impl GanTask for ImageGan {
    fn len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.dims()[0])
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

    fn critic_loss(&self, b: &Batch<'_>, sub: usize) -> candle_core::Result<Tensor> {
        let real = self.real(b)?;
        let z = self.noise_for(b, &format!("critic-noise/{sub}"))?;
        let fake = self.generator.forward_t(&z, true)?.detach();
        // One pass over real and fake together: one power iteration per critic step.
        let scores = self
            .critic
            .forward_t(&Tensor::cat(&[&real, &fake], 0)?, true)?;
        let n = b.indices.len();
        let l_real = (1.0 - scores.narrow(0, 0, n)?)?.relu()?.mean_all()?;
        let l_fake = (scores.narrow(0, n, n)? + 1.0)?.relu()?.mean_all()?;
        l_real + l_fake
    }

    fn generator_loss(
        &self,
        b: &Batch<'_>,
    ) -> candle_core::Result<(Tensor, Vec<(&'static str, f64)>)> {
        let z = self.noise_for(b, "generator-noise")?;
        let fake = self.generator.forward_t(&z, true)?;
        let adv = self.critic.forward_t(&fake, false)?.mean_all()?.neg()?;
        // A diagnostic, not trained on: how far the batch's mean normalised pixel is from the
        // real batch's.
        let gap = (fake.detach().mean_all()? - self.real(b)?.mean_all()?)?
            .abs()?
            .to_scalar::<f32>()? as f64;
        let adv_v = adv.to_scalar::<f32>()? as f64;
        Ok((adv, vec![("adversarial", adv_v), ("pixel_mean_gap", gap)]))
    }
}

/// A generator ready to make images: its card (for the normalisation) and its network.
pub struct ImageSampler<'a> {
    /// The model card.
    pub card: &'a ImageModelCard,
    generator: &'a ImageGenerator,
    device: &'a Device,
}

impl ImageSampler<'_> {
    /// `n` normalised images (N, S, S) in `(-1, 1)`, as the critic sees them. The noise of
    /// image `i` is the `i`-th draw of the stream `(seed, "generate")`, and the generator runs
    /// in evaluation mode, so an image does not depend on how many are made with it.
    pub fn generate_normalised(&self, n: usize, seed: u64) -> Result<Array3<f32>> {
        let s = self.card.model.image_size;
        let latent = self.card.model.latent;
        let mut rng = named_rng(seed, "generate");
        let mut out = Vec::with_capacity(n * s * s);
        let mut left = n;
        while left > 0 {
            let m = left.min(GENERATE_BATCH);
            let z = noise(&mut rng, m, latent, self.device)?;
            let y = self.generator.forward_t(&z, false)?;
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
            left -= m;
        }
        Ok(Array3::from_shape_vec((n, s, s), out).expect("generator output has the image shape"))
    }

    /// `n` images (N, S, S) in pixel units: [`generate_normalised`](Self::generate_normalised)
    /// mapped back through the card's normalisation.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Array3<f32>> {
        let norm = self.card.normalisation.ok_or_else(|| {
            FastsimError::Input(
                "the generator has no pixel normalisation yet: attach training images first".into(),
            )
        })?;
        Ok(norm.invert(&self.generate_normalised(n, seed)?))
    }
}

/// An image generator loaded from a model directory (owns its weights).
pub struct LoadedImageGenerator {
    /// The model card.
    pub card: ImageModelCard,
    _vars: VarMap,
    generator: ImageGenerator,
    device: Device,
}

impl LoadedImageGenerator {
    /// Load `dir/model.json` and `dir/model.safetensors` written by [`ImageGan::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedImageGenerator> {
        let card: ImageModelCard =
            deepsky_nn::checkpoint::load_card(dir, "fastsim image generator")?;
        let model_json = || dir.join("model.json").display().to_string();
        if card.kind != MODEL_KIND {
            return Err(FastsimError::Input(format!(
                "{}: model kind is `{}`, expected `{MODEL_KIND}`",
                model_json(),
                card.kind
            )));
        }
        card.model.validate().map_err(|e| {
            FastsimError::Input(format!("{}: model.{}: {}", model_json(), e.key, e.message))
        })?;
        if card.normalisation.is_none() {
            return Err(FastsimError::Input(format!(
                "{}: has no pixel normalisation",
                model_json()
            )));
        }
        let vars = SeededVarMap::new(0);
        let generator = ImageGenerator::new(&card.model, vars.builder(device))?;
        deepsky_nn::checkpoint::load_varmap(vars.varmap(), &dir.join("model.safetensors"))?;
        Ok(LoadedImageGenerator {
            card,
            _vars: vars.varmap().clone(),
            generator,
            device: device.clone(),
        })
    }

    /// A sampler over these weights.
    pub fn sampler(&self) -> ImageSampler<'_> {
        ImageSampler {
            card: &self.card,
            generator: &self.generator,
            device: &self.device,
        }
    }

    /// `n` images (N, S, S) in pixel units; see [`ImageSampler::generate`].
    pub fn generate(&self, n: usize, seed: u64) -> Result<Array3<f32>> {
        self.sampler().generate(n, seed)
    }
}
