//! Small building blocks chosen by name from a config: activations and normalisations.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Activation function, by name in configs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// max(0, x)
    Relu,
    /// x·σ(x)
    Silu,
    /// Gaussian error linear unit.
    Gelu,
    /// Leaky ReLU with slope 0.1.
    Leaky,
    /// tanh
    Tanh,
}

impl Act {
    /// Apply the activation.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Relu => x.relu(),
            Act::Silu => candle_nn::ops::silu(x),
            Act::Gelu => x.gelu_erf(),
            Act::Leaky => candle_nn::ops::leaky_relu(x, 0.1),
            Act::Tanh => x.tanh(),
        }
    }
}

/// Normalisation after a layer, by name in configs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// None.
    None,
    /// Batch normalisation (running statistics used in evaluation).
    Batch,
    /// Layer normalisation over the features (dense) or channels, height and width (conv).
    Layer,
}

/// A built normalisation layer.
pub enum Norm {
    /// Identity.
    None,
    /// Batch norm.
    Batch(candle_nn::BatchNorm),
    /// Layer norm over the last dimension (dense layers).
    Layer(candle_nn::LayerNorm),
    /// Group norm with one group: layer norm over C×H×W for conv maps.
    Group(candle_nn::GroupNorm),
}

impl Norm {
    /// A normalisation for `features` channels; `conv` when it follows a convolution.
    pub fn new(kind: NormKind, features: usize, conv: bool, vb: VarBuilder) -> Result<Norm> {
        Ok(match kind {
            NormKind::None => Norm::None,
            NormKind::Batch => Norm::Batch(candle_nn::batch_norm(features, 1e-5, vb)?),
            NormKind::Layer if conv => Norm::Group(candle_nn::group_norm(1, features, 1e-5, vb)?),
            NormKind::Layer => Norm::Layer(candle_nn::layer_norm(features, 1e-5, vb)?),
        })
    }

    /// Apply it; `train` selects batch statistics for batch norm.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Norm::None => Ok(x.clone()),
            Norm::Batch(b) => b.forward_t(x, train),
            Norm::Layer(l) => l.forward(x),
            Norm::Group(g) => g.forward(x),
        }
    }
}

/// A 2-D convolution computed as im2col + matrix product.
///
/// candle's own `conv2d` is fine forward, but its backward pass for the input gradient runs a
/// direct (unblocked) transposed convolution on the CPU, which made a small convolutional
/// autoencoder (widths 16/32/64 on 32×32 stamps, batch 32) train at 0.4 steps/s on 2 cores.
/// Here the patches are gathered with `narrow` and `stack` and multiplied with one batched
/// matmul, whose backward is again a matmul: the same model trained at 1.9 steps/s, with the
/// same numerics. (Its backward still adds nine zero-padded input-sized gradients; see
/// BENCHMARKS.md for where the time goes now.) Parameter names and shapes (`weight` as
/// `(out, in, k, k)`, `bias`) and initialisation are those of `candle_nn::conv2d`, so the
/// layers are interchangeable in checkpoints.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

/// A `k × k` convolution from `cin` to `cout` channels with the given stride and zero padding.
pub fn conv2d(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let mut conv = conv2d_no_bias(cin, cout, kernel, stride, padding, vb.clone())?;
    let bound = 1.0 / ((cin * kernel * kernel) as f64).sqrt();
    conv.bias = Some(vb.get_with_hints(
        cout,
        "bias",
        candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?);
    Ok(conv)
}

/// As [`conv2d`] without a bias (for layers followed by batch normalisation).
pub fn conv2d_no_bias(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let weight = vb.get_with_hints(
        (cout, cin, kernel, kernel),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    Ok(Conv2d {
        weight,
        bias: None,
        cin,
        cout,
        kernel,
        stride: stride.max(1),
        padding,
    })
}

impl Conv2d {
    /// Output size along one axis for an input of `n` pixels.
    pub fn out_size(&self, n: usize) -> usize {
        (n + 2 * self.padding).saturating_sub(self.kernel) / self.stride + 1
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.cin {
            candle_core::bail!("conv2d expects {} input channels, got {c}", self.cin)
        }
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let xp = if p > 0 {
            x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?
        } else {
            x.clone()
        };
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let mut taps = Vec::with_capacity(k * k);
        for di in 0..k {
            for dj in 0..k {
                // Rows di, di+s, …, di+(ho-1)s: take ho·s rows (padding the end if the input is
                // short of the last stride) and keep the first of every s.
                let mut t = xp.clone();
                let need_h = ho * s;
                let need_w = wo * s;
                let avail_h = hp - di;
                let avail_w = wp - dj;
                if avail_h < need_h {
                    t = t.pad_with_zeros(2, 0, need_h - avail_h)?;
                }
                if avail_w < need_w {
                    t = t.pad_with_zeros(3, 0, need_w - avail_w)?;
                }
                let mut t = t.narrow(2, di, need_h)?.narrow(3, dj, need_w)?;
                if s > 1 {
                    t = t
                        .reshape((b, c, ho, s, wo, s))?
                        .narrow(3, 0, 1)?
                        .narrow(5, 0, 1)?
                        .reshape((b, c, ho, wo))?;
                }
                taps.push(t);
            }
        }
        // (b, c, k·k, ho, wo) → (b, c·k·k, ho·wo): the column order of weight.reshape(cout, c·k·k).
        // (Folding the batch into one 2-D product needs a 5-D permute whose strided copy in
        // candle costs more than it saves: measured 3× slower.)
        let patches = Tensor::stack(&taps, 2)?.reshape((b, c * k * k, ho * wo))?;
        let wmat = self.weight.reshape((self.cout, c * k * k))?;
        let y = wmat
            .broadcast_matmul(&patches)?
            .reshape((b, self.cout, ho, wo))?;
        match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, self.cout, 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Nearest-neighbour upsampling by an integer factor, written with a broadcast so that its
/// backward pass is a plain sum (candle's `upsample_nearest2d` backward runs a grouped
/// convolution per channel).
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, factor, w, factor))?
        .reshape((b, c, h * factor, w * factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn im2col_conv_matches_candle_conv() {
        let dev = Device::Cpu;
        let vars = crate::init::SeededVarMap::new(3);
        for (k, s, p, h, w) in [
            (3, 1, 1, 8, 6),
            (3, 2, 1, 8, 8),
            (1, 1, 0, 5, 5),
            (3, 2, 1, 7, 9),
            (5, 2, 2, 12, 10),
        ] {
            let conv = conv2d(
                3,
                4,
                k,
                s,
                p,
                vars.builder(&dev).pp(format!("c{k}{s}{h}{w}")),
            )
            .unwrap();
            let x = Tensor::arange(0f32, (2 * 3 * h * w) as f32, &dev)
                .unwrap()
                .reshape((2, 3, h, w))
                .unwrap();
            let x = (x.sin().unwrap() * 2.0).unwrap();
            let ours = conv.forward(&x).unwrap();
            let reference = x
                .conv2d(&conv.weight, p, s, 1, 1)
                .unwrap()
                .broadcast_add(&conv.bias.as_ref().unwrap().reshape((1, 4, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), reference.dims(), "k{k} s{s} p{p} {h}x{w}");
            let diff = (ours - reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "k{k} s{s} p{p}: {diff}");
        }
        let x = Tensor::arange(0f32, 4.0, &dev)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap();
        let up = upsample_nearest(&x, 2).unwrap();
        assert_eq!(
            up.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0., 0., 1., 1., 0., 0., 1., 1., 2., 2., 3., 3., 2., 2., 3., 3.]
        );
    }
}
