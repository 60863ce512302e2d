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
    /// Radius beyond which the profile is zero (truncation), pixels, in the circular frame.
    pub(crate) radius: f64,
    /// Largest distance from the centre with light, pixels: `radius`, stretched along the major
    /// axis of an elliptical PSF.
    pub(crate) extent: f64,
    /// For an elliptical PSF, the quadratic form `[a, b, c]` that maps an offset to the circular
    /// profile's squared radius, `a·dx² + 2b·dx·dy + c·dy²` (determinant 1, so the flux and the
    /// geometric-mean FWHM are unchanged); `None` for a circular one.
    metric: Option<[f64; 3]>,
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
                    extent: GAUSS_RADIUS_SIGMA * sigma,
                    metric: None,
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
                    extent: radius,
                    metric: None,
                }
            }
        }
    }

    /// The same profile sheared to ellipticity `1 − b/a` with its major axis at `angle_deg`
    /// from +x towards +y, keeping the flux and the geometric-mean FWHM `sqrt(a·b)`: what
    /// telescope optics, guiding and wind shake do to real PSFs. Ellipticity 0 is a no-op.
    pub(crate) fn with_ellipticity(mut self, ellipticity: f64, angle_deg: f64) -> Self {
        if ellipticity > 0.0 {
            let q = 1.0 - ellipticity;
            let (sin, cos) = angle_deg.to_radians().sin_cos();
            // u along the major axis is compressed by sqrt(q), v across it stretched.
            self.metric = Some([
                q * cos * cos + sin * sin / q,
                (q - 1.0 / q) * cos * sin,
                q * sin * sin + cos * cos / q,
            ]);
            self.extent = self.radius / q.sqrt();
        }
        self
    }

    /// Squared radius in the circular profile's frame of the offset `(dx, dy)`, pixels².
    pub(crate) fn r2(&self, dx: f64, dy: f64) -> f64 {
        match self.metric {
            None => dx * dx + dy * dy,
            Some([a, b, c]) => a * dx * dx + 2.0 * b * dx * dy + c * dy * dy,
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
        let half = self.extent.ceil() as i64 + 1;
        let size = (2 * half + 1) as usize;
        let x0 = xc.round() as i64 - half;
        let y0 = yc.round() as i64 - half;
        let mut data = vec![0.0; size * size];
        match self.kind {
            PsfKind::Gaussian { sigma } if self.metric.is_none() => {
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
            PsfKind::Gaussian { sigma: core } | PsfKind::Moffat { alpha: core, .. } => {
                for j in 0..size {
                    let dy = (y0 + j as i64) as f64 - yc;
                    for i in 0..size {
                        let dx = (x0 + i as i64) as f64 - xc;
                        data[j * size + i] = self.pixel_integral(dx, dy, core);
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
    /// with k chosen so that samples are at most `core`/4 apart in the core (where the profile
    /// curves; `core` is the Moffat α or the Gaussian σ, scaled to the minor axis of an
    /// elliptical PSF) and one sample suffices in the smooth wings.
    fn pixel_integral(&self, dx: f64, dy: f64, core: f64) -> f64 {
        let d_near = ((dx * dx + dy * dy).sqrt() - FRAC_1_SQRT_2).max(0.0);
        if d_near > self.extent {
            return 0.0;
        }
        let core = if self.metric.is_some() {
            core * self.radius / self.extent
        } else {
            core
        };
        let delta = (0.25 * core).max(0.25 * d_near);
        let k = ((1.0 / delta).ceil() as usize).clamp(1, 16);
        let sub = 1.0 / k as f64;
        let mut acc = 0.0;
        for b in 0..k {
            let y = dy - 0.5 + (b as f64 + 0.5) * sub;
            for a in 0..k {
                let x = dx - 0.5 + (a as f64 + 0.5) * sub;
                acc += self.density(self.r2(x, y));
            }
        }
        acc * sub * sub
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ellipticity `1 − sqrt(λmin/λmax)` and major-axis angle (degrees) of a stamp's second
    /// moments about `(xc, yc)`.
    fn shape(stamp: &Stamp, xc: f64, yc: f64) -> (f64, f64) {
        let (mut sxx, mut syy, mut sxy, mut sum) = (0.0, 0.0, 0.0, 0.0);
        for j in 0..stamp.ny {
            for i in 0..stamp.nx {
                let v = stamp.data[j * stamp.nx + i];
                let (dx, dy) = (
                    (stamp.x0 + i as i64) as f64 - xc,
                    (stamp.y0 + j as i64) as f64 - yc,
                );
                sxx += v * dx * dx;
                syy += v * dy * dy;
                sxy += v * dx * dy;
                sum += v;
            }
        }
        let (sxx, syy, sxy) = (sxx / sum, syy / sum, sxy / sum);
        let tr = 0.5 * (sxx + syy);
        let d = (0.25 * (sxx - syy).powi(2) + sxy * sxy).sqrt();
        let e = 1.0 - ((tr - d) / (tr + d)).sqrt();
        (e, 0.5 * (2.0 * sxy).atan2(sxx - syy).to_degrees())
    }

    #[test]
    fn elliptical_psfs_have_the_asked_shape_and_keep_their_flux() {
        for psf in [
            Psf::Gaussian { fwhm: 4.0 },
            Psf::Moffat {
                fwhm: 4.0,
                beta: 4.0,
            },
        ] {
            let round = PsfModel::new(&psf, 1.0);
            let (e0, _) = shape(&round.render_point(20.3, 20.7, 1.0).0, 20.3, 20.7);
            assert!(e0 < 0.005, "{psf:?}: circular PSF has ellipticity {e0}");
            let m = PsfModel::new(&psf, 1.0).with_ellipticity(0.3, 30.0);
            let (stamp, raw) = m.render_point(20.3, 20.7, 1.0);
            // The stamp holds the light (before renormalisation) and sums to the flux.
            assert!(raw > 0.99, "{psf:?}: stamp integral {raw}");
            assert!((stamp.sum() - 1.0).abs() < 1e-12);
            let (e, angle) = shape(&stamp, 20.3, 20.7);
            // Pixel integration adds 1/12 px² to both moments, rounding the shape slightly.
            assert!((e - 0.3).abs() < 0.025, "{psf:?}: ellipticity {e}");
            assert!((angle - 30.0).abs() < 1.0, "{psf:?}: angle {angle}");
        }
    }
}
