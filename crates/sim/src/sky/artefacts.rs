//! The artefacts beyond the simple cosmic rays and bad columns: physical cosmic rays (tracks,
//! worms and spots with Landau-like charge and charge diffusion) and satellite or aircraft
//! trails. The models are described on [`PhysicalCosmicRays`] and [`TrailModel`].

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::config::{log_uniform, uniform, PhysicalCosmicRays, TrailModel};
use super::detector::CosmicRay;
use super::psf::FWHM_PER_SIGMA;
use crate::rng::SimRng;
use deepsky_core::math::erf;

/// Length of one step of a worm's walk, pixels.
const WORM_STEP_PX: f64 = 0.1;
/// Charge deposits per pixel of track, fine enough that diffusion smooths them into a line.
const DEPOSITS_PER_PX: f64 = 10.0;
/// Slow electrons ionise more densely than a minimum-ionising muon.
const WORM_CHARGE_FACTOR: f64 = 2.0;

/// What a physical hit looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HitKind {
    /// A straight track of a through-going particle.
    Track,
    /// A curved track of a low-energy electron.
    Worm,
    /// A compact blob.
    Spot,
}

/// One hit of the physical model, with the numbers its drawing used (the tests check them).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct PhysicalHit {
    pub(crate) kind: HitKind,
    /// The deposited charge, diffused over pixels.
    pub(crate) cr: CosmicRay,
    /// Tracks: projected length; worms: walked length; spots: 0. Pixels.
    pub(crate) length_px: f64,
    /// Distance between the two ends of the path, pixels.
    pub(crate) end_to_end_px: f64,
    /// Path length in silicon, µm (spots: 0).
    pub(crate) path_um: f64,
}

/// A draw of the Moyal distribution with mode `mpv` and scale `scale`: if `Z` is standard
/// normal, `-ln Z²` is Moyal-distributed with mode 0 and scale 1 (`e^{-λ}` is χ² with one
/// degree of freedom). Clamped at 0, which a scale below a tenth of the mode never reaches.
pub(crate) fn moyal(rng: &mut SimRng, mpv: f64, scale: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    let lambda = -(z * z).max(1e-300).ln();
    (mpv + scale * lambda).max(0.0)
}

/// The cumulative distribution of the Moyal law (mode `mpv`, scale `scale`) at `x`:
/// `P(λ' <= λ) = P(Z² >= e^{-λ}) = erfc(sqrt(e^{-λ}/2))`.
#[cfg(test)]
pub(crate) fn moyal_cdf(x: f64, mpv: f64, scale: f64) -> f64 {
    let lambda = (x - mpv) / scale;
    1.0 - erf(((-lambda).exp() / 2.0).sqrt())
}

/// Number of hits on a `w×h` chip: Poisson with mean `rate × area × exposure`.
pub(crate) fn cosmic_ray_count(
    rng: &mut SimRng,
    rate: f64,
    pixel_um: f64,
    w: usize,
    h: usize,
    exposure_s: f64,
) -> usize {
    let mean = expected_cosmic_rays(rate, pixel_um, w, h, exposure_s);
    match Poisson::new(mean) {
        Ok(p) => p.sample(rng) as usize,
        Err(_) => 0,
    }
}

/// `rate [/cm²/s] × area [cm²] × exposure [s]`.
pub(crate) fn expected_cosmic_rays(
    rate: f64,
    pixel_um: f64,
    w: usize,
    h: usize,
    exposure_s: f64,
) -> f64 {
    let pixel_cm = pixel_um * 1e-4;
    rate * (w * h) as f64 * pixel_cm * pixel_cm * exposure_s
}

/// Draws one hit centred at 0-based `(x, y)`.
pub(crate) fn draw_physical(
    rng: &mut SimRng,
    x: f64,
    y: f64,
    p: &PhysicalCosmicRays,
) -> PhysicalHit {
    let u: f64 = rng.random();
    if u < p.spot_fraction {
        let sigma = uniform(rng, p.spot_sigma_px[0], p.spot_sigma_px[1]);
        let charge = log_uniform(rng, p.spot_charge_e[0], p.spot_charge_e[1]);
        let total_sigma = sigma.hypot(p.diffusion_sigma_px);
        let pixels = diffuse(&[(x, y, charge)], total_sigma);
        return PhysicalHit {
            kind: HitKind::Spot,
            cr: CosmicRay {
                pixels,
                angle_deg: 0.0,
                charge,
            },
            length_px: 0.0,
            end_to_end_px: 0.0,
            path_um: 0.0,
        };
    }
    if u < p.spot_fraction + p.worm_fraction {
        return draw_worm(rng, x, y, p);
    }
    // Isotropic flux through a horizontal plane: dN/dθ ∝ cos θ sin θ, so sin²θ is uniform.
    let v: f64 = rng.random();
    let tan_theta = (v / (1.0 - v)).sqrt();
    let length = (p.depletion_um * tan_theta / p.pixel_um).min(p.max_track_px);
    let path_um = p.depletion_um.hypot(length * p.pixel_um);
    let angle = rng.random::<f64>() * PI;
    let per_um = moyal(rng, p.mpv_e_per_um, p.landau_scale_e_per_um);
    let charge = per_um * path_um;
    let n = ((length * DEPOSITS_PER_PX).ceil() as usize).max(1);
    let (s, c) = angle.sin_cos();
    let deposits: Vec<(f64, f64, f64)> = (0..n)
        .map(|t| {
            let f = (t as f64 + 0.5) / n as f64 - 0.5;
            (x + f * length * c, y + f * length * s, charge / n as f64)
        })
        .collect();
    PhysicalHit {
        kind: HitKind::Track,
        cr: CosmicRay {
            pixels: diffuse(&deposits, p.diffusion_sigma_px),
            angle_deg: angle.to_degrees(),
            charge,
        },
        length_px: length,
        end_to_end_px: length,
        path_um,
    }
}

/// A low-energy electron's curved walk, its centroid put at `(x, y)`.
fn draw_worm(rng: &mut SimRng, x: f64, y: f64, p: &PhysicalCosmicRays) -> PhysicalHit {
    let length = log_uniform(rng, p.worm_length_px[0], p.worm_length_px[1]);
    let start_heading = rng.random::<f64>() * 2.0 * PI;
    let curvature = uniform(rng, 0.05, 0.3) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let wander = 0.05;
    let per_um = WORM_CHARGE_FACTOR * moyal(rng, p.mpv_e_per_um, p.landau_scale_e_per_um);
    let path_um = length * p.pixel_um;
    let charge = per_um * path_um;
    let n = ((length / WORM_STEP_PX).ceil() as usize).max(1);
    let step = length / n as f64;
    let (mut px, mut py, mut heading) = (0.0f64, 0.0f64, start_heading);
    let mut deposits = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, c) = heading.sin_cos();
        deposits.push((px + 0.5 * step * c, py + 0.5 * step * s, charge / n as f64));
        px += step * c;
        py += step * s;
        heading += curvature * step + wander * step.sqrt() * rng.sample::<f64, _>(StandardNormal);
    }
    let cx = deposits.iter().map(|d| d.0).sum::<f64>() / n as f64;
    let cy = deposits.iter().map(|d| d.1).sum::<f64>() / n as f64;
    for d in &mut deposits {
        d.0 += x - cx;
        d.1 += y - cy;
    }
    PhysicalHit {
        kind: HitKind::Worm,
        cr: CosmicRay {
            pixels: diffuse(&deposits, p.diffusion_sigma_px),
            angle_deg: start_heading.to_degrees().rem_euclid(180.0),
            charge,
        },
        length_px: length,
        end_to_end_px: px.hypot(py),
        path_um,
    }
}

/// Fractions of a unit charge at `c` in the pixels `lo..lo + n` of one axis, spread by a
/// Gaussian of σ `sigma` (pixel `i` covers `i ± 0.5`).
fn pixel_fractions(c: f64, sigma: f64, lo: i64, n: usize) -> Vec<f64> {
    if sigma <= 0.0 {
        let hit = c.round() as i64;
        return (0..n)
            .map(|i| if lo + i as i64 == hit { 1.0 } else { 0.0 })
            .collect();
    }
    let k = FRAC_1_SQRT_2 / sigma;
    (0..n)
        .map(|i| {
            let p = (lo + i as i64) as f64;
            0.5 * (erf((p + 0.5 - c) * k) - erf((p - 0.5 - c) * k))
        })
        .collect()
}

/// Point deposits `(x, y, electrons)` spread by a Gaussian of σ `sigma` pixels, integrated over
/// pixels and cut at 4σ; returns the charged pixels `(x, y, electrons)`.
fn diffuse(deposits: &[(f64, f64, f64)], sigma: f64) -> Vec<(i64, i64, f64)> {
    let reach = (4.0 * sigma).ceil() as i64 + 1;
    let xmin = deposits
        .iter()
        .map(|d| d.0.round() as i64)
        .min()
        .unwrap_or(0)
        - reach;
    let xmax = deposits
        .iter()
        .map(|d| d.0.round() as i64)
        .max()
        .unwrap_or(0)
        + reach;
    let ymin = deposits
        .iter()
        .map(|d| d.1.round() as i64)
        .min()
        .unwrap_or(0)
        - reach;
    let ymax = deposits
        .iter()
        .map(|d| d.1.round() as i64)
        .max()
        .unwrap_or(0)
        + reach;
    let (nx, ny) = ((xmax - xmin + 1) as usize, (ymax - ymin + 1) as usize);
    let mut grid = vec![0.0; nx * ny];
    let side = (2 * reach + 1) as usize;
    for &(x, y, q) in deposits {
        let (x0, y0) = (x.round() as i64 - reach, y.round() as i64 - reach);
        let fx = pixel_fractions(x, sigma, x0, side);
        let fy = pixel_fractions(y, sigma, y0, side);
        for (j, wy) in fy.iter().enumerate() {
            let row = (y0 - ymin) as usize + j;
            for (i, wx) in fx.iter().enumerate() {
                grid[row * nx + (x0 - xmin) as usize + i] += q * wx * wy;
            }
        }
    }
    let mut pixels = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            let q = grid[j * nx + i];
            if q > 0.0 {
                pixels.push((xmin + i as i64, ymin + j as i64, q));
            }
        }
    }
    pixels
}

/// A satellite or aircraft trail: one or two parallel lines with a Gaussian cross-section.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Trail {
    /// A point of the central line, 0-based pixels.
    pub(crate) x0: f64,
    pub(crate) y0: f64,
    /// Direction of the line, radians from +x towards +y, in [0, π).
    pub(crate) angle: f64,
    /// Perpendicular offsets of the lines from the central one, pixels.
    pub(crate) offsets: Vec<f64>,
    /// Gaussian σ of the cross-section, pixels.
    pub(crate) sigma_px: f64,
    /// Peak of the cross-section of each line, ADU.
    pub(crate) peak_adu: f64,
    pub(crate) aircraft: bool,
}

impl Trail {
    /// Draws a trail on a `w×h` image for a PSF of FWHM `psf_fwhm_px` pixels and a background
    /// noise of `sigma_adu`.
    pub(crate) fn draw(
        rng: &mut SimRng,
        model: &TrailModel,
        psf_fwhm_px: f64,
        sigma_adu: f64,
        w: usize,
        h: usize,
    ) -> Trail {
        let x0 = uniform(rng, -0.5, w as f64 - 0.5);
        let y0 = uniform(rng, -0.5, h as f64 - 0.5);
        let angle = rng.random::<f64>() * PI;
        let peak_adu = log_uniform(rng, model.peak_sigma[0], model.peak_sigma[1]) * sigma_adu;
        let aircraft = rng.random_bool(model.aircraft_fraction);
        let (fwhm, offsets) = if aircraft {
            let fwhm = psf_fwhm_px * uniform(rng, 2.0, 6.0);
            let offsets = if rng.random_bool(0.5) {
                let half = 0.5 * uniform(rng, 4.0, 12.0);
                vec![-half, half]
            } else {
                vec![0.0]
            };
            (fwhm, offsets)
        } else {
            (psf_fwhm_px, vec![0.0])
        };
        Trail {
            x0,
            y0,
            angle,
            offsets,
            sigma_px: fwhm / FWHM_PER_SIGMA,
            peak_adu,
            aircraft,
        }
    }

    /// Signed distance of 0-based `(x, y)` from the central line, pixels.
    pub(crate) fn distance(&self, x: f64, y: f64) -> f64 {
        let (s, c) = self.angle.sin_cos();
        (y - self.y0) * c - (x - self.x0) * s
    }

    /// Surface brightness at 0-based `(x, y)`, ADU per pixel.
    pub(crate) fn brightness(&self, x: f64, y: f64) -> f64 {
        let d = self.distance(x, y);
        let inv = 0.5 / (self.sigma_px * self.sigma_px);
        self.offsets
            .iter()
            .map(|o| (-(d - o).powi(2) * inv).exp())
            .sum::<f64>()
            * self.peak_adu
    }

    /// Adds the trail, averaged over 3×3 points of each pixel, to a row-major `w×h` image
    /// (ADU); pixels farther than 6σ from every line are skipped.
    pub(crate) fn add_to(&self, img: &mut [f64], w: usize, h: usize) {
        let reach = 6.0 * self.sigma_px + 1.0;
        let spread = self.offsets.iter().fold(0.0f64, |m, o| m.max(o.abs()));
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f64, y as f64);
                if self.distance(xf, yf).abs() > reach + spread {
                    continue;
                }
                let mut sum = 0.0;
                for j in [-1.0, 0.0, 1.0] {
                    for i in [-1.0, 0.0, 1.0] {
                        sum += self.brightness(xf + i / 3.0, yf + j / 3.0);
                    }
                }
                img[y * w + x] += sum / 9.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    fn tracks_only() -> PhysicalCosmicRays {
        PhysicalCosmicRays {
            worm_fraction: 0.0,
            spot_fraction: 0.0,
            ..PhysicalCosmicRays::default()
        }
    }

    #[test]
    fn sky_track_lengths_follow_the_isotropic_zenith_law() {
        let p = tracks_only();
        let mut rng = stream_rng(5, "test", 0);
        let n = 20_000;
        let mut lengths: Vec<f64> = (0..n)
            .map(|_| draw_physical(&mut rng, 50.0, 50.0, &p).length_px)
            .collect();
        lengths.sort_by(f64::total_cmp);
        // sin²θ uniform: the median has tan θ = 1.
        let scale = p.depletion_um / p.pixel_um;
        let median = lengths[n / 2];
        assert!(
            (median / scale - 1.0).abs() < 0.03,
            "median {median} vs {scale}"
        );
        // Mean of min(scale·tan θ, cap): with u = sin²θ, ∫√(u/(1-u)) du = asin√u - √(u(1-u)).
        let t = p.max_track_px / scale;
        let ut = t * t / (1.0 + t * t);
        let expect =
            scale * (ut.sqrt().asin() - (ut * (1.0 - ut)).sqrt()) + p.max_track_px * (1.0 - ut);
        let mean = lengths.iter().sum::<f64>() / n as f64;
        assert!(
            (mean / expect - 1.0).abs() < 0.04,
            "mean {mean} vs {expect}"
        );
        assert!(lengths[n - 1] <= p.max_track_px);
        // Kolmogorov–Smirnov distance to P(L <= l) = l²/(scale² + l²) below the cap.
        let ks = lengths
            .iter()
            .enumerate()
            .filter(|(_, &l)| l < p.max_track_px)
            .map(|(i, &l)| {
                let cdf = l * l / (scale * scale + l * l);
                ((i + 1) as f64 / n as f64 - cdf)
                    .abs()
                    .max((i as f64 / n as f64 - cdf).abs())
            })
            .fold(0.0, f64::max);
        assert!(ks < 0.015, "KS distance {ks}");
    }

    #[test]
    fn sky_track_charge_per_micron_is_landau_like_with_the_stated_mode() {
        let p = tracks_only();
        let mut rng = stream_rng(6, "test", 0);
        let n = 20_000;
        let mut per_um: Vec<f64> = (0..n)
            .map(|_| {
                let hit = draw_physical(&mut rng, 0.0, 0.0, &p);
                // The deposited charge, summed over pixels, is what the track carries.
                let deposited: f64 = hit.cr.pixels.iter().map(|q| q.2).sum();
                assert!((deposited / hit.cr.charge - 1.0).abs() < 1e-3);
                deposited / hit.path_um
            })
            .collect();
        per_um.sort_by(f64::total_cmp);
        let ks = per_um
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let cdf = moyal_cdf(x, p.mpv_e_per_um, p.landau_scale_e_per_um);
                ((i + 1) as f64 / n as f64 - cdf).abs()
            })
            .fold(0.0, f64::max);
        assert!(ks < 0.015, "KS distance to the Moyal law {ks}");
        // The histogram's fullest 5 e-/µm bin holds the most probable value.
        let mut bins = [0usize; 60];
        for &x in &per_um {
            let b = (x / 5.0) as usize;
            if b < bins.len() {
                bins[b] += 1;
            }
        }
        let top = (0..bins.len()).max_by_key(|&b| bins[b]).unwrap();
        let mode = (top as f64 + 0.5) * 5.0;
        assert!((mode - p.mpv_e_per_um).abs() <= 7.5, "mode {mode}");
        // Landau-like: a long tail to high charge.
        let median = per_um[n / 2];
        let mean = per_um.iter().sum::<f64>() / n as f64;
        assert!(mean > median && median > p.mpv_e_per_um, "{mean} {median}");
    }

    #[test]
    fn sky_worms_are_curved_and_spots_compact() {
        let p = PhysicalCosmicRays {
            worm_fraction: 1.0,
            spot_fraction: 0.0,
            ..PhysicalCosmicRays::default()
        };
        let mut rng = stream_rng(7, "test", 0);
        let mut ratio_sum = 0.0;
        for _ in 0..200 {
            let hit = draw_physical(&mut rng, 0.0, 0.0, &p);
            assert_eq!(hit.kind, HitKind::Worm);
            assert!(hit.end_to_end_px < hit.length_px, "{hit:?}");
            ratio_sum += hit.end_to_end_px / hit.length_px;
        }
        let ratio = ratio_sum / 200.0;
        assert!(ratio < 0.9, "mean end-to-end / path {ratio}");

        let spots = |diffusion: f64| PhysicalCosmicRays {
            worm_fraction: 0.0,
            spot_fraction: 1.0,
            spot_sigma_px: [0.0, 0.0],
            diffusion_sigma_px: diffusion,
            ..PhysicalCosmicRays::default()
        };
        let brightest_fraction = |p: &PhysicalCosmicRays, x: f64, y: f64| {
            let hit = draw_physical(&mut stream_rng(8, "test", 0), x, y, p);
            assert_eq!(hit.kind, HitKind::Spot);
            let peak = hit.cr.pixels.iter().map(|q| q.2).fold(0.0, f64::max);
            (peak / hit.cr.charge, hit.cr.pixels.len())
        };
        assert_eq!(brightest_fraction(&spots(0.0), 2.2, 0.3), (1.0, 1));
        let (f, n) = brightest_fraction(&spots(0.4), 2.2, 0.3);
        assert!(f < 0.75 && n > 4, "{f} in the brightest of {n} pixels");
        // A centred spot with σ = 0.4 keeps erf(1.25/√2)² ≈ 0.62 of its charge in one pixel.
        let (f, _) = brightest_fraction(&spots(0.4), 2.0, 0.0);
        let expect = erf(0.5 / 0.4 * FRAC_1_SQRT_2).powi(2);
        assert!((f / expect - 1.0).abs() < 0.01, "{f} vs {expect}");
    }

    #[test]
    fn sky_trail_profile_peaks_on_the_line_and_pairs_are_parallel() {
        let model = TrailModel {
            peak_sigma: [10.0, 10.0],
            aircraft_fraction: 0.0,
        };
        let t = Trail::draw(&mut stream_rng(1, "test", 0), &model, 2.5, 4.0, 64, 64);
        assert!(!t.aircraft);
        assert!((t.peak_adu - 40.0).abs() < 1e-9);
        assert!((t.sigma_px * FWHM_PER_SIGMA - 2.5).abs() < 1e-12);
        assert!((t.brightness(t.x0, t.y0) - 40.0).abs() < 1e-9);
        let (s, c) = t.angle.sin_cos();
        // Along the line nothing changes; half a FWHM across, half the peak.
        assert!((t.brightness(t.x0 + 10.0 * c, t.y0 + 10.0 * s) - 40.0).abs() < 1e-9);
        let half = t.brightness(t.x0 - 1.25 * s, t.y0 + 1.25 * c);
        assert!((half - 20.0).abs() < 1e-9, "{half}");
    }
}
