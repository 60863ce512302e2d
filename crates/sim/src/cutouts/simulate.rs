//! [`simulate_cutouts`]: the labels of the set, then each stamp rendered in parallel with its
//! galaxy, lens, companion or artefact, and the detector noise.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use deepsky_core::Validate;
use ndarray::Array3;
use rand::Rng;
use rayon::prelude::*;

use super::config::CutoutConfig;
use super::lens::render_lensed_source;
use super::set::{
    CutoutParams, CutoutSet, StampTruth, LABEL_ARTEFACT, LABEL_LENS, LABEL_MERGER, LABEL_NORMAL,
};
use crate::error::Result;
use crate::rng::stream_rng;
use crate::sky::config::{log_uniform, mag_of_flux, uniform};
use crate::sky::detector::{gaussian_in_place, poisson_in_place, CosmicRay};
use crate::sky::psf::{PsfModel, FWHM_PER_SIGMA};
use crate::sky::render::{Renderer, Stamp};
use crate::sky::sersic::Sersic;
use crate::Progress;

/// Exactly `round(n · rare_fraction)` rare labels, apportioned among lens, merger and artefact
/// by largest remainder of `rare_weights` (ties to the lower label), placed by a seeded
/// Fisher–Yates shuffle.
pub(crate) fn assign_labels(
    n: usize,
    rare_fraction: f64,
    weights: [f64; 3],
    seed: u64,
) -> Vec<i32> {
    let n_rare = ((n as f64 * rare_fraction).round() as usize).min(n);
    let total: f64 = weights.iter().sum();
    let mut counts = [0usize; 3];
    if n_rare > 0 {
        let quotas: Vec<f64> = weights.iter().map(|w| n_rare as f64 * w / total).collect();
        for (c, q) in counts.iter_mut().zip(&quotas) {
            *c = q.floor() as usize;
        }
        let mut left = n_rare - counts.iter().sum::<usize>();
        let mut order = [0usize, 1, 2];
        let frac = |k: usize| quotas[k] - quotas[k].floor();
        order.sort_by(|&a, &b| frac(b).total_cmp(&frac(a)).then(a.cmp(&b)));
        for k in order {
            if left == 0 {
                break;
            }
            counts[k] += 1;
            left -= 1;
        }
    }
    let mut labels = Vec::with_capacity(n);
    for (k, &c) in counts.iter().enumerate() {
        labels.extend(std::iter::repeat_n(k as i32 + 1, c));
    }
    labels.resize(n, LABEL_NORMAL);
    let mut rng = stream_rng(seed, "cutouts.labels", 0);
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        labels.swap(i, j);
    }
    labels
}

/// Renders stamp `index` with label `label`.
fn make_stamp(
    cfg: &CutoutConfig,
    renderer: &Renderer,
    index: usize,
    label: i32,
) -> (Vec<f32>, StampTruth) {
    let mut rng = stream_rng(cfg.seed, "cutouts", index as u64);
    let size = cfg.size;
    let px = |arcsec: f64| arcsec / cfg.pixel_scale;
    let centre = (size as f64 - 1.0) / 2.0;
    let x_offset = uniform(&mut rng, -cfg.max_offset, cfg.max_offset);
    let y_offset = uniform(&mut rng, -cfg.max_offset, cfg.max_offset);
    let (xc, yc) = (centre + x_offset, centre + y_offset);
    let mut mag = cfg.galaxies.magnitudes.sample(&mut rng);
    let mut flux = cfg.flux_of_mag(mag);
    let (mut n, r_arcsec, mut e, pa) = cfg.galaxies.sample_shape(&mut rng);
    let mut r_half = px(r_arcsec);
    let nan = f64::NAN;
    let mut t = StampTruth {
        flux,
        mag,
        sersic_n: nan,
        r_half: nan,
        ellipticity: nan,
        position_angle: pa,
        x_offset,
        y_offset,
        stamp_flux: 0.0,
        snr: 0.0,
        einstein_radius: nan,
        magnification: nan,
        source_mag: nan,
        source_offset: nan,
        companion_mag: nan,
        companion_separation: nan,
        artefact: "",
    };
    let mut model = vec![0.0f64; size * size];
    if label == LABEL_LENS {
        let l = &cfg.lens;
        let theta_e = px(uniform(
            &mut rng,
            l.einstein_radius[0],
            l.einstein_radius[1],
        ));
        mag = uniform(&mut rng, l.lens_mag[0], l.lens_mag[1]);
        flux = cfg.flux_of_mag(mag);
        t.mag = mag;
        t.flux = flux;
        n = uniform(&mut rng, l.lens_sersic_n[0], l.lens_sersic_n[1]);
        r_half = theta_e * uniform(&mut rng, l.lens_r_half[0], l.lens_r_half[1]);
        // Massive lens galaxies are round-ish ellipticals.
        e = e.min(0.4);
        let source_mag = mag + uniform(&mut rng, l.source_mag_offset[0], l.source_mag_offset[1]);
        let sn = uniform(&mut rng, l.source_sersic_n[0], l.source_sersic_n[1]);
        let sr = px(log_uniform(
            &mut rng,
            l.source_r_half[0],
            l.source_r_half[1],
        ));
        let se = uniform(&mut rng, 0.0, cfg.galaxies.ellipticity_max.min(0.6));
        let spa = uniform(&mut rng, 0.0, 180.0);
        let offset = theta_e * l.source_offset_max * rng.random::<f64>().sqrt();
        let phi = uniform(&mut rng, 0.0, 2.0 * PI);
        let source = Sersic::new(sn, sr, se, spa.to_radians());
        let source_flux = cfg.flux_of_mag(source_mag);
        let beta = (offset * phi.cos(), offset * phi.sin());
        let lensed = render_lensed_source(renderer, xc, yc, theta_e, beta, &source, source_flux);
        t.magnification = lensed.sum() / source_flux;
        lensed.add_to(&mut model, size, size);
        t.einstein_radius = theta_e;
        t.source_mag = source_mag;
        t.source_offset = offset;
    }
    let primary = Sersic::new(n, r_half, e, pa.to_radians());
    renderer
        .render_sersic(xc, yc, &primary, flux)
        .0
        .add_to(&mut model, size, size);
    t.sersic_n = n;
    t.r_half = r_half;
    t.ellipticity = e;
    if label == LABEL_MERGER {
        let m = &cfg.merger;
        let ratio = uniform(&mut rng, m.flux_ratio[0], m.flux_ratio[1]);
        let (cn, cr, ce, cpa) = cfg.galaxies.sample_shape(&mut rng);
        let cr = px(cr);
        let scale = r_half.max(cr).max(renderer.psf.fwhm);
        let sep = scale * uniform(&mut rng, m.separation[0], m.separation[1]);
        let phi = uniform(&mut rng, 0.0, 2.0 * PI);
        let companion = Sersic::new(cn, cr, ce, cpa.to_radians());
        let cx = xc + sep * phi.cos();
        let cy = yc + sep * phi.sin();
        renderer
            .render_sersic(cx, cy, &companion, ratio * flux)
            .0
            .add_to(&mut model, size, size);
        t.companion_mag = mag_of_flux(ratio * flux, cfg.zeropoint, cfg.exposure_time);
        t.companion_separation = sep;
    }
    let whole = Stamp {
        x0: 0,
        y0: 0,
        nx: size,
        ny: size,
        data: model,
    };
    t.stamp_flux = whole.sum();
    t.snr = whole.snr_on(size, size, &cfg.noise);
    let mut model = whole.data;

    // Artefacts: a trail is light from the sky (PSF-convolved, before noise); cosmic rays and
    // hot pixels are charge in the detector (after photon noise).
    let noise = &cfg.noise;
    let gain = noise.gain;
    let sigma_adu = noise.background_sigma_adu().max(1.0);
    let mut deposits: Option<Stamp> = None;
    if label == LABEL_ARTEFACT {
        match rng.random_range(0..3) {
            0 => {
                t.artefact = "cosmic_ray";
                let q = size as f64 / 4.0;
                let x = uniform(&mut rng, centre - q, centre + q);
                let y = uniform(&mut rng, centre - q, centre + q);
                deposits = Some(CosmicRay::draw(&mut rng, x, y).stamp());
            }
            1 => {
                t.artefact = "satellite_trail";
                let phi = uniform(&mut rng, 0.0, PI);
                let d0 = uniform(&mut rng, -(size as f64) / 4.0, size as f64 / 4.0);
                let peak = uniform(&mut rng, 3.0, 30.0) * sigma_adu;
                const SIGMA_LINE: f64 = 0.5;
                let sigma_psf = renderer.psf.fwhm / FWHM_PER_SIGMA;
                let sigma_eff = (SIGMA_LINE * SIGMA_LINE + sigma_psf * sigma_psf).sqrt();
                // Light per unit length giving `peak` ADU on the trail's crest.
                let per_length = peak * (2.0 * PI).sqrt() * sigma_eff;
                let (sn, cs) = phi.sin_cos();
                let norm = per_length / ((2.0 * PI).sqrt() * SIGMA_LINE);
                let cell = |dx: f64, dy: f64, h: f64| {
                    let d = -dx * sn + dy * cs - d0;
                    norm * (-0.5 * d * d / (SIGMA_LINE * SIGMA_LINE)).exp() * h * h
                };
                let reach = FRAC_1_SQRT_2 * size as f64 + 1.0; // covers the stamp's corners
                renderer
                    .render_convolved(centre, centre, reach, cell, &[])
                    .add_to(&mut model, size, size);
            }
            _ => {
                t.artefact = "hot_pixels";
                let k = rng.random_range(1..=5usize);
                let mut s = Stamp {
                    x0: 0,
                    y0: 0,
                    nx: size,
                    ny: size,
                    data: vec![0.0; size * size],
                };
                for _ in 0..k {
                    let p = rng.random_range(0..size * size);
                    s.data[p] += uniform(&mut rng, 20.0, 200.0) * sigma_adu * gain;
                }
                deposits = Some(s);
            }
        }
    }

    let mut e_img: Vec<f64> = model.iter().map(|m| noise.sky_level + gain * m).collect();
    if noise.enabled {
        poisson_in_place(&mut e_img, &mut rng);
    }
    if let Some(d) = deposits {
        d.add_to(&mut e_img, size, size);
    }
    if noise.enabled {
        gaussian_in_place(&mut e_img, &mut rng, noise.read_noise);
    }
    let sky = if cfg.subtract_sky {
        noise.sky_adu()
    } else {
        0.0
    };
    let image = e_img.iter().map(|v| (v / gain - sky) as f32).collect();
    (image, t)
}

/// Simulates a cutout set; see the [module documentation](super) for the model.
///
/// `progress` is told about each finished stamp. Fails only if `cfg` is invalid
/// ([`CutoutConfig::validate`]).
pub fn simulate_cutouts(cfg: &CutoutConfig, progress: &dyn Progress) -> Result<CutoutSet> {
    cfg.validate()?;
    let labels = assign_labels(cfg.n, cfg.rare_fraction, cfg.rare_weights, cfg.seed);
    let renderer = Renderer::new(PsfModel::new(&cfg.psf, cfg.pixel_scale));
    tracing::debug!(
        n = cfg.n,
        size = cfg.size,
        oversample = renderer.oversample(),
        "rendering cutouts"
    );
    let stamps: Vec<(Vec<f32>, StampTruth)> = labels
        .par_iter()
        .enumerate()
        .map(|(i, &label)| {
            let s = make_stamp(cfg, &renderer, i, label);
            progress.inc(1);
            s
        })
        .collect();
    let mut pixels = Vec::with_capacity(cfg.n * cfg.size * cfg.size);
    let mut params = CutoutParams::default();
    for (image, truth) in stamps {
        pixels.extend_from_slice(&image);
        params.push(truth);
    }
    let images = Array3::from_shape_vec((cfg.n, cfg.size, cfg.size), pixels)
        .expect("n*size*size pixels were rendered");
    Ok(CutoutSet {
        images,
        ids: (1..=cfg.n as i64).collect(),
        labels,
        params,
        config: cfg.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutouts_labels_have_exact_counts_and_are_shuffled_deterministically() {
        let a = assign_labels(2000, 0.02, [1.0, 1.0, 1.0], 5);
        let mut counts = [0usize; 4];
        a.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [1960, 14, 13, 13]);
        assert_eq!(a, assign_labels(2000, 0.02, [1.0, 1.0, 1.0], 5));
        assert_ne!(a, assign_labels(2000, 0.02, [1.0, 1.0, 1.0], 6));
        // Rare stamps are spread over the set, not bunched at its start.
        let first_half = a[..1000].iter().filter(|&&l| l != 0).count();
        assert!(
            (8..=32).contains(&first_half),
            "{first_half} of 40 rare in the first half"
        );
        // Weights and edge cases.
        let b = assign_labels(100, 0.1, [2.0, 1.0, 0.0], 1);
        assert_eq!(b.iter().filter(|&&l| l == 1).count(), 7);
        assert_eq!(b.iter().filter(|&&l| l == 2).count(), 3);
        assert_eq!(b.iter().filter(|&&l| l == 3).count(), 0);
        assert!(assign_labels(10, 0.0, [1.0, 1.0, 1.0], 1)
            .iter()
            .all(|&l| l == 0));
        assert!(assign_labels(10, 1.0, [1.0, 1.0, 1.0], 1)
            .iter()
            .all(|&l| l != 0));
    }
}
