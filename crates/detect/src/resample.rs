//! Resampling an image onto a coarser or finer pixel grid, and mapping positions between the
//! two grids: how `predict` brings an image whose PSF lies outside the range the detector was
//! trained on into that range, and maps what it finds back (issue 21).
//!
//! Coordinates follow [`deepsky_core::pixel`]: continuous, 0-based, pixel `i` spans `[i, i+1)`.
//! An image of `w` columns resampled to `w'` columns maps `x ↦ x · w'/w` exactly (edges onto
//! edges), so positions round-trip without drift across the image.
//!
//! Making pixels coarser averages the exact area each new pixel covers (surface brightness is
//! kept, noise falls as in binning, no aliasing of sharp sources); making them finer
//! interpolates bilinearly between pixel centres. NaN pixels (blank, masked) carry no weight;
//! a new pixel with no finite input is NaN.
//!
//! ```
//! use deepsky_detect::resample::resample;
//! use ndarray::Array2;
//! let img = Array2::from_shape_fn((40, 60), |(r, c)| (r + c) as f32);
//! let half = resample(img.view(), 0.5).unwrap();
//! assert_eq!(half.image.dim(), (20, 30));
//! // A position on the coarse grid, back on the original one.
//! assert_eq!(half.to_original(10.0, 5.0), (20.0, 10.0));
//! ```

use ndarray::{Array2, ArrayView2};

use crate::error::DetectError;

/// An image on a new grid, with the mapping between the grids.
#[derive(Debug, Clone)]
pub struct Resampled {
    /// The resampled image.
    pub image: Array2<f32>,
    /// New columns per original column (`x' = x · scale_x`).
    pub scale_x: f64,
    /// New rows per original row (`y' = y · scale_y`).
    pub scale_y: f64,
}

impl Resampled {
    /// A continuous position `(x, y)` on the resampled grid, on the original grid.
    pub fn to_original(&self, x: f64, y: f64) -> (f64, f64) {
        (x / self.scale_x, y / self.scale_y)
    }

    /// A continuous position on the original grid, on the resampled grid.
    pub fn to_resampled(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scale_x, y * self.scale_y)
    }
}

/// Resample `image` by `scale` (new pixels per original pixel along each axis: 0.5 halves
/// the number of rows and columns, a PSF 8 pixels wide becomes 4 pixels wide).
///
/// The new size is the original times `scale`, rounded, at least 1 × 1. A scale that is not
/// finite and positive, or that would make an image of more than 2^31 pixels, is an error.
pub fn resample(image: ArrayView2<'_, f32>, scale: f64) -> Result<Resampled, DetectError> {
    let (rows, cols) = image.dim();
    let bad = |m: String| DetectError::InvalidArgument(m);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(bad(format!(
            "resampling scale must be a positive number, got {scale}"
        )));
    }
    let new_rows = ((rows as f64 * scale).round() as usize).max(1);
    let new_cols = ((cols as f64 * scale).round() as usize).max(1);
    if rows == 0 || cols == 0 {
        return Err(DetectError::Input(
            "cannot resample an image with no pixels".into(),
        ));
    }
    if (new_rows as f64) * (new_cols as f64) > (1u64 << 31) as f64 {
        return Err(bad(format!(
            "resampling {rows}×{cols} by {scale} would make {new_rows}×{new_cols} pixels"
        )));
    }
    let (sy, sx) = (new_rows as f64 / rows as f64, new_cols as f64 / cols as f64);
    let image = if sx <= 1.0 && sy <= 1.0 {
        area_average(image, new_rows, new_cols, sy, sx)
    } else {
        bilinear(image, new_rows, new_cols, sy, sx)
    };
    Ok(Resampled {
        image,
        scale_x: sx,
        scale_y: sy,
    })
}

/// The original pixels a new pixel `[i, i+1)` covers along one axis, with the covered length
/// of each (in original pixels).
fn overlaps(i: usize, scale: f64, n: usize) -> Vec<(usize, f64)> {
    let (lo, hi) = (i as f64 / scale, (i + 1) as f64 / scale);
    let first = lo.floor() as usize;
    let last = (hi.ceil() as usize).min(n);
    (first..last)
        .filter_map(|p| {
            let w = (hi.min(p as f64 + 1.0) - lo.max(p as f64)).max(0.0);
            (w > 0.0).then_some((p, w))
        })
        .collect()
}

fn area_average(
    image: ArrayView2<'_, f32>,
    rows: usize,
    cols: usize,
    sy: f64,
    sx: f64,
) -> Array2<f32> {
    let (n_rows, n_cols) = image.dim();
    let col_spans: Vec<Vec<(usize, f64)>> = (0..cols).map(|j| overlaps(j, sx, n_cols)).collect();
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let (mut sum, mut weight) = (0.0f64, 0.0f64);
        for &(r, wr) in &overlaps(i, sy, n_rows) {
            for &(c, wc) in &col_spans[j] {
                let v = image[[r, c]];
                if v.is_finite() {
                    sum += v as f64 * wr * wc;
                    weight += wr * wc;
                }
            }
        }
        if weight > 0.0 {
            (sum / weight) as f32
        } else {
            f32::NAN
        }
    })
}

fn bilinear(image: ArrayView2<'_, f32>, rows: usize, cols: usize, sy: f64, sx: f64) -> Array2<f32> {
    let (n_rows, n_cols) = image.dim();
    // The original index-space coordinate of a new pixel's centre, and its two neighbours.
    let source = |i: usize, scale: f64, n: usize| -> (usize, usize, f64) {
        let u = ((i as f64 + 0.5) / scale - 0.5).clamp(0.0, (n - 1) as f64);
        let lo = u.floor() as usize;
        (lo, (lo + 1).min(n - 1), u - lo as f64)
    };
    let col_src: Vec<(usize, usize, f64)> = (0..cols).map(|j| source(j, sx, n_cols)).collect();
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let (r0, r1, fr) = source(i, sy, n_rows);
        let (c0, c1, fc) = col_src[j];
        let (mut sum, mut weight) = (0.0f64, 0.0f64);
        for (r, wr) in [(r0, 1.0 - fr), (r1, fr)] {
            for (c, wc) in [(c0, 1.0 - fc), (c1, fc)] {
                let v = image[[r, c]];
                let w = wr * wc;
                if v.is_finite() && w > 0.0 {
                    sum += v as f64 * w;
                    weight += w;
                }
            }
        }
        if weight > 0.0 {
            (sum / weight) as f32
        } else {
            f32::NAN
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::add_gaussian;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// Flux-weighted centroid (x, y) in a window around a continuous position.
    fn centroid(img: &Array2<f32>, x: f64, y: f64, half: i64) -> (f64, f64) {
        let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
        for r in (y as i64 - half)..=(y as i64 + half) {
            for c in (x as i64 - half)..=(x as i64 + half) {
                if r < 0 || c < 0 || r >= img.nrows() as i64 || c >= img.ncols() as i64 {
                    continue;
                }
                let v = img[[r as usize, c as usize]] as f64;
                sx += v * (c as f64 + 0.5);
                sy += v * (r as f64 + 0.5);
                s += v;
            }
        }
        (sx / s, sy / s)
    }

    #[test]
    fn positions_round_trip_within_a_tenth_of_a_pixel_at_every_scale() {
        let mut rng = Pcg64::seed_from_u64(21);
        let mut img = Array2::<f32>::zeros((240, 300));
        let mut stars = Vec::new();
        for k in 0..12 {
            let (x, y) = (
                30.0 + (k % 4) as f64 * 70.0 + rng.random::<f64>(),
                30.0 + (k / 4) as f64 * 80.0 + rng.random::<f64>(),
            );
            // Sources 3–6 px FWHM: sampled well enough on the coarsest grid below.
            let sigma = 1.3 + rng.random::<f64>() * 1.2;
            add_gaussian(&mut img, y - 0.5, x - 0.5, sigma, 1e4);
            stars.push((x, y));
        }
        for scale in [0.37, 0.5, 0.8, 1.0, 1.6, 2.5] {
            let r = resample(img.view(), scale).unwrap();
            for &(x, y) in &stars {
                let truth = centroid(&img, x, y, 12);
                let (nx, ny) = r.to_resampled(truth.0, truth.1);
                let half = (12.0 * scale).ceil() as i64;
                let found = centroid(&r.image, nx, ny, half);
                let back = r.to_original(found.0, found.1);
                let err = ((back.0 - truth.0).powi(2) + (back.1 - truth.1).powi(2)).sqrt();
                assert!(
                    err < 0.1,
                    "scale {scale}: ({x:.2}, {y:.2}) back at {back:?}, off by {err:.3} px"
                );
            }
        }
    }

    #[test]
    fn coarser_grids_keep_surface_brightness_and_skip_nan() {
        let mut img = Array2::from_shape_fn((64, 90), |(r, c)| 100.0 + (r * 3 + c) as f32 * 0.1);
        let mean = img.mean().unwrap();
        let r = resample(img.view(), 0.5).unwrap();
        assert!((r.image.mean().unwrap() - mean).abs() < 1e-3 * mean);
        // A masked block no new pixel lies wholly inside: averages of the rest, no NaN.
        img.slice_mut(ndarray::s![10..15, 10..15]).fill(f32::NAN);
        let r = resample(img.view(), 0.25).unwrap();
        assert!(r.image.iter().all(|v| v.is_finite()));
        let all_nan = Array2::<f32>::from_elem((8, 8), f32::NAN);
        assert!(resample(all_nan.view(), 0.5)
            .unwrap()
            .image
            .iter()
            .all(|v| v.is_nan()));
    }

    #[test]
    fn bad_scales_are_errors() {
        let img = Array2::<f32>::zeros((10, 10));
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e6] {
            assert!(resample(img.view(), s).is_err(), "{s}");
        }
    }
}
