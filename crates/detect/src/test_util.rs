//! Synthetic sources and noise for the tests of this crate.

use deepsky_core::math::erf;
use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use rand_pcg::Pcg64;

/// Adds a pixel-integrated circular Gaussian of total `flux` centred at 0-based (row, col).
pub fn add_gaussian(img: &mut Array2<f32>, row: f64, col: f64, sigma: f64, flux: f64) {
    let (nrows, ncols) = img.dim();
    let rad = (6.0 * sigma).ceil() as i64;
    let cdf = |t: f64| 0.5 * (1.0 + erf(t / (sigma * std::f64::consts::SQRT_2)));
    let frac = |p: i64, centre: f64| cdf(p as f64 + 0.5 - centre) - cdf(p as f64 - 0.5 - centre);
    for r in (row.round() as i64 - rad)..=(row.round() as i64 + rad) {
        if r < 0 || r >= nrows as i64 {
            continue;
        }
        let fr = frac(r, row);
        for c in (col.round() as i64 - rad)..=(col.round() as i64 + rad) {
            if c < 0 || c >= ncols as i64 {
                continue;
            }
            img[[r as usize, c as usize]] += (flux * fr * frac(c, col)) as f32;
        }
    }
}

/// White Gaussian noise of `sigma` on a flat level of 100.
pub fn noise(rows: usize, cols: usize, sigma: f32, rng: &mut Pcg64) -> Array2<f32> {
    let n = Normal::new(0.0f32, sigma).unwrap();
    Array2::from_shape_fn((rows, cols), |_| 100.0 + n.sample(rng))
}

/// Flux of a Gaussian of width `sigma` whose optimal (matched-filter) SNR is `snr` in white
/// noise of `noise`: SNR = F·sqrt(Σp²)/noise with p the normalised profile, ≈ F/(noise·√(4π)σ).
pub fn flux_for_snr(snr: f64, sigma: f64, noise: f64) -> f64 {
    let mut img = Array2::<f32>::zeros((41, 41));
    add_gaussian(&mut img, 20.0, 20.0, sigma, 1.0);
    let sum_sq: f64 = img.iter().map(|&v| (v as f64) * (v as f64)).sum();
    snr * noise / sum_sq.sqrt()
}

/// Adds a 7×7 grid of Gaussian sources 64 px apart (from (40, 40), at random sub-pixel offsets)
/// to a 512×512 image; their 0-based `(row, col)` centres.
pub fn source_grid(
    img: &mut Array2<f32>,
    rng: &mut Pcg64,
    sigma: f64,
    flux: f64,
) -> Vec<(f64, f64)> {
    let mut centres = Vec::new();
    for i in 0..7 {
        for j in 0..7 {
            let row = 40.0 + 64.0 * i as f64 + rng.random::<f64>();
            let col = 40.0 + 64.0 * j as f64 + rng.random::<f64>();
            add_gaussian(img, row, col, sigma, flux);
            centres.push((row, col));
        }
    }
    centres
}
