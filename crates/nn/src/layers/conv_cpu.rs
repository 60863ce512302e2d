//! The CPU convolution as one custom op: forward and backward call gemm per example on
//! im2col patches kept in a scratch buffer, so no patch matrix ever enters candle's graph.
//!
//! Why one op: as separate graph nodes (im2col → matmul → layout), every node's gradient is
//! a zero-filled buffer plus an add (candle's gradient store), the patch matrix — the largest
//! tensor of a small conv net, `c·k·k` times the output — is allocated, zeroed and
//! accumulated twice, and candle's matmul backward packs transposed operands. Here the
//! backward computes `dx` (only when the input needs it), `dW` and `db` straight from the
//! storages and hands each gradient over once.
//!
//! Work is split over the examples of the batch (one gemm per example, its own scratch);
//! with fewer examples than threads (inference on one tile) the examples run in turn and
//! each gemm uses the threads. Weight and bias gradients are summed over examples in a
//! fixed order, so results do not depend on the thread count.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::conv::ConvGeom;
use super::cpu::{contiguous_slice, gemm_into, CpuFloat};
use super::upsample::Upsample;

/// The patches of one example `(c, h, w)` as `(c·k·k, ho·wo)` (row `(ci·k + di)·k + dj`),
/// every element written (zeros where a tap falls in the padding); rows on all threads when
/// `threaded` (examples running in turn).
fn im2col_example<T: CpuFloat>(x: &[T], g: &ConvGeom, dst: &mut [T], threaded: bool) {
    let (hw, howo) = (g.h * g.w, g.ho * g.wo);
    let fill_row = |(row, d): (usize, &mut [T])| {
        let (ci, di, dj) = (row / (g.k * g.k), row / g.k % g.k, row % g.k);
        let src = &x[ci * hw..][..hw];
        let ys = g.valid(di, g.h, g.ho);
        let xs = g.valid(dj, g.w, g.wo);
        let (lo, hi) = (ys.start * g.wo, ys.end * g.wo);
        d[..lo].fill(T::zero());
        d[hi..].fill(T::zero());
        if g.s == 1 && g.w == g.wo {
            // Stride 1, output as wide as the input: over the valid rows the patch row is
            // the plane shifted by one offset, so one copy does it; the taps that wrapped
            // into a neighbouring row (columns outside `xs`) are zeroed after.
            let shift = (di * g.w + dj) as isize - (g.p * g.w + g.p) as isize;
            let from = (lo as isize + shift).clamp(0, hw as isize);
            let to = (hi as isize + shift).min(hw as isize);
            let a = (from - shift).clamp(lo as isize, hi as isize) as usize;
            let b = (to - shift).clamp(a as isize, hi as isize) as usize;
            d[lo..a].fill(T::zero());
            d[a..b].copy_from_slice(&src[from as usize..from as usize + (b - a)]);
            d[b..hi].fill(T::zero());
            // Column by column down the rows (a column or two; a fill per row would be a call
            // each). A tap with no valid output row (a map smaller than the kernel's reach)
            // has nothing left to zero.
            if lo < hi {
                for ox in (0..xs.start).chain(xs.end..g.wo) {
                    for v in d[lo + ox..hi].iter_mut().step_by(g.wo) {
                        *v = T::zero();
                    }
                }
            }
            return;
        }
        for oy in ys {
            let srow = &src[(oy * g.s + di - g.p) * g.w..][..g.w];
            let drow = &mut d[oy * g.wo..][..g.wo];
            drow[..xs.start].fill(T::zero());
            drow[xs.end..].fill(T::zero());
            if xs.is_empty() {
                continue;
            }
            let taps = srow[xs.start * g.s + dj - g.p..].iter().step_by(g.s);
            for (d, &v) in drow[xs.clone()].iter_mut().zip(taps) {
                *d = v;
            }
        }
    };
    let dst = &mut dst[..g.rows() * howo];
    if threaded {
        dst.par_chunks_exact_mut(howo)
            .enumerate()
            .for_each(fill_row);
    } else {
        dst.chunks_exact_mut(howo).enumerate().for_each(fill_row);
    }
}

/// The adjoint of [`im2col_example`]: each patch value added into `dx` `(c, h, w)`; channel
/// planes on all threads when `threaded`.
fn col2im_example<T: CpuFloat>(cols: &[T], g: &ConvGeom, dx: &mut [T], threaded: bool) {
    let (hw, howo) = (g.h * g.w, g.ho * g.wo);
    let add_plane = |(ci, plane): (usize, &mut [T])| {
        for di in 0..g.k {
            let ys = g.valid(di, g.h, g.ho);
            for dj in 0..g.k {
                let xs = g.valid(dj, g.w, g.wo);
                let src = &cols[((ci * g.k + di) * g.k + dj) * howo..][..howo];
                for oy in ys.clone() {
                    let drow = &mut plane[(oy * g.s + di - g.p) * g.w..][..g.w];
                    let srow = &src[oy * g.wo..][..g.wo];
                    if g.s == 1 {
                        let ix0 = xs.start + dj - g.p;
                        for (d, &v) in drow[ix0..ix0 + xs.len()].iter_mut().zip(&srow[xs.clone()]) {
                            *d += v;
                        }
                    } else {
                        for ox in xs.clone() {
                            drow[ox * g.s + dj - g.p] += srow[ox];
                        }
                    }
                }
            }
        }
    };
    let dx = &mut dx[..g.c * hw];
    if threaded {
        dx.par_chunks_exact_mut(hw).enumerate().for_each(add_plane);
    } else {
        dx.chunks_exact_mut(hw).enumerate().for_each(add_plane);
    }
}

/// The fused convolution: `(x, weight[, bias])`, `x` `(b, c, h, w)` → `(b, cout, ho, wo)`.
///
/// With `up` > 1 the input is `(b, c, h/up, w/up)` and the convolution runs on its
/// nearest-neighbour upsampling (`geom` describes that upsampled input), made per example in
/// scratch: a decoder's upsample + conv without the upsampled batch as a tensor of its own,
/// whose graph node would cost a full-size gradient buffer and a separate block-sum pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConvOp {
    pub(super) geom: ConvGeom,
    pub(super) cout: usize,
    pub(super) up: usize,
}

/// Examples in parallel (each gemm on one thread), or in turn with threaded gemms.
fn split(b: usize) -> (bool, Parallelism) {
    let threads = rayon::current_num_threads();
    if b >= threads || threads == 1 {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(threads))
    }
}

/// Run `f(example, chunk, scratch)` over `out`'s per-example chunks of `len`, each task with
/// its own scratch of `scratch_len` elements.
fn per_example<T: CpuFloat, F>(out: &mut [T], len: usize, scratch_len: usize, par: bool, f: F)
where
    F: Fn(usize, &mut [T], &mut Vec<T>) + Sync + Send,
{
    if par {
        out.par_chunks_mut(len).enumerate().for_each_init(
            || vec![T::zero(); scratch_len],
            |scratch, (i, chunk)| f(i, chunk, scratch),
        );
    } else {
        let mut scratch = vec![T::zero(); scratch_len];
        for (i, chunk) in out.chunks_mut(len).enumerate() {
            f(i, chunk, &mut scratch);
        }
    }
}

impl ConvOp {
    /// 1×1 convolutions without stride or padding (and no upsampling) use the input as its
    /// own patch matrix.
    fn pointwise(&self) -> bool {
        let g = &self.geom;
        g.k == 1 && g.s == 1 && g.p == 0 && self.up == 1
    }

    /// The upsampling of one `(h/up, w/up)` input plane.
    fn upsampler(&self) -> Upsample {
        let g = &self.geom;
        Upsample {
            planes: g.c,
            h: g.h / self.up,
            w: g.w / self.up,
            f: self.up,
        }
    }

    /// Elements of one example of the op's input (before upsampling).
    fn input_example_len(&self) -> usize {
        let g = &self.geom;
        g.c * g.h * g.w / (self.up * self.up)
    }

    /// Elements of the op's input.
    pub(super) fn input_len(&self) -> usize {
        self.geom.b * self.input_example_len()
    }

    /// Scratch per task: the patches, then (with upsampling) the upsampled example.
    fn scratch_len(&self) -> usize {
        let g = &self.geom;
        let patches = if self.pointwise() {
            0
        } else {
            g.rows() * g.ho * g.wo
        };
        let upsampled = if self.up > 1 { g.c * g.h * g.w } else { 0 };
        patches + upsampled
    }

    /// The patch matrix of example `i` of `x` (`x` itself for pointwise convolutions),
    /// built in `scratch`.
    fn patches<'a, T: CpuFloat>(
        &self,
        x: &'a [T],
        i: usize,
        scratch: &'a mut [T],
        threaded: bool,
    ) -> &'a [T] {
        let g = &self.geom;
        let len = self.input_example_len();
        let xb = &x[i * len..][..len];
        if self.pointwise() {
            return xb;
        }
        let (cols, rest) = scratch.split_at_mut(g.rows() * g.ho * g.wo);
        let xb: &[T] = if self.up > 1 {
            let u = self.upsampler();
            let (hw, f2) = (u.h * u.w, u.f * u.f);
            for (src, dst) in xb.chunks_exact(hw).zip(rest.chunks_exact_mut(hw * f2)) {
                u.plane(src, dst);
            }
            rest
        } else {
            xb
        };
        im2col_example(xb, g, cols, threaded);
        cols
    }

    fn forward<T: CpuFloat>(&self, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
        let g = &self.geom;
        let (rows, howo) = (g.rows(), g.ho * g.wo);
        let (par, gpar) = split(g.b);
        let mut y = vec![T::zero(); g.b * self.cout * howo];
        // The patches go to a per-task scratch that stays in cache (keeping all of them for
        // the backward, instead of gathering them again there, measured slower).
        per_example(
            &mut y,
            self.cout * howo,
            self.scratch_len(),
            par,
            |i, yb, scratch| {
                let patches = self.patches(x, i, scratch, !par);
                if let Some(bias) = bias {
                    for (row, &bv) in yb.chunks_exact_mut(howo).zip(bias) {
                        row.fill(bv);
                    }
                }
                let wm = (w, rows as isize, 1);
                let pm = (patches, howo as isize, 1);
                gemm_into(self.cout, howo, rows, yb, bias.is_some(), wm, pm, gpar);
            },
        );
        y
    }

    /// For stride 1 (and padding below the kernel size), the input gradient is itself a
    /// stride-1 convolution: of the output gradient with the kernel flipped in space and its
    /// channel axes swapped, padded by `k - 1 - p`. Computed so, one gemm per example reads
    /// `cout·k·k` patch rows instead of writing `c·k·k` rows of patch gradients (for a 1-channel
    /// output layer, a 1-deep outer product) and scattering them back.
    fn transposed<T: CpuFloat>(&self, w: &[T]) -> Option<(ConvOp, Vec<T>)> {
        let g = &self.geom;
        if g.s != 1 || g.p >= g.k || g.k == 1 {
            return None;
        }
        let (k, c, cout) = (g.k, g.c, self.cout);
        // w'[ci, o, a, b] = w[o, ci, k-1-a, k-1-b]
        let mut wt = vec![T::zero(); w.len()];
        for o in 0..cout {
            for ci in 0..c {
                for a in 0..k {
                    for b in 0..k {
                        wt[((ci * cout + o) * k + a) * k + b] =
                            w[((o * c + ci) * k + (k - 1 - a)) * k + (k - 1 - b)];
                    }
                }
            }
        }
        let geom = ConvGeom {
            b: g.b,
            c: cout,
            h: g.ho,
            w: g.wo,
            k,
            s: 1,
            p: k - 1 - g.p,
            ho: g.h,
            wo: g.w,
        };
        // Only when that convolution's output is exactly the input's size.
        let fits = g.ho + 2 * geom.p + 1 == g.h + k && g.wo + 2 * geom.p + 1 == g.w + k;
        fits.then_some((
            ConvOp {
                geom,
                cout: c,
                up: 1,
            },
            wt,
        ))
    }

    /// `dx` as `Wᵀ·dy_b` per example, each patch gradient added back onto its pixels.
    fn input_grad_by_col2im<T: CpuFloat>(
        &self,
        w: &[T],
        dy: &[T],
        par: bool,
        gpar: Parallelism,
    ) -> Vec<T> {
        let g = &self.geom;
        let (rows, howo, chw) = (g.rows(), g.ho * g.wo, g.c * g.h * g.w);
        let cout = self.cout;
        // The gradient of the (upsampled) convolution input; pointwise only without upsampling.
        let pointwise = g.k == 1 && g.s == 1 && g.p == 0;
        let mut dx = vec![T::zero(); g.b * chw];
        // dcols = Wᵀ·dy_b, then scattered back onto the pixels (1×1: dcols is dx_b).
        let scratch = if pointwise { 0 } else { rows * howo };
        per_example(&mut dx, chw, scratch, par, |i, dxb, dcols| {
            let dyb = &dy[i * cout * howo..][..cout * howo];
            let wt = (w, 1, rows as isize);
            let dm = (dyb, howo as isize, 1);
            if pointwise {
                gemm_into(rows, howo, cout, dxb, false, wt, dm, gpar);
            } else {
                gemm_into(rows, howo, cout, dcols, false, wt, dm, gpar);
                col2im_example(dcols, g, dxb, !par);
            }
        });
        dx
    }

    /// `dx` (when wanted), `dW`, and `db` (when the layer has a bias) for the output
    /// gradient `dy`.
    fn backward<T: CpuFloat>(
        &self,
        x: &[T],
        w: &[T],
        dy: &[T],
        want_dx: bool,
        want_db: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Option<Vec<T>>) {
        let g = &self.geom;
        let (rows, howo) = (g.rows(), g.ho * g.wo);
        let cout = self.cout;
        let (par, gpar) = split(g.b);
        let dx = want_dx.then(|| {
            let dx = match self.transposed(w) {
                Some((op, wt)) => op.forward(dy, &wt, None),
                None => self.input_grad_by_col2im(w, dy, par, gpar),
            };
            if self.up == 1 {
                return dx;
            }
            // Back through the upsampling: each input pixel's gradient is the sum of its block.
            let batch = Upsample {
                planes: g.b * g.c,
                ..self.upsampler()
            };
            batch.backward(&dx)
        });
        // Per-example dW_b and db_b, then summed in example order.
        let per = cout * rows + cout;
        let mut parts = vec![T::zero(); g.b * per];
        per_example(
            &mut parts,
            per,
            self.scratch_len(),
            par,
            |i, part, scratch| {
                let dyb = &dy[i * cout * howo..][..cout * howo];
                let patches = self.patches(x, i, scratch, !par);
                let (dw, db) = part.split_at_mut(cout * rows);
                // dW_bᵀ = cols_b·dy_bᵀ, `(c·k·k, cout)`: both operands read along their rows
                // (the product with k = ho·wo), measured faster than dy_b·cols_bᵀ.
                let pm = (patches, howo as isize, 1);
                let dt = (dyb, 1, howo as isize);
                gemm_into(rows, cout, howo, dw, false, pm, dt, gpar);
                if want_db {
                    for (d, row) in db.iter_mut().zip(dyb.chunks_exact(howo)) {
                        *d = T::from_f64(row.iter().map(|v| v.to_f64()).sum::<f64>());
                    }
                }
            },
        );
        let mut total = vec![T::zero(); per];
        for part in parts.chunks_exact(per) {
            for (t, &v) in total.iter_mut().zip(part) {
                *t += v;
            }
        }
        let db = total.split_off(cout * rows);
        // (c·k·k, cout) → (cout, c·k·k)
        let mut dw = vec![T::zero(); cout * rows];
        for (r, row) in total.chunks_exact(cout).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                dw[o * rows + r] = v;
            }
        }
        (dx, dw, want_db.then_some(db))
    }

    fn fwd_storage(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geom;
        let (nx, nw) = (self.input_len(), self.cout * g.rows());
        fn run<T: CpuFloat>(
            op: &ConvOp,
            x: (&CpuStorage, &Layout),
            w: (&CpuStorage, &Layout),
            bias: Option<(&CpuStorage, &Layout)>,
            (nx, nw): (usize, usize),
        ) -> Result<CpuStorage> {
            let b = bias
                .map(|(s, l)| contiguous_slice::<T>(s, l, op.cout))
                .transpose()?;
            Ok(T::wrap(op.forward(
                contiguous_slice::<T>(x.0, x.1, nx)?,
                contiguous_slice::<T>(w.0, w.1, nw)?,
                b,
            )))
        }
        let out = match x.0 {
            CpuStorage::F32(_) => run::<f32>(self, x, w, bias, (nx, nw))?,
            CpuStorage::F64(_) => run::<f64>(self, x, w, bias, (nx, nw))?,
            _ => candle_core::bail!("conv2d: only f32 and f64"),
        };
        Ok((out, Shape::from((g.b, self.cout, g.ho, g.wo))))
    }

    /// The gradients as tensors: `(dx or None, dW (cout, c, k, k), db (cout) or None)`; `db`
    /// only when `want_db` (a layer with a bias).
    fn bwd_tensors(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        want_db: bool,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let g = &self.geom;
        let (x, w, dy) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let want_dx = x.track_op();
        let (sx, lx) = x.storage_and_layout();
        let (sw, lw) = w.storage_and_layout();
        let (sd, ld) = dy.storage_and_layout();
        let (
            candle_core::Storage::Cpu(sx),
            candle_core::Storage::Cpu(sw),
            candle_core::Storage::Cpu(sd),
        ) = (&*sx, &*sw, &*sd)
        else {
            candle_core::bail!("conv2d: CPU only")
        };
        let (nx, nw, ny) = (
            self.input_len(),
            self.cout * g.rows(),
            g.b * self.cout * g.ho * g.wo,
        );
        let dev = Device::Cpu;
        fn run<T: CpuFloat>(
            op: &ConvOp,
            (sx, lx, nx): (&CpuStorage, &Layout, usize),
            (sw, lw, nw): (&CpuStorage, &Layout, usize),
            (sd, ld, ny): (&CpuStorage, &Layout, usize),
            (want_dx, want_db): (bool, bool),
            dev: &Device,
        ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
            let g = &op.geom;
            let (dx, dw, db) = op.backward(
                contiguous_slice::<T>(sx, lx, nx)?,
                contiguous_slice::<T>(sw, lw, nw)?,
                contiguous_slice::<T>(sd, ld, ny)?,
                want_dx,
                want_db,
            );
            Ok((
                dx.map(|v| Tensor::from_vec(v, (g.b, g.c, g.h / op.up, g.w / op.up), dev))
                    .transpose()?,
                Tensor::from_vec(dw, (op.cout, g.c, g.k, g.k), dev)?,
                db.map(|v| Tensor::from_vec(v, op.cout, dev)).transpose()?,
            ))
        }
        let args = ((sx, lx, nx), (sw, lw, nw), (sd, ld, ny));
        let wants = (want_dx, want_db);
        match sx {
            CpuStorage::F32(_) => run::<f32>(self, args.0, args.1, args.2, wants, &dev),
            CpuStorage::F64(_) => run::<f64>(self, args.0, args.1, args.2, wants, &dev),
            _ => candle_core::bail!("conv2d: only f32 and f64"),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd_storage((x, lx), (w, lw), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.bwd_tensors(x, w, grad, false)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "conv2d-bias"
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
        self.fwd_storage((x, lx), (w, lw), Some((b, lb)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.bwd_tensors(x, w, grad, true)?;
        Ok((dx, Some(dw), db))
    }
}
