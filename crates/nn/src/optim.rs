//! AdamW with its state in the open, so that checkpoints hold the moment estimates and a
//! resumed run continues exactly where it stopped (candle-nn's AdamW keeps them private), and
//! with global-norm gradient clipping.
//!
//! On the CPU (f32 and f64 variables) a step is one fused pass over each parameter: parameter,
//! first and second moments are updated in place, with no intermediate tensors. The fused pass
//! does the same floating-point operations in the same order as the tensor-op formulation that
//! other devices run ([`AdamW`] keeps that path for them), so both give bit-identical results.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Storage, Tensor, Var};
use candle_nn::VarMap;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator term.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        }
    }
}

/// The moment estimates of one variable.
enum Moments {
    /// CPU f32 variable: plain buffers, updated in place by the fused step.
    F32 { m: Vec<f32>, v: Vec<f32> },
    /// CPU f64 variable.
    F64 { m: Vec<f64>, v: Vec<f64> },
    /// Any other device or dtype: tensors, updated with candle tensor ops.
    Tensor { m: Tensor, v: Tensor },
}

/// One optimised variable and its state.
struct Slot {
    name: String,
    var: Var,
    moments: Moments,
}

/// AdamW over the named variables of a [`VarMap`].
pub struct AdamW {
    cfg: AdamWConfig,
    /// Sorted by name: a fixed order makes the update (and the clipping norm's sum) repeatable.
    slots: Vec<Slot>,
    step: u64,
    /// Reused buffer for gradients that arrive with a non-contiguous layout (e.g. the
    /// transposed weight gradient of a linear layer).
    scratch32: Vec<f32>,
    scratch64: Vec<f64>,
    /// Use the fused CPU pass where possible (false only to test it against the tensor ops).
    fused: bool,
}

impl AdamW {
    /// Optimise every variable of `map`.
    pub fn new(map: &VarMap, cfg: AdamWConfig) -> Result<AdamW> {
        let data = map.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        drop(data);
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let moments = zero_moments(&var)?;
                Ok(Slot { name, var, moments })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            cfg,
            slots,
            step: 0,
            scratch32: Vec::new(),
            scratch64: Vec::new(),
            fused: true,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Backpropagate `loss` and take one step at learning rate `lr`. Gradients whose global L2
    /// norm exceeds `clip` (when `clip > 0`) are scaled down to it. Returns the norm before
    /// clipping.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64, clip: f64) -> Result<f64> {
        let grads = loss.backward()?;
        self.step_with(&grads, lr, clip)
    }

    /// One step with precomputed gradients.
    pub fn step_with(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let mut sq = 0f64;
        for slot in &self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                sq += sum_sq(g)?;
            }
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Ok(norm);
        }
        let scale = if clip > 0.0 && norm > clip {
            clip / norm
        } else {
            1.0
        };
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        let coefs = Coefs {
            scale: (scale != 1.0).then_some(scale),
            beta1,
            one_minus_beta1: 1.0 - beta1,
            beta2,
            one_minus_beta2: 1.0 - beta2,
            inv_bc1: 1.0 / bc1,
            inv_bc2: 1.0 / bc2,
            decay: 1.0 - lr * weight_decay,
            eps,
            lr,
        };
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let theta = slot.var.as_tensor();
            match &mut slot.moments {
                Moments::F32 { m, v } if self.fused => theta.inplace_op2(
                    g,
                    &FusedAdamW {
                        coefs,
                        m: RefCell::new(m),
                        v: RefCell::new(v),
                        scratch: RefCell::new(&mut self.scratch32),
                    },
                )?,
                Moments::F64 { m, v } if self.fused => theta.inplace_op2(
                    g,
                    &FusedAdamW {
                        coefs,
                        m: RefCell::new(m),
                        v: RefCell::new(v),
                        scratch: RefCell::new(&mut self.scratch64),
                    },
                )?,
                moments => tensor_step(&slot.var, g, moments, &coefs)?,
            }
        }
        Ok(norm)
    }

    /// The optimiser state as named tensors (`m.<var>`, `v.<var>`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for slot in &self.slots {
            let shape = slot.var.shape();
            let (m, v) = match &slot.moments {
                Moments::F32 { m, v } => (
                    Tensor::from_slice(m, shape, &Device::Cpu),
                    Tensor::from_slice(v, shape, &Device::Cpu),
                ),
                Moments::F64 { m, v } => (
                    Tensor::from_slice(m, shape, &Device::Cpu),
                    Tensor::from_slice(v, shape, &Device::Cpu),
                ),
                Moments::Tensor { m, v } => (Ok(m.clone()), Ok(v.clone())),
            };
            out.insert(
                format!("m.{}", slot.name),
                m.expect("moments have the variable's shape"),
            );
            out.insert(
                format!("v.{}", slot.name),
                v.expect("moments have the variable's shape"),
            );
        }
        out
    }

    /// Restore the state written by [`AdamW::state_tensors`], and the step count.
    pub fn load_state(
        &mut self,
        path: &Path,
        tensors: HashMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        for slot in &mut self.slots {
            let get = |prefix: &str| -> Result<Tensor> {
                let key = format!("{prefix}.{}", slot.name);
                let t = tensors.get(&key).ok_or_else(|| {
                    NnError::checkpoint(path, format!("optimiser state has no `{key}`"))
                })?;
                if t.shape() != slot.var.shape() {
                    return Err(NnError::checkpoint(
                        path,
                        format!(
                            "optimiser state `{key}` has shape {:?}, the model expects {:?}",
                            t.dims(),
                            slot.var.dims()
                        ),
                    ));
                }
                Ok(t.clone())
            };
            let (m, v) = (get("m")?, get("v")?);
            slot.moments = match slot.moments {
                Moments::F32 { .. } => Moments::F32 {
                    m: host_vec(&m)?,
                    v: host_vec(&v)?,
                },
                Moments::F64 { .. } => Moments::F64 {
                    m: host_vec(&m)?,
                    v: host_vec(&v)?,
                },
                Moments::Tensor { .. } => Moments::Tensor { m, v },
            };
        }
        self.step = step;
        Ok(())
    }
}

fn zero_moments(var: &Var) -> Result<Moments> {
    let n = var.elem_count();
    Ok(match (var.device(), var.dtype()) {
        (Device::Cpu, DType::F32) => Moments::F32 {
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
        (Device::Cpu, DType::F64) => Moments::F64 {
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
        _ => Moments::Tensor {
            m: var.as_tensor().zeros_like()?,
            v: var.as_tensor().zeros_like()?,
        },
    })
}

fn host_vec<T: candle_core::WithDType>(t: &Tensor) -> Result<Vec<T>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(T::DTYPE)?
        .flatten_all()?
        .to_vec1::<T>()?)
}

/// The scalars of one step (all in f64; the element type converts them as candle's `affine`
/// does).
#[derive(Debug, Clone, Copy)]
struct Coefs {
    /// Gradient scale from clipping (None: no clipping this step).
    scale: Option<f64>,
    beta1: f64,
    one_minus_beta1: f64,
    beta2: f64,
    one_minus_beta2: f64,
    inv_bc1: f64,
    inv_bc2: f64,
    /// 1 - lr·weight_decay.
    decay: f64,
    eps: f64,
    lr: f64,
}

/// The AdamW step with candle tensor ops (devices other than the CPU, other dtypes). Each
/// scalar operation is candle's `affine(mul, add)`, i.e. `x·mul + add` in the element type;
/// [`adamw_kernel`] repeats exactly these operations.
fn tensor_step(var: &Var, g: &Tensor, moments: &mut Moments, c: &Coefs) -> Result<()> {
    let Moments::Tensor { m, v } = moments else {
        // The CPU moments are only stepped here when the fused pass is switched off (tests).
        let (mut mt, mut vt) = match moments {
            Moments::F32 { m, v } => (
                Tensor::from_slice(m, var.shape(), &Device::Cpu)?,
                Tensor::from_slice(v, var.shape(), &Device::Cpu)?,
            ),
            Moments::F64 { m, v } => (
                Tensor::from_slice(m, var.shape(), &Device::Cpu)?,
                Tensor::from_slice(v, var.shape(), &Device::Cpu)?,
            ),
            Moments::Tensor { .. } => unreachable!(),
        };
        tensor_step_inner(var, g, &mut mt, &mut vt, c)?;
        *moments = match moments {
            Moments::F32 { .. } => Moments::F32 {
                m: host_vec(&mt)?,
                v: host_vec(&vt)?,
            },
            _ => Moments::F64 {
                m: host_vec(&mt)?,
                v: host_vec(&vt)?,
            },
        };
        return Ok(());
    };
    tensor_step_inner(var, g, m, v, c)
}

fn tensor_step_inner(
    var: &Var,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    c: &Coefs,
) -> Result<()> {
    let g = match c.scale {
        Some(s) => g.affine(s, 0.0)?,
        None => g.clone(),
    };
    *m = ((&*m * c.beta1)? + (&g * c.one_minus_beta1)?)?;
    *v = ((&*v * c.beta2)? + (g.sqr()? * c.one_minus_beta2)?)?;
    let m_hat = m.affine(c.inv_bc1, 0.0)?;
    let v_hat = v.affine(c.inv_bc2, 0.0)?;
    let theta = var.as_tensor();
    let decayed = (theta * c.decay)?;
    let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
    var.set(&(decayed - (update * c.lr)?)?)?;
    Ok(())
}

/// The element types of the fused CPU pass.
trait Float:
    Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + 'static
{
    const ZERO: Self;
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn storage(s: &CpuStorage) -> Option<&[Self]>;
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn storage(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut [f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    fn of(x: f64) -> f64 {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn storage(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut [f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// Elements per parallel task; also the block size of the norm's partial sums, which makes the
/// sum independent of the number of threads.
const CHUNK: usize = 1 << 14;

/// One fused AdamW step of a CPU parameter (the in-place destination) with its gradient.
struct FusedAdamW<'a, T> {
    coefs: Coefs,
    m: RefCell<&'a mut Vec<T>>,
    v: RefCell<&'a mut Vec<T>>,
    scratch: RefCell<&'a mut Vec<T>>,
}

impl<T: Float> InplaceOp2 for FusedAdamW<'_, T> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (Some(p), Some(g)) = (T::storage_mut(s1), T::storage(s2)) else {
            candle_core::bail!("fused-adamw: parameter and gradient must have the same dtype")
        };
        let Some((p0, p1)) = l1.contiguous_offsets() else {
            candle_core::bail!("fused-adamw: the parameter is not contiguous")
        };
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "fused-adamw: gradient shape {:?} for parameter {:?}",
                l2.dims(),
                l1.dims()
            )
        }
        let p = &mut p[p0..p1];
        let mut scratch = self.scratch.borrow_mut();
        let g: &[T] = match l2.contiguous_offsets() {
            Some((g0, g1)) => &g[g0..g1],
            None => {
                gather(g, l2, &mut scratch);
                &scratch[..]
            }
        };
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        let (m, v) = (&mut m[..], &mut v[..]);
        if p.len() != m.len() || p.len() != v.len() {
            candle_core::bail!("fused-adamw: state size does not match the parameter")
        }
        let c = self.coefs;
        if p.len() >= 2 * CHUNK {
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| adamw_kernel(p, g, m, v, &c));
        } else {
            adamw_kernel(p, g, m, v, &c);
        }
        Ok(())
    }
}

/// The AdamW update, element by element, with exactly the operations of [`tensor_step`]
/// (`affine(mul, add)` is `x·mul + add`; the `+ 0` only normalises negative zeros).
#[inline(always)]
fn adamw_kernel<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: &Coefs) {
    let z = T::ZERO;
    let (b1, omb1, b2, omb2) = (
        T::of(c.beta1),
        T::of(c.one_minus_beta1),
        T::of(c.beta2),
        T::of(c.one_minus_beta2),
    );
    let (ibc1, ibc2, decay, eps, lr) = (
        T::of(c.inv_bc1),
        T::of(c.inv_bc2),
        T::of(c.decay),
        T::of(c.eps),
        T::of(c.lr),
    );
    let one = T::of(1.0);
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let step = |p: &mut T, g: T, m: &mut T, v: &mut T| {
        let mi = (*m * b1 + z) + (g * omb1 + z);
        let vi = (*v * b2 + z) + ((g * g) * omb2 + z);
        *m = mi;
        *v = vi;
        let m_hat = mi * ibc1 + z;
        let v_hat = vi * ibc2 + z;
        let decayed = *p * decay + z;
        let update = m_hat / (v_hat.sqrt() * one + eps);
        *p = decayed - (update * lr + z);
    };
    match c.scale {
        Some(s) => {
            let s = T::of(s);
            for i in 0..n {
                step(&mut p[i], g[i] * s + z, &mut m[i], &mut v[i]);
            }
        }
        None => {
            for i in 0..n {
                step(&mut p[i], g[i], &mut m[i], &mut v[i]);
            }
        }
    }
}

/// Copy a strided view into `out` in row-major order.
fn gather<T: Copy>(src: &[T], l: &Layout, out: &mut Vec<T>) {
    out.clear();
    let dims = l.dims();
    let stride = l.stride();
    if dims.len() == 2 && stride[1] != 1 {
        // A transposed matrix (the usual non-contiguous gradient): copy in tiles so that both
        // sides stay in cache.
        let (r, c) = (dims[0], dims[1]);
        let (sr, sc) = (stride[0], stride[1]);
        let base = l.start_offset();
        out.resize(r * c, src[base]);
        const TILE: usize = 32;
        for i0 in (0..r).step_by(TILE) {
            for j0 in (0..c).step_by(TILE) {
                for j in j0..(j0 + TILE).min(c) {
                    for i in i0..(i0 + TILE).min(r) {
                        out[i * c + j] = src[base + i * sr + j * sc];
                    }
                }
            }
        }
        return;
    }
    fn rec<T: Copy>(src: &[T], dims: &[usize], stride: &[usize], off: usize, out: &mut Vec<T>) {
        match dims.len() {
            0 => out.push(src[off]),
            1 => out.extend((0..dims[0]).map(|i| src[off + i * stride[0]])),
            _ => {
                for i in 0..dims[0] {
                    rec(src, &dims[1..], &stride[1..], off + i * stride[0], out);
                }
            }
        }
    }
    out.reserve(l.shape().elem_count());
    rec(src, dims, stride, l.start_offset(), out);
}

/// If `l` is a permutation of a dense block (e.g. a transpose), the storage range it covers.
fn dense_span(l: &Layout) -> Option<(usize, usize)> {
    if let Some(span) = l.contiguous_offsets() {
        return Some(span);
    }
    let mut dims: Vec<(usize, usize)> = l
        .dims()
        .iter()
        .zip(l.stride())
        .filter(|(&d, _)| d > 1)
        .map(|(&d, &s)| (s, d))
        .collect();
    dims.sort_unstable();
    let mut expect = 1;
    for (s, d) in dims {
        if s != expect {
            return None;
        }
        expect *= d;
    }
    Some((l.start_offset(), l.start_offset() + expect))
}

fn sum_sq_slice<T: Float>(x: &[T]) -> f64 {
    let part = |x: &[T]| {
        let mut acc = [0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for j in 0..8 {
                let v = c[j].to_f64();
                acc[j] += v * v;
            }
        }
        let mut s: f64 = chunks
            .remainder()
            .iter()
            .map(|v| v.to_f64() * v.to_f64())
            .sum();
        for a in acc {
            s += a;
        }
        s
    };
    if x.len() >= 2 * CHUNK {
        let parts: Vec<f64> = x.par_chunks(CHUNK).map(part).collect();
        parts.iter().sum()
    } else {
        x.chunks(CHUNK).map(part).sum()
    }
}

/// Sum of the squared elements of a gradient, in f64.
fn sum_sq(g: &Tensor) -> Result<f64> {
    {
        let (storage, layout) = g.storage_and_layout();
        if let (Storage::Cpu(s), Some((a, b))) = (&*storage, dense_span(layout)) {
            match s {
                CpuStorage::F32(x) => return Ok(sum_sq_slice(&x[a..b])),
                CpuStorage::F64(x) => return Ok(sum_sq_slice(&x[a..b])),
                _ => {}
            }
        }
    }
    Ok(g.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few steps of the fused CPU pass and of the tensor-op path from the same start give
    /// bit-identical parameters and moments (with and without clipping, contiguous and
    /// transposed gradients, f32 and f64).
    #[test]
    fn fused_step_equals_tensor_ops() {
        for dtype in [DType::F32, DType::F64] {
            let mk = || {
                let map = VarMap::new();
                {
                    let mut data = map.data().lock().unwrap();
                    let w = Tensor::arange(0f32, 12.0 * 70.0, &Device::Cpu)
                        .unwrap()
                        .reshape((12, 70))
                        .unwrap()
                        .sin()
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap();
                    data.insert("w".into(), Var::from_tensor(&w).unwrap());
                    let big = Tensor::arange(0f32, 40000.0, &Device::Cpu)
                        .unwrap()
                        .cos()
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap();
                    data.insert("big".into(), Var::from_tensor(&big).unwrap());
                }
                map
            };
            let (a, b) = (mk(), mk());
            let mut fa = AdamW::new(&a, AdamWConfig::default()).unwrap();
            let mut fb = AdamW::new(&b, AdamWConfig::default()).unwrap();
            fb.fused = false;
            for (step, clip) in [(0, 0.0), (1, 0.5), (2, 0.0), (3, 1e-3), (4, 0.0)] {
                let mut norms = vec![];
                for (map, opt) in [(&a, &mut fa), (&b, &mut fb)] {
                    let data = map.data().lock().unwrap();
                    let (w, big) = (
                        data["w"].as_tensor().clone(),
                        data["big"].as_tensor().clone(),
                    );
                    drop(data);
                    // A transposed use of w gives a non-contiguous gradient.
                    let x = Tensor::arange(0f32, 70.0 * 5.0, &Device::Cpu)
                        .unwrap()
                        .reshape((5, 70))
                        .unwrap()
                        .affine(0.01 * (step + 1) as f64, -1.0)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap();
                    let y = x.matmul(&w.t().unwrap()).unwrap().tanh().unwrap();
                    let loss = (y.sqr().unwrap().sum_all().unwrap()
                        + (big.sqr().unwrap() * 0.001).unwrap().sum_all().unwrap())
                    .unwrap();
                    norms.push(opt.backward_step(&loss, 0.01, clip).unwrap());
                }
                assert!((norms[0] - norms[1]).abs() <= 1e-9 * norms[0], "{norms:?}");
            }
            let sa = fa.state_tensors();
            let sb = fb.state_tensors();
            let bits = |t: &Tensor| -> Vec<u64> {
                t.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect()
            };
            for (k, t) in &sa {
                assert_eq!(bits(t), bits(&sb[k]), "{k} {dtype:?}");
            }
            for name in ["w", "big"] {
                let wa = a.data().lock().unwrap()[name].as_tensor().clone();
                let wb = b.data().lock().unwrap()[name].as_tensor().clone();
                assert_eq!(bits(&wa), bits(&wb), "{name} {dtype:?}");
            }
        }
    }

    #[test]
    fn gather_and_span() {
        let t = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        for view in [
            t.transpose(1, 2).unwrap(),
            t.permute((2, 0, 1)).unwrap(),
            t.narrow(2, 1, 2).unwrap(),
            t.reshape((6, 4)).unwrap().t().unwrap(),
        ] {
            let (s, l) = view.storage_and_layout();
            let Storage::Cpu(CpuStorage::F32(x)) = &*s else {
                panic!()
            };
            let mut out = vec![];
            gather(x, l, &mut out);
            let want = view.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(out, want);
            let span = dense_span(l);
            if view.dims()[view.rank() - 1] == 2 {
                assert_eq!(span, None);
            } else {
                assert_eq!(span, Some((0, 24)));
            }
        }
    }
}
