//! Normalisations chosen by name in configs ([`NormKind`], built as a [`Norm`]), and batch
//! normalisation in training mode as one CPU op.
//!
//! Why an op of our own: candle-nn's `BatchNorm::forward_train` runs about a dozen tensor ops,
//! each with a full-size result and a full-size backward. The op computes the statistics in
//! one pass and the output in another, and has an analytic backward; channels and examples run
//! on all threads, every sum in a fixed order, so the bits do not depend on the thread count.

use candle_core::{
    CpuStorage, CustomOp3, DType, Device, Layout, Module, ModuleT, Result, Shape, Storage, Tensor,
    Var,
};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cpu::{contiguous_slice, CpuFloat};

/// Normalisation after a layer, by name in configs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
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

/// Batch normalisation in training mode on the CPU as one custom op (statistics in one pass,
/// output in another, an analytic backward), for the batch norms [`Norm::new`] builds (affine,
/// mean removed). The output is computed as candle-nn does,
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
fn lane_sum<T: CpuFloat>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
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
fn lane_sum2<T: CpuFloat>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
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
fn bn_stats<T: CpuFloat>(x: &[T], g: &BnGeom) -> (Vec<f64>, Vec<f64>) {
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
    fn forward<T: CpuFloat>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
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
    fn backward<T: CpuFloat>(&self, x: &[T], w: &[T], dy: &[T]) -> (Vec<T>, Vec<T>, Vec<T>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::{max_diff, on_threads};
    use candle_core::{Device, Var};

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
}
