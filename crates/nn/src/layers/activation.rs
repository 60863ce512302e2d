//! Activations chosen by name in configs ([`Act`]), and SiLU ([`silu`]) as one CPU op.
//!
//! Why an op of our own is on [`silu`]. Its backward takes σ(x) from the forward's output
//! rather than computing a second exponential: recomputed, that exponential is half of the
//! 8 % of a conv-autoencoder training step that `perf` gives to `exp` (BENCHMARKS.md).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cpu::{contiguous_slice, CpuFloat};

/// Activation function, by name in configs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
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
    fn forward<T: CpuFloat>(x: &[T]) -> Vec<T> {
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
    /// as y / x rather than recomputed: a division instead of an exponential, which would be
    /// most of this pass's time; at x = 0, where the quotient is undefined, σ = 1/2.
    fn backward<T: CpuFloat>(x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
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
        fn input_grad<T: CpuFloat>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::max_diff;
    use candle_core::{DType, Device, Var};

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
}
