//! Strong lensing by a singular isothermal sphere: a Sérsic source seen through the lens and
//! the PSF.

use crate::sky::render::{Renderer, Stamp};
use crate::sky::sersic::Sersic;

/// The light of a Sérsic source at source-plane offset `beta` (pixels) from the axis of a
/// singular isothermal sphere lens of Einstein radius `theta_e` (pixels) centred at 0-based
/// `(xc, yc)`, as seen through the lens and the PSF. Not renormalised: its sum over the ratio
/// of `flux` is the magnification.
pub(crate) fn render_lensed_source(
    renderer: &Renderer,
    xc: f64,
    yc: f64,
    theta_e: f64,
    beta: (f64, f64),
    source: &Sersic,
    flux: f64,
) -> Stamp {
    let offset = beta.0.hypot(beta.1);
    // Images of the source lie where ||θ| - θ_E| = |β| <= offset + source extent.
    let reach = offset + source.extent();
    let h = 1.0 / renderer.oversample() as f64;
    // Radial sizes are not stretched by an SIS (radial magnification 1), so rays must
    // resolve the source's minor axis in the image plane too.
    let k = ((h / (0.25 * source.minor_half_light())).ceil() as usize).clamp(2, 16);
    let sub = h / k as f64;
    let cell = |dx: f64, dy: f64, h: f64| -> f64 {
        let r = dx.hypot(dy);
        if (r - theta_e).abs() > reach + h {
            return 0.0;
        }
        let mut acc = 0.0;
        for j in 0..k {
            let ty = dy - 0.5 * h + (j as f64 + 0.5) * sub;
            for i in 0..k {
                let tx = dx - 0.5 * h + (i as f64 + 0.5) * sub;
                let rr = tx.hypot(ty);
                if rr == 0.0 {
                    continue;
                }
                // Lens equation: β = θ - θ_E θ/|θ|.
                let f = 1.0 - theta_e / rr;
                acc += source.sb(tx * f - beta.0, ty * f - beta.1);
            }
        }
        acc * sub * sub * flux
    };
    renderer.render_convolved(xc, yc, theta_e + reach, cell, &[])
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;
    use crate::sky::config::Psf;
    use crate::sky::psf::PsfModel;

    fn lens_renderer() -> Renderer {
        // A narrow PSF on 1-pixel units so that the lensed light is barely blurred.
        Renderer::new(PsfModel::new(&Psf::Gaussian { fwhm: 1.0 }, 1.0))
    }

    /// Mean of a stamp over the annulus of radii [r0, r1] around (xc, yc).
    fn annulus_mean(s: &Stamp, xc: f64, yc: f64, r0: f64, r1: f64) -> f64 {
        let (mut sum, mut n) = (0.0, 0);
        for j in 0..s.ny {
            for i in 0..s.nx {
                let r = ((s.x0 + i as i64) as f64 - xc).hypot((s.y0 + j as i64) as f64 - yc);
                if r >= r0 && r <= r1 {
                    sum += s.data[j * s.nx + i];
                    n += 1;
                }
            }
        }
        sum / n as f64
    }

    #[test]
    fn cutouts_aligned_source_becomes_an_einstein_ring() {
        let r = lens_renderer();
        let theta_e = 10.0;
        let source = Sersic::new(1.0, 0.8, 0.0, 0.0);
        let ring = render_lensed_source(&r, 40.0, 40.0, theta_e, (0.3, 0.0), &source, 1000.0);
        let at_ring = annulus_mean(&ring, 40.0, 40.0, 9.0, 11.0);
        let inside = annulus_mean(&ring, 40.0, 40.0, 4.0, 6.0);
        let centre = annulus_mean(&ring, 40.0, 40.0, 0.0, 1.5);
        assert!(
            at_ring > 20.0 * inside.max(1e-12),
            "ring {at_ring} vs half radius {inside}"
        );
        assert!(
            at_ring > 20.0 * centre.max(1e-12),
            "ring {at_ring} vs centre {centre}"
        );
        // Light all around the ring: every octant holds a fair share.
        let mut octants = [0.0; 8];
        for j in 0..ring.ny {
            for i in 0..ring.nx {
                let (dx, dy) = (
                    (ring.x0 + i as i64) as f64 - 40.0,
                    (ring.y0 + j as i64) as f64 - 40.0,
                );
                if (dx.hypot(dy) - theta_e).abs() < 2.0 {
                    let o = ((dy.atan2(dx) + PI) / (PI / 4.0)) as usize % 8;
                    octants[o] += ring.data[j * ring.nx + i];
                }
            }
        }
        let total: f64 = octants.iter().sum();
        assert!(octants.iter().all(|&o| o > 0.04 * total), "{octants:?}");
        // Unlensed, the same source is a compact blob: brightest at its centre.
        let plain = r.render_sersic(40.3, 40.0, &source, 1000.0).0;
        assert!(
            annulus_mean(&plain, 40.0, 40.0, 9.0, 11.0)
                < 1e-3 * annulus_mean(&plain, 40.3, 40.0, 0.0, 1.5)
        );
    }

    #[test]
    fn cutouts_lens_magnification_matches_the_sis_point_source_limit() {
        // SIS, compact source at β: μ = 2θ_E/β inside the Einstein radius (two images),
        // 1 + θ_E/β outside (one image).
        let r = lens_renderer();
        let source = Sersic::new(1.0, 0.3, 0.2, 0.5);
        for (beta, expect) in [
            (5.0, 2.0 * 8.0 / 5.0),
            (16.0, 1.0 + 8.0 / 16.0),
            (24.0, 1.0 + 8.0 / 24.0),
        ] {
            let img = render_lensed_source(&r, 60.0, 60.0, 8.0, (0.0, beta), &source, 1.0);
            let mu = img.sum();
            assert!(
                (mu / expect - 1.0).abs() < 0.02,
                "β={beta}: μ={mu}, expected {expect}"
            );
        }
    }
}
