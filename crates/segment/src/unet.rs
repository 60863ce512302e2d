//! The U-Net (Ronneberger, Fischer & Brox 2015): an encoder that halves the resolution level by
//! level, a decoder that doubles it back, and skip connections that hand each decoder level
//! the encoder's map of the same resolution, so that the output keeps single-pixel detail
//! (a cosmic-ray hit is one pixel wide) while seeing context (a bleed trail spans hundreds).
//!
//! Level `l` (0 = full resolution) has `widths[l]` channels and `convs` conv–BN–SiLU blocks
//! (3×3). Going down is a stride-2 3×3 conv–BN–SiLU (learned pooling, as in later U-Nets);
//! going up is nearest-neighbour upsampling, concatenation with the skip map (upsampled
//! channels first), then the level's blocks. A 1×1 head gives one logit per plane
//! ([`OutputKind::Sigmoid`]: planes may overlap, a cosmic ray on a galaxy is both) or one per
//! plane plus a background logit ([`OutputKind::Softmax`]: exclusive classes).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_nn::infer::{Activation, FusedConv};
use deepsky_nn::layers::{self, conv2d, conv2d_no_bias, upsample_nearest, Conv2d, Norm, NormKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How logits become probabilities.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// One independent sigmoid per plane (planes may overlap).
    Sigmoid,
    /// A softmax over the planes and a background class (one class per pixel).
    Softmax,
}

/// The network's shape (the `[model]` section of a segment config; saved with the weights).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    /// Channels of each level, full resolution first; the number of levels is its length.
    pub widths: Vec<usize>,
    /// 3×3 conv blocks per level (in the encoder and again in the decoder).
    pub convs: usize,
    /// Per-plane sigmoid or per-pixel softmax.
    pub output: OutputKind,
    /// The planes predicted, by name (`COSMIC_RAY`, `SATURATED`, `BAD_COLUMN`, `TRAIL`,
    /// `DETECTED`), in output order.
    pub planes: Vec<String>,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            widths: vec![8, 16, 32],
            convs: 2,
            output: OutputKind::Sigmoid,
            planes: MaskPlane::LEARNED
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        }
    }
}

impl Validate for UNetConfig {
    /// Range checks, keys relative to the `[model]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(
            (1..=6).contains(&self.widths.len()),
            "widths",
            "needs 1 to 6 levels",
        )?;
        ensure(
            self.widths.iter().all(|&w| (1..=512).contains(&w)),
            "widths",
            "each width must be 1 to 512",
        )?;
        ensure((1..=4).contains(&self.convs), "convs", "must be 1 to 4")?;
        ensure(
            !self.planes.is_empty(),
            "planes",
            "needs at least one plane",
        )?;
        for p in &self.planes {
            match MaskPlane::from_name(p) {
                Some(MaskPlane::NoData) => {
                    return Err(ConfigError::at(
                        "planes",
                        "NO_DATA is read off the image (NaN pixels), not learned",
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(ConfigError::at(
                        "planes",
                        format!(
                            "unknown plane `{p}`; valid: COSMIC_RAY, SATURATED, BAD_COLUMN, TRAIL, DETECTED"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

impl UNetConfig {
    /// The predicted planes (names checked by [`Validate`]).
    pub fn mask_planes(&self) -> Vec<MaskPlane> {
        self.planes
            .iter()
            .filter_map(|p| MaskPlane::from_name(p))
            .collect()
    }

    /// Input sides must be a multiple of this: the coarsest level's stride.
    pub fn size_multiple(&self) -> usize {
        1 << (self.widths.len() - 1)
    }

    /// Output channels of the head.
    pub fn outputs(&self) -> usize {
        self.planes.len() + usize::from(self.output == OutputKind::Softmax)
    }

    /// Radius in full-resolution pixels beyond which an input pixel cannot change an output
    /// pixel: tiles that overlap by this much give the same result as one tile.
    pub fn receptive_radius(&self) -> usize {
        let levels = self.widths.len();
        // Encoder and decoder blocks at level l each reach 2^l pixels; each stride-2 conv
        // reaches 2^l at the level it leaves; upsampling adds at most 2^l - 1.
        let mut r = 0;
        for l in 0..levels {
            let s = 1usize << l;
            let blocks = if l + 1 == levels {
                self.convs
            } else {
                2 * self.convs
            };
            r += blocks * s;
            if l + 1 < levels {
                r += s + (2 * s - 1);
            }
        }
        r
    }
}

/// conv → batch norm → SiLU.
struct ConvBn {
    conv: Conv2d,
    bn: Norm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<ConvBn> {
        Ok(ConvBn {
            conv: conv2d_no_bias(cin, cout, 3, stride, 1, vb.pp("conv"))?,
            bn: Norm::new(NormKind::Batch, cout, true, vb.pp("bn"))?,
        })
    }
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        layers::silu(&self.bn.forward_t(&self.conv.forward(x)?, train)?)
    }
    fn compile(&self) -> Result<FusedConv> {
        FusedConv::compile(&self.conv, &self.bn, Activation::Silu)
    }
}

/// The U-Net.
pub struct UNet {
    cfg: UNetConfig,
    /// Per level: its encoder blocks.
    encoder: Vec<Vec<ConvBn>>,
    /// Per level below the first: the stride-2 block that enters it.
    down: Vec<ConvBn>,
    /// Per level above the last: its decoder blocks (the first takes the concatenation).
    decoder: Vec<Vec<ConvBn>>,
    head: Conv2d,
}

impl UNet {
    /// A U-Net of shape `cfg` with parameters from `vb`.
    pub fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<UNet> {
        let w = &cfg.widths;
        let levels = w.len();
        let mut encoder = Vec::with_capacity(levels);
        let mut down = Vec::with_capacity(levels.saturating_sub(1));
        for l in 0..levels {
            let vb = vb.pp(format!("enc{l}"));
            let cin = if l == 0 {
                1
            } else {
                down.push(ConvBn::new(w[l - 1], w[l], 2, vb.pp("down"))?);
                w[l]
            };
            let mut blocks = Vec::with_capacity(cfg.convs);
            for i in 0..cfg.convs {
                let c = if i == 0 { cin } else { w[l] };
                blocks.push(ConvBn::new(c, w[l], 1, vb.pp(format!("c{i}")))?);
            }
            encoder.push(blocks);
        }
        let mut decoder = Vec::with_capacity(levels.saturating_sub(1));
        for l in 0..levels.saturating_sub(1) {
            let vb = vb.pp(format!("dec{l}"));
            let mut blocks = Vec::with_capacity(cfg.convs);
            for i in 0..cfg.convs {
                let c = if i == 0 { w[l + 1] + w[l] } else { w[l] };
                blocks.push(ConvBn::new(c, w[l], 1, vb.pp(format!("c{i}")))?);
            }
            decoder.push(blocks);
        }
        let head = conv2d(w[0], cfg.outputs(), 1, 1, 0, vb.pp("head"))?;
        Ok(UNet {
            cfg: cfg.clone(),
            encoder,
            down,
            decoder,
            head,
        })
    }

    /// The shape.
    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Logits `(n, outputs, h, w)` of images `(n, 1, h, w)` (sides a multiple of
    /// [`UNetConfig::size_multiple`]); `train` uses batch statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let levels = self.encoder.len();
        let mut skips: Vec<Tensor> = Vec::with_capacity(levels);
        let mut y = x.clone();
        for l in 0..levels {
            if l > 0 {
                y = self.down[l - 1].forward(&y, train)?;
            }
            for b in &self.encoder[l] {
                y = b.forward(&y, train)?;
            }
            skips.push(y.clone());
        }
        for l in (0..levels - 1).rev() {
            let up = upsample_nearest(&y, 2)?;
            y = Tensor::cat(&[&up, &skips[l]], 1)?;
            for b in &self.decoder[l] {
                y = b.forward(&y, train)?;
            }
        }
        self.head.forward(&y)
    }

    /// The same network compiled for CPU inference (batch norm folded, SiLU fused).
    pub fn compile(&self) -> Result<CompiledUNet> {
        let blocks = |v: &Vec<ConvBn>| v.iter().map(ConvBn::compile).collect::<Result<Vec<_>>>();
        Ok(CompiledUNet {
            cfg: self.cfg.clone(),
            encoder: self.encoder.iter().map(blocks).collect::<Result<_>>()?,
            down: self
                .down
                .iter()
                .map(ConvBn::compile)
                .collect::<Result<_>>()?,
            decoder: self.decoder.iter().map(blocks).collect::<Result<_>>()?,
            head: FusedConv::compile(&self.head, &Norm::None, Activation::Identity)?,
        })
    }
}

/// A trained [`UNet`] for one image at a time on the CPU, single-threaded (callers run tiles
/// on all cores).
pub struct CompiledUNet {
    cfg: UNetConfig,
    encoder: Vec<Vec<FusedConv>>,
    down: Vec<FusedConv>,
    decoder: Vec<Vec<FusedConv>>,
    head: FusedConv,
}

impl CompiledUNet {
    /// The shape.
    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Multiply–adds per input pixel.
    pub fn multiply_adds_per_pixel(&self) -> f64 {
        let n = 64 * self.cfg.size_multiple();
        let mut total = 0usize;
        let mut side = n;
        for l in 0..self.encoder.len() {
            if l > 0 {
                total += self.down[l - 1].multiply_adds(side, side);
                side /= 2;
            }
            total += self.encoder[l]
                .iter()
                .map(|c| c.multiply_adds(side, side))
                .sum::<usize>();
        }
        for l in (0..self.decoder.len()).rev() {
            let s = n >> l;
            total += self.decoder[l]
                .iter()
                .map(|c| c.multiply_adds(s, s))
                .sum::<usize>();
        }
        total += self.head.multiply_adds(n, n);
        total as f64 / (n * n) as f64
    }

    /// Logits `(outputs, h, w)` of one image `(h, w)` (sides a multiple of
    /// [`UNetConfig::size_multiple`]).
    pub fn forward(&self, x: &[f32], h: usize, w: usize) -> Vec<f32> {
        self.forward_with(x, h, w, &mut UNetWorkspace::default())
            .to_vec()
    }

    /// [`CompiledUNet::forward`] in the buffers of `ws`, which a thread keeps from tile to
    /// tile: after the first tile nothing is allocated (fresh pages cost a fault each, about
    /// a tenth of the run when every tile allocated its feature maps anew).
    pub fn forward_with<'w>(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        ws: &'w mut UNetWorkspace,
    ) -> &'w [f32] {
        let levels = self.encoder.len();
        let wd = &self.cfg.widths;
        assert_eq!(x.len(), h * w, "input size");
        assert!(h % self.cfg.size_multiple() == 0 && w % self.cfg.size_multiple() == 0);
        let (mut a, mut b) = (std::mem::take(&mut ws.a), std::mem::take(&mut ws.b));
        let mut scratch = std::mem::take(&mut ws.scratch);
        let mut cats = std::mem::take(&mut ws.cats);
        cats.resize_with(levels - 1, Vec::new);
        // Level l's decoder input is [upsampled level l+1, level l's encoder output]: the
        // encoder writes its output straight into the second half, so the skip costs no copy.
        for (l, cat) in cats.iter_mut().enumerate() {
            cat.resize((wd[l + 1] + wd[l]) * (h >> l) * (w >> l), 0.0);
        }
        let conv = |layer: &FusedConv,
                    input: &[f32],
                    h: usize,
                    w: usize,
                    out: &mut Vec<f32>,
                    s: &mut Vec<f32>| {
            out.resize(layer.cout() * layer.out_size(h) * layer.out_size(w), 0.0);
            layer.forward_banded(input, h, w, out, s);
        };
        let (mut hh, mut ww) = (h, w);
        for l in 0..levels {
            if l > 0 {
                let prev = &cats[l - 1][wd[l] * hh * ww..];
                conv(&self.down[l - 1], prev, hh, ww, &mut a, &mut scratch);
                (hh, ww) = (hh / 2, ww / 2);
            }
            let blocks = &self.encoder[l];
            for (i, blk) in blocks.iter().enumerate() {
                let input: &[f32] = if l == 0 && i == 0 { x } else { &a };
                if i + 1 == blocks.len() && l + 1 < levels {
                    let off = wd[l + 1] * hh * ww;
                    blk.forward_banded(input, hh, ww, &mut cats[l][off..], &mut scratch);
                } else {
                    conv(blk, input, hh, ww, &mut b, &mut scratch);
                    std::mem::swap(&mut a, &mut b);
                }
            }
        }
        for l in (0..levels - 1).rev() {
            let c_up = wd[l + 1];
            deepsky_nn::infer::upsample2(&a, c_up, hh, ww, &mut cats[l][..c_up * 4 * hh * ww]);
            (hh, ww) = (hh * 2, ww * 2);
            for (i, blk) in self.decoder[l].iter().enumerate() {
                let input: &[f32] = if i == 0 { &cats[l] } else { &a };
                conv(blk, input, hh, ww, &mut b, &mut scratch);
                std::mem::swap(&mut a, &mut b);
            }
        }
        conv(&self.head, &a, hh, ww, &mut ws.out, &mut scratch);
        (ws.a, ws.b, ws.scratch, ws.cats) = (a, b, scratch, cats);
        &ws.out
    }
}

/// The buffers of [`CompiledUNet::forward_with`], one per thread.
#[derive(Debug, Default)]
pub struct UNetWorkspace {
    a: Vec<f32>,
    b: Vec<f32>,
    scratch: Vec<f32>,
    cats: Vec<Vec<f32>>,
    out: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use deepsky_nn::init::SeededVarMap;

    fn tiny() -> UNetConfig {
        UNetConfig {
            widths: vec![4, 6, 8],
            convs: 1,
            ..Default::default()
        }
    }

    #[test]
    fn shapes_of_every_level_and_both_outputs() {
        for output in [OutputKind::Sigmoid, OutputKind::Softmax] {
            let cfg = UNetConfig { output, ..tiny() };
            let vars = SeededVarMap::new(3);
            let net = UNet::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
            let x = Tensor::zeros((2, 1, 16, 24), DType::F32, &Device::Cpu).unwrap();
            let y = net.forward(&x, false).unwrap();
            assert_eq!(y.dims(), &[2, cfg.outputs(), 16, 24]);
            assert_eq!(
                cfg.outputs(),
                5 + usize::from(output == OutputKind::Softmax)
            );
        }
        assert_eq!(tiny().size_multiple(), 4);
    }

    #[test]
    fn gradients_reach_every_parameter() {
        let cfg = tiny();
        let vars = SeededVarMap::new(4);
        let net = UNet::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &Device::Cpu).unwrap();
        let y = net.forward(&x, true).unwrap();
        let loss = y.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vars.varmap().data().lock().unwrap();
        let trained: Vec<(&String, &Var)> = data
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .collect();
        assert!(trained.len() > 10);
        for (name, v) in trained {
            // Batch-norm running statistics are not trained; every weight and bias is.
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm.is_finite() && norm > 0.0,
                "{name}: gradient norm {norm}"
            );
        }
        drop(data);
        let head_w = vars
            .varmap()
            .data()
            .lock()
            .unwrap()
            .get("head.weight")
            .unwrap()
            .as_tensor()
            .clone();
        let g = grads
            .get(&head_w)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(g.to_scalar::<f32>().unwrap() > 0.0);
    }

    #[test]
    fn compiled_net_matches_candle_and_the_receptive_radius_holds() {
        let cfg = tiny();
        let vars = SeededVarMap::new(5);
        let net = UNet::new(&cfg, vars.builder(&Device::Cpu)).unwrap();
        // Train a few steps so batch-norm statistics are not the identity.
        let x = Tensor::randn(0f32, 1.0, (4, 1, 32, 32), &Device::Cpu).unwrap();
        for _ in 0..3 {
            net.forward(&x, true).unwrap();
        }
        let (h, w) = (32, 40);
        let img: Vec<f32> = (0..h * w)
            .map(|i| ((i * 7919) % 97) as f32 / 40.0 - 1.0)
            .collect();
        let t = Tensor::from_vec(img.clone(), (1, 1, h, w), &Device::Cpu).unwrap();
        let want: Vec<f32> = net
            .forward(&t, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let compiled = net.compile().unwrap();
        let got = compiled.forward(&img, h, w);
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "compiled vs candle: {worst}");
        // Changing a pixel farther than the radius leaves an output pixel alone.
        let r = cfg.receptive_radius();
        let mut moved = img.clone();
        moved[0] += 100.0; // pixel (0, 0)
        let out = compiled.forward(&moved, h, w);
        let plane = h * w;
        let (py, px) = (h - 1, w - 1);
        assert!(py.max(px) > r, "test image too small for radius {r}");
        for c in 0..cfg.outputs() {
            assert_eq!(out[c * plane + py * w + px], got[c * plane + py * w + px]);
        }
        assert!(compiled.multiply_adds_per_pixel() > 0.0);
        // A reused workspace gives the same logits, for a larger and then a smaller image.
        let mut ws = UNetWorkspace::default();
        let big: Vec<f32> = (0..64 * 48).map(|i| ((i * 31) % 17) as f32 / 8.0).collect();
        let fresh_big = compiled.forward(&big, 64, 48);
        assert_eq!(compiled.forward_with(&big, 64, 48, &mut ws), &fresh_big[..]);
        assert_eq!(compiled.forward_with(&img, h, w, &mut ws), &got[..]);
    }
}
