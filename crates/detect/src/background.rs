//! Background level and noise maps estimated on a mesh, the way SExtractor does it.
//!
//! The image is cut into cells of at most [`BackgroundConfig::mesh_size`] pixels on a side. In each
//! cell the valid pixels are sigma-clipped around their median until the clipping converges, and the
//! clipped distribution gives a level (SExtractor's mode estimate) and a noise (the clipped standard
//! deviation, corrected for the truncation). Cells with too few valid pixels are filled from their
//! nearest valid neighbours, both mesh maps are median-filtered to suppress cells biased by bright
//! objects, and the maps are interpolated back to full resolution with a bicubic (natural cubic)
//! spline through the cell centres, as SExtractor does.
//!
//! Two departures from SExtractor, both for gradients: the median filter works on the residuals
//! from a robust plane fit (SExtractor's truncated windows shift border cells of a sloping sky by
//! half a cell's worth of slope), and beyond the outermost cell centres the spline is continued
//! linearly with its end slope. And the noise is corrected for the clipping (+1.5% at 3σ), which
//! SExtractor leaves out.
//!
//! # Example
//! ```
//! use ndarray::Array2;
//! use deepsky_detect::background::{estimate_background, BackgroundConfig};
//!
//! let image = Array2::<f32>::from_shape_fn((100, 130), |(r, c)| 10.0 + ((r * 7 + c * 13) % 5) as f32);
//! let bkg = estimate_background(image.view(), None, &BackgroundConfig::default()).unwrap();
//! assert_eq!(bkg.level.dim(), (100, 130));
//! assert!((bkg.global_level - 12.0).abs() < 0.5);
//! ```

use deepsky_core::config::{ConfigError, Validate};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_core::math::erf;

use crate::error::{check_mask, DetectError, Result};

/// Settings of the mesh background estimator. Defaults follow SExtractor's (BACK_SIZE 64,
/// BACK_FILTERSIZE 3, 3σ clipping).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundConfig {
    /// Largest side of a mesh cell, pixels. The image is split into `ceil(n / mesh_size)` cells
    /// along each axis, of equal size to within one pixel, so no cell is a thin sliver at the edge.
    /// It should be several times larger than the objects, and smaller than the scale on which
    /// the background varies.
    pub mesh_size: usize,
    /// Side of the median filter applied to the mesh maps, in cells (odd; 1 disables it).
    pub filter_size: usize,
    /// Half-width of the clipping window around the median, in units of the cell's standard
    /// deviation. At least 2: tighter clipping converges towards a handful of central pixels.
    pub clip_sigma: f64,
    /// Maximum number of clipping passes; clipping stops earlier when a pass removes no pixel.
    /// 0 disables clipping (the plain median, mean and standard deviation are used).
    pub clip_iterations: usize,
    /// A cell with a smaller fraction of valid (finite, unmasked) pixels is not trusted and is
    /// replaced by the average of its nearest trusted cells.
    pub min_valid_fraction: f64,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self {
            mesh_size: 64,
            filter_size: 3,
            clip_sigma: 3.0,
            // Clipping normally converges in 3-6 passes; the cap only bounds pathological cells.
            clip_iterations: 20,
            min_valid_fraction: 0.5,
        }
    }
}

impl Validate for BackgroundConfig {
    /// Checks every field; the error names the key, the message the value.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.mesh_size < 4 {
            return Err(ConfigError::at(
                "mesh_size",
                format!("must be at least 4 pixels, got {}", self.mesh_size),
            ));
        }
        if self.filter_size == 0 || self.filter_size % 2 == 0 {
            return Err(ConfigError::at(
                "filter_size",
                format!("must be odd and at least 1, got {}", self.filter_size),
            ));
        }
        if !(self.clip_sigma.is_finite() && self.clip_sigma >= 2.0) {
            return Err(ConfigError::at(
                "clip_sigma",
                format!("must be finite and at least 2, got {}", self.clip_sigma),
            ));
        }
        if !(self.min_valid_fraction > 0.0 && self.min_valid_fraction <= 1.0) {
            return Err(ConfigError::at(
                "min_valid_fraction",
                format!("must be in (0, 1], got {}", self.min_valid_fraction),
            ));
        }
        Ok(())
    }
}

/// Background level and noise at every pixel, with their image-wide typical values.
#[derive(Clone, Debug)]
pub struct Background {
    /// Background level at each pixel (ADU), same shape as the image.
    pub level: Array2<f32>,
    /// Standard deviation of the background noise at each pixel (ADU), same shape as the image.
    pub rms: Array2<f32>,
    /// Median of the (filtered) mesh levels: the image's typical background, ADU.
    pub global_level: f64,
    /// Median of the (filtered) mesh noise values: the image's typical noise, ADU.
    pub global_rms: f64,
}

impl Background {
    /// A flat background of `level` and `rms` everywhere, for synthetic images and tests where the
    /// truth is known.
    pub fn constant(shape: (usize, usize), level: f32, rms: f32) -> Self {
        Self {
            level: Array2::from_elem(shape, level),
            rms: Array2::from_elem(shape, rms),
            global_level: level as f64,
            global_rms: rms as f64,
        }
    }

    /// Shape `(rows, cols)` of the maps.
    pub fn dim(&self) -> (usize, usize) {
        self.level.dim()
    }

    /// Fails unless the maps have the image's shape.
    pub(crate) fn check_shape(&self, shape: [usize; 2]) -> Result<()> {
        let got = [self.level.nrows(), self.level.ncols()];
        let got_rms = [self.rms.nrows(), self.rms.ncols()];
        if got != shape || got_rms != shape {
            return Err(DetectError::ShapeMismatch {
                what: "background",
                expected: shape,
                got: if got != shape { got } else { got_rms },
            });
        }
        Ok(())
    }
}

/// Estimates the background level and noise maps of `image`.
///
/// Pixels that are NaN or infinite, or `true` in `mask`, are ignored. Works for any image size,
/// including images smaller than one mesh cell (then the background is a single value). Fails on an
/// empty image, a mask of the wrong shape, an invalid configuration, or when no pixel is valid.
pub fn estimate_background(
    image: ArrayView2<f32>,
    mask: Option<ArrayView2<bool>>,
    cfg: &BackgroundConfig,
) -> Result<Background> {
    cfg.validate()?;
    let (nrows, ncols) = image.dim();
    if nrows == 0 || ncols == 0 {
        return Err(DetectError::EmptyImage([nrows, ncols]));
    }
    check_mask([nrows, ncols], mask.as_ref())?;

    let row_edges = cell_edges(nrows, cfg.mesh_size);
    let col_edges = cell_edges(ncols, cfg.mesh_size);
    let (ny, nx) = (row_edges.len() - 1, col_edges.len() - 1);
    let rms_correction = clipped_sigma_ratio(cfg.clip_sigma, cfg.clip_iterations);

    // One independent job per cell; each worker reuses its own buffer for the cell's pixels.
    let cells: Vec<Option<(f64, f64)>> = (0..ny * nx)
        .into_par_iter()
        .map_init(Vec::<f32>::new, |buf, idx| {
            let (i, j) = (idx / nx, idx % nx);
            let (r0, r1, c0, c1) = (
                row_edges[i],
                row_edges[i + 1],
                col_edges[j],
                col_edges[j + 1],
            );
            buf.clear();
            gather_valid(image, mask.as_ref(), r0..r1, c0..c1, buf);
            let total = (r1 - r0) * (c1 - c0);
            // At least 3 pixels so that a standard deviation means something even in tiny cells.
            if buf.len() < 3 || (buf.len() as f64) < cfg.min_valid_fraction * total as f64 {
                return None;
            }
            clipped_stats(buf, cfg.clip_sigma, cfg.clip_iterations)
                .map(|(level, sigma)| (level, sigma / rms_correction))
        })
        .collect();

    let (mut mesh_level, mut mesh_rms) = if cells.iter().any(Option::is_some) {
        fill_invalid_cells(&cells, ny, nx)
    } else {
        // No cell is trustworthy on its own (e.g. a fine-grained mask covering most pixels): fall
        // back to one image-wide estimate rather than failing, as long as any pixel is valid.
        let mut all = Vec::new();
        gather_valid(image, mask.as_ref(), 0..nrows, 0..ncols, &mut all);
        if all.len() < 3 {
            return Err(DetectError::NoValidPixels {
                rows: nrows,
                cols: ncols,
            });
        }
        let (level, sigma) = clipped_stats(&mut all, cfg.clip_sigma, cfg.clip_iterations).ok_or(
            DetectError::NoValidPixels {
                rows: nrows,
                cols: ncols,
            },
        )?;
        (
            Array2::from_elem((ny, nx), level),
            Array2::from_elem((ny, nx), sigma / rms_correction),
        )
    };

    if cfg.filter_size > 1 {
        mesh_level = median_filter(&mesh_level, cfg.filter_size);
        mesh_rms = median_filter(&mesh_rms, cfg.filter_size);
    }
    let global_level = median_of(mesh_level.iter().copied().collect());
    let global_rms = median_of(mesh_rms.iter().copied().collect());

    // Mesh nodes sit at the centres of their cells, in 0-based pixel-index coordinates.
    let centres = |edges: &[usize]| -> Vec<f64> {
        edges
            .windows(2)
            .map(|w| (w[0] + w[1]) as f64 / 2.0 - 0.5)
            .collect()
    };
    let (cy, cx) = (centres(&row_edges), centres(&col_edges));
    // A spline can undershoot between nodes, and the edges are extrapolated; noise below the
    // quietest cell is never real and would inflate signal-to-noise ratios, so floor it there.
    let rms_floor = mesh_rms
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.0) as f32;
    let level = interpolate_bicubic(&mesh_level, &cy, &cx, (nrows, ncols), f32::NEG_INFINITY);
    let rms = interpolate_bicubic(&mesh_rms, &cy, &cx, (nrows, ncols), rms_floor);

    Ok(Background {
        level,
        rms,
        global_level,
        global_rms,
    })
}

/// Background-subtracted image in units of the local noise, `(image − level) / rms`.
///
/// Pixels that are NaN, infinite, `true` in `mask`, or where the noise is not positive are NaN in
/// the result, so that callers cannot mistake them for data.
pub fn snr_image(
    image: ArrayView2<f32>,
    mask: Option<ArrayView2<bool>>,
    bkg: &Background,
) -> Result<Array2<f32>> {
    let shape = [image.nrows(), image.ncols()];
    check_mask(shape, mask.as_ref())?;
    bkg.check_shape(shape)?;
    let mut out = Array2::<f32>::zeros(image.raw_dim());
    par_rows_mut(&mut out, |r, row| {
        let (img, lev, rms) = (image.row(r), bkg.level.row(r), bkg.rms.row(r));
        for (c, o) in row.iter_mut().enumerate() {
            let (v, s) = (img[c], rms[c]);
            let bad = mask.as_ref().is_some_and(|m| m[[r, c]]);
            *o = if v.is_finite() && s > 0.0 && !bad {
                (v - lev[c]) / s
            } else {
                f32::NAN
            };
        }
    });
    Ok(out)
}

/// Input normalisation for the neural detector: `asinh((image − level) / (rms · softening))`.
///
/// The asinh is linear (in units of `softening` noise σ) near the noise and logarithmic for bright
/// objects, so faint sources keep their contrast while a saturated star stays within about ±20
/// instead of 10⁵. NaN or infinite pixels, and pixels where the noise is not positive, become 0
/// (the background) so the network sees no artificial edges. Fails if `softening` is not a
/// positive finite number or the background does not match the image.
pub fn normalise_asinh(
    image: ArrayView2<f32>,
    bkg: &Background,
    softening: f32,
) -> Result<Array2<f32>> {
    if !(softening.is_finite() && softening > 0.0) {
        return Err(DetectError::InvalidArgument(format!(
            "asinh softening = {softening}: must be positive and finite"
        )));
    }
    bkg.check_shape([image.nrows(), image.ncols()])?;
    let mut out = Array2::<f32>::zeros(image.raw_dim());
    par_rows_mut(&mut out, |r, row| {
        let (img, lev, rms) = (image.row(r), bkg.level.row(r), bkg.rms.row(r));
        for (c, o) in row.iter_mut().enumerate() {
            let (v, d) = (img[c], rms[c] * softening);
            *o = if v.is_finite() && d > 0.0 {
                asinh_fast((v - lev[c]) / d)
            } else {
                0.0
            };
        }
    });
    Ok(out)
}

/// `asinh x = ln(|x| + √(x² + 1))` with the sign of `x`, to 3·10⁻⁷ absolute below 1 and
/// 10⁻⁶ relative above, branch-free so that the loop over pixels vectorises (the library's
/// asinh is a `hypot` and a `log1p` call per pixel: 7 % of `detect predict` on a field).
/// Absolute accuracy is what matters here: the values are pixels in units of the noise.
#[inline(always)]
pub(crate) fn asinh_fast(x: f32) -> f32 {
    // Beyond 1e18 the square would overflow; asinh(1e18) = 42.1, far above any pixel.
    let a = x.abs().min(1e18);
    ln_fast(a + (a * a + 1.0).sqrt()).copysign(x)
}

/// `ln v` for `v ≥ 1` (finite): `v = m·2ᵉ` with `m` in `[√½, √2)`, then
/// `ln m = 2 atanh((m−1)/(m+1))` by its series to the 9th power (error below 10⁻⁹ there).
#[inline(always)]
fn ln_fast(v: f32) -> f32 {
    let bits = v.to_bits();
    let e = ((bits >> 23) as i32 - 127) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let big = m > std::f32::consts::SQRT_2;
    let (m, e) = if big { (m * 0.5, e + 1.0) } else { (m, e) };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e * std::f32::consts::LN_2 + 2.0 * s * series
}

/// Runs `f(row_index, row)` over the rows of a contiguous array in parallel.
///
/// Works on the raw slice rather than through ndarray's optional rayon feature, so this module
/// needs nothing from ndarray beyond its defaults.
pub(crate) fn par_rows_mut<T: Send>(a: &mut Array2<T>, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let ncols = a.ncols().max(1);
    let slice = a
        .as_slice_mut()
        .expect("arrays allocated by this crate are contiguous");
    slice
        .par_chunks_mut(ncols)
        .enumerate()
        .for_each(|(r, row)| f(r, row));
}

/// Boundaries of `ceil(n / mesh)` cells splitting `0..n` into parts whose sizes differ by at most one.
fn cell_edges(n: usize, mesh: usize) -> Vec<usize> {
    let cells = n.div_ceil(mesh).max(1);
    (0..=cells).map(|i| i * n / cells).collect()
}

/// Appends the finite, unmasked pixels of a rectangle to `out`.
fn gather_valid(
    image: ArrayView2<f32>,
    mask: Option<&ArrayView2<bool>>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    out: &mut Vec<f32>,
) {
    for r in rows {
        let row = image.row(r);
        match mask {
            None => match row.as_slice() {
                Some(sl) => out.extend(sl[cols.clone()].iter().copied().filter(|v| v.is_finite())),
                None => out.extend(cols.clone().map(|c| row[c]).filter(|v| v.is_finite())),
            },
            Some(m) => {
                let mrow = m.row(r);
                out.extend(
                    cols.clone()
                        .filter(|&c| !mrow[c])
                        .map(|c| row[c])
                        .filter(|v| v.is_finite()),
                );
            }
        }
    }
}

/// Sigma-clipped level and standard deviation of `values` (reordered in place).
///
/// The values are sorted once; each clipping pass then only moves a window over the sorted
/// array, so the median is an index, the cuts are binary searches and the mean and variance are
/// running sums updated by the few values that enter or leave. That keeps a pass far cheaper than
/// re-selecting the median, which matters for the 4096 cells of a 4k image.
///
/// The level is SExtractor's mode estimate `2.5·median − 1.5·mean` of the clipped distribution,
/// or its median when `|mean − median| > 0.3·σ` (a crowded cell, where the mode formula
/// overshoots). This is what SExtractor's code does; its paper's "use the mean when clipping
/// changes σ by less than 20%" branch is disabled in the released code.
fn clipped_stats(values: &mut [f32], clip_sigma: f64, max_iter: usize) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    sort_finite(values);
    // Shift by a central value before summing squares, so the variance does not suffer
    // cancellation when the level is much larger than the noise.
    let shift = values[n / 2] as f64;
    let d = |v: f32| v as f64 - shift;
    // Sums over the current window, updated by the values entering or leaving it at either end
    // (the window moves little between passes), instead of prefix-sum arrays.
    let mut sums = (0.0f64, 0.0f64);
    let adjust = |sums: &mut (f64, f64), range: &[f32], sign: f64| {
        for &v in range {
            let x = d(v);
            sums.0 += sign * x;
            sums.1 += sign * x * x;
        }
    };
    adjust(&mut sums, values, 1.0);
    let stats = |lo: usize, hi: usize, (a1, a2): (f64, f64)| -> (f64, f64, f64) {
        let m = hi - lo;
        let mid = lo + m / 2;
        let median = if m % 2 == 1 {
            values[mid] as f64
        } else {
            0.5 * (values[mid - 1] as f64 + values[mid] as f64)
        };
        let mean_d = a1 / m as f64;
        let var = (a2 / m as f64 - mean_d * mean_d).max(0.0);
        (median, mean_d + shift, var.sqrt())
    };
    let (mut lo, mut hi) = (0, n);
    let (mut median, mut mean, mut sigma) = stats(lo, hi, sums);
    for _ in 0..max_iter {
        if sigma <= 0.0 {
            break;
        }
        let lcut = (median - clip_sigma * sigma) as f32;
        let hcut = (median + clip_sigma * sigma) as f32;
        let nlo = values.partition_point(|&v| v < lcut);
        let nhi = values.partition_point(|&v| v <= hcut);
        if (nlo, nhi) == (lo, hi) || nhi - nlo < 3 {
            break;
        }
        // The window can also widen again when the median or σ moves: add those values back.
        if nlo > lo {
            adjust(&mut sums, &values[lo..nlo], -1.0);
        } else {
            adjust(&mut sums, &values[nlo..lo], 1.0);
        }
        if nhi < hi {
            adjust(&mut sums, &values[nhi..hi], -1.0);
        } else {
            adjust(&mut sums, &values[hi..nhi], 1.0);
        }
        (lo, hi) = (nlo, nhi);
        (median, mean, sigma) = stats(lo, hi, sums);
    }
    let level = if sigma > 0.0 && ((mean - median) / sigma).abs() < 0.3 {
        2.5 * median - 1.5 * mean
    } else if sigma > 0.0 {
        median
    } else {
        mean
    };
    Some((level, sigma))
}

/// Sorts finite floats ascending with an LSD radix sort on their order-preserving bit patterns.
///
/// Digits of 12, 12 and 8 bits (the last, sign and exponent, is usually shared by a whole cell and
/// its pass skipped). For the 4096 values of a 64×64 cell this is ~2× faster than a comparison
/// sort, which made the sort the largest cost of the whole background estimate.
pub(crate) fn sort_finite(values: &mut [f32]) {
    let n = values.len();
    if n < 64 {
        values.sort_unstable_by(f32::total_cmp);
        return;
    }
    // Flip all bits of negatives and the sign bit of positives: unsigned order = float order.
    let key = |v: f32| {
        let b = v.to_bits();
        if b & 0x8000_0000 != 0 {
            !b
        } else {
            b | 0x8000_0000
        }
    };
    let mut keys: Vec<u32> = values.iter().map(|&v| key(v)).collect();
    let mut scratch = vec![0u32; n];
    // Digits of 12, 12 and 8 bits; all three histograms in one pass over the keys.
    let mut low = vec![0u32; 4096];
    let mut mid = vec![0u32; 4096];
    let mut high = vec![0u32; 256];
    for &k in &keys {
        low[(k & 0xfff) as usize] += 1;
        mid[((k >> 12) & 0xfff) as usize] += 1;
        high[(k >> 24) as usize] += 1;
    }
    for (hist, shift, digit_mask) in [
        (&mut low, 0u32, 0xfffu32),
        (&mut mid, 12, 0xfff),
        (&mut high, 24, 0xff),
    ] {
        // The sign and exponent byte is usually shared by a whole cell: skip that pass.
        if hist.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut sum = 0u32;
        for c in hist.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for &k in &keys {
            let d = ((k >> shift) & digit_mask) as usize;
            scratch[hist[d] as usize] = k;
            hist[d] += 1;
        }
        std::mem::swap(&mut keys, &mut scratch);
    }
    for (v, &k) in values.iter_mut().zip(&keys) {
        let b = if k & 0x8000_0000 != 0 {
            k & 0x7fff_ffff
        } else {
            !k
        };
        *v = f32::from_bits(b);
    }
}

/// Ratio of the clipped to the true standard deviation of Gaussian noise after `iterations` passes
/// of clipping at `k` times the current estimate.
///
/// Clipping a Gaussian at ±c·σ leaves a standard deviation of σ·t(c) with
/// t(c)² = 1 − 2cφ(c)/(2Φ(c) − 1); iterating from the unclipped σ gives the ratio. At 3σ it converges
/// to about 0.985, so without this correction every noise map (and every SNR and threshold built
/// on it) would be off by 1.5%. SExtractor does not correct; we do, because the detection threshold
/// and false-detection rate are stated in true σ.
pub(crate) fn clipped_sigma_ratio(k: f64, iterations: usize) -> f64 {
    let mut r = 1.0f64;
    for _ in 0..iterations.min(500) {
        let c = k * r;
        let phi = (-0.5 * c * c).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let inside = erf(c / std::f64::consts::SQRT_2);
        let t2 = 1.0 - 2.0 * c * phi / inside;
        let next = t2.max(1e-12).sqrt();
        if (next - r).abs() < 1e-12 {
            r = next;
            break;
        }
        r = next;
    }
    r
}

/// Mesh maps from per-cell estimates, each untrusted cell replaced by the mean of the trusted cells
/// nearest to it (all those at the smallest distance, so no direction is favoured).
fn fill_invalid_cells(
    cells: &[Option<(f64, f64)>],
    ny: usize,
    nx: usize,
) -> (Array2<f64>, Array2<f64>) {
    let valid: Vec<(usize, usize, f64, f64)> = cells
        .iter()
        .enumerate()
        .filter_map(|(k, c)| c.map(|(l, s)| (k / nx, k % nx, l, s)))
        .collect();
    let mut level = Array2::<f64>::zeros((ny, nx));
    let mut rms = Array2::<f64>::zeros((ny, nx));
    for i in 0..ny {
        for j in 0..nx {
            if let Some((l, s)) = cells[i * nx + j] {
                level[[i, j]] = l;
                rms[[i, j]] = s;
                continue;
            }
            let d2 = |&(vi, vj, _, _): &(usize, usize, f64, f64)| {
                let (di, dj) = (vi as i64 - i as i64, vj as i64 - j as i64);
                di * di + dj * dj
            };
            let best = valid.iter().map(d2).min().expect("at least one valid cell");
            let (mut sl, mut ss, mut n) = (0.0, 0.0, 0.0);
            for v in valid.iter().filter(|v| d2(v) == best) {
                sl += v.2;
                ss += v.3;
                n += 1.0;
            }
            level[[i, j]] = sl / n;
            rms[[i, j]] = ss / n;
        }
    }
    (level, rms)
}

/// Median of a window of `size × size` cells around each cell, computed on the map minus a robust
/// plane fit and the plane added back.
///
/// At the borders the window is truncated to the cells that exist rather than padded, so that a
/// bright cell at the border is still outvoted by its neighbours (padding by reflection would let
/// it vote several times). A truncated window is lopsided, though: on a sloping background it
/// would shift border cells by half a cell's worth of slope (SExtractor has this bias). Filtering
/// the residuals from a plane removes that bias for the large-scale gradient and changes nothing
/// on a flat sky.
fn median_filter(map: &Array2<f64>, size: usize) -> Array2<f64> {
    let (ny, nx) = map.dim();
    let plane = robust_plane(map);
    let at = |i: usize, j: usize| plane[0] + plane[1] * i as f64 + plane[2] * j as f64;
    let h = size / 2;
    let mut buf = Vec::with_capacity(size * size);
    Array2::from_shape_fn((ny, nx), |(i, j)| {
        buf.clear();
        for ii in i.saturating_sub(h)..(i + h + 1).min(ny) {
            for jj in j.saturating_sub(h)..(j + h + 1).min(nx) {
                buf.push(map[[ii, jj]] - at(ii, jj));
            }
        }
        median_of(std::mem::take(&mut buf)) + at(i, j)
    })
}

/// Least-squares plane `[a, b, c]` (value = a + b·i + c·j over cell indices) through a mesh map,
/// refitted once without the cells more than 3 robust σ from the first fit, so that a few cells
/// biased by bright objects do not tilt it.
fn robust_plane(map: &Array2<f64>) -> [f64; 3] {
    let fit = |keep: &dyn Fn(usize, usize) -> bool| -> Option<[f64; 3]> {
        // Normal equations, with coordinates centred for conditioning.
        let (ny, nx) = map.dim();
        let (ci, cj) = ((ny as f64 - 1.0) / 2.0, (nx as f64 - 1.0) / 2.0);
        let (mut n, mut si, mut sj, mut sii, mut sjj, mut sij) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut sv, mut svi, mut svj) = (0.0, 0.0, 0.0);
        for ((i, j), &v) in map.indexed_iter() {
            if !keep(i, j) {
                continue;
            }
            let (x, y) = (i as f64 - ci, j as f64 - cj);
            n += 1.0;
            si += x;
            sj += y;
            sii += x * x;
            sjj += y * y;
            sij += x * y;
            sv += v;
            svi += v * x;
            svj += v * y;
        }
        if n < 1.0 {
            return None;
        }
        // Solve the 3×3 system by Cramer's rule; a degenerate axis (one row or column of cells)
        // leaves that slope at zero.
        let m = [[n, si, sj], [si, sii, sij], [sj, sij, sjj]];
        let rhs = [sv, svi, svj];
        let det3 = |m: &[[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det3(&m);
        let (a, b, c) = if d.abs() > 1e-9 * n.powi(3).max(1.0) {
            let col = |k: usize| {
                let mut mk = m;
                for r in 0..3 {
                    mk[r][k] = rhs[r];
                }
                det3(&mk) / d
            };
            (col(0), col(1), col(2))
        } else if sii > 0.0 {
            (
                sv / n,
                (svi - si * sv / n) / (sii - si * si / n).max(1e-300),
                0.0,
            )
        } else if sjj > 0.0 {
            (
                sv / n,
                0.0,
                (svj - sj * sv / n) / (sjj - sj * sj / n).max(1e-300),
            )
        } else {
            (sv / n, 0.0, 0.0)
        };
        Some([a - b * ci - c * cj, b, c])
    };
    let Some(first) = fit(&|_, _| true) else {
        return [0.0; 3];
    };
    let resid =
        |i: usize, j: usize, p: &[f64; 3]| map[[i, j]] - (p[0] + p[1] * i as f64 + p[2] * j as f64);
    let mad = median_of(
        map.indexed_iter()
            .map(|((i, j), _)| resid(i, j, &first).abs())
            .collect(),
    );
    if mad <= 0.0 {
        return first;
    }
    let cut = 3.0 * 1.4826 * mad;
    fit(&|i, j| resid(i, j, &first).abs() <= cut).unwrap_or(first)
}

/// Median of a non-empty vector (mean of the two middle values for even lengths).
fn median_of(mut v: Vec<f64>) -> f64 {
    deepsky_core::math::median(&mut v)
}

/// Second derivatives of the natural cubic spline through `(xs, ys)` (zero at both ends).
fn spline_second_derivatives(xs: &[f64], ys: &[f64], out: &mut Vec<f64>) {
    let n = xs.len();
    out.clear();
    out.resize(n, 0.0);
    if n < 3 {
        return;
    }
    // Thomas algorithm on the tridiagonal system of the interior knots.
    let mut c_prime = vec![0.0; n];
    let mut d_prime = vec![0.0; n];
    for i in 1..n - 1 {
        let h0 = xs[i] - xs[i - 1];
        let h1 = xs[i + 1] - xs[i];
        let a = h0 / 6.0;
        let b = (h0 + h1) / 3.0;
        let c = h1 / 6.0;
        let d = (ys[i + 1] - ys[i]) / h1 - (ys[i] - ys[i - 1]) / h0;
        let denom = b - a * c_prime[i - 1];
        c_prime[i] = c / denom;
        d_prime[i] = (d - a * d_prime[i - 1]) / denom;
    }
    for i in (1..n - 1).rev() {
        out[i] = d_prime[i] - c_prime[i] * out[i + 1];
    }
}

/// How to evaluate a spline at one output position: `y = a·y[k] + b·y[k1] + c·y2[k] + d·y2[k1]`.
#[derive(Clone, Copy)]
struct SplineTap {
    k: usize,
    k1: usize,
    a: f64,
    b: f64,
    c: f64,
    d: f64,
}

/// Evaluation taps of the natural spline over knots `xs` at positions `0..n_out`. Outside the
/// outer knots (half a cell at each border) the spline is continued linearly with its end slope,
/// which keeps a background gradient right up to the edge instead of flattening it.
fn spline_taps(xs: &[f64], n_out: usize) -> Vec<SplineTap> {
    let n = xs.len();
    (0..n_out)
        .map(|p| {
            let x = p as f64;
            if n == 1 {
                return SplineTap {
                    k: 0,
                    k1: 0,
                    a: 1.0,
                    b: 0.0,
                    c: 0.0,
                    d: 0.0,
                };
            }
            if x <= xs[0] {
                let (h, t) = (xs[1] - xs[0], x - xs[0]);
                // y0 + t·y'(x0), y'(x0) = (y1 − y0)/h − h(2·y2_0 + y2_1)/6
                return SplineTap {
                    k: 0,
                    k1: 1,
                    a: 1.0 - t / h,
                    b: t / h,
                    c: -t * h / 3.0,
                    d: -t * h / 6.0,
                };
            }
            if x >= xs[n - 1] {
                let (h, t) = (xs[n - 1] - xs[n - 2], x - xs[n - 1]);
                // yn + t·y'(xn), y'(xn) = (yn − yn−1)/h + h(y2_{n−1} + 2·y2_n)/6
                return SplineTap {
                    k: n - 2,
                    k1: n - 1,
                    a: -t / h,
                    b: 1.0 + t / h,
                    c: t * h / 6.0,
                    d: t * h / 3.0,
                };
            }
            let k = xs.partition_point(|&v| v <= x).saturating_sub(1).min(n - 2);
            let h = xs[k + 1] - xs[k];
            let a = (xs[k + 1] - x) / h;
            let b = 1.0 - a;
            SplineTap {
                k,
                k1: k + 1,
                a,
                b,
                c: (a * a * a - a) * h * h / 6.0,
                d: (b * b * b - b) * h * h / 6.0,
            }
        })
        .collect()
}

impl SplineTap {
    #[inline]
    fn eval(&self, y: &[f64], y2: &[f64]) -> f64 {
        self.a * y[self.k] + self.b * y[self.k1] + self.c * y2[self.k] + self.d * y2[self.k1]
    }
}

/// A run of output columns `start..end` evaluated with one cubic around knot `k`.
struct Segment {
    start: usize,
    end: usize,
    kind: SegmentKind,
    /// The knot position `t` is measured from.
    origin: f64,
}

enum SegmentKind {
    /// Only one knot: a constant.
    Constant,
    /// Before the first knot: the first interval's line, continued.
    Left,
    /// Inside interval `k` (between knots k and k + 1).
    Inside(usize),
    /// After the last knot: the last interval's end slope, continued.
    Right,
}

impl Segment {
    /// Coefficients `[a0, a1, a2, a3]` of `y = a0 + a1·t + a2·t² + a3·t³`.
    fn coefficients(&self, xs: &[f64], y: &[f64], y2: &[f64]) -> [f64; 4] {
        let n = xs.len();
        // Slope at the start of interval k, and at its end.
        let slope_start = |k: usize| {
            let h = xs[k + 1] - xs[k];
            (y[k + 1] - y[k]) / h - h * (2.0 * y2[k] + y2[k + 1]) / 6.0
        };
        match self.kind {
            SegmentKind::Constant => [y[0], 0.0, 0.0, 0.0],
            SegmentKind::Left => [y[0], slope_start(0), 0.0, 0.0],
            SegmentKind::Inside(k) => {
                let h = xs[k + 1] - xs[k];
                [
                    y[k],
                    slope_start(k),
                    y2[k] / 2.0,
                    (y2[k + 1] - y2[k]) / (6.0 * h),
                ]
            }
            SegmentKind::Right => {
                let h = xs[n - 1] - xs[n - 2];
                let slope = (y[n - 1] - y[n - 2]) / h + h * (y2[n - 2] + 2.0 * y2[n - 1]) / 6.0;
                [y[n - 1], slope, 0.0, 0.0]
            }
        }
    }
}

/// Splits columns `0..n` into spline segments over the knots `xs`.
fn x_segments(xs: &[f64], n: usize) -> Vec<Segment> {
    let m = xs.len();
    if m == 1 {
        return vec![Segment {
            start: 0,
            end: n,
            kind: SegmentKind::Constant,
            origin: xs[0],
        }];
    }
    // First column at or after position p.
    let first_at = |p: f64| (p.ceil().max(0.0) as usize).min(n);
    let mut segs = Vec::new();
    let mut push = |start: usize, end: usize, kind: SegmentKind, origin: f64| {
        if end > start {
            segs.push(Segment {
                start,
                end,
                kind,
                origin,
            });
        }
    };
    push(0, first_at(xs[0]), SegmentKind::Left, xs[0]);
    for k in 0..m - 1 {
        push(
            first_at(xs[k]),
            first_at(xs[k + 1]),
            SegmentKind::Inside(k),
            xs[k],
        );
    }
    push(first_at(xs[m - 1]), n, SegmentKind::Right, xs[m - 1]);
    segs
}

/// Bicubic spline interpolation of a mesh map (nodes at rows `cy`, columns `cx`) to an image of
/// `shape`, never below `floor`: a natural spline along each mesh column first, then along each
/// output row, like SExtractor.
fn interpolate_bicubic(
    mesh: &Array2<f64>,
    cy: &[f64],
    cx: &[f64],
    shape: (usize, usize),
    floor: f32,
) -> Array2<f32> {
    let (nrows, ncols) = shape;
    let mut out = Array2::<f32>::zeros(shape);
    let (ny, nx) = mesh.dim();
    let row_taps = spline_taps(cy, nrows);

    // Columns of the mesh interpolated to every image row: (nrows × nx).
    let mut by_row = Array2::<f64>::zeros((nrows, nx));
    let mut y2 = Vec::new();
    for j in 0..nx {
        let col: Vec<f64> = (0..ny).map(|i| mesh[[i, j]]).collect();
        spline_second_derivatives(cy, &col, &mut y2);
        for (r, tap) in row_taps.iter().enumerate() {
            by_row[[r, j]] = tap.eval(&col, &y2);
        }
    }

    // Along x, columns sharing a spline interval form one segment, over which the spline is one
    // cubic in t = x − x_k: evaluate it by Horner's rule in a loop the compiler vectorises.
    let segments = x_segments(cx, ncols);
    // Column positions as floats, so that t below is computed without an integer conversion
    // per pixel (which would stop the loop from vectorising).
    let columns: Vec<f32> = (0..ncols).map(|c| c as f32).collect();
    let out_slice = out
        .as_slice_mut()
        .expect("freshly allocated maps are contiguous");
    out_slice.par_chunks_mut(ncols).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(vals, d2), (r, row)| {
            vals.clear();
            vals.extend(by_row.row(r).iter().copied());
            spline_second_derivatives(cx, vals, d2);
            for seg in &segments {
                let [a0, a1, a2, a3] = seg.coefficients(cx, vals, d2);
                let (a0, a1, a2, a3) = (a0 as f32, a1 as f32, a2 as f32, a3 as f32);
                let origin = seg.origin as f32;
                for (o, &x) in row[seg.start..seg.end]
                    .iter_mut()
                    .zip(&columns[seg.start..seg.end])
                {
                    let t = x - origin;
                    *o = (a0 + t * (a1 + t * (a2 + t * a3))).max(floor);
                }
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn asinh_fast_is_accurate_from_the_noise_to_saturated_stars() {
        let mut worst_abs = 0.0f64;
        let mut worst_rel = 0.0f64;
        let mut x = 1e-6f64;
        while x < 1e12 {
            for v in [x, -x] {
                let (got, want) = (asinh_fast(v as f32) as f64, (v as f32 as f64).asinh());
                if v.abs() < 1.0 {
                    worst_abs = worst_abs.max((got - want).abs());
                } else {
                    worst_rel = worst_rel.max(((got - want) / want).abs());
                }
            }
            x *= 1.01;
        }
        assert!(
            worst_abs < 3e-7 && worst_rel < 1e-6,
            "{worst_abs} {worst_rel}"
        );
        assert_eq!(asinh_fast(0.0), 0.0);
        assert!((asinh_fast(f32::MAX) - 42.14).abs() < 0.01);
    }
    use rand_distr::{Distribution, Normal};
    use rand_pcg::Pcg64;

    pub(super) fn noise_image(
        rows: usize,
        cols: usize,
        level: f32,
        sigma: f32,
        seed: u64,
    ) -> Array2<f32> {
        let mut rng = Pcg64::seed_from_u64(seed);
        let n = Normal::new(0.0f32, sigma).unwrap();
        Array2::from_shape_fn((rows, cols), |_| level + n.sample(&mut rng))
    }

    fn max_rel_err(a: &Array2<f32>, truth: f32) -> f32 {
        a.iter().map(|v| (v - truth).abs()).fold(0.0f32, f32::max) / truth
    }

    #[test]
    fn flat_noise_recovers_level_and_rms() {
        let img = noise_image(512, 512, 1000.0, 10.0, 1);
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        // 64×64 pixels per cell: the level of one cell is known to σ/64·~1.3 (mode estimator),
        // the median filter averages further; allow 0.1σ anywhere and 1% on the global values.
        let max_level_err = bkg
            .level
            .iter()
            .map(|v| (v - 1000.0).abs())
            .fold(0.0f32, f32::max);
        assert!(max_level_err < 1.0, "max level error {max_level_err}");
        assert!(
            (bkg.global_level - 1000.0).abs() < 0.2,
            "{}",
            bkg.global_level
        );
        assert!(
            (bkg.global_rms - 10.0).abs() < 0.1,
            "global rms {}",
            bkg.global_rms
        );
        assert!(
            max_rel_err(&bkg.rms, 10.0) < 0.03,
            "rms off by > 3% somewhere"
        );
    }

    #[test]
    fn radix_sort_sorts() {
        let mut rng = Pcg64::seed_from_u64(30);
        let n = Normal::new(0.0f32, 1e3).unwrap();
        for len in [0usize, 1, 63, 64, 1000, 4096] {
            let mut v: Vec<f32> = (0..len).map(|_| n.sample(&mut rng)).collect();
            v.extend(
                [0.0, -0.0, 1e-30, -1e30, f32::MAX, f32::MIN]
                    .iter()
                    .take(len.min(6)),
            );
            let mut expected = v.clone();
            expected.sort_by(f32::total_cmp);
            sort_finite(&mut v);
            assert_eq!(v, expected);
        }
    }

    #[test]
    fn clipping_correction_matches_theory() {
        // Fixed point of 3σ clipping: r = 0.9847 (Gaussian truncated at ±3r σ has σ·r).
        let r = clipped_sigma_ratio(3.0, 100);
        assert!((r - 0.9847).abs() < 5e-4, "{r}");
        assert_eq!(clipped_sigma_ratio(3.0, 0), 1.0);
    }

    #[test]
    fn gradient_is_tracked() {
        // A ramp of 2 ADU per pixel along x and 1 along y over 500 × 700 pixels (not multiples of
        // the mesh), noise 5: the spline must follow it, extrapolation included.
        let (rows, cols) = (500, 700);
        let mut img = noise_image(rows, cols, 0.0, 5.0, 2);
        img.indexed_iter_mut()
            .for_each(|((r, c), v)| *v += 100.0 + 2.0 * c as f32 + r as f32);
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        let mut max_inner = 0.0f32;
        let mut max_edge = 0.0f32;
        for ((r, c), &l) in bkg.level.indexed_iter() {
            let err = (l - (100.0 + 2.0 * c as f32 + r as f32)).abs();
            // Between the second and the second-to-last mesh nodes (1.5 cells from the border):
            // outside that, the spline depends on the border nodes.
            let inner = r >= 96 && r < rows - 96 && c >= 96 && c < cols - 96;
            if inner {
                max_inner = max_inner.max(err);
            } else {
                max_edge = max_edge.max(err);
            }
        }
        // The ramp spans ~190 ADU across one cell, which widens the cell's histogram and makes
        // its median (hence the mode estimate) several times noisier than on a flat sky. Without
        // the plane detrending in the median filter the borders would be off by half a cell step,
        // 64 ADU.
        assert!(max_inner < 3.0, "interior level error {max_inner}");
        assert!(max_edge < 6.0, "edge level error {max_edge}");
        // (The rms is inflated by the ramp within each cell, as in SExtractor; see below.)
    }

    #[test]
    fn gentle_gradient_is_tracked_everywhere_with_correct_rms() {
        // 0.04 and 0.02 ADU/pixel: 38 ADU across the image, 2.6 ADU across a cell (noise 5).
        let (rows, cols) = (500, 700);
        let truth = |r: usize, c: usize| 100.0 + 0.04 * c as f32 + 0.02 * r as f32;
        let mut img = noise_image(rows, cols, 0.0, 5.0, 12);
        img.indexed_iter_mut()
            .for_each(|((r, c), v)| *v += truth(r, c));
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        let max_err = bkg
            .level
            .indexed_iter()
            .map(|((r, c), &l)| (l - truth(r, c)).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_err < 0.5,
            "level error {max_err} (a flat estimate would be off by 19)"
        );
        // The ramp inside a cell adds (2.6² + 1.3²)/12 to the variance: +1.4% on the rms.
        let max_rms_err = max_rel_err(&bkg.rms, 5.0);
        assert!(max_rms_err < 0.04, "rms error {max_rms_err}");
    }

    #[test]
    fn gradient_without_filter_is_exact_to_the_edges() {
        let (rows, cols) = (300, 260);
        let mut img = noise_image(rows, cols, 0.0, 2.0, 3);
        img.indexed_iter_mut()
            .for_each(|((r, c), v)| *v += 50.0 + 0.5 * c as f32 - 0.3 * r as f32);
        let cfg = BackgroundConfig {
            filter_size: 1,
            ..Default::default()
        };
        let bkg = estimate_background(img.view(), None, &cfg).unwrap();
        let max_err = bkg
            .level
            .indexed_iter()
            .map(|((r, c), &l)| (l - (50.0 + 0.5 * c as f32 - 0.3 * r as f32)).abs())
            .fold(0.0f32, f32::max);
        // The ramp spans ~50 ADU across a cell, which widens the cell's histogram and makes its
        // median (hence the mode estimate) noisier than on a flat sky: ~0.3 ADU per node,
        // amplified up to ~2× by the linear extrapolation into the corners.
        assert!(
            max_err < 1.2,
            "max level error {max_err} with linear extrapolation"
        );
    }

    #[test]
    fn bright_source_barely_biases_its_cell() {
        // A bright extended source (peak 50σ, σ_psf 4 px) in the middle of one 64×64 cell.
        let mut img = noise_image(256, 256, 100.0, 1.0, 4);
        let (yc, xc, s) = (96.0f32, 96.0f32, 4.0f32);
        img.indexed_iter_mut().for_each(|((r, c), v)| {
            let d2 = (r as f32 - yc).powi(2) + (c as f32 - xc).powi(2);
            *v += 50.0 * (-d2 / (2.0 * s * s)).exp();
        });
        let cell_mean = img.slice(ndarray::s![64..128, 64..128]).mean().unwrap();
        let no_filter = BackgroundConfig {
            filter_size: 1,
            ..Default::default()
        };
        let bkg = estimate_background(img.view(), None, &no_filter).unwrap();
        // The plain mean of the cell is biased by ~1.2σ; the clipped mode must stay within 0.1σ
        // even without the median filter.
        assert!(
            cell_mean - 100.0 > 1.0,
            "test source too faint: {cell_mean}"
        );
        let at_source = bkg.level[[96, 96]] - 100.0;
        assert!(at_source.abs() < 0.1, "bias {at_source}");
        let filtered = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        assert!((filtered.level[[96, 96]] - 100.0).abs() < 0.06);
    }

    #[test]
    fn nan_regions_and_masks_are_ignored() {
        let mut img = noise_image(256, 320, 20.0, 2.0, 5);
        // A fully NaN block covering whole cells, plus scattered NaNs and a masked hot region.
        img.slice_mut(ndarray::s![0..128, 0..128]).fill(f32::NAN);
        for k in (0..img.len()).step_by(97) {
            let (r, c) = (k / 320, k % 320);
            img[[r, c]] = f32::NAN;
        }
        img.slice_mut(ndarray::s![200..256, 250..320]).fill(1e6);
        let mut mask = Array2::from_elem(img.raw_dim(), false);
        mask.slice_mut(ndarray::s![200..256, 250..320]).fill(true);
        img[[10, 300]] = f32::INFINITY;
        let bkg = estimate_background(img.view(), Some(mask.view()), &BackgroundConfig::default())
            .unwrap();
        assert!(bkg.level.iter().all(|v| v.is_finite()));
        assert!(bkg.rms.iter().all(|v| v.is_finite() && *v > 0.0));
        let max_err = bkg
            .level
            .iter()
            .map(|v| (v - 20.0).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 0.3, "level error {max_err}");
        assert!((bkg.global_rms - 2.0).abs() < 0.05);
    }

    #[test]
    fn tiny_and_odd_images() {
        // Smaller than one mesh: a single cell, constant maps.
        let img = noise_image(10, 7, 5.0, 1.0, 6);
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        assert_eq!(bkg.level.dim(), (10, 7));
        assert!((bkg.global_level - 5.0).abs() < 0.6);
        assert!(bkg.level.iter().all(|&v| v == bkg.level[[0, 0]]));
        // One row.
        let img = noise_image(1, 300, 5.0, 1.0, 7);
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        assert!((bkg.global_level - 5.0).abs() < 0.4);
        // Cells of a 65-pixel axis: two cells of 32 and 33 rather than 64 + a 1-pixel sliver.
        assert_eq!(cell_edges(65, 64), vec![0, 32, 65]);
        assert_eq!(cell_edges(128, 64), vec![0, 64, 128]);
        assert_eq!(cell_edges(5, 64), vec![0, 5]);
    }

    #[test]
    fn all_nan_fails_cleanly_and_sparse_data_falls_back() {
        let img = Array2::from_elem((50, 50), f32::NAN);
        let err = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap_err();
        assert!(matches!(err, DetectError::NoValidPixels { .. }), "{err}");
        // 30% valid pixels everywhere: no cell is trusted, the global fallback is used.
        let mut img = noise_image(128, 128, 3.0, 0.5, 8);
        img.indexed_iter_mut().for_each(|((r, c), v)| {
            if (r * 128 + c) % 10 >= 3 {
                *v = f32::NAN;
            }
        });
        let bkg = estimate_background(img.view(), None, &BackgroundConfig::default()).unwrap();
        assert!((bkg.global_level - 3.0).abs() < 0.05);
        assert!((bkg.global_rms - 0.5).abs() < 0.03);
        let empty = Array2::<f32>::zeros((0, 5));
        assert!(matches!(
            estimate_background(empty.view(), None, &BackgroundConfig::default()),
            Err(DetectError::EmptyImage(_))
        ));
    }

    #[test]
    fn config_validation_and_serde() {
        assert!(BackgroundConfig::default().validate().is_ok());
        for bad in [
            BackgroundConfig {
                mesh_size: 2,
                ..Default::default()
            },
            BackgroundConfig {
                filter_size: 4,
                ..Default::default()
            },
            BackgroundConfig {
                clip_sigma: 1.0,
                ..Default::default()
            },
            BackgroundConfig {
                clip_sigma: f64::NAN,
                ..Default::default()
            },
            BackgroundConfig {
                min_valid_fraction: 0.0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let cfg: BackgroundConfig = serde_json::from_str(r#"{"mesh_size": 32}"#).unwrap();
        assert_eq!(
            cfg,
            BackgroundConfig {
                mesh_size: 32,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<BackgroundConfig>(r#"{"mesh": 32}"#).is_err());
        let mask = Array2::from_elem((3, 3), false);
        let img = Array2::<f32>::zeros((4, 4));
        assert!(matches!(
            estimate_background(img.view(), Some(mask.view()), &BackgroundConfig::default()),
            Err(DetectError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn normalisation_and_snr() {
        let mut img = Array2::from_elem((4, 4), 10.0f32);
        img[[0, 0]] = f32::NAN;
        img[[1, 1]] = 30.0;
        let bkg = Background::constant((4, 4), 10.0, 2.0);
        let n = normalise_asinh(img.view(), &bkg, 1.0).unwrap();
        assert_eq!(n[[0, 0]], 0.0);
        assert_eq!(n[[0, 1]], 0.0);
        assert!((n[[1, 1]] - 10.0f32.asinh()).abs() < 1e-6);
        let n3 = normalise_asinh(img.view(), &bkg, 2.0).unwrap();
        assert!((n3[[1, 1]] - 5.0f32.asinh()).abs() < 1e-6);
        assert!(normalise_asinh(img.view(), &bkg, 0.0).is_err());
        let mut mask = Array2::from_elem((4, 4), false);
        mask[[2, 2]] = true;
        let s = snr_image(img.view(), Some(mask.view()), &bkg).unwrap();
        assert!(s[[0, 0]].is_nan() && s[[2, 2]].is_nan());
        assert_eq!(s[[1, 1]], 10.0);
        assert_eq!(s[[3, 3]], 0.0);
        let wrong = Background::constant((4, 5), 0.0, 1.0);
        assert!(normalise_asinh(img.view(), &wrong, 1.0).is_err());
    }
}
