//! Nearest-neighbour upsampling, [`upsample_nearest`], and `Upsample`, the CPU op behind it,
//! whose per-plane kernels the convolution also runs to upsample each example inside its own
//! op ([`Conv2d::forward_upsampled`](super::Conv2d::forward_upsampled)). Why an op of our own
//! is on [`upsample_nearest`]; both directions are vectorised loops with planes on all
//! threads.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{contiguous_slice, CpuFloat};

/// Nearest-neighbour upsampling of a contiguous `(b, c, h, w)` CPU tensor by `f` (CPU op);
/// its backward sums each `f × f` block.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upsample {
    pub(super) planes: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) f: usize,
}

impl Upsample {
    /// One plane `(h, w)` into `out` `(h·f, w·f)`.
    pub(super) fn plane<T: CpuFloat>(&self, x: &[T], out: &mut [T]) {
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
    fn plane_adjoint<T: CpuFloat>(&self, dy: &[T], out: &mut [T]) {
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
    fn forward<T: CpuFloat>(&self, x: &[T]) -> Vec<T> {
        let (hw, f2) = (self.h * self.w, self.f * self.f);
        let mut out = vec![T::zero(); self.planes * hw * f2];
        out.par_chunks_mut(hw * f2)
            .zip(x.par_chunks(hw))
            .for_each(|(o, x)| self.plane(x, o));
        out
    }

    pub(super) fn backward<T: CpuFloat>(&self, dy: &[T]) -> Vec<T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::max_diff;
    use candle_core::{Device, Var};

    /// Each pixel becomes an `f × f` block.
    #[test]
    fn upsample_repeats_each_pixel() {
        let dev = Device::Cpu;
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
