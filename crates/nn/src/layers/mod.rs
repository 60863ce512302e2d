//! Small building blocks chosen by name from a config: activations and normalisations.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Module, ModuleT, Result,
    Shape, Storage, Tensor, Var,
};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod conv_cpu;

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
            Act::Silu => silu(x),
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
            Norm::Batch(b) if train => match batch_norm_train_cpu(b, x)? {
                Some(y) => Ok(y),
                None => b.forward_t(x, true),
            },
            Norm::Batch(b) => b.forward_t(x, false),
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
/// Here, on the CPU (f32/f64), the whole layer is one custom op (see `conv_cpu`): per
/// example, the patches (im2col) in a scratch buffer and one gemm call, forward and backward,
/// each gradient handed to candle once. Other devices gather the taps with `narrow` and
/// `stack` (whose backward adds k·k zero-padded input-sized gradients). Parameter names and
/// shapes (`weight` as `(out, in, k, k)`, `bias`) and initialisation are those of
/// `candle_nn::conv2d`, so the layers are interchangeable in checkpoints.
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
        self.forward_upsampled(x, 1)
    }
}

impl Conv2d {
    /// The convolution of `x` upsampled by `factor` (nearest neighbour, as
    /// [`upsample_nearest`]): on the CPU one op that upsamples each example in scratch, so the
    /// upsampled batch never becomes a tensor (nor a gradient buffer) of its own.
    pub fn forward_upsampled(&self, x: &Tensor, factor: usize) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.cin {
            candle_core::bail!("conv2d expects {} input channels, got {c}", self.cin)
        }
        if factor == 0 {
            candle_core::bail!("conv2d: upsampling factor 0")
        }
        if !x.device().is_cpu() || !matches!(x.dtype(), DType::F32 | DType::F64) {
            return match factor {
                1 => self.forward_taps(x),
                f => self.forward_taps(&upsample_nearest(x, f)?),
            };
        }
        let (h, w) = (h * factor, w * factor);
        let geom = ConvGeom {
            b,
            c,
            h,
            w,
            k: self.kernel,
            s: self.stride,
            p: self.padding,
            ho: self.out_size(h),
            wo: self.out_size(w),
        };
        let op = conv_cpu::ConvOp {
            geom,
            cout: self.cout,
            up: factor,
        };
        let x = x.contiguous()?;
        match &self.bias {
            Some(bias) => x.apply_op3(&self.weight, bias, op),
            None => x.apply_op2(&self.weight, op),
        }
    }
}

impl Conv2d {
    /// The convolution from candle tensor ops only (any device): the k·k taps gathered with
    /// `narrow` and `stack`, one batched matmul. Its backward adds k·k zero-padded input-sized
    /// gradients, so the CPU uses the [`Im2Col`] op instead.
    fn forward_taps(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
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

/// Shapes of one convolution: input (b, c, h, w), kernel k, stride s, zero padding p, output
/// ho × wo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConvGeom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl ConvGeom {
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    /// The output positions `o` (along an axis of `n` input pixels and `out` outputs) whose tap
    /// `d` falls inside the input: `o·s + d - p` in `[0, n)`.
    fn valid(&self, d: usize, n: usize, out: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.s, self.p);
        let lo = if d >= p { 0 } else { (p - d).div_ceil(s) };
        // o·s + d - p <= n - 1  ⇔  o <= (n - 1 + p - d) / s
        let hi = if n + p > d {
            ((n - 1 + p - d) / s + 1).min(out)
        } else {
            0
        };
        lo.min(hi)..hi
    }
}

/// Scalars the CPU kernels run on.
trait ConvElem: candle_core::WithDType + std::ops::Neg<Output = Self> {
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
}

impl ConvElem for f32 {
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn slice(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl ConvElem for f64 {
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn slice(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

fn contiguous_slice<'a, T: ConvElem>(s: &'a CpuStorage, l: &Layout, n: usize) -> Result<&'a [T]> {
    let Some(v) = T::slice(s) else {
        candle_core::bail!("conv2d: unexpected dtype")
    };
    match l.contiguous_offsets() {
        Some((a, b)) if b - a == n => Ok(&v[a..b]),
        _ => candle_core::bail!("conv2d: expected a contiguous tensor of {n} elements"),
    }
}

/// Batch normalisation in training mode on the CPU as one custom op (statistics in one pass,
/// output in another, an analytic backward), for the batch norms [`Norm::new`] builds (affine,
/// mean removed). candle-nn's `forward_train` runs about a dozen tensor ops, each with a
/// full-size result and a full-size backward. The output is computed as candle-nn does,
/// `(x - mean) / sqrt(var + eps) · weight + bias` in the element type, with the batch mean
/// and (biased) variance accumulated in f64; the running statistics are updated as in
/// candle-nn (momentum, unbiased variance). Returns None where the op does not apply (other
/// devices and dtypes), for candle-nn's path.
fn batch_norm_train_cpu(bn: &candle_nn::BatchNorm, x: &Tensor) -> Result<Option<Tensor>> {
    let Some((weight, bias)) = bn.weight_and_bias() else {
        return Ok(None);
    };
    if !x.device().is_cpu() || !matches!(x.dtype(), DType::F32 | DType::F64) || x.rank() < 2 {
        return Ok(None);
    }
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    if c != bn.running_mean().dim(0)? {
        candle_core::bail!(
            "batch-norm input doesn't have the expected number of features ({:?} <> {})",
            x.shape(),
            bn.running_mean().dim(0)?
        )
    }
    let s: usize = dims[2..].iter().product();
    let x = x.contiguous()?;
    let geom = BnGeom { n, c, s };
    let (mean, var) = {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        match cpu {
            CpuStorage::F32(_) => bn_stats(contiguous_slice::<f32>(cpu, layout, n * c * s)?, &geom),
            CpuStorage::F64(_) => bn_stats(contiguous_slice::<f64>(cpu, layout, n * c * s)?, &geom),
            _ => return Ok(None),
        }
    };
    // Running statistics as candle-nn updates them.
    let m = bn.momentum();
    let count = (n * s) as f64;
    let rm = bn.running_mean();
    let rv = bn.running_var();
    let mean_t = Tensor::from_vec(mean.clone(), c, &Device::Cpu)?.to_dtype(rm.dtype())?;
    let var_t = Tensor::from_vec(var.clone(), c, &Device::Cpu)?.to_dtype(rv.dtype())?;
    Var::from_tensor(rm)?.set(&((rm * (1.0 - m))? + (mean_t * m)?)?)?;
    Var::from_tensor(rv)?.set(&((rv * (1.0 - m))? + (var_t * (m * count / (count - 1.0)))?)?)?;
    let op = BatchNormTrain {
        geom,
        mean,
        var,
        eps: bn.eps(),
    };
    Ok(Some(x.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        op,
    )?))
}

/// Input `(n, c, s…)` with `s` the product of the trailing dims (1 for `(n, c)`).
#[derive(Debug, Clone, Copy)]
struct BnGeom {
    n: usize,
    c: usize,
    s: usize,
}

/// `Σ f(v)` over `x` in f64, in eight interleaved partial sums (so the loop vectorises
/// instead of waiting on one accumulator), added in a fixed order: the result depends only
/// on `x`.
fn lane_sum<T: ConvElem>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v.to_f64());
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v.to_f64())).sum();
    acc.iter().sum::<f64>() + tail
}

/// `Σ f(a, b)` over pairs of `a` and `b`, as [`lane_sum`].
fn lane_sum2<T: ConvElem>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += f(u.to_f64(), v.to_f64());
        }
    }
    let tail: f64 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(&u, &v)| f(u.to_f64(), v.to_f64()))
        .sum();
    acc.iter().sum::<f64>() + tail
}

impl BnGeom {
    /// The `s`-long planes of channel `ch`, one per example, in example order.
    fn planes<'a, T>(&self, x: &'a [T], ch: usize) -> impl Iterator<Item = &'a [T]> + 'a {
        let (c, s) = (self.c, self.s);
        (0..self.n).map(move |e| &x[(e * c + ch) * s..][..s])
    }

    /// `f(ch)` for every channel, channels on all threads.
    fn per_channel<R: Send>(&self, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
        (0..self.c).into_par_iter().map(f).collect()
    }
}

/// Per-channel mean and biased variance (two passes, f64; channels on all threads, each
/// channel's sums in a fixed order, so the statistics do not depend on the thread count).
fn bn_stats<T: ConvElem>(x: &[T], g: &BnGeom) -> (Vec<f64>, Vec<f64>) {
    let count = (g.n * g.s) as f64;
    g.per_channel(|ch| {
        let mean = g.planes(x, ch).map(|p| lane_sum(p, |v| v)).sum::<f64>() / count;
        let var = g
            .planes(x, ch)
            .map(|p| lane_sum(p, |v| (v - mean) * (v - mean)))
            .sum::<f64>()
            / count;
        (mean, var)
    })
    .into_iter()
    .unzip()
}

/// The batch-norm op: `(x, weight, bias)` → output, with the batch statistics computed
/// beforehand.
struct BatchNormTrain {
    geom: BnGeom,
    mean: Vec<f64>,
    var: Vec<f64>,
    eps: f64,
}

impl BatchNormTrain {
    fn forward<T: ConvElem>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let g = &self.geom;
        let mean: Vec<T> = self.mean.iter().map(|&m| T::from_f64(m)).collect();
        let std: Vec<T> = self
            .var
            .iter()
            .map(|&v| (T::from_f64(v) + T::from_f64(self.eps)).sqrt())
            .collect();
        let mut out = vec![T::zero(); x.len()];
        // Examples on all threads.
        out.par_chunks_mut(g.c * g.s)
            .zip(x.par_chunks(g.c * g.s))
            .for_each(|(out, x)| {
                for (ch, (o, plane)) in out.chunks_mut(g.s).zip(x.chunks(g.s)).enumerate() {
                    let (mu, sd, wc, bc) = (mean[ch], std[ch], w[ch], b[ch]);
                    for (o, &v) in o.iter_mut().zip(plane) {
                        *o = (v - mu) / sd * wc + bc;
                    }
                }
            });
        out
    }

    /// Gradients of input, weight and bias from the output gradient `dy`.
    fn backward<T: ConvElem>(&self, x: &[T], w: &[T], dy: &[T]) -> (Vec<T>, Vec<T>, Vec<T>) {
        let g = &self.geom;
        let count = (g.n * g.s) as f64;
        let inv_std: Vec<f64> = self
            .var
            .iter()
            .map(|&v| 1.0 / (T::from_f64(v) + T::from_f64(self.eps)).sqrt().to_f64())
            .collect();
        // Σ dy and Σ dy·x̂ per channel (channels on all threads, fixed order within each).
        let (db, dw): (Vec<f64>, Vec<f64>) = g
            .per_channel(|ch| {
                let (mu, is) = (self.mean[ch], inv_std[ch]);
                let planes = g.planes(x, ch).zip(g.planes(dy, ch));
                planes.fold((0f64, 0f64), |(sb, sw), (xp, gp)| {
                    (
                        sb + lane_sum(gp, |v| v),
                        sw + lane_sum2(xp, gp, |xv, gv| gv * (xv - mu) * is),
                    )
                })
            })
            .into_iter()
            .unzip();
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(g.c * g.s)
            .zip(x.par_chunks(g.c * g.s))
            .zip(dy.par_chunks(g.c * g.s))
            .for_each(|((dx, x), dy)| {
                let planes = dx.chunks_mut(g.s).zip(x.chunks(g.s)).zip(dy.chunks(g.s));
                for (ch, ((d, xp), gp)) in planes.enumerate() {
                    let (mu, is) = (self.mean[ch], inv_std[ch]);
                    let k = w[ch].to_f64() * is;
                    let (mb, mw) = (db[ch] / count, dw[ch] / count);
                    for ((d, &xv), &gv) in d.iter_mut().zip(xp).zip(gp) {
                        let xhat = (xv.to_f64() - mu) * is;
                        *d = T::from_f64(k * (gv.to_f64() - mb - xhat * mw));
                    }
                }
            });
        let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        (dx, cast(dw), cast(db))
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geom;
        let n = g.n * g.c * g.s;
        let out = match s1 {
            CpuStorage::F32(_) => f32::wrap(self.forward(
                contiguous_slice::<f32>(s1, l1, n)?,
                contiguous_slice::<f32>(s2, l2, g.c)?,
                contiguous_slice::<f32>(s3, l3, g.c)?,
            )),
            CpuStorage::F64(_) => f64::wrap(self.forward(
                contiguous_slice::<f64>(s1, l1, n)?,
                contiguous_slice::<f64>(s2, l2, g.c)?,
                contiguous_slice::<f64>(s3, l3, g.c)?,
            )),
            _ => candle_core::bail!("batch-norm-train: only f32 and f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let g = &self.geom;
        let n = g.n * g.c * g.s;
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = dy.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(ws), Storage::Cpu(gs)) = (&*xs, &*ws, &*gs) else {
            candle_core::bail!("batch-norm-train: CPU only")
        };
        let (dx, dw, db) = match xs {
            CpuStorage::F32(_) => {
                let (dx, dw, db) = self.backward(
                    contiguous_slice::<f32>(xs, xl, n)?,
                    contiguous_slice::<f32>(ws, wl, g.c)?,
                    contiguous_slice::<f32>(gs, gl, n)?,
                );
                (
                    Tensor::from_vec(dx, x.shape(), &Device::Cpu)?,
                    Tensor::from_vec(dw, g.c, &Device::Cpu)?,
                    Tensor::from_vec(db, g.c, &Device::Cpu)?,
                )
            }
            CpuStorage::F64(_) => {
                let (dx, dw, db) = self.backward(
                    contiguous_slice::<f64>(xs, xl, n)?,
                    contiguous_slice::<f64>(ws, wl, g.c)?,
                    contiguous_slice::<f64>(gs, gl, n)?,
                );
                (
                    Tensor::from_vec(dx, x.shape(), &Device::Cpu)?,
                    Tensor::from_vec(dw, g.c, &Device::Cpu)?,
                    Tensor::from_vec(db, g.c, &Device::Cpu)?,
                )
            }
            _ => candle_core::bail!("batch-norm-train: only f32 and f64"),
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Nearest-neighbour upsampling of a contiguous `(b, c, h, w)` CPU tensor by `f` (CPU op);
/// its backward sums each `f × f` block.
#[derive(Debug, Clone, Copy)]
struct Upsample {
    planes: usize,
    h: usize,
    w: usize,
    f: usize,
}

impl Upsample {
    /// One plane `(h, w)` into `out` `(h·f, w·f)`.
    fn plane<T: ConvElem>(&self, x: &[T], out: &mut [T]) {
        let (w, f) = (self.w, self.f);
        let wf = w * f;
        for (row, block) in x.chunks_exact(w).zip(out.chunks_exact_mut(wf * f)) {
            let (first, rest) = block.split_at_mut(wf);
            if f == 2 {
                // The common factor, written out so that the loop vectorises.
                for (o, &v) in first.chunks_exact_mut(2).zip(row) {
                    o[0] = v;
                    o[1] = v;
                }
            } else {
                for (o, &v) in first.chunks_exact_mut(f).zip(row) {
                    o.fill(v);
                }
            }
            for r in rest.chunks_exact_mut(wf) {
                r.copy_from_slice(first);
            }
        }
    }

    /// The block sums of one plane `dy` `(h·f, w·f)` into `out` `(h, w)`: the block's rows
    /// added first (element-wise, vectorised), then each run of `f` columns.
    fn plane_adjoint<T: ConvElem>(&self, dy: &[T], out: &mut [T]) {
        let (w, f) = (self.w, self.f);
        let wf = w * f;
        let mut acc = vec![T::zero(); wf];
        for (rows, o) in dy.chunks_exact(wf * f).zip(out.chunks_exact_mut(w)) {
            acc.copy_from_slice(&rows[..wf]);
            for r in rows[wf..].chunks_exact(wf) {
                for (a, &v) in acc.iter_mut().zip(r) {
                    *a += v;
                }
            }
            if f == 2 {
                for (o, pair) in o.iter_mut().zip(acc.chunks_exact(2)) {
                    *o = pair[0] + pair[1];
                }
            } else {
                for (o, run) in o.iter_mut().zip(acc.chunks_exact(f)) {
                    *o = run.iter().fold(T::zero(), |s, &v| s + v);
                }
            }
        }
    }

    /// Planes on all threads.
    fn forward<T: ConvElem>(&self, x: &[T]) -> Vec<T> {
        let (hw, f2) = (self.h * self.w, self.f * self.f);
        let mut out = vec![T::zero(); self.planes * hw * f2];
        out.par_chunks_mut(hw * f2)
            .zip(x.par_chunks(hw))
            .for_each(|(o, x)| self.plane(x, o));
        out
    }

    fn backward<T: ConvElem>(&self, dy: &[T]) -> Vec<T> {
        let (hw, f2) = (self.h * self.w, self.f * self.f);
        let mut out = vec![T::zero(); self.planes * hw];
        out.par_chunks_mut(hw)
            .zip(dy.par_chunks(hw * f2))
            .for_each(|(o, dy)| self.plane_adjoint(dy, o));
        out
    }
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "upsample-nearest"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.planes * self.h * self.w;
        let out = match s {
            CpuStorage::F32(_) => f32::wrap(self.forward(contiguous_slice::<f32>(s, l, n)?)),
            CpuStorage::F64(_) => f64::wrap(self.forward(contiguous_slice::<f64>(s, l, n)?)),
            _ => candle_core::bail!("upsample-nearest: only f32 and f64"),
        };
        Ok((
            out,
            Shape::from(self.planes * self.h * self.f * self.w * self.f),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?.apply_op1(UpsampleAdjoint(*self))?;
        Ok(Some(g.reshape(arg.shape())?))
    }
}

/// The block sum that is [`Upsample`]'s backward (its own backward is the upsampling).
struct UpsampleAdjoint(Upsample);

impl CustomOp1 for UpsampleAdjoint {
    fn name(&self) -> &'static str {
        "upsample-nearest-adjoint"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let u = &self.0;
        let n = u.planes * u.h * u.f * u.w * u.f;
        let out = match s {
            CpuStorage::F32(_) => f32::wrap(u.backward(contiguous_slice::<f32>(s, l, n)?)),
            CpuStorage::F64(_) => f64::wrap(u.backward(contiguous_slice::<f64>(s, l, n)?)),
            _ => candle_core::bail!("upsample-nearest: only f32 and f64"),
        };
        Ok((out, Shape::from(u.planes * u.h * u.w)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?.apply_op1(self.0)?.reshape(arg.shape())?,
        ))
    }
}

/// Nearest-neighbour upsampling by an integer factor. On the CPU (f32/f64) a custom op whose
/// backward sums each block; elsewhere written with a broadcast so that its backward pass is a
/// plain sum (candle's `upsample_nearest2d` backward runs a grouped convolution per channel).
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && factor > 0 {
        let op = Upsample {
            planes: b * c,
            h,
            w,
            f: factor,
        };
        return x
            .contiguous()?
            .apply_op1(op)?
            .reshape((b, c, h * factor, w * factor));
    }
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, factor, w, factor))?
        .reshape((b, c, h * factor, w * factor))
}

/// SiLU, `x·σ(x)`. On the CPU (f32/f64) one op with the same values as candle's (`x / (1 +
/// e^-x)`) whose backward is a single pass, `dy·σ(x)·(1 + x·(1 - σ(x)))` with σ(x) = y / x
/// taken from the output: candle's backward of `silu` runs about seven full-size tensor ops,
/// each a fresh buffer. Elsewhere candle-nn's.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(Silu)
    } else {
        candle_nn::ops::silu(x)
    }
}

#[derive(Debug, Clone, Copy)]
struct Silu;

/// Elements per parallel task of the element-wise ops.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

impl Silu {
    fn forward<T: ConvElem>(x: &[T]) -> Vec<T> {
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(x.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(|(y, x)| {
                for (y, &v) in y.iter_mut().zip(x) {
                    *y = v / (T::one() + (-v).exp());
                }
            });
        y
    }

    /// `x` the input, `y` the forward's output, `dy` the output gradient. σ(x) is recovered
    /// as y / x rather than recomputed: a division instead of an exponential, which was most
    /// of this pass's time; at x = 0, where the quotient is undefined, σ = 1/2.
    fn backward<T: ConvElem>(x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
        let mut dx = vec![T::zero(); x.len()];
        let half = T::one() / (T::one() + T::one());
        dx.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(x.par_chunks(ELEMENTWISE_CHUNK))
            .zip(y.par_chunks(ELEMENTWISE_CHUNK))
            .zip(dy.par_chunks(ELEMENTWISE_CHUNK))
            .for_each(|(((dx, x), y), dy)| {
                for (((d, &v), &out), &g) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    let s = if v == T::zero() { half } else { out / v };
                    *d = g * s * (T::one() + v * (T::one() - s));
                }
            });
        dx
    }
}

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = l.shape().elem_count();
        let out = match s {
            CpuStorage::F32(_) => f32::wrap(Silu::forward(contiguous_slice::<f32>(s, l, n)?)),
            CpuStorage::F64(_) => f64::wrap(Silu::forward(contiguous_slice::<f64>(s, l, n)?)),
            _ => candle_core::bail!("silu: only f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (x, y, dy) = (arg.contiguous()?, res.contiguous()?, grad.contiguous()?);
        let (sx, lx) = x.storage_and_layout();
        let (sy, ly) = y.storage_and_layout();
        let (sd, ld) = dy.storage_and_layout();
        let (Storage::Cpu(sx), Storage::Cpu(sy), Storage::Cpu(sd)) = (&*sx, &*sy, &*sd) else {
            candle_core::bail!("silu: CPU only")
        };
        fn input_grad<T: ConvElem>(
            [(sx, lx), (sy, ly), (sd, ld)]: [(&CpuStorage, &Layout); 3],
            shape: &Shape,
        ) -> Result<Tensor> {
            let n = shape.elem_count();
            let dx = Silu::backward(
                contiguous_slice::<T>(sx, lx, n)?,
                contiguous_slice::<T>(sy, ly, n)?,
                contiguous_slice::<T>(sd, ld, n)?,
            );
            Tensor::from_vec(dx, shape, &Device::Cpu)
        }
        let parts = [(sx, lx), (sy, ly), (sd, ld)];
        let dx = match sx {
            CpuStorage::F32(_) => input_grad::<f32>(parts, x.shape())?,
            CpuStorage::F64(_) => input_grad::<f64>(parts, x.shape())?,
            _ => candle_core::bail!("silu: only f32 and f64"),
        };
        Ok(Some(dx))
    }
}

/// A fully connected layer, `y = x·Wᵀ + b`, with candle-nn's parameter names and shapes
/// (`weight` `(out, in)`, `bias` `(out)`) and initialisation, so checkpoints are the same as
/// with [`candle_nn::Linear`].
///
/// On the CPU (f32/f64, 2-D input) the layer is one custom op whose backward computes exactly
/// the products it needs and hands each gradient over once: `x.matmul(w.t())` makes candle fill
/// a zero buffer and add the weight gradient into it twice (the second time from a transposed
/// view), and always computes the input's gradient — for the first layer of a network, a
/// product as large as the weight gradient that nothing uses. Elsewhere it is `Linear`.
#[derive(Debug, Clone)]
pub struct Dense {
    inner: candle_nn::Linear,
}

/// A [`Dense`] layer from `in_dim` to `out_dim` features with a bias, under `vb` (as
/// [`candle_nn::linear`]).
pub fn dense(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Dense> {
    Ok(Dense {
        inner: candle_nn::linear(in_dim, out_dim, vb)?,
    })
}

impl Dense {
    /// The weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// The bias, `(out)`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.inner.weight();
        let fused = x.device().is_cpu()
            && x.rank() == 2
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && w.dtype() == x.dtype();
        if !fused {
            return self.inner.forward(x);
        }
        match self.inner.bias() {
            Some(b) => x.apply_op3(w, b, DenseOp),
            None => x.apply_op2(w, DenseOp),
        }
    }
}

/// `x·Wᵀ (+ b)` on the CPU: the forward is one matrix product (plus the bias added in place),
/// the backward `dx = dy·W` (only when `x` needs it), `dW = dyᵀ·x` and `db = Σ_rows dy`.
#[derive(Debug, Clone, Copy)]
struct DenseOp;

impl DenseOp {
    /// `x·Wᵀ` for `x` `(m, k)` and `w` `(n, k)` in any strides.
    fn product(
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, usize, usize)> {
        use candle_core::backend::BackendStorage;
        let (m, k) = lx.shape().dims2()?;
        let (n, k2) = lw.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("dense: input has {k} features, the weight expects {k2}");
        }
        let contiguous = lx.is_contiguous() && lw.is_contiguous();
        let out = match (x, w) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) if contiguous => {
                f32::wrap(Self::product_by_columns(
                    contiguous_slice::<f32>(x, lx, m * k)?,
                    contiguous_slice::<f32>(w, lw, n * k)?,
                    (m, n, k),
                ))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) if contiguous => {
                f64::wrap(Self::product_by_columns(
                    contiguous_slice::<f64>(x, lx, m * k)?,
                    contiguous_slice::<f64>(w, lw, n * k)?,
                    (m, n, k),
                ))
            }
            _ => x.matmul(w, (1, m, n, k), lx, &lw.transpose(0, 1)?)?,
        };
        Ok((out, m, n))
    }

    /// `x·Wᵀ` `(m, n)` for row-major `x` `(m, k)` and `w` `(n, k)`, computed column by column
    /// and then transposed. Why: gemm's kernels run down the destination's contiguous axis
    /// and copy ("pack") an operand that is not contiguous along it. Written row-major, that
    /// axis is the n outputs and the operand packed is the whole weight matrix (1 MB for
    /// 1024 → 256), every step; written column-major it is the m examples of the batch, and
    /// the packed operand is the (usually far smaller) input.
    fn product_by_columns<T: ConvElem>(
        x: &[T],
        w: &[T],
        (m, n, k): (usize, usize, usize),
    ) -> Vec<T> {
        let threads = rayon::current_num_threads();
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // yᵀ `(n, m)` row-major (y column-major) = W `(n, k)` · xᵀ `(k, m)`.
        let mut yt = vec![T::zero(); m * n];
        let (wm, xt) = ((w, k as isize, 1), (x, 1, k as isize));
        conv_cpu::gemm_into(n, m, k, &mut yt, false, wm, xt, par);
        let mut y = vec![T::zero(); m * n];
        for (j, col) in yt.chunks_exact(m.max(1)).enumerate() {
            for (i, &v) in col.iter().enumerate() {
                y[i * n + j] = v;
            }
        }
        y
    }

    /// `grad.sum(0)` (the bias gradient), for a contiguous CPU gradient as whole rows added
    /// into one accumulator row: the same additions in the same order as candle's reduction,
    /// which walks the strided columns one by one (3 % of a dense-AE step).
    fn column_sums(grad: &Tensor) -> Result<Tensor> {
        fn sums<T: ConvElem>(g: &[T], n: usize) -> Vec<T> {
            let mut acc = vec![T::zero(); n];
            for row in g.chunks_exact(n) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        }
        let (m, n) = grad.dims2()?;
        if m > 0 && n > 0 && grad.is_contiguous() {
            let (storage, layout) = grad.storage_and_layout();
            match &*storage {
                Storage::Cpu(s @ CpuStorage::F32(_)) => {
                    let v = sums(contiguous_slice::<f32>(s, layout, m * n)?, n);
                    return Tensor::from_vec(v, n, &Device::Cpu);
                }
                Storage::Cpu(s @ CpuStorage::F64(_)) => {
                    let v = sums(contiguous_slice::<f64>(s, layout, m * n)?, n);
                    return Tensor::from_vec(v, n, &Device::Cpu);
                }
                _ => {}
            }
        }
        grad.sum(0)
    }

    /// The gradients of `x` (None when it needs none) and `w`.
    fn input_and_weight_grads(
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor)> {
        let dx = if x.track_op() {
            Some(grad.matmul(w)?)
        } else {
            None
        };
        let dw = grad.t()?.matmul(x)?;
        Ok((dx, dw))
    }
}

impl CustomOp2 for DenseOp {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (out, m, n) = Self::product(x, lx, w, lw)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = Self::input_and_weight_grads(x, w, grad)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "dense-bias"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (mut out, m, n) = Self::product(x, lx, w, lw)?;
        fn add_rows<T: ConvElem>(out: &mut [T], bias: &[T]) {
            for row in out.chunks_exact_mut(bias.len()) {
                for (o, &b) in row.iter_mut().zip(bias) {
                    *o += b;
                }
            }
        }
        match &mut out {
            CpuStorage::F32(v) => add_rows(v, contiguous_slice::<f32>(b, lb, n)?),
            CpuStorage::F64(v) => add_rows(v, contiguous_slice::<f64>(b, lb, n)?),
            _ => candle_core::bail!("dense: only f32 and f64"),
        }
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = Self::input_and_weight_grads(x, w, grad)?;
        Ok((dx, Some(dw), Some(Self::column_sums(grad)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The fused layer gives candle-nn's `Linear` values and gradients (input, weight, bias),
    /// and computes no input gradient when the input needs none.
    #[test]
    fn dense_matches_linear_in_values_and_gradients() {
        let dev = Device::Cpu;
        for bias in [true, false] {
            let map = candle_nn::VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let layer = if bias {
                dense(7, 5, vb.pp("l")).unwrap()
            } else {
                Dense {
                    inner: candle_nn::linear_no_bias(7, 5, vb.pp("l")).unwrap(),
                }
            };
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 7), &dev).unwrap()).unwrap();
            let target = Tensor::randn(0f32, 1.0, (4, 5), &dev).unwrap();
            let loss = |y: &Tensor| y.sub(&target).unwrap().sqr().unwrap().sum_all().unwrap();
            let fused = layer.forward(x.as_tensor()).unwrap();
            let plain = layer.inner.forward(x.as_tensor()).unwrap();
            assert!(max_diff(&fused, &plain) < 1e-5);
            let (gf, gp) = (
                loss(&fused).backward().unwrap(),
                loss(&plain).backward().unwrap(),
            );
            let mut params: Vec<&Tensor> = vec![layer.weight(), x.as_tensor()];
            params.extend(layer.bias());
            for t in params {
                let (a, b) = (gf.get(t).unwrap(), gp.get(t).unwrap());
                assert!(
                    max_diff(a, b) < 1e-4,
                    "gradient differs by {}",
                    max_diff(a, b)
                );
                assert!(
                    a.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                        > 0.0
                );
            }
            // A plain tensor input (data, not a variable): no gradient is computed for it.
            let data = x.as_tensor().detach();
            let g = loss(&layer.forward(&data).unwrap()).backward().unwrap();
            assert!(g.get(&data).is_none());
            assert!(g.get(layer.weight()).is_some());
        }
    }

    /// The column-major forward product, in both element types and at sizes where gemm tiles
    /// and threads engage, equals candle's matmul; a strided input takes candle's path.
    #[test]
    fn dense_product_matches_matmul() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            for (m, k, n) in [(33, 70, 37), (1, 5, 3), (64, 300, 9)] {
                let map = candle_nn::VarMap::new();
                let vb = VarBuilder::from_varmap(&map, dtype, &dev);
                let layer = dense(k, n, vb.pp("l")).unwrap();
                let x = Tensor::randn(0f64, 1.0, (m, k), &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let expected = layer.inner.forward(&x).unwrap();
                let d = max_diff(&layer.forward(&x).unwrap(), &expected);
                assert!(d < 1e-4, "{dtype:?} {m}x{k}->{n}: {d}");
                let strided = x.t().unwrap().contiguous().unwrap().t().unwrap();
                let d = max_diff(&layer.forward(&strided).unwrap(), &expected);
                assert!(d < 1e-4, "{dtype:?} {m}x{k}->{n} strided: {d}");
                // The bias gradient's column sums: candle's values, to the bit.
                let sums = DenseOp::column_sums(&x).unwrap();
                assert_eq!(max_diff(&sums, &x.sum(0).unwrap()), 0.0, "{dtype:?} sums");
            }
        }
    }

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

    /// `f` run on a rayon pool of `threads` threads.
    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(f)
    }

    /// A CPU conv layer (with bias) whose parameters are named after `tag`.
    fn tagged_conv(
        vars: &crate::init::SeededVarMap,
        tag: &str,
        (cin, cout, k, s, p): (usize, usize, usize, usize, usize),
    ) -> Conv2d {
        let vb = vars.builder(&Device::Cpu).pp(tag.replace(' ', "_"));
        conv2d(cin, cout, k, s, p, vb).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The fused SiLU gives candle's values exactly and its gradient, in f32 and f64.
    #[test]
    fn silu_matches_candle() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(
                &Tensor::arange(-40000f32, 40000f32, &dev)
                    .unwrap()
                    .affine(3e-4, 0.0)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let ours = silu(x.as_tensor()).unwrap();
            let theirs = candle_nn::ops::silu(x.as_tensor()).unwrap();
            assert_eq!(max_diff(&ours, &theirs), 0.0);
            let w = x.as_tensor().cos().unwrap().detach();
            let grad = |y: &Tensor| {
                let g = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                g.get(x.as_tensor()).unwrap().clone()
            };
            let (a, b) = (grad(&ours), grad(&theirs));
            assert!(max_diff(&a, &b) < 1e-5, "{dtype:?}: {}", max_diff(&a, &b));
            assert!(max_diff(&a, &a.zeros_like().unwrap()) > 0.1);
        }
    }

    /// The CPU convolution gives bit-identical outputs and gradients whatever the thread
    /// count: with more examples than threads (examples split over threads) and fewer (one
    /// example at a time, threaded products), for 3×3 (stride 1 and 2), 1×1 and no-bias
    /// layers, in f32 and f64.
    #[test]
    fn conv_results_do_not_depend_on_thread_count() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            for (cin, cout, k, s, p, bias, up) in [
                (3, 5, 3, 1, 1, true, 1),
                (3, 4, 3, 2, 1, false, 1),
                (4, 2, 1, 1, 0, true, 1),
                (3, 5, 3, 1, 1, true, 2),
            ] {
                let run = |threads: usize| {
                    on_threads(threads, || {
                        let vars = crate::init::SeededVarMap::new(11);
                        let vb = vars.builder(&dev).set_dtype(dtype);
                        let conv = if bias {
                            conv2d(cin, cout, k, s, p, vb).unwrap()
                        } else {
                            conv2d_no_bias(cin, cout, k, s, p, vb).unwrap()
                        };
                        let x = Var::from_tensor(
                            &Tensor::arange(0f32, (3 * cin * 9 * 7) as f32, &dev)
                                .unwrap()
                                .reshape((3, cin, 9, 7))
                                .unwrap()
                                .sin()
                                .unwrap()
                                .to_dtype(dtype)
                                .unwrap(),
                        )
                        .unwrap();
                        let y = conv.forward_upsampled(x.as_tensor(), up).unwrap();
                        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                        let mut out = vec![y.flatten_all().unwrap()];
                        out.push(g.get(x.as_tensor()).unwrap().flatten_all().unwrap());
                        out.push(g.get(&conv.weight).unwrap().flatten_all().unwrap());
                        out.extend(conv.bias.as_ref().map(|b| g.get(b).unwrap().clone()));
                        out.into_iter()
                            .map(|t| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap())
                            .collect::<Vec<_>>()
                    })
                };
                let one = run(1);
                assert!(one[1].iter().any(|v| *v != 0.0));
                for threads in [2, 4] {
                    let tag = format!("{dtype:?} k{k} s{s} up{up}, {threads} threads");
                    assert_eq!(run(threads), one, "{tag}");
                }
            }
        }
    }

    /// Gradients of the input, weight and bias through the im2col op (CPU) and through the
    /// tensor-op fallback equal those through candle's own conv2d.
    #[test]
    fn im2col_conv_gradients_match_candle_conv() {
        let dev = Device::Cpu;
        let vars = crate::init::SeededVarMap::new(5);
        for (cin, cout, k, s, p, h, w) in [
            (2, 3, 3, 1, 1, 6, 5),
            (3, 2, 3, 2, 1, 8, 8),
            (2, 2, 3, 2, 1, 7, 9),
            (1, 4, 1, 1, 0, 4, 4),
            (2, 3, 5, 2, 2, 9, 7),
            (2, 2, 3, 3, 0, 9, 6),
            // Uneven: checked against the tap path only.
            (2, 3, 5, 2, 2, 9, 6),
            (2, 2, 3, 3, 0, 8, 7),
            (2, 3, 3, 2, 1, 8, 8),
        ] {
            let tag = format!("cin{cin} cout{cout} k{k} s{s} p{p} {h}x{w}");
            let conv = tagged_conv(&vars, &tag, (cin, cout, k, s, p));
            let n = 2 * cin * h * w;
            let x = candle_core::Var::from_tensor(
                &(Tensor::arange(0f32, n as f32, &dev)
                    .unwrap()
                    .reshape((2, cin, h, w))
                    .unwrap()
                    .sin()
                    .unwrap()
                    * 1.5)
                    .unwrap(),
            )
            .unwrap();
            let (ho, wo) = (conv.out_size(h), conv.out_size(w));
            let r = Tensor::arange(0f32, (2 * cout * ho * wo) as f32, &dev)
                .unwrap()
                .reshape((2, cout, ho, wo))
                .unwrap()
                .affine(0.37, 0.1)
                .unwrap()
                .cos()
                .unwrap();
            let bias = conv.bias.as_ref().unwrap();
            let grads_of = |y: Tensor| {
                let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                [x.as_tensor(), &conv.weight, bias].map(|t| g.get(t).unwrap().clone())
            };
            let ours = grads_of(conv.forward(x.as_tensor()).unwrap());
            let taps = grads_of(conv.forward_taps(x.as_tensor()).unwrap());
            // candle's conv2d backward gets the input gradient's shape wrong when the stride
            // does not divide the padded input evenly; compare with it where it is right.
            let even = (h + 2 * p - k) % s == 0 && (w + 2 * p - k) % s == 0;
            let reference = even.then(|| {
                grads_of(
                    x.as_tensor()
                        .conv2d(&conv.weight, p, s, 1, 1)
                        .unwrap()
                        .broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap())
                        .unwrap(),
                )
            });
            for (i, what) in ["input", "weight", "bias"].iter().enumerate() {
                let d = max_diff(&ours[i], &taps[i]);
                assert!(d < 1e-4, "{tag}: {what} gradient differs from taps by {d}");
                if let Some(reference) = &reference {
                    let d = max_diff(&ours[i], &reference[i]);
                    assert!(
                        d < 1e-4,
                        "{tag}: {what} gradient differs from candle by {d}"
                    );
                }
            }
        }
    }

    /// The convolution of an input upsampled inside the op equals upsampling first and then
    /// convolving, in values and in the input, weight and bias gradients — through each of
    /// the op's input-gradient paths (transposed convolution, patch scatter, 1×1).
    #[test]
    fn upsampled_conv_matches_upsample_then_conv() {
        let dev = Device::Cpu;
        let vars = crate::init::SeededVarMap::new(8);
        for (cin, cout, k, s, p, f) in [
            (3, 4, 3, 1, 1, 2),
            (2, 3, 3, 1, 1, 3),
            (2, 3, 3, 2, 1, 2),
            (3, 2, 1, 1, 0, 2),
            (2, 2, 3, 1, 1, 1),
        ] {
            let tag = format!("cin{cin} cout{cout} k{k} s{s} p{p} f{f}");
            let conv = tagged_conv(&vars, &tag, (cin, cout, k, s, p));
            let (b, h, w) = (3, 4, 5);
            let x = Var::from_tensor(
                &Tensor::arange(0f32, (b * cin * h * w) as f32, &dev)
                    .unwrap()
                    .reshape((b, cin, h, w))
                    .unwrap()
                    .affine(0.61, 0.2)
                    .unwrap()
                    .sin()
                    .unwrap(),
            )
            .unwrap();
            let fused = conv.forward_upsampled(x.as_tensor(), f).unwrap();
            let apart = conv
                .forward(&upsample_nearest(x.as_tensor(), f).unwrap())
                .unwrap();
            assert_eq!(fused.dims(), apart.dims(), "{tag}");
            assert!(max_diff(&fused, &apart) < 1e-5, "{tag}: values");
            let r = fused.ones_like().unwrap().cumsum(3).unwrap().cos().unwrap();
            let bias = conv.bias.as_ref().unwrap();
            let grads_of = |y: &Tensor| {
                let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                [x.as_tensor(), &conv.weight, bias].map(|t| g.get(t).unwrap().clone())
            };
            let (gf, ga) = (grads_of(&fused), grads_of(&apart));
            assert!(
                gf[0]
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.1
            );
            for (i, what) in ["input", "weight", "bias"].iter().enumerate() {
                assert_eq!(gf[i].dims(), ga[i].dims(), "{tag}: {what}");
                let d = max_diff(&gf[i], &ga[i]);
                assert!(d < 1e-4, "{tag}: {what} gradient differs by {d}");
            }
        }
    }

    /// The fused training-mode batch norm gives candle-nn's output, gradients and running
    /// statistics.
    #[test]
    fn batch_norm_matches_candle_nn() {
        let dev = Device::Cpu;
        for dims in [vec![6, 5], vec![4, 3, 5, 6]] {
            let c = dims[1];
            let n: usize = dims.iter().product();
            let make = || {
                let vars = crate::init::SeededVarMap::new(9);
                let norm = Norm::new(
                    NormKind::Batch,
                    c,
                    dims.len() > 2,
                    vars.builder(&dev).pp("bn"),
                )
                .unwrap();
                // Non-trivial affine parameters and running statistics.
                for (name, v) in vars.varmap().data().lock().unwrap().iter() {
                    let t = Tensor::arange(0f32, c as f32, &dev).unwrap();
                    let t = match name.as_str() {
                        "bn.weight" => (t * 0.3).unwrap() + 0.5,
                        "bn.bias" => (t * -0.2).unwrap() + 0.1,
                        "bn.running_mean" => (t * 0.1).unwrap() + 0.0,
                        _ => (t * 0.2).unwrap() + 1.0,
                    }
                    .unwrap();
                    v.set(&t).unwrap();
                }
                (vars, norm)
            };
            let (va, ours) = make();
            let (vb, theirs) = make();
            let x = Var::from_tensor(
                &(Tensor::arange(0f32, n as f32, &dev)
                    .unwrap()
                    .reshape(dims.clone())
                    .unwrap()
                    .affine(0.7, 0.3)
                    .unwrap()
                    .sin()
                    .unwrap()
                    * 2.0)
                    .unwrap(),
            )
            .unwrap();
            let r = Tensor::arange(0f32, n as f32, &dev)
                .unwrap()
                .reshape(dims.clone())
                .unwrap()
                .cos()
                .unwrap();
            let Norm::Batch(bn) = &theirs else { panic!() };
            let y_ours = ours.forward_t(x.as_tensor(), true).unwrap();
            let y_theirs = bn.forward_train(x.as_tensor()).unwrap();
            assert!(max_diff(&y_ours, &y_theirs) < 1e-5, "{dims:?} output");
            let ga = (y_ours * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gb = (y_theirs * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let da = va.varmap().data().lock().unwrap().clone();
            let db = vb.varmap().data().lock().unwrap().clone();
            let dx = max_diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x.as_tensor()).unwrap(),
            );
            assert!(dx < 1e-4, "{dims:?} input gradient {dx}");
            for name in ["bn.weight", "bn.bias"] {
                let d = max_diff(
                    ga.get(da[name].as_tensor()).unwrap(),
                    gb.get(db[name].as_tensor()).unwrap(),
                );
                assert!(d < 1e-4, "{dims:?} {name} gradient {d}");
            }
            for name in ["bn.running_mean", "bn.running_var"] {
                let d = max_diff(da[name].as_tensor(), db[name].as_tensor());
                assert!(d < 1e-6, "{dims:?} {name} {d}");
            }
            // Evaluation mode uses the running statistics.
            let e = max_diff(
                &ours.forward_t(x.as_tensor(), false).unwrap(),
                &theirs.forward_t(x.as_tensor(), false).unwrap(),
            );
            assert!(e < 1e-5, "{dims:?} eval {e}");
        }
    }

    /// Batch norm's output and gradients are the same bits on one thread and on three
    /// (channels and examples are split over threads, every sum keeps its order).
    #[test]
    fn batch_norm_does_not_depend_on_thread_count() {
        let dev = Device::Cpu;
        let (b, c, h, w) = (5, 3, 7, 9);
        let run = |threads: usize| {
            on_threads(threads, || {
                let vars = crate::init::SeededVarMap::new(4);
                let norm = Norm::new(NormKind::Batch, c, true, vars.builder(&dev)).unwrap();
                let n = (b * c * h * w) as f32;
                let x = Var::from_tensor(
                    &Tensor::arange(0f32, n, &dev)
                        .unwrap()
                        .reshape((b, c, h, w))
                        .unwrap()
                        .affine(0.37, 0.1)
                        .unwrap()
                        .sin()
                        .unwrap(),
                )
                .unwrap();
                let y = norm.forward_t(x.as_tensor(), true).unwrap();
                let grads = (y.sqr().unwrap() * 0.5)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let dx = grads.get(x.as_tensor()).unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(dx))
            })
        };
        let (y1, dx1) = run(1);
        let (y3, dx3) = run(3);
        assert!(y1.iter().map(|v| v.abs()).sum::<f32>() > 1.0);
        assert_eq!(y1, y3);
        assert_eq!(dx1, dx3);
    }

    /// The upsampling op and its backward equal the broadcast formulation.
    #[test]
    fn upsample_op_matches_broadcast() {
        let dev = Device::Cpu;
        for f in [1, 2, 3] {
            let x = Var::from_tensor(
                &Tensor::arange(0f32, 2. * 3. * 4. * 5., &dev)
                    .unwrap()
                    .reshape((2, 3, 4, 5))
                    .unwrap()
                    .sin()
                    .unwrap(),
            )
            .unwrap();
            let r = Tensor::arange(0f32, (2 * 3 * 4 * 5 * f * f) as f32, &dev)
                .unwrap()
                .reshape((2, 3, 4 * f, 5 * f))
                .unwrap()
                .cos()
                .unwrap();
            let ours = upsample_nearest(x.as_tensor(), f).unwrap();
            let reference = x
                .as_tensor()
                .reshape((2, 3, 4, 1, 5, 1))
                .unwrap()
                .broadcast_as((2, 3, 4, f, 5, f))
                .unwrap()
                .reshape((2, 3, 4 * f, 5 * f))
                .unwrap();
            assert_eq!(max_diff(&ours, &reference), 0.0);
            let grad = |y: &Tensor| {
                (y * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
                    .get(x.as_tensor())
                    .unwrap()
                    .clone()
            };
            assert!(max_diff(&grad(&ours), &grad(&reference)) < 1e-5);
        }
    }
}
