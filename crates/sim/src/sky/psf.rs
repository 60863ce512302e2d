//! The point-spread function in pixel units: profile, truncation radius, and stars rendered as
//! the PSF integrated over pixels.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use deepsky_core::math::normal_cdf;

use super::config::Psf;
use super::render::Stamp;

/// FWHM / σ of a Gaussian, 2·sqrt(2·ln 2).
pub(crate) const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_4;
/// The Moffat is truncated where this fraction of its light lies outside...
const MOFFAT_TAIL: f64 = 0.005;
/// ...but no further than this many FWHM, since for β → 1 the tail never ends.
const MOFFAT_MAX_RADIUS_FWHM: f64 = 6.0;
/// Gaussian stamps and kernels extend to this many sigma (the flux beyond is < 4e-6).
const GAUSS_RADIUS_SIGMA: f64 = 5.0;

#[derive(Debug, Clone, Copy)]
enum PsfKind {
    Gaussian { sigma: f64 },
    Moffat { alpha: f64, beta: f64, norm: f64 },
}

/// A PSF in pixel units, ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct PsfModel {
    kind: PsfKind,
    /// FWHM, pixels.
    pub(crate) fwhm: f64,
    /// Radius beyond which the profile is zero (truncation), pixels.
    pub(crate) radius: f64,
}

impl PsfModel {
    pub(crate) fn new(psf: &Psf, pixel_scale: f64) -> Self {
        match *psf {
            Psf::Gaussian { fwhm } => {
                let fwhm = fwhm / pixel_scale;
                let sigma = fwhm / FWHM_PER_SIGMA;
                PsfModel {
                    kind: PsfKind::Gaussian { sigma },
                    fwhm,
                    radius: GAUSS_RADIUS_SIGMA * sigma,
                }
            }
            Psf::Moffat { fwhm, beta } => {
                let fwhm = fwhm / pixel_scale;
                let alpha = fwhm / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
                // Enclosed fraction within r is 1 - (1 + r²/α²)^(1-β).
                let r_tail = alpha * (MOFFAT_TAIL.powf(1.0 / (1.0 - beta)) - 1.0).sqrt();
                let cap = MOFFAT_MAX_RADIUS_FWHM * fwhm;
                let radius = if r_tail.is_finite() {
                    r_tail.min(cap)
                } else {
                    cap
                };
                let enclosed = 1.0 - (1.0 + (radius / alpha).powi(2)).powf(1.0 - beta);
                let norm = (beta - 1.0) / (PI * alpha * alpha * enclosed);
                PsfModel {
                    kind: PsfKind::Moffat { alpha, beta, norm },
                    fwhm,
                    radius,
                }
            }
        }
    }

    /// Surface density per pixel² at squared radius `r2` (pixels²); integrates to 1.
    pub(crate) fn density(&self, r2: f64) -> f64 {
        if r2 > self.radius * self.radius {
            return 0.0;
        }
        match self.kind {
            PsfKind::Gaussian { sigma } => {
                (-0.5 * r2 / (sigma * sigma)).exp() / (2.0 * PI * sigma * sigma)
            }
            PsfKind::Moffat { alpha, beta, norm } => {
                norm * (1.0 + r2 / (alpha * alpha)).powf(-beta)
            }
        }
    }

    /// Oversampling of the galaxy render grid: the smallest power of two >= 2 that puts at
    /// least ~4.7 cells per FWHM (two per Gaussian sigma), so the sampled PSF kernel is smooth.
    pub(crate) fn oversample(&self) -> usize {
        let need = (4.7 / self.fwhm).ceil().max(2.0) as usize;
        need.next_power_of_two().min(16)
    }

    /// The PSF of total flux `flux` centred at 0-based pixel position `(xc, yc)`, integrated
    /// over pixels and renormalised to exactly `flux`. Also returns the stamp's integral
    /// before renormalisation, as a fraction of `flux` (ideally 1).
    pub(crate) fn render_point(&self, xc: f64, yc: f64, flux: f64) -> (Stamp, f64) {
        let half = self.radius.ceil() as i64 + 1;
        let size = (2 * half + 1) as usize;
        let x0 = xc.round() as i64 - half;
        let y0 = yc.round() as i64 - half;
        let mut data = vec![0.0; size * size];
        match self.kind {
            PsfKind::Gaussian { sigma } => {
                // Separable: each pixel is a product of differences of Φ at the pixel edges.
                let axis = |origin: i64, centre: f64| -> Vec<f64> {
                    let edges: Vec<f64> = (0..=size)
                        .map(|i| normal_cdf(((origin + i as i64) as f64 - 0.5 - centre) / sigma))
                        .collect();
                    edges.windows(2).map(|w| w[1] - w[0]).collect()
                };
                let ax = axis(x0, xc);
                let ay = axis(y0, yc);
                for (j, fy) in ay.iter().enumerate() {
                    for (i, fx) in ax.iter().enumerate() {
                        data[j * size + i] = fy * fx;
                    }
                }
            }
            PsfKind::Moffat { alpha, .. } => {
                for j in 0..size {
                    let dy = (y0 + j as i64) as f64 - yc;
                    for i in 0..size {
                        let dx = (x0 + i as i64) as f64 - xc;
                        data[j * size + i] = self.pixel_integral(dx, dy, alpha);
                    }
                }
            }
        }
        let mut stamp = Stamp {
            x0,
            y0,
            nx: size,
            ny: size,
            data,
        };
        let raw = stamp.sum();
        if raw > 0.0 {
            stamp.scale(flux / raw);
        }
        (stamp, raw)
    }

    /// Mean density over the unit pixel centred at offset `(dx, dy)`, by k×k midpoint sampling
    /// with k chosen so that samples are at most α/4 apart in the core (where the profile
    /// curves) and one sample suffices in the smooth wings.
    fn pixel_integral(&self, dx: f64, dy: f64, alpha: f64) -> f64 {
        let d_near = ((dx * dx + dy * dy).sqrt() - FRAC_1_SQRT_2).max(0.0);
        if d_near > self.radius {
            return 0.0;
        }
        let delta = (0.25 * alpha).max(0.25 * d_near);
        let k = ((1.0 / delta).ceil() as usize).clamp(1, 16);
        let sub = 1.0 / k as f64;
        let mut acc = 0.0;
        for b in 0..k {
            let y = dy - 0.5 + (b as f64 + 0.5) * sub;
            for a in 0..k {
                let x = dx - 0.5 + (a as f64 + 0.5) * sub;
                acc += self.density(x * x + y * y);
            }
        }
        acc * sub * sub
    }
}
