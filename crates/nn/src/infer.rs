//! Inference of convolutional nets on the CPU without a graph: layers compiled from trained
//! ones (batch norm folded into the convolution, the activation fused into its output pass),
//! run on one image at a time in buffers the caller owns and reuses.
//!
//! Why beside candle: at inference a conv–BN–SiLU block is three passes over memory through
//! candle (the convolution, the normalisation as a broadcast multiply-add, the activation),
//! each allocating its result, and the normalisation is an affine map that can be folded into
//! the convolution's weights once. Here a block is one im2col + one gemm, with bias and SiLU
//! applied to each output row while it is in cache; channel concatenations cost nothing
//! (channels of one image are consecutive planes, so a layer writes straight into its slice of
//! the concatenated buffer); and the gemm runs single-threaded, so that callers run whole
//! images (tiles) on all cores instead — the small matrices of a nano network do not split
//! well, and one image per thread keeps the results independent of the thread count.
//!
//! Layout: `f32`, one image as `(channels, height, width)` row-major (NCHW without the batch).
//!
//! ```
//! use deepsky_nn::infer::{Activation, FusedConv};
//!
//! // A 3×3 convolution from 1 to 2 channels, stride 1, zero padding 1: the first output
//! // channel sums the 3×3 neighbourhood, the second is the centre pixel.
//! let mut w = vec![1.0f32; 9];
//! w.extend([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
//! let conv = FusedConv::new(w, vec![0.0, 0.5], 1, 2, 3, 1, Activation::Identity);
//! let x = vec![1.0f32; 4 * 4];
//! let mut y = vec![0.0f32; 2 * 4 * 4];
//! conv.forward(&x, 4, 4, &mut y, &mut Vec::new());
//! assert_eq!(y[5], 9.0); // an interior pixel sees all nine ones
//! assert_eq!(y[0], 4.0); // a corner sees four
//! assert_eq!(y[16 + 5], 1.5); // centre tap plus bias
//! ```

use candle_core::{Result, Tensor};
use gemm::Parallelism;

use crate::layers::{Conv2d, Norm};

/// The activation fused into a layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None (a linear output layer).
    Identity,
    /// `x · σ(x)`.
    Silu,
}

/// A convolution (square kernel `k`, stride `s`, zero padding `k / 2`) with a bias and an
/// activation, weights `(cout, cin·k·k)` row-major (candle's `(out, in, k, k)` flattened).
#[derive(Debug, Clone)]
pub struct FusedConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    act: Activation,
}

impl FusedConv {
    /// From raw weights `(cout, cin, k, k)` and a bias of `cout`.
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        act: Activation,
    ) -> FusedConv {
        assert_eq!(weight.len(), cout * cin * k * k, "weight shape");
        assert_eq!(bias.len(), cout, "bias length");
        assert!(k % 2 == 1 && stride >= 1, "odd kernel, stride ≥ 1");
        FusedConv {
            weight,
            bias,
            cin,
            cout,
            k,
            stride,
            act,
        }
    }

    /// A trained convolution followed by `norm` (batch norm folded in with its running
    /// statistics: `y = γ (conv(x) − μ) / √(σ² + ε) + β` is a convolution with weights scaled
    /// by `γ / √(σ² + ε)` per output channel and a shifted bias) and `act`.
    pub fn compile(conv: &Conv2d, norm: &Norm, act: Activation) -> Result<FusedConv> {
        let (w, b) = conv.parameters();
        let (cout, cin, k, k2) = w.dims4()?;
        if k != k2 || conv.padding() != k / 2 {
            candle_core::bail!("FusedConv: only square kernels with 'same' padding")
        }
        let mut weight: Vec<f32> = w
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let mut bias = match b {
            Some(b) => to_f32(b)?,
            None => vec![0.0; cout],
        };
        match norm {
            Norm::None => {}
            Norm::Batch(bn) => {
                let mean = to_f64(bn.running_mean())?;
                let var = to_f64(bn.running_var())?;
                let (gamma, beta) = match bn.weight_and_bias() {
                    Some((g, b)) => (to_f64(g)?, to_f64(b)?),
                    None => (vec![1.0; cout], vec![0.0; cout]),
                };
                let per = cin * k * k;
                for o in 0..cout {
                    // In f64, then rounded once: the folded layer differs from BN(conv) by
                    // the rounding of the products only.
                    let scale = gamma[o] / (var[o] + bn.eps()).sqrt();
                    for v in &mut weight[o * per..(o + 1) * per] {
                        *v = (*v as f64 * scale) as f32;
                    }
                    bias[o] = ((bias[o] as f64 - mean[o]) * scale + beta[o]) as f32;
                }
            }
            _ => candle_core::bail!("FusedConv: only batch norm folds into a convolution"),
        }
        Ok(FusedConv::new(
            weight,
            bias,
            cin,
            cout,
            k,
            conv.stride(),
            act,
        ))
    }

    /// Two layers on the same input as one (outputs of `self`, then of `other`): one gemm
    /// over one set of patches instead of two.
    pub fn stacked(&self, other: &FusedConv) -> FusedConv {
        assert!(
            self.cin == other.cin
                && self.k == other.k
                && self.stride == other.stride
                && self.act == other.act,
            "stacked layers must share input, kernel, stride and activation"
        );
        let mut weight = self.weight.clone();
        weight.extend_from_slice(&other.weight);
        let mut bias = self.bias.clone();
        bias.extend_from_slice(&other.bias);
        FusedConv::new(
            weight,
            bias,
            self.cin,
            self.cout + other.cout,
            self.k,
            self.stride,
            self.act,
        )
    }

    /// Input channels.
    pub fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Output size along an axis of `n` input pixels.
    pub fn out_size(&self, n: usize) -> usize {
        (n - 1) / self.stride + 1
    }

    /// Multiply–adds of one call on an `h × w` input.
    pub fn multiply_adds(&self, h: usize, w: usize) -> usize {
        self.out_size(h) * self.out_size(w) * self.cout * self.cin * self.k * self.k
    }

    /// Run on `x` `(cin, h, w)` into `out` `(cout, ho, wo)` (the first `cout·ho·wo` elements;
    /// every one written). `scratch` holds the patches; it grows as needed and is best reused.
    pub fn forward(&self, x: &[f32], h: usize, w: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let n = ho * wo;
        let rows = self.cin * self.k * self.k;
        assert!(x.len() >= self.cin * h * w, "input too short");
        assert!(out.len() >= self.cout * n, "output too short");
        let patches: &[f32] = if self.k == 1 && self.stride == 1 {
            &x[..self.cin * h * w]
        } else {
            if scratch.len() < rows * n {
                scratch.resize(rows * n, 0.0);
            }
            im2col(
                x,
                self.cin,
                h,
                w,
                self.k,
                self.stride,
                &mut scratch[..rows * n],
            );
            &scratch[..rows * n]
        };
        self.rows_times_patches(0..self.cout, patches, n, &mut out[..self.cout * n]);
    }

    /// [`FusedConv::forward`] a band of output rows at a time, so that each band's patches
    /// (at most `BAND_FLOATS` floats) stay in the core's cache instead of streaming a patch
    /// matrix of `cin·k·k` times the image through memory twice (im2col, then gemm's
    /// packing): for full-resolution layers with many input channels, as in a U-Net's
    /// decoder, that traffic was half the run. Same sums per pixel, up to the blocking of
    /// gemm's reductions.
    pub fn forward_banded(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        const BAND_FLOATS: usize = 1 << 16;
        let (ho, wo) = (self.out_size(h), self.out_size(w));
        let rows = self.cin * self.k * self.k;
        let band = (BAND_FLOATS / (rows * wo).max(1)).clamp(1, ho.max(1));
        if band >= ho || (self.k == 1 && self.stride == 1) {
            return self.forward(x, h, w, out, scratch);
        }
        assert!(x.len() >= self.cin * h * w, "input too short");
        assert!(out.len() >= self.cout * ho * wo, "output too short");
        if scratch.len() < rows * band * wo {
            scratch.resize(rows * band * wo, 0.0);
        }
        let plane = ho * wo;
        for r0 in (0..ho).step_by(band) {
            let r1 = (r0 + band).min(ho);
            let nb = (r1 - r0) * wo;
            let patches = &mut scratch[..rows * nb];
            im2col_rows(x, self.cin, h, w, self.k, self.stride, r0..r1, patches);
            // SAFETY: `weight` is (cout, rows), `patches` (rows, nb), and the destination is
            // the (cout, nb) block of `out` at row offset r0·wo of each channel's plane
            // (row stride `plane`), all inside the asserted lengths.
            unsafe {
                gemm::gemm(
                    self.cout,
                    nb,
                    rows,
                    out[r0 * wo..].as_mut_ptr(),
                    1,
                    plane as isize,
                    false,
                    self.weight.as_ptr(),
                    1,
                    rows as isize,
                    patches.as_ptr(),
                    1,
                    nb as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            }
            for (c, &b) in self.bias.iter().enumerate() {
                let row = &mut out[c * plane + r0 * wo..c * plane + r1 * wo];
                match self.act {
                    Activation::Identity => row.iter_mut().for_each(|v| *v += b),
                    Activation::Silu => silu_in_place(row, b),
                }
            }
        }
    }

    /// Output channels `channels` (a range of `0..cout`) at the output positions `at`
    /// (`(row, col)`), into `out` `(channels.len(), at.len())`: the layer evaluated only where
    /// it is needed (the patches of those positions gathered, one gemm), as
    /// [`FusedConv::forward`] would there up to the order of the sums.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_at(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        channels: std::ops::Range<usize>,
        at: &[(usize, usize)],
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (k, s, p) = (self.k, self.stride, self.k / 2);
        let rows = self.cin * k * k;
        let (m, n) = (channels.len(), at.len());
        assert!(channels.end <= self.cout && out.len() >= m * n);
        if n == 0 || m == 0 {
            return;
        }
        if scratch.len() < rows * n {
            scratch.resize(rows * n, 0.0);
        }
        let patches = &mut scratch[..rows * n];
        for ci in 0..self.cin {
            for di in 0..k {
                for dj in 0..k {
                    let row = &mut patches[((ci * k + di) * k + dj) * n..][..n];
                    for (v, &(oy, ox)) in row.iter_mut().zip(at) {
                        let (iy, ix) =
                            ((oy * s + di).wrapping_sub(p), (ox * s + dj).wrapping_sub(p));
                        *v = if iy < h && ix < w {
                            x[(ci * h + iy) * w + ix]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        self.rows_times_patches(channels, patches, n, &mut out[..m * n]);
    }

    /// `out = act(W[channels] · patches + b[channels])`: the weight rows `channels` `(m, rows)`
    /// times `patches` `(rows, n)`, into `out` `(m, n)`, all row-major; one single-threaded
    /// gemm, then bias and activation over each output row while it is in cache.
    fn rows_times_patches(
        &self,
        channels: std::ops::Range<usize>,
        patches: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        let (m, rows) = (channels.len(), self.cin * self.k * self.k);
        assert!(channels.end <= self.cout && patches.len() >= rows * n && out.len() == m * n);
        // SAFETY: the slices hold the (m, rows), (rows, n) and (m, n) row-major matrices
        // (asserted above; `weight` is (cout, rows) by construction).
        unsafe {
            gemm::gemm(
                m,
                n,
                rows,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.weight[channels.start * rows..].as_ptr(),
                1,
                rows as isize,
                patches.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                Parallelism::None,
            )
        }
        for (row, &b) in out.chunks_exact_mut(n).zip(&self.bias[channels]) {
            match self.act {
                Activation::Identity => row.iter_mut().for_each(|v| *v += b),
                Activation::Silu => silu_in_place(row, b),
            }
        }
    }
}

fn to_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1()
}

/// The patches of `x` `(c, h, w)` for a `k × k` kernel of stride `s` and padding `k / 2`, as
/// `(c·k·k, ho·wo)` (row `(ci·k + di)·k + dj`), zeros where a tap falls outside.
fn im2col(x: &[f32], c: usize, h: usize, w: usize, k: usize, s: usize, dst: &mut [f32]) {
    let ho = (h - 1) / s + 1;
    im2col_rows(x, c, h, w, k, s, 0..ho, dst)
}

/// [`im2col`] for the output rows `oys` only: `(c·k·k, oys.len()·wo)`.
#[allow(clippy::too_many_arguments)]
fn im2col_rows(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    oys: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    let p = k / 2;
    let wo = (w - 1) / s + 1;
    let n = oys.len() * wo;
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for di in 0..k {
            for dj in 0..k {
                let row = &mut dst[((ci * k + di) * k + dj) * n..][..n];
                // Output columns whose tap lands inside: ix = ox·s + dj − p in 0..w.
                let ox_lo = p.saturating_sub(dj).div_ceil(s);
                let ox_hi = match (w + p).checked_sub(dj + 1) {
                    Some(last) => (last / s + 1).min(wo),
                    None => 0, // the tap lies right of every input column
                };
                for (r, oy) in oys.clone().enumerate() {
                    let out = &mut row[r * wo..(r + 1) * wo];
                    let iy = (oy * s + di) as isize - p as isize;
                    if iy < 0 || iy as usize >= h || ox_lo >= ox_hi {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    out[..ox_lo].fill(0.0);
                    out[ox_hi..].fill(0.0);
                    let ix0 = ox_lo * s + dj - p;
                    if s == 1 {
                        out[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                    } else {
                        for (o, v) in out[ox_lo..ox_hi]
                            .iter_mut()
                            .zip(src[ix0..].iter().step_by(s))
                        {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// `v ← (v + b)·σ(v + b)` over a row, with an exponential that vectorises (see [`exp_fast`]);
/// 8 lanes wide where the CPU has AVX2 (the same operations in the same order, so the same
/// bits as the 4-lane baseline: Rust never fuses a multiply and an add on its own).
fn silu_in_place(row: &mut [f32], b: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { silu_avx2(row, b) };
        return;
    }
    silu_rows(row, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn silu_avx2(row: &mut [f32], b: f32) {
    silu_rows(row, b)
}

#[inline(always)]
fn silu_rows(row: &mut [f32], b: f32) {
    for v in row.iter_mut() {
        let z = *v + b;
        *v = z / (1.0 + exp_fast(-z));
    }
}

/// `eˣ` to about 2 ulp in f32, branch-free so that loops over it vectorise (the library `exp`
/// is a call per element; in the SiLU of every layer it was a fifth of the network's time).
/// Range reduction `x = n ln 2 + r`, `|r| ≤ ln2/2`, a degree-6 polynomial for `eʳ`, and `2ⁿ`
/// built in the exponent bits; inputs are clamped to `[-87, 88]` (below, the result is
/// ~1e-38 where SiLU needs 0; above, f32 overflows anyway).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let x = x.max(-87.0).min(88.0);
    // Round to nearest by adding 1.5·2²³: the sum's low mantissa bits are then n itself (in
    // two's complement), which gives 2ⁿ by integer operations only. (`round` and a float →
    // int cast are a library call and a saturating conversion on the baseline x86-64 target,
    // and either stops the loop from vectorising.)
    const SHIFT: f32 = 12_582_912.0;
    let y = x * std::f32::consts::LOG2_E + SHIFT;
    let n = y - SHIFT;
    // ln 2 in two parts (Cody–Waite), so that r is exact.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = y
        .to_bits()
        .wrapping_sub(SHIFT.to_bits())
        .wrapping_add(127)
        .wrapping_shl(23);
    p * f32::from_bits(bits)
}

/// Nearest-neighbour upsampling by 2 of `x` `(c, h, w)` into `out` `(c, 2h, 2w)`.
pub fn upsample2(x: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    let w2 = 2 * w;
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        let dst = &mut out[ci * 4 * h * w..(ci + 1) * 4 * h * w];
        for (r, src) in plane.chunks_exact(w).enumerate() {
            let (top, rest) = dst[2 * r * w2..(2 * r + 2) * w2].split_at_mut(w2);
            for (pair, &v) in top.chunks_exact_mut(2).zip(src) {
                pair[0] = v;
                pair[1] = v;
            }
            rest.copy_from_slice(top);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Module};
    use candle_nn::{VarBuilder, VarMap};

    #[test]
    fn banded_forward_matches_the_whole_image() {
        // 24 input channels of a 3×3 kernel on a 300-wide image: one output row of patches
        // is larger than a band, so every row is its own band; stride 2 too.
        for (cin, stride) in [(24, 1), (6, 2), (1, 1)] {
            let (cout, k, h, w) = (5, 3, 37, 300);
            let weight: Vec<f32> = (0..cout * cin * k * k)
                .map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let conv = FusedConv::new(weight, bias, cin, cout, k, stride, Activation::Silu);
            let x: Vec<f32> = (0..cin * h * w)
                .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let n = cout * conv.out_size(h) * conv.out_size(w);
            let (mut a, mut b) = (vec![0.0; n], vec![9.0; n]);
            conv.forward(&x, h, w, &mut a, &mut Vec::new());
            conv.forward_banded(&x, h, w, &mut b, &mut Vec::new());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "cin {cin} stride {stride}: {worst}");
        }
    }

    #[test]
    fn exp_fast_is_accurate_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp_fast(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_fast(-200.0).min(1e-30), exp_fast(-200.0));
    }

    /// A trained-looking conv + batch norm + SiLU through candle (evaluation mode) and compiled
    /// agree, at every stride and kernel the detector uses; stacking and evaluation at chosen
    /// positions agree with the full forward.
    #[test]
    fn compiled_conv_bn_silu_matches_candle() {
        let dev = Device::Cpu;
        // The last two: maps of one pixel, where most taps fall outside (tiles of 16 pixels
        // give 1×1 maps at stride 16).
        for (cin, cout, k, s, h, w) in [
            (3, 5, 3, 1, 9, 7),
            (4, 6, 3, 2, 10, 9),
            (5, 3, 1, 1, 6, 8),
            (2, 3, 3, 1, 1, 1),
            (2, 3, 3, 2, 1, 2),
        ] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let conv = crate::layers::conv2d_no_bias(cin, cout, k, s, k / 2, vb.pp("c")).unwrap();
            let norm = Norm::new(crate::layers::NormKind::Batch, cout, true, vb.pp("bn")).unwrap();
            // Non-trivial running statistics and affine parameters.
            for (name, var) in map.data().lock().unwrap().iter() {
                let t = var.as_tensor();
                let v = match name.as_str() {
                    "bn.running_mean" => (t.ones_like().unwrap() * 0.3).unwrap(),
                    "bn.running_var" => (t.ones_like().unwrap() * 2.5).unwrap(),
                    "bn.weight" => (t.ones_like().unwrap() * 1.7).unwrap(),
                    "bn.bias" => (t.ones_like().unwrap() * -0.2).unwrap(),
                    _ => continue,
                };
                var.set(&v).unwrap();
            }
            let x = Tensor::randn(0f32, 1.0, (1, cin, h, w), &dev).unwrap();
            let want =
                crate::layers::silu(&norm.forward_t(&conv.forward(&x).unwrap(), false).unwrap())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
            let fused = FusedConv::compile(&conv, &norm, Activation::Silu).unwrap();
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let (ho, wo) = (fused.out_size(h), fused.out_size(w));
            let mut got = vec![f32::NAN; cout * ho * wo];
            fused.forward(&xs, h, w, &mut got, &mut Vec::new());
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "{a} vs {b} ({cin}→{cout} k{k} s{s})"
                );
            }
            // Stacked with itself: the same outputs twice.
            let two = fused.stacked(&fused);
            let mut both = vec![0.0; 2 * cout * ho * wo];
            two.forward(&xs, h, w, &mut both, &mut Vec::new());
            assert_eq!(&both[..got.len()], &got[..]);
            assert_eq!(&both[got.len()..], &got[..]);
            // At chosen positions, including corners.
            let at = [(0, 0), (ho - 1, wo - 1), (ho / 2, wo / 2)];
            let mut sparse = vec![0.0; at.len() * (cout - 1)];
            fused.forward_at(&xs, h, w, 1..cout, &at, &mut sparse, &mut Vec::new());
            for (i, &(r, c)) in at.iter().enumerate() {
                for ch in 1..cout {
                    let dense = got[(ch * ho + r) * wo + c];
                    let v = sparse[(ch - 1) * at.len() + i];
                    assert!(
                        (v - dense).abs() < 1e-5 * (1.0 + dense.abs()),
                        "{v} vs {dense}"
                    );
                }
            }
        }
    }

    #[test]
    fn upsample2_repeats_each_pixel_in_a_2x2_block() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect(); // (2, 2, 3)
        let mut out = vec![0.0; 48];
        upsample2(&x, 2, 2, 3, &mut out);
        let dev = Device::Cpu;
        let t = Tensor::from_vec(x, (1, 2, 2, 3), &dev).unwrap();
        let want: Vec<f32> = crate::layers::upsample_nearest(&t, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(out, want);
    }
}
