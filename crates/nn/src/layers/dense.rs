//! The fully connected layer, [`Dense`] (built by [`dense`]), and `DenseOp`, its CPU op: the
//! forward one matrix product written column-major, the backward only the products it needs,
//! each gradient handed to candle once. Why the layer is not candle-nn's `Linear` on the CPU is
//! on [`Dense`]; the measurements are in BENCHMARKS.md.

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Module, Result, Shape, Storage, Tensor,
};
use candle_nn::VarBuilder;

use super::cpu::{contiguous_slice, gemm_into, CpuFloat};

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
/// [`candle_nn::linear()`]).
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
    fn product_by_columns<T: CpuFloat>(
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
        gemm_into(n, m, k, &mut yt, false, wm, xt, par);
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
        fn sums<T: CpuFloat>(g: &[T], n: usize) -> Vec<T> {
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
        fn add_rows<T: CpuFloat>(out: &mut [T], bias: &[T]) {
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
    use crate::layers::test_util::max_diff;
    use candle_core::{DType, Device, Var};

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
}
