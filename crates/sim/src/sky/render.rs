//! Stamps (rectangular patches of pixel values) and the renderer that convolves a light
//! distribution with the PSF on an oversampled grid by FFT and bins it to pixels.

use std::sync::OnceLock;

use super::config::NoiseConfig;
use super::fft::{Cx, Fft};
use super::psf::PsfModel;
use super::sersic::Sersic;
use deepsky_core::ConfigError;

/// A rectangular patch of pixel values, placed at 0-based pixel `(x0, y0)` of some image.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub(crate) x0: i64,
    pub(crate) y0: i64,
    pub(crate) nx: usize,
    pub(crate) ny: usize,
    /// Row-major, `data[j * nx + i]` is pixel `(x0 + i, y0 + j)`.
    pub(crate) data: Vec<f64>,
}

impl Stamp {
    pub(crate) fn sum(&self) -> f64 {
        self.data.iter().sum()
    }

    pub(crate) fn scale(&mut self, f: f64) {
        self.data.iter_mut().for_each(|v| *v *= f);
    }

    /// Calls `f(index into a row-major w×h image, value)` for every stamp pixel on the image.
    pub(crate) fn for_each_on(&self, w: usize, h: usize, mut f: impl FnMut(usize, f64)) {
        let (w, h) = (w as i64, h as i64);
        for j in 0..self.ny {
            let y = self.y0 + j as i64;
            if y < 0 || y >= h {
                continue;
            }
            let i_lo = (-self.x0).max(0) as usize;
            let i_hi = ((w - self.x0).min(self.nx as i64)).max(0) as usize;
            for i in i_lo..i_hi {
                let x = self.x0 + i as i64;
                f((y * w + x) as usize, self.data[j * self.nx + i]);
            }
        }
    }

    /// Adds the stamp into a row-major `w×h` image, clipping at its edges; returns the sum of
    /// what landed on the image.
    pub(crate) fn add_to(&self, img: &mut [f64], w: usize, h: usize) -> f64 {
        let mut landed = 0.0;
        self.for_each_on(w, h, |k, v| {
            img[k] += v;
            landed += v;
        });
        landed
    }

    /// Largest value on the `w×h` image (0 if none lands there).
    pub(crate) fn peak_on(&self, w: usize, h: usize) -> f64 {
        let mut peak = 0.0f64;
        self.for_each_on(w, h, |_, v| peak = peak.max(v));
        peak
    }

    /// Matched-filter S/N of this noiseless source on a `w×h` image, see
    /// [`SkyCatalog::snr`](super::SkyCatalog::snr): `sqrt(Σ s_i² / ((s_i + sky)/gain + (read_noise/gain)²))` over the
    /// on-image pixels with `s_i > 0`.
    pub(crate) fn snr_on(&self, w: usize, h: usize, noise: &NoiseConfig) -> f64 {
        let sky = noise.sky_adu();
        let rn2 = (noise.read_noise / noise.gain).powi(2);
        let mut acc = 0.0;
        self.for_each_on(w, h, |_, s| {
            if s > 0.0 {
                acc += s * s / ((s + sky) / noise.gain + rn2);
            }
        });
        acc.sqrt()
    }
}

/// Largest render grid is 2^11 cells on a side (64 MB of complex cells).
pub(crate) const MAX_LOG2_GRID: usize = 11;

/// Render grid for a source whose light reaches `extent` pixels from its centre, with a PSF of
/// radius `psf_radius` and oversampling `s`: (grid cells N, a power of two; stamp pixels M =
/// N/s). The stamp's half-size of at least `extent + psf_radius + 1` pixels guarantees that
/// the cyclic FFT convolution never wraps light onto the stamp.
fn grid_dims(extent: f64, psf_radius: f64, s: usize) -> (usize, usize) {
    let half = (extent + psf_radius).ceil() as usize + 1;
    let n = ((2 * half + 1) * s).next_power_of_two();
    (n, n / s)
}

/// Renders light distributions convolved with one PSF; caches the PSF's spectrum per grid size.
/// Shared by all threads of a simulation.
pub(crate) struct Renderer {
    pub(crate) psf: PsfModel,
    s: usize,
    ffts: Vec<OnceLock<Fft>>,
    kernels: Vec<OnceLock<Vec<f64>>>,
}

impl Renderer {
    pub(crate) fn new(psf: PsfModel) -> Self {
        let s = psf.oversample();
        Renderer {
            psf,
            s,
            ffts: (0..=MAX_LOG2_GRID).map(|_| OnceLock::new()).collect(),
            kernels: (0..=MAX_LOG2_GRID).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Cells per pixel along each axis.
    pub(crate) fn oversample(&self) -> usize {
        self.s
    }

    fn fft(&self, n: usize) -> &Fft {
        self.ffts[n.trailing_zeros() as usize].get_or_init(|| Fft::new(n))
    }

    /// Spectrum (real: the kernel is symmetric) of the PSF sampled at the centres of the n×n
    /// grid's cells, centred on cell (0, 0) with wrap-around, normalised to unit sum.
    fn kernel(&self, n: usize) -> &[f64] {
        self.kernels[n.trailing_zeros() as usize].get_or_init(|| {
            let h = 1.0 / self.s as f64;
            let off = |i: usize| {
                if i < n / 2 {
                    i as f64
                } else {
                    i as f64 - n as f64
                }
            };
            let mut grid = vec![Cx::default(); n * n];
            let mut total = 0.0;
            for b in 0..n {
                let oy = off(b) * h;
                for a in 0..n {
                    let ox = off(a) * h;
                    let v = self.psf.density(self.psf.r2(ox, oy));
                    grid[b * n + a].re = v;
                    total += v;
                }
            }
            grid.iter_mut().for_each(|c| c.re /= total);
            self.fft(n).forward_2d(&mut grid, None);
            grid.into_iter().map(|c| c.re).collect()
        })
    }

    /// Renders a light distribution centred near 0-based pixel `(xc, yc)`, zero beyond
    /// `extent` pixels from there, convolved with the PSF and integrated over pixels.
    ///
    /// `cell(dx, dy, h)` returns the (PSF-free) light in the square grid cell of side `h`
    /// pixels centred at offset `(dx, dy)` from `(xc, yc)`. The result is not renormalised.
    ///
    /// `points` are extra point masses `(dx, dy, flux)` (offsets from `(xc, yc)`), added to the
    /// grid cell containing them before the convolution.
    pub(crate) fn render_convolved<F>(
        &self,
        xc: f64,
        yc: f64,
        extent: f64,
        cell: F,
        points: &[(f64, f64, f64)],
    ) -> Stamp
    where
        F: Fn(f64, f64, f64) -> f64,
    {
        let s = self.s;
        let (n, m) = grid_dims(extent, self.psf.extent, s);
        let h = 1.0 / s as f64;
        let x0 = xc.round() as i64 - (m / 2) as i64;
        let y0 = yc.round() as i64 - (m / 2) as i64;
        let lim = extent + h;
        let mut grid = vec![Cx::default(); n * n];
        let mut rows_used = vec![false; n];
        for b in 0..n {
            let dy = (y0 as f64 - 0.5 + (b as f64 + 0.5) * h) - yc;
            if dy.abs() > lim {
                continue;
            }
            for a in 0..n {
                let dx = (x0 as f64 - 0.5 + (a as f64 + 0.5) * h) - xc;
                if dx * dx + dy * dy > lim * lim {
                    continue;
                }
                let v = cell(dx, dy, h);
                if v != 0.0 {
                    grid[b * n + a].re = v;
                    rows_used[b] = true;
                }
            }
        }
        for &(dx, dy, flux) in points {
            let a = ((xc + dx - (x0 as f64 - 0.5)) * s as f64).floor();
            let b = ((yc + dy - (y0 as f64 - 0.5)) * s as f64).floor();
            if a >= 0.0 && b >= 0.0 && (a as usize) < n && (b as usize) < n {
                grid[b as usize * n + a as usize].re += flux;
                rows_used[b as usize] = true;
            }
        }
        let fft = self.fft(n);
        fft.forward_2d(&mut grid, Some(&rows_used));
        for (g, k) in grid.iter_mut().zip(self.kernel(n)) {
            g.re *= k;
            g.im *= k;
        }
        fft.inverse_2d(&mut grid);
        let mut data = vec![0.0; m * m];
        for b in 0..n {
            let row = &mut data[(b / s) * m..(b / s + 1) * m];
            for (a, c) in grid[b * n..(b + 1) * n].iter().enumerate() {
                row[a / s] += c.re;
            }
        }
        Stamp {
            x0,
            y0,
            nx: m,
            ny: m,
            data,
        }
    }

    /// A PSF-convolved Sérsic galaxy of total flux `flux` at 0-based `(xc, yc)`, renormalised
    /// to exactly `flux`; also returns the integral before renormalisation as a fraction of
    /// `flux` (ideally 1).
    pub(crate) fn render_sersic(
        &self,
        xc: f64,
        yc: f64,
        sersic: &Sersic,
        flux: f64,
    ) -> (Stamp, f64) {
        let h = 1.0 / self.s as f64;
        let core = sersic.core_points(h);
        let mut stamp = self.render_convolved(
            xc,
            yc,
            sersic.extent(),
            |dx, dy, h| sersic.cell_flux(dx, dy, h),
            &core,
        );
        let raw = stamp.sum();
        if raw > 0.0 {
            stamp.scale(flux / raw);
        }
        (stamp, raw)
    }
}

/// Rejects light reaching `extent_px` pixels from a source's centre if it would not fit the
/// biggest render grid.
pub(crate) fn check_render_extent(
    name: &str,
    extent_px: f64,
    psf: &PsfModel,
) -> Result<(), ConfigError> {
    let n = grid_dims(extent_px, psf.extent, psf.oversample()).0;
    if n > 1 << MAX_LOG2_GRID {
        return Err(ConfigError::at(
            name,
            format!(
                "light reaching {extent_px:.1} pixels from the centre with a {:.2}-pixel PSF \
                 needs a {n}x{n} render grid, above the limit of {}; use smaller sources or \
                 coarser pixels",
                psf.fwhm,
                1usize << MAX_LOG2_GRID
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sky::config::Psf;

    #[test]
    fn sky_rendering_conserves_flux_before_renormalisation() {
        // The renormalisation only removes discretisation error; it must be small (< 0.5 %)
        // even for the hardest cases: a cuspy n = 4 galaxy much smaller than a pixel, and a
        // large smooth one, with both PSF kinds and different oversampling.
        for psf in [
            Psf::Moffat {
                fwhm: 1.0,
                beta: 2.5,
            },
            Psf::Gaussian { fwhm: 0.5 },
        ] {
            let renderer = Renderer::new(PsfModel::new(&psf, 0.4));
            for (n, r_half, e) in [
                (4.0, 0.5, 0.0),
                (4.0, 0.3, 0.6),
                (0.5, 6.0, 0.5),
                (1.0, 2.0, 0.2),
            ] {
                let s = Sersic::new(n, r_half, e, 1.0);
                let (stamp, raw) = renderer.render_sersic(40.3, 50.8, &s, 1000.0);
                assert!(
                    (raw - 1.0).abs() < 0.005,
                    "{psf:?} n={n} r={r_half}: raw {raw}"
                );
                assert!((stamp.sum() - 1000.0).abs() < 1e-9);
            }
            for (x, y) in [(10.0, 10.0), (10.37, 11.81)] {
                let (_, raw) = renderer.psf.render_point(x, y, 1.0);
                assert!((raw - 1.0).abs() < 0.005, "{psf:?}: star raw {raw}");
            }
        }
    }
}
