//! [`simulate_sky`]: draws the sources, renders them in parallel, adds the detector and its
//! artefacts, and catalogues everything.

use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;

use super::artefacts::{cosmic_ray_count, draw_physical, Trail};
use super::catalog::{bbox_around, Entry, SkyCatalog, SourceClass};
use super::config::{
    imaging_cards, log_uniform, mag_of_flux, uniform, CosmicRayModel, Injection, SkyConfig,
};
use super::detector::{bleed_columns, gaussian_in_place, poisson_in_place, CosmicRay};
use super::render::{Renderer, Stamp};
use super::sersic::Sersic;
use super::wcs::TanWcs;
use deepsky_core::mask::MaskPlane;
use deepsky_core::Validate;

use crate::error::Result;
use crate::output::{card, seed_card, Card, CardValue};
use crate::rng::{stream_rng, SimRng};
use crate::Progress;

/// Per-pixel truth of what each artefact and source touched, shape `(height, width)` like the
/// image. The rules are in the [module documentation](super#truth-masks).
#[derive(Debug, Clone, PartialEq)]
pub struct TruthMasks {
    /// Bits of [`MaskPlane`]: `CosmicRay`, `Saturated`, `BadColumn`, `Trail` and `Detected`
    /// (never `NoData`: a simulated image has no missing pixels).
    pub bits: Array2<u32>,
    /// 0 for sky, else 1 + the catalogue row index (the catalogue's `id`) of the star, galaxy
    /// or saturated star whose noiseless light dominates the pixel, for every pixel in the
    /// `Detected` plane.
    pub segmentation: Array2<i32>,
}

impl TruthMasks {
    /// Whether `plane` is set at `[row, col]`.
    pub fn has(&self, plane: MaskPlane, row: usize, col: usize) -> bool {
        plane.is_set(self.bits[[row, col]])
    }

    /// Number of pixels with `plane` set.
    pub fn count(&self, plane: MaskPlane) -> usize {
        self.bits.iter().filter(|&&b| plane.is_set(b)).count()
    }
}

/// A simulated field: image, truth catalogue, truth masks, WCS and the configuration that
/// made it.
#[derive(Debug, Clone)]
pub struct SkyField {
    /// Image in ADU, shape `(height, width)`, `image[[row, col]]` with row = y - 1 and
    /// col = x - 1 in FITS pixel coordinates. Includes the sky (not subtracted).
    pub image: Array2<f32>,
    /// Truth catalogue.
    pub catalog: SkyCatalog,
    /// Truth masks: which pixels each kind of artefact and which source touched.
    pub masks: TruthMasks,
    /// World coordinate system of the image.
    pub wcs: TanWcs,
    /// Configuration used.
    pub config: SkyConfig,
}

impl SkyField {
    /// FITS header cards for the image: units, detector and observing parameters, PSF, seed
    /// and counts, followed by the WCS cards ([`TanWcs::header_cards`]).
    pub fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        let c = &self.config;
        let mut cards = vec![
            card("BUNIT", Str("adu".into()), "pixel unit"),
            card("EXPTIME", Float(c.exposure_time), "[s] exposure time"),
            card("GAIN", Float(c.noise.gain), "[e-/adu] gain"),
            card("RDNOISE", Float(c.noise.read_noise), "[e-] read noise"),
            card("SATURATE", Float(c.saturation), "[adu] saturation level"),
            card(
                "SKYLEVEL",
                Float(c.noise.sky_level),
                "[e-/pixel] sky background",
            ),
            card(
                "SKYADU",
                Float(c.noise.sky_adu()),
                "[adu/pixel] sky background",
            ),
        ];
        cards.extend(imaging_cards(&c.noise, c.zeropoint, c.pixel_scale, &c.psf));
        if c.psf_ellipticity > 0.0 {
            cards.push(card(
                "PSF_ELL",
                CardValue::Float(c.psf_ellipticity),
                "PSF ellipticity 1 - b/a",
            ));
            cards.push(card(
                "PSF_PA",
                CardValue::Float(c.psf_angle),
                "[deg] PSF major axis from +x towards +y",
            ));
        }
        let n = |cls| Int(self.catalog.count(cls) as i64);
        cards.extend([
            card("SEED", seed_card(c.seed), "simulation seed"),
            card(
                "NSTAR",
                n(SourceClass::Star),
                "catalogued unsaturated stars",
            ),
            card("NGALAXY", n(SourceClass::Galaxy), "catalogued galaxies"),
            card(
                "NSATSTAR",
                n(SourceClass::SaturatedStar),
                "catalogued saturated stars",
            ),
            card(
                "NCOSMIC",
                n(SourceClass::CosmicRay),
                "catalogued cosmic rays",
            ),
            card(
                "NBADCOL",
                n(SourceClass::BadColumn),
                "catalogued bad columns",
            ),
        ]);
        cards.extend(self.wcs.header_cards());
        cards
    }
}

/// What to render for one source.
#[derive(Debug, Clone)]
enum SourceKind {
    Star {
        flux: f64,
    },
    /// A star made to peak at `peak_ratio` times the saturation level.
    BrightStar {
        peak_ratio: f64,
    },
    Galaxy {
        flux: f64,
        n: f64,
        r_half: f64,
        ellipticity: f64,
        pa_deg: f64,
    },
}

#[derive(Debug, Clone)]
struct SourceSpec {
    kind: SourceKind,
    /// 0-based pixel position.
    x: f64,
    y: f64,
    injected: bool,
}

fn draw_sources(cfg: &SkyConfig) -> Vec<SourceSpec> {
    let (w, h) = (cfg.width as f64, cfg.height as f64);
    let position = |rng: &mut SimRng| (uniform(rng, -0.5, w - 0.5), uniform(rng, -0.5, h - 0.5));
    let mut specs = Vec::new();
    for i in 0..cfg.n_stars {
        let mut rng = stream_rng(cfg.seed, "sky.star", i as u64);
        let (x, y) = position(&mut rng);
        let flux = cfg.flux_of_mag(cfg.stars.sample(&mut rng));
        specs.push(SourceSpec {
            kind: SourceKind::Star { flux },
            x,
            y,
            injected: false,
        });
    }
    for i in 0..cfg.n_galaxies {
        let mut rng = stream_rng(cfg.seed, "sky.galaxy", i as u64);
        let (x, y) = position(&mut rng);
        let flux = cfg.flux_of_mag(cfg.galaxies.magnitudes.sample(&mut rng));
        let (n, r, e, pa) = cfg.galaxies.sample_shape(&mut rng);
        let kind = SourceKind::Galaxy {
            flux,
            n,
            r_half: r / cfg.pixel_scale,
            ellipticity: e,
            pa_deg: pa,
        };
        specs.push(SourceSpec {
            kind,
            x,
            y,
            injected: false,
        });
    }
    for i in 0..cfg.artefacts.saturated_stars {
        let mut rng = stream_rng(cfg.seed, "sky.saturated_star", i as u64);
        let (x, y) = position(&mut rng);
        let peak_ratio = log_uniform(&mut rng, 3.0, 100.0);
        specs.push(SourceSpec {
            kind: SourceKind::BrightStar { peak_ratio },
            x,
            y,
            injected: false,
        });
    }
    for inj in &cfg.injections {
        let spec = match *inj {
            Injection::Star { x, y, mag } => SourceSpec {
                kind: SourceKind::Star {
                    flux: cfg.flux_of_mag(mag),
                },
                x: x - 1.0,
                y: y - 1.0,
                injected: true,
            },
            Injection::Galaxy {
                x,
                y,
                mag,
                sersic_n,
                r_half,
                ellipticity,
                position_angle,
            } => SourceSpec {
                kind: SourceKind::Galaxy {
                    flux: cfg.flux_of_mag(mag),
                    n: sersic_n,
                    r_half: r_half / cfg.pixel_scale,
                    ellipticity,
                    pa_deg: position_angle,
                },
                x: x - 1.0,
                y: y - 1.0,
                injected: true,
            },
        };
        specs.push(spec);
    }
    specs
}

/// Renders one source; returns its stamp (ADU) and total flux.
fn render_source(spec: &SourceSpec, renderer: &Renderer, cfg: &SkyConfig) -> (Stamp, f64) {
    match spec.kind {
        SourceKind::Star { flux } => (renderer.psf.render_point(spec.x, spec.y, flux).0, flux),
        SourceKind::BrightStar { peak_ratio } => {
            let (mut stamp, _) = renderer.psf.render_point(spec.x, spec.y, 1.0);
            let peak = stamp.data.iter().cloned().fold(0.0, f64::max);
            let flux = peak_ratio * cfg.saturation / peak;
            stamp.scale(flux);
            (stamp, flux)
        }
        SourceKind::Galaxy {
            flux,
            n,
            r_half,
            ellipticity,
            pa_deg,
        } => {
            let sersic = Sersic::new(n, r_half, ellipticity, pa_deg.to_radians());
            (
                renderer.render_sersic(spec.x, spec.y, &sersic, flux).0,
                flux,
            )
        }
    }
}

/// Simulates a sky field; see the [module documentation](super) for the model and conventions.
///
/// `progress` is told about each rendered source and artefact. Fails only if `cfg` is invalid
/// ([`SkyConfig::validate`]).
pub fn simulate_sky(cfg: &SkyConfig, progress: &dyn Progress) -> Result<SkyField> {
    cfg.validate()?;
    let (w, h) = (cfg.width, cfg.height);
    let wcs = cfg.wcs();
    let noise = &cfg.noise;
    let gain = noise.gain;
    let sky_adu = noise.sky_adu();
    let renderer = Renderer::new(cfg.psf_model());
    let fwhm = renderer.psf.fwhm;

    let specs = draw_sources(cfg);
    tracing::debug!(
        sources = specs.len(),
        oversample = renderer.oversample(),
        "rendering sky sources"
    );
    // Stamps render in parallel; collect() keeps catalogue order, and they are added in that
    // order below, so floating-point sums do not depend on the thread count.
    let rendered: Vec<(Stamp, f64)> = specs
        .par_iter()
        .map(|spec| {
            let r = render_source(spec, &renderer, cfg);
            progress.inc(1);
            r
        })
        .collect();

    // Truth masks: an artefact's plane where its own signal exceeds `truth_level`, the
    // Detected plane where the noiseless sources exceed `footprint_level` (both in ADU).
    let sigma_adu = noise.background_sigma_adu();
    let truth_level = cfg.artefacts.truth_threshold_sigma * sigma_adu;
    let footprint_level = cfg.artefacts.footprint_threshold_sigma * sigma_adu;
    let mut bits = vec![0u32; w * h];
    let mut segmentation = vec![0i32; w * h];
    // The largest single-source light in each pixel so far, for the segmentation.
    let mut dominant = vec![0.0f64; w * h];

    let mut model = vec![0.0f64; w * h];
    let mut entries = Vec::with_capacity(specs.len());
    let mut saturated_rows = Vec::new();
    for (spec, (stamp, flux)) in specs.iter().zip(&rendered) {
        let flux_in_image = stamp.add_to(&mut model, w, h);
        let segment = entries.len() as i32 + 1;
        stamp.for_each_on(w, h, |k, v| {
            if v > dominant[k] {
                dominant[k] = v;
                segmentation[k] = segment;
            }
        });
        let snr = stamp.snr_on(w, h, noise);
        let saturated = stamp.peak_on(w, h) + sky_adu > cfg.saturation;
        let mag = mag_of_flux(*flux, cfg.zeropoint, cfg.exposure_time);
        let nan = f64::NAN;
        let entry = match spec.kind {
            SourceKind::Star { .. } | SourceKind::BrightStar { .. } => {
                if saturated {
                    saturated_rows.push(entries.len());
                }
                Entry {
                    class: if saturated {
                        SourceClass::SaturatedStar
                    } else {
                        SourceClass::Star
                    },
                    x: spec.x,
                    y: spec.y,
                    flux: *flux,
                    flux_in_image,
                    mag,
                    snr,
                    saturated,
                    injected: spec.injected,
                    bbox: bbox_around(spec.x, spec.y, 1.5 * fwhm, w, h),
                    sersic_n: nan,
                    r_half: nan,
                    ellipticity: nan,
                    position_angle: nan,
                }
            }
            SourceKind::Galaxy {
                n,
                r_half,
                ellipticity,
                pa_deg,
                ..
            } => Entry {
                class: SourceClass::Galaxy,
                x: spec.x,
                y: spec.y,
                flux: *flux,
                flux_in_image,
                mag,
                snr,
                saturated,
                injected: spec.injected,
                bbox: bbox_around(
                    spec.x,
                    spec.y,
                    3.0 * (r_half * r_half + 0.25 * fwhm * fwhm).sqrt(),
                    w,
                    h,
                ),
                sersic_n: n,
                r_half,
                ellipticity,
                position_angle: pa_deg,
            },
        };
        entries.push(entry);
    }
    drop(rendered);
    drop(dominant);
    for k in 0..w * h {
        if model[k] > footprint_level {
            bits[k] |= MaskPlane::Detected.bit();
        } else {
            segmentation[k] = 0;
        }
    }

    // Trails are light from above the atmosphere, so they get photon noise like the sources.
    if cfg.artefacts.trails > 0 {
        let mut trails = vec![0.0f64; w * h];
        for i in 0..cfg.artefacts.trails {
            let mut rng = stream_rng(cfg.seed, "sky.trail", i as u64);
            let trail = Trail::draw(&mut rng, &cfg.artefacts.trail_model, fwhm, sigma_adu, w, h);
            trail.add_to(&mut trails, w, h);
        }
        for k in 0..w * h {
            if trails[k] > truth_level {
                bits[k] |= MaskPlane::Trail.bit();
            }
            model[k] += trails[k];
        }
    }

    // Expected electrons, then photon noise, one stream per row.
    let mut e: Vec<f64> = model.iter().map(|m| noise.sky_level + gain * m).collect();
    drop(model);
    if noise.enabled {
        e.par_chunks_mut(w).enumerate().for_each(|(row, pixels)| {
            poisson_in_place(pixels, &mut stream_rng(cfg.seed, "sky.noise", row as u64));
        });
    }

    // Cosmic rays deposit charge after the photon noise (their own fluctuations are in the
    // drawn charge) and before bleeding (a hit on a saturated star bleeds too).
    let artefacts = &cfg.artefacts;
    let n_cosmic_rays = if artefacts.cosmic_ray_rate > 0.0 {
        cosmic_ray_count(
            &mut stream_rng(cfg.seed, "sky.cosmic_ray_count", 0),
            artefacts.cosmic_ray_rate,
            artefacts.physical_cosmic_rays.pixel_um,
            w,
            h,
            cfg.exposure_time,
        )
    } else {
        artefacts.cosmic_rays
    };
    // Electrons deposited by all cosmic rays, for their mask plane.
    let mut cosmic_e = vec![0.0f64; if n_cosmic_rays > 0 { w * h } else { 0 }];
    for i in 0..n_cosmic_rays {
        let (x, y, cr) = match artefacts.cosmic_ray_model {
            CosmicRayModel::Simple => {
                let mut rng = stream_rng(cfg.seed, "sky.cosmic_ray", i as u64);
                let x = uniform(&mut rng, -0.5, w as f64 - 0.5);
                let y = uniform(&mut rng, -0.5, h as f64 - 0.5);
                (x, y, CosmicRay::draw(&mut rng, x, y))
            }
            CosmicRayModel::Physical => {
                let mut rng = stream_rng(cfg.seed, "sky.physical_cosmic_ray", i as u64);
                let x = uniform(&mut rng, -0.5, w as f64 - 0.5);
                let y = uniform(&mut rng, -0.5, h as f64 - 0.5);
                let hit = draw_physical(&mut rng, x, y, &artefacts.physical_cosmic_rays);
                (x, y, hit.cr)
            }
        };
        let mut stamp = cr.stamp();
        stamp.add_to(&mut e, w, h);
        stamp.add_to(&mut cosmic_e, w, h);
        stamp.scale(1.0 / gain);
        let in_image = {
            let mut s = 0.0;
            stamp.for_each_on(w, h, |_, v| s += v);
            s
        };
        let (xmin, ymin) = (stamp.x0, stamp.y0);
        let (xmax, ymax) = (xmin + stamp.nx as i64 - 1, ymin + stamp.ny as i64 - 1);
        let nan = f64::NAN;
        entries.push(Entry {
            class: SourceClass::CosmicRay,
            x,
            y,
            flux: cr.charge / gain,
            flux_in_image: in_image,
            mag: nan,
            snr: stamp.snr_on(w, h, noise),
            saturated: stamp.peak_on(w, h) + sky_adu > cfg.saturation,
            injected: false,
            bbox: [
                (xmin + 1).max(1),
                (ymin + 1).max(1),
                (xmax + 1).min(w as i64),
                (ymax + 1).min(h as i64),
            ],
            sersic_n: nan,
            r_half: nan,
            ellipticity: nan,
            position_angle: cr.angle_deg,
        });
        progress.inc(1);
    }

    for (k, &q) in cosmic_e.iter().enumerate() {
        if q / gain > truth_level {
            bits[k] |= MaskPlane::CosmicRay.bit();
        }
    }
    drop(cosmic_e);

    let full_well = cfg.saturation * gain;
    // Saturated: pixels at the full well once the charge has bled, and pixels that received
    // more than `truth_level` of bled charge.
    let before_bleeding = e.iter().any(|&v| v > full_well).then(|| e.clone());
    bleed_columns(&mut e, w, h, full_well);
    let full = full_well * (1.0 - 1e-12);
    for k in 0..w * h {
        let bled = before_bleeding
            .as_ref()
            .is_some_and(|b| (e[k] - b[k]) / gain > truth_level);
        if e[k] >= full || bled {
            bits[k] |= MaskPlane::Saturated.bit();
        }
    }
    drop(before_bleeding);
    // Extend saturated stars' boxes along the full pixels of their bleed trails.
    for &k in &saturated_rows {
        let entry = &mut entries[k];
        let row = entry.y.round();
        if row < 0.0 || row >= h as f64 {
            continue;
        }
        let row = row as usize;
        for col in (entry.bbox[0] - 1)..entry.bbox[2] {
            let col = col as usize;
            if e[row * w + col] < full {
                continue;
            }
            let mut lo = row;
            while lo > 0 && e[(lo - 1) * w + col] >= full {
                lo -= 1;
            }
            let mut hi = row;
            while hi + 1 < h && e[(hi + 1) * w + col] >= full {
                hi += 1;
            }
            entry.bbox[1] = entry.bbox[1].min(lo as i64 + 1);
            entry.bbox[3] = entry.bbox[3].max(hi as i64 + 1);
        }
    }

    if noise.enabled {
        e.par_chunks_mut(w).enumerate().for_each(|(row, pixels)| {
            let mut rng = stream_rng(cfg.seed, "sky.read_noise", row as u64);
            gaussian_in_place(pixels, &mut rng, noise.read_noise);
        });
    }
    // Electrons to ADU; the converter saturates.
    let mut adu: Vec<f64> = e.iter().map(|v| (v / gain).min(cfg.saturation)).collect();
    drop(e);
    for (b, &v) in bits.iter_mut().zip(&adu) {
        if v >= cfg.saturation {
            *b |= MaskPlane::Saturated.bit();
        }
    }
    let mut mark_bad = |k: usize, before: f64, after: f64| {
        if (after - before).abs() > truth_level {
            bits[k] |= MaskPlane::BadColumn.bit();
        }
    };

    for i in 0..cfg.artefacts.bad_columns {
        let mut rng = stream_rng(cfg.seed, "sky.bad_column", i as u64);
        let col = rng.random_range(0..w);
        let start = rng.random_range(0..h);
        // Charge traps block the transfer of everything beyond them towards the readout, so
        // bad columns run from a pixel to an edge.
        let (lo, hi) = if rng.random_bool(0.5) {
            (start, h - 1)
        } else {
            (0, start)
        };
        let hot = rng.random_bool(0.5);
        let level = uniform(&mut rng, 5.0, 30.0) * noise.background_sigma_adu().max(1.0);
        for row in lo..=hi {
            let v = &mut adu[row * w + col];
            let before = *v;
            *v = if hot {
                (*v + level).min(cfg.saturation)
            } else {
                0.0
            };
            mark_bad(row * w + col, before, *v);
        }
        let nan = f64::NAN;
        entries.push(Entry {
            class: SourceClass::BadColumn,
            x: col as f64,
            y: 0.5 * (lo + hi) as f64,
            flux: nan,
            flux_in_image: nan,
            mag: nan,
            snr: nan,
            saturated: false,
            injected: false,
            bbox: [col as i64 + 1, lo as i64 + 1, col as i64 + 1, hi as i64 + 1],
            sersic_n: nan,
            r_half: nan,
            ellipticity: nan,
            position_angle: nan,
        });
        progress.inc(1);
    }

    for i in 0..cfg.artefacts.hot_pixels {
        let mut rng = stream_rng(cfg.seed, "sky.hot_pixel", i as u64);
        let k = rng.random_range(0..h) * w + rng.random_range(0..w);
        let level = log_uniform(&mut rng, 5.0, 50.0) * noise.background_sigma_adu().max(1.0);
        let before = adu[k];
        adu[k] = (before + level).min(cfg.saturation);
        mark_bad(k, before, adu[k]);
    }

    let mut catalog = SkyCatalog::default();
    for entry in entries {
        catalog.push(entry, &wcs);
    }
    let image = Array2::from_shape_vec((h, w), adu.into_iter().map(|v| v as f32).collect())
        .expect("image buffer has height*width pixels");
    let masks = TruthMasks {
        bits: Array2::from_shape_vec((h, w), bits).expect("mask has height*width pixels"),
        segmentation: Array2::from_shape_vec((h, w), segmentation)
            .expect("segmentation has height*width pixels"),
    };
    tracing::debug!(rows = catalog.len(), "sky field done");
    Ok(SkyField {
        image,
        catalog,
        masks,
        wcs,
        config: cfg.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sky::{ArtefactConfig, TrailModel};

    #[test]
    fn sky_trail_mask_is_a_band_of_the_expected_width() {
        let peak_sigma = 20.0;
        let cfg = SkyConfig {
            width: 120,
            height: 100,
            n_stars: 0,
            n_galaxies: 0,
            artefacts: ArtefactConfig {
                cosmic_rays: 0,
                saturated_stars: 0,
                bad_columns: 0,
                trails: 1,
                trail_model: TrailModel {
                    peak_sigma: [peak_sigma; 2],
                    aircraft_fraction: 0.0,
                },
                ..ArtefactConfig::default()
            },
            seed: 3,
            ..SkyConfig::default()
        };
        let field = simulate_sky(&cfg, &()).unwrap();
        let sigma = cfg.noise.background_sigma_adu();
        let mut rng = stream_rng(cfg.seed, "sky.trail", 0);
        let trail = Trail::draw(
            &mut rng,
            &cfg.artefacts.trail_model,
            cfg.psf_model().fwhm,
            sigma,
            cfg.width,
            cfg.height,
        );
        // The Gaussian cross-section falls to the threshold at this distance from the line.
        let threshold = cfg.artefacts.truth_threshold_sigma;
        let half_width = trail.sigma_px * (2.0 * (peak_sigma / threshold).ln()).sqrt();
        let (mut inside, mut outside) = (0, 0);
        for ((row, col), &bits) in field.masks.bits.indexed_iter() {
            let d = trail.distance(col as f64, row as f64).abs();
            let masked = MaskPlane::Trail.is_set(bits);
            // Pixel averaging moves the edge by less than half a pixel.
            if d < half_width - 0.5 {
                assert!(
                    masked,
                    "({row}, {col}) at {d} from the line, half-width {half_width}"
                );
                inside += 1;
            } else if d > half_width + 0.5 {
                assert!(!masked, "({row}, {col}) at {d} from the line");
                outside += 1;
            }
        }
        assert!(inside > 100 && outside > 5000, "{inside} {outside}");
        assert_eq!(field.catalog.len(), 0, "trails are not catalogued");
    }
}
