//! The detector network: a single-stage, anchor-free detector of the YOLO family (after
//! YOLOv8), sized for small sources on CPU.
//!
//! - Backbone: conv–BN–SiLU downsampling blocks, each followed by a C2f stage (a split, a chain
//!   of residual bottlenecks, and a 1×1 fusion of every intermediate map).
//! - Neck: a top-down feature pyramid that brings the coarse, context-rich maps back to
//!   strides 8 and 4 (a star is 3–8 pixels across: stride 4 keeps neighbours in separate
//!   cells; stride 16 sees galaxies and bleed trails whole).
//! - Heads on strides 4, 8 and 16: class logits (sigmoid, one per class) and box distances
//!   (left, top, right, bottom from the anchor point, in pixels, through a softplus so they
//!   are positive).
//!
//! Anchor points are the centres of each level's cells: `((j + 0.5)·s, (i + 0.5)·s)` in the
//! continuous 0-based pixel coordinates of [`crate::boxes`].

mod compiled;

pub use compiled::{CompiledNet, TileOutputs, Workspace};

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_nn::layers::{self, conv2d, conv2d_no_bias, upsample_nearest, Conv2d, Norm, NormKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Model size: channel widths of the four backbone stages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelSize {
    /// Pico: widths 8, 16, 32, 64 (about 0.1 M parameters; a quarter of nano's arithmetic).
    P,
    /// Nano: widths 16, 32, 64, 128 (about 0.3 M parameters).
    N,
    /// Small: widths 32, 64, 128, 256 (about 1.2 M parameters).
    S,
}

/// The network's shape (the `[model]` section of a detect config; saved with the weights).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// `n` or `s`.
    pub size: ModelSize,
    /// Residual bottlenecks per C2f stage.
    pub depth: usize,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            size: ModelSize::N,
            depth: 1,
            classes: deepsky_sim::sky::SourceClass::ALL
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        }
    }
}

impl DetectorConfig {
    /// Channel widths of the stem and the three stages after it.
    pub fn widths(&self) -> [usize; 4] {
        match self.size {
            ModelSize::P => [8, 16, 32, 64],
            ModelSize::N => [16, 32, 64, 128],
            ModelSize::S => [32, 64, 128, 256],
        }
    }
}

impl Validate for DetectorConfig {
    /// Range checks, keys relative to the `[model]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(
            self.depth >= 1 && self.depth <= 4,
            "depth",
            "must be 1 to 4",
        )?;
        ensure(
            !self.classes.is_empty(),
            "classes",
            "needs at least one class",
        )
    }
}

/// Strides of the three output levels.
pub const STRIDES: [usize; 3] = [4, 8, 16];
/// Input sides must be a multiple of this (the coarsest backbone stride).
pub const SIZE_MULTIPLE: usize = 16;

/// conv → batch norm → SiLU.
struct ConvBn {
    conv: Conv2d,
    bn: Norm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, k: usize, s: usize, vb: VarBuilder) -> Result<ConvBn> {
        Ok(ConvBn {
            conv: conv2d_no_bias(cin, cout, k, s, k / 2, vb.pp("conv"))?,
            bn: Norm::new(NormKind::Batch, cout, true, vb.pp("bn"))?,
        })
    }
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        layers::silu(&self.bn.forward_t(&self.conv.forward(x)?, train)?)
    }
}

/// Two 3×3 conv blocks with a residual connection.
struct Bottleneck {
    a: ConvBn,
    b: ConvBn,
}

impl Bottleneck {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        x + self.b.forward(&self.a.forward(x, train)?, train)?
    }
}

/// C2f: 1×1 conv to 2c channels, split in halves, a chain of bottlenecks on the second half,
/// and a 1×1 conv over the concatenation of both halves and every bottleneck's output.
struct C2f {
    cv1: ConvBn,
    blocks: Vec<Bottleneck>,
    cv2: ConvBn,
    c: usize,
}

impl C2f {
    fn new(cin: usize, cout: usize, depth: usize, vb: VarBuilder) -> Result<C2f> {
        let c = (cout / 2).max(4);
        let cv1 = ConvBn::new(cin, 2 * c, 1, 1, vb.pp("cv1"))?;
        let mut blocks = Vec::with_capacity(depth);
        for i in 0..depth {
            let vb = vb.pp(format!("m{i}"));
            blocks.push(Bottleneck {
                a: ConvBn::new(c, c, 3, 1, vb.pp("a"))?,
                b: ConvBn::new(c, c, 3, 1, vb.pp("b"))?,
            });
        }
        let cv2 = ConvBn::new((2 + depth) * c, cout, 1, 1, vb.pp("cv2"))?;
        Ok(C2f {
            cv1,
            blocks,
            cv2,
            c,
        })
    }
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.cv1.forward(x, train)?;
        let mut parts = vec![y.narrow(1, 0, self.c)?, y.narrow(1, self.c, self.c)?];
        for b in &self.blocks {
            let last = parts.last().expect("two parts at least");
            let next = b.forward(last, train)?;
            parts.push(next);
        }
        self.cv2.forward(&Tensor::cat(&parts, 1)?, train)
    }
}

/// One level's heads.
struct Head {
    cls_stem: ConvBn,
    cls_out: Conv2d,
    cls_bias: Tensor,
    box_stem: ConvBn,
    box_out: Conv2d,
}

/// The detector network (its weights live in the [`VarBuilder`] it was built from; with its
/// model card it is a [`crate::Detector`]).
pub struct DetectorNet {
    stem: ConvBn,
    down: [ConvBn; 3],
    stages: [C2f; 3],
    td3: C2f,
    td2: C2f,
    heads: Vec<Head>,
    num_classes: usize,
}

/// Raw outputs for a batch, all levels concatenated in anchor order (level by level, row-major
/// within a level).
pub struct Outputs {
    /// Class logits `(batch, anchors, classes)`.
    pub logits: Tensor,
    /// Predicted boxes `(batch, anchors, 4)` as `[x0, y0, x1, y1]` in input pixels.
    pub boxes: Tensor,
}

/// Anchor points of an input of `h × w` pixels: `(x, y, stride)` per anchor, in output order.
pub fn anchors(h: usize, w: usize) -> Vec<(f32, f32, f32)> {
    let mut out = Vec::new();
    for &s in &STRIDES {
        let (ho, wo) = (h.div_ceil(s), w.div_ceil(s));
        for i in 0..ho {
            for j in 0..wo {
                out.push((
                    (j as f32 + 0.5) * s as f32,
                    (i as f32 + 0.5) * s as f32,
                    s as f32,
                ));
            }
        }
    }
    out
}

impl DetectorNet {
    /// Build the network under `vb` (parameter names are stable: they are the checkpoint's).
    pub fn new(cfg: &DetectorConfig, vb: VarBuilder) -> Result<DetectorNet> {
        let [w0, w1, w2, w3] = cfg.widths();
        let d = cfg.depth;
        let nc = cfg.classes.len();
        let stem = ConvBn::new(1, w0, 3, 2, vb.pp("stem"))?;
        let down = [
            ConvBn::new(w0, w1, 3, 2, vb.pp("down1"))?,
            ConvBn::new(w1, w2, 3, 2, vb.pp("down2"))?,
            ConvBn::new(w2, w3, 3, 2, vb.pp("down3"))?,
        ];
        let stages = [
            C2f::new(w1, w1, d, vb.pp("stage1"))?,
            C2f::new(w2, w2, d, vb.pp("stage2"))?,
            C2f::new(w3, w3, d, vb.pp("stage3"))?,
        ];
        let td3 = C2f::new(w3 + w2, w2, d, vb.pp("td3"))?;
        let td2 = C2f::new(w2 + w1, w1, d, vb.pp("td2"))?;
        let hc = w1.max(16);
        // Class bias so that every anchor starts at p = 0.01: most anchors are background,
        // and a 0.5 start floods the loss with easy negatives (RetinaNet's prior).
        let prior = -((1.0f64 - 0.01) / 0.01).ln();
        let mut heads = Vec::new();
        for (l, ch) in [w1, w2, w3].into_iter().enumerate() {
            let vb = vb.pp(format!("head{l}"));
            heads.push(Head {
                cls_stem: ConvBn::new(ch, hc, 3, 1, vb.pp("cls"))?,
                cls_out: conv2d_no_bias(hc, nc, 1, 1, 0, vb.pp("cls_out"))?,
                cls_bias: vb.get_with_hints(
                    (1, nc, 1, 1),
                    "cls_out.bias",
                    candle_nn::Init::Const(prior),
                )?,
                box_stem: ConvBn::new(ch, hc, 3, 1, vb.pp("box"))?,
                box_out: conv2d(hc, 4, 1, 1, 0, vb.pp("box_out"))?,
            });
        }
        Ok(DetectorNet {
            stem,
            down,
            stages,
            td3,
            td2,
            heads,
            num_classes: nc,
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Run on a batch `(b, 1, h, w)` of normalised images, `h` and `w` multiples of
    /// [`SIZE_MULTIPLE`].
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Outputs> {
        let (b, _, h, w) = x.dims4()?;
        if h % SIZE_MULTIPLE != 0 || w % SIZE_MULTIPLE != 0 {
            candle_core::bail!("detector input {h}×{w} is not a multiple of {SIZE_MULTIPLE}")
        }
        let x = self.stem.forward(x, train)?;
        let p2 = self.stages[0].forward(&self.down[0].forward(&x, train)?, train)?;
        let p3 = self.stages[1].forward(&self.down[1].forward(&p2, train)?, train)?;
        let p4 = self.stages[2].forward(&self.down[2].forward(&p3, train)?, train)?;
        let n3 = self
            .td3
            .forward(&Tensor::cat(&[&upsample_nearest(&p4, 2)?, &p3], 1)?, train)?;
        let n2 = self
            .td2
            .forward(&Tensor::cat(&[&upsample_nearest(&n3, 2)?, &p2], 1)?, train)?;
        let mut logits = Vec::new();
        let mut boxes = Vec::new();
        let dev = x.device();
        for ((feat, head), &s) in [&n2, &n3, &p4].into_iter().zip(&self.heads).zip(&STRIDES) {
            let (_, _, fh, fw) = feat.dims4()?;
            let c = head
                .cls_out
                .forward(&head.cls_stem.forward(feat, train)?)?
                .broadcast_add(&head.cls_bias)?
                .reshape((b, self.num_classes, fh * fw))?
                .transpose(1, 2)?;
            let raw = head
                .box_out
                .forward(&head.box_stem.forward(feat, train)?)?
                .reshape((b, 4, fh * fw))?
                .transpose(1, 2)?;
            // Distances in pixels: softplus keeps them positive without exp's overflow.
            let dist = (softplus(&raw)? * s as f64)?;
            let grid = level_anchors(fh, fw, s, dev)?; // (hw, 2)
            let xy = grid.unsqueeze(0)?; // (1, hw, 2)
            let lt = dist.narrow(D::Minus1, 0, 2)?;
            let rb = dist.narrow(D::Minus1, 2, 2)?;
            let p0 = xy.broadcast_sub(&lt)?;
            let p1 = xy.broadcast_add(&rb)?;
            logits.push(c);
            boxes.push(Tensor::cat(&[p0, p1], D::Minus1)?);
        }
        Ok(Outputs {
            logits: Tensor::cat(&logits, 1)?.contiguous()?,
            boxes: Tensor::cat(&boxes, 1)?.contiguous()?,
        })
    }
}

/// Anchor centres of one level as a `(h·w, 2)` tensor.
fn level_anchors(h: usize, w: usize, s: usize, dev: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(h * w * 2);
    for i in 0..h {
        for j in 0..w {
            v.push((j as f32 + 0.5) * s as f32);
            v.push((i as f32 + 0.5) * s as f32);
        }
    }
    Tensor::from_vec(v, (h * w, 2), dev)
}

/// `log(1 + eˣ)`, computed as `max(x, 0) + log(1 + e^-|x|)` so that it neither overflows nor
/// loses precision.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Number of parameters in a var map.
pub fn parameter_count(map: &candle_nn::VarMap) -> usize {
    map.all_vars().iter().map(|v| v.elem_count()).sum()
}
