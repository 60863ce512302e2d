//! Detector effects shared by the sky-field and cutout simulators: photon and read noise,
//! cosmic-ray hits and charge bleeding along columns.

use std::f64::consts::PI;

use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::config::log_uniform;
use super::render::Stamp;
use crate::rng::SimRng;

/// Replaces each expected electron count by a Poisson draw.
pub(crate) fn poisson_in_place(e: &mut [f64], rng: &mut SimRng) {
    for v in e.iter_mut() {
        *v = if *v > 0.0 {
            match Poisson::new(*v) {
                Ok(p) => p.sample(rng),
                // Beyond Poisson::MAX_LAMBDA (~1.8e19) the normal limit is exact enough.
                Err(_) => *v + v.sqrt() * rng.sample::<f64, _>(StandardNormal),
            }
        } else {
            0.0
        };
    }
}

/// Adds zero-mean Gaussian noise of rms `sigma`.
pub(crate) fn gaussian_in_place(e: &mut [f64], rng: &mut SimRng, sigma: f64) {
    if sigma > 0.0 {
        for v in e.iter_mut() {
            *v += sigma * rng.sample::<f64, _>(StandardNormal);
        }
    }
}

/// A cosmic-ray hit: charge in electrons deposited in pixels.
#[derive(Debug, Clone)]
pub(crate) struct CosmicRay {
    /// (0-based x, 0-based y, electrons); a pixel may appear more than once.
    pub(crate) pixels: Vec<(i64, i64, f64)>,
    /// Track direction, degrees from +x towards +y, in [0, 180).
    pub(crate) angle_deg: f64,
    /// Total charge, electrons.
    pub(crate) charge: f64,
}

impl CosmicRay {
    /// A hit centred at 0-based `(x, y)`: 30 % single pixels, else a straight track of
    /// exponentially distributed length (mean 5, at most 25 pixels), 600–6000 e- per pixel of
    /// path (log-uniform). Charge goes to the pixel containing each point of the track, with no
    /// blurring: cosmic rays are sharper than any PSF, which is what makes them detectable.
    pub(crate) fn draw(rng: &mut SimRng, x: f64, y: f64) -> Self {
        let length = if rng.random::<f64>() < 0.3 {
            0.0
        } else {
            (-(1.0 - rng.random::<f64>()).ln() * 5.0).min(25.0)
        };
        let angle = rng.random::<f64>() * PI;
        let per_pixel = log_uniform(rng, 600.0, 6000.0);
        let charge = per_pixel * (1.0 + length);
        let steps = ((length * 10.0).ceil() as usize).max(1);
        let (s, c) = angle.sin_cos();
        let mut pixels: Vec<(i64, i64, f64)> = Vec::new();
        for t in 0..steps {
            let f = (t as f64 + 0.5) / steps as f64 - 0.5;
            let px = (x + f * length * c).round() as i64;
            let py = (y + f * length * s).round() as i64;
            let q = charge / steps as f64;
            match pixels.last_mut() {
                Some(last) if last.0 == px && last.1 == py => last.2 += q,
                _ => pixels.push((px, py, q)),
            }
        }
        CosmicRay {
            pixels,
            angle_deg: angle.to_degrees(),
            charge,
        }
    }

    /// The deposit as a stamp (electrons), covering the track's bounding box.
    pub(crate) fn stamp(&self) -> Stamp {
        let xmin = self.pixels.iter().map(|p| p.0).min().unwrap_or(0);
        let xmax = self.pixels.iter().map(|p| p.0).max().unwrap_or(0);
        let ymin = self.pixels.iter().map(|p| p.1).min().unwrap_or(0);
        let ymax = self.pixels.iter().map(|p| p.1).max().unwrap_or(0);
        let nx = (xmax - xmin + 1) as usize;
        let ny = (ymax - ymin + 1) as usize;
        let mut data = vec![0.0; nx * ny];
        for &(px, py, q) in &self.pixels {
            data[(py - ymin) as usize * nx + (px - xmin) as usize] += q;
        }
        Stamp {
            x0: xmin,
            y0: ymin,
            nx,
            ny,
            data,
        }
    }
}

/// Spills charge above `full_well` along columns of a row-major `w×h` image of electrons:
/// half of a pixel's excess goes up and half down, filling the nearest pixels with room (and
/// passing through full ones), as charge does along a CCD column. Conserves charge except what
/// runs off the top or bottom edge.
pub(super) fn bleed_columns(e: &mut [f64], w: usize, h: usize, full_well: f64) {
    let mut columns = vec![false; w];
    for (k, v) in e.iter().enumerate() {
        if *v > full_well {
            columns[k % w] = true;
        }
    }
    for col in (0..w).filter(|&c| columns[c]) {
        for y in 0..h {
            let excess = e[y * w + col] - full_well;
            if excess <= 0.0 {
                continue;
            }
            e[y * w + col] = full_well;
            let mut up = 0.5 * excess;
            let mut down = excess - up;
            let mut fill = |k: usize, left: &mut f64| {
                let room = full_well - e[k];
                if room > 0.0 {
                    if room <= *left {
                        e[k] = full_well;
                        *left -= room;
                    } else {
                        e[k] += *left;
                        *left = 0.0;
                    }
                }
            };
            let mut yy = y + 1;
            while up > 0.0 && yy < h {
                fill(yy * w + col, &mut up);
                yy += 1;
            }
            let mut yy = y;
            while down > 0.0 && yy > 0 {
                yy -= 1;
                fill(yy * w + col, &mut down);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sky_bleeding_conserves_charge() {
        let (w, h) = (3, 50);
        let mut e = vec![100.0; w * h];
        e[25 * w + 1] = 100.0 + 20.0 * 1000.0;
        let before: f64 = e.iter().sum();
        bleed_columns(&mut e, w, h, 1000.0);
        let after: f64 = e.iter().sum();
        assert!((before - after).abs() < 1e-6);
        assert!(e.iter().all(|&v| v <= 1000.0));
        // 20 full wells spread ~10 pixels each way up and down the column only.
        let full = (0..h).filter(|&y| e[y * w + 1] >= 1000.0).count();
        assert!((19..=22).contains(&full), "{full} full pixels");
        assert!((0..h).all(|y| e[y * w] == 100.0 && e[y * w + 2] == 100.0));
    }
}
