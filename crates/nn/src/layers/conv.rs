//! The 2-D convolution layer, [`Conv2d`] (built by [`conv2d`] or [`conv2d_no_bias`]): its
//! parameters, the shapes of one call (`ConvGeom`), and the choice between the CPU op (whose
//! kernels are in `conv_cpu`) and the tensor-op path that other devices and dtypes take. Why
//! the layer is not candle-nn's `Conv2d` is on [`Conv2d`].

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{conv_cpu, upsample_nearest};

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
    /// The weight `(out, in, k, k)` and the bias, if any (for compiling the layer, see
    /// [`crate::infer`]).
    pub fn parameters(&self) -> (&Tensor, Option<&Tensor>) {
        (&self.weight, self.bias.as_ref())
    }

    /// Stride.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Zero padding on each side.
    pub fn padding(&self) -> usize {
        self.padding
    }

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
    /// gradients, so the CPU uses the op in `conv_cpu` instead.
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
pub(super) struct ConvGeom {
    pub(super) b: usize,
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) p: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
}

impl ConvGeom {
    pub(super) fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    /// The output positions `o` (along an axis of `n` input pixels and `out` outputs) whose tap
    /// `d` falls inside the input: `o·s + d - p` in `[0, n)`.
    pub(super) fn valid(&self, d: usize, n: usize, out: usize) -> std::ops::Range<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::{max_diff, on_threads};
    use candle_core::{Device, Var};

    /// A CPU conv layer (with bias) whose parameters are named after `tag`.
    fn tagged_conv(
        vars: &crate::init::SeededVarMap,
        tag: &str,
        (cin, cout, k, s, p): (usize, usize, usize, usize, usize),
    ) -> Conv2d {
        let vb = vars.builder(&Device::Cpu).pp(tag.replace(' ', "_"));
        conv2d(cin, cout, k, s, p, vb).unwrap()
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
            // Maps smaller than the kernel's reach (the deepest levels of a small image).
            (3, 1, 1, 1, 1),
            (3, 1, 1, 1, 4),
            (5, 1, 2, 2, 3),
            (3, 2, 1, 1, 2),
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
            let diff = max_diff(&ours, &reference);
            assert!(diff < 1e-4, "k{k} s{s} p{p}: {diff}");
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
            (2, 3, 3, 1, 1, 1, 1),
            (2, 2, 5, 1, 2, 2, 3),
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
}
