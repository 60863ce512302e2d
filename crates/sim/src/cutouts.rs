//! Galaxy cutout sets with rare labelled classes, for representation learning and anomaly
//! detection.
//!
//! [`simulate_cutouts`] makes `n` square stamps, each centred (within `max_offset` pixels) on
//! one Sérsic galaxy drawn from [`GalaxyModel`], PSF-convolved and with sky, Poisson and read
//! noise, using the same renderer as [`crate::sky`]. A fraction `rare_fraction` of the stamps
//! belongs to rare classes, split among them by `rare_weights`:
//!
//! | label | name | content |
//! |---|---|---|
//! | 0 | `normal` | one galaxy |
//! | 1 | `lens` | a bright singular-isothermal-sphere (SIS) lens galaxy (n = 3–4.5) with a background Sérsic source lensed into arcs or an Einstein ring |
//! | 2 | `merger` | two galaxies 1–2 half-light radii apart (a close pair or blend) |
//! | 3 | `artefact` | a normal galaxy plus a cosmic ray, a satellite trail or hot pixels |
//!
//! # Model
//!
//! * **Lensing**: the SIS lens equation `β = θ - θ_E θ/|θ|` maps each image-plane position θ
//!   (relative to the lens centre) to the source plane. Surface brightness is conserved, so
//!   the lensed image is the source's surface brightness at β(θ), sampled by shooting several
//!   rays per cell of the oversampled grid and then convolved with the PSF like every other
//!   light. The magnification is the ratio of lensed to unlensed source flux measured on that
//!   grid. The source sits at `|β| <= source_offset_max · θ_E` from the lens axis
//!   (uniform over the disc), which gives rings near the centre and arcs and counter-images
//!   further out.
//! * **Mergers**: the companion's shape comes from the same galaxy model, its flux is
//!   `flux_ratio` times the primary's, and it lies at `separation` × max(r_half of either, PSF
//!   FWHM) in a random direction.
//! * **Artefacts** (one kind per stamp, equally likely): a cosmic ray as in [`crate::sky`]
//!   (sharp, deposited after photon noise); a straight satellite trail across the stamp (a line
//!   with a Gaussian cross-section of σ = 0.5 pixel, PSF-convolved, with a peak of 3–30
//!   background σ); or 1–5 hot pixels of 20–200 background σ.
//! * Noise as in [`crate::sky`]: Poisson on `sky_level + gain · model` electrons, then read
//!   noise, then ADU = e-/gain. With `subtract_sky` the expected sky level is subtracted, so an
//!   empty pixel has mean 0.
//!
//! Units and conventions follow [`crate::sky`]: sizes in the configuration in arcsec, sizes in
//! the output columns in pixels, `flux = exposure_time · 10^(-0.4 (mag - zeropoint))` ADU,
//! position angles in degrees from +x towards +y, ellipticity `1 - b/a`. Images are indexed
//! `[stamp, row (y), column (x)]`; the stamp centre is at 0-based pixel position
//! `((size - 1)/2, (size - 1)/2)`, between the middle pixels for even sizes.
//!
//! # Determinism
//!
//! Stamp `i` draws everything from `stream_rng(seed, "cutouts", i)`. Which stamps are rare is
//! decided by a seeded shuffle (`"cutouts.labels"`) of exactly `round(n · rare_fraction)` rare
//! labels, apportioned among the rare classes by largest remainder. Stamps render in parallel
//! and the result is bit-identical for any number of threads.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::cutouts::{label_names, simulate_cutouts, CutoutConfig};
//!
//! let cfg = CutoutConfig { n: 12, size: 32, rare_fraction: 0.25, seed: 1, ..CutoutConfig::default() };
//! let set = simulate_cutouts(&cfg, &()).unwrap();
//! assert_eq!(set.images.dim(), (12, 32, 32));
//! assert_eq!(set.labels.iter().filter(|&&l| l != 0).count(), 3); // round(12 · 0.25)
//! assert_eq!(label_names()[1], "lens");
//! ```

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use ndarray::Array3;
use rand::Rng;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};
use crate::output::{card, seed_card, Card, CardValue, Column, ColumnData};
use crate::rng::stream_rng;
use crate::sky::config::{
    check_range, count, finite, flux_of_mag, log_uniform, mag_of_flux, positive, uniform,
    GalaxyModel, MagnitudeDistribution, NoiseConfig, Psf,
};
use crate::sky::detector::{gaussian_in_place, poisson_in_place, CosmicRay};
use crate::sky::psf::PsfModel;
use crate::sky::render::{check_render_extent, Renderer, Stamp};
use crate::sky::sersic::{Sersic, SERSIC_N_MAX, SERSIC_N_MIN, SERSIC_TRUNCATION};
use crate::Progress;

/// Label of a stamp with one ordinary galaxy.
pub const LABEL_NORMAL: i32 = 0;
/// Label of a strong gravitational lens.
pub const LABEL_LENS: i32 = 1;
/// Label of a close galaxy pair (merger or blend).
pub const LABEL_MERGER: i32 = 2;
/// Label of a galaxy stamp with a detector or sky artefact.
pub const LABEL_ARTEFACT: i32 = 3;

/// Names of the labels, indexed by label: `["normal", "lens", "merger", "artefact"]`.
pub fn label_names() -> [&'static str; 4] {
    ["normal", "lens", "merger", "artefact"]
}

/// Strong-lens (label 1) parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LensModel {
    /// Range of the Einstein radius θ_E, arcsec (uniform).
    pub einstein_radius: [f64; 2],
    /// Largest distance of the source from the lens axis, in units of θ_E (uniform over the
    /// disc); below 1 the source is multiply imaged.
    pub source_offset_max: f64,
    /// Range of the source's Sérsic index (uniform).
    pub source_sersic_n: [f64; 2],
    /// Range of the source's half-light radius, arcsec (log-uniform).
    pub source_r_half: [f64; 2],
    /// Range of the source's unlensed magnitude minus the lens galaxy's (uniform).
    pub source_mag_offset: [f64; 2],
    /// Range of the lens galaxy's magnitude (uniform); lenses are massive, bright
    /// ellipticals, so they get their own range rather than the galaxy population's.
    pub lens_mag: [f64; 2],
    /// Range of the lens galaxy's Sérsic index (uniform).
    pub lens_sersic_n: [f64; 2],
    /// Range of the lens galaxy's half-light radius in units of θ_E (uniform).
    pub lens_r_half: [f64; 2],
}

impl Default for LensModel {
    fn default() -> Self {
        LensModel {
            // Galaxy-scale lenses, with θ_E and sources large enough that arcs and rings
            // are resolved in 0.7″ seeing rather than blurred into pairs of dots.
            einstein_radius: [1.0, 2.5],
            source_offset_max: 0.5,
            source_sersic_n: [0.5, 1.5],
            source_r_half: [0.15, 0.5],
            // Fainter than the lens before magnification, comparable after it.
            source_mag_offset: [0.5, 2.5],
            lens_mag: [18.5, 21.0],
            lens_sersic_n: [3.0, 4.5],
            lens_r_half: [0.5, 1.2],
        }
    }
}

/// Close-pair (label 2) parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MergerModel {
    /// Range of the separation in units of max(r_half of either galaxy, PSF FWHM) (uniform).
    pub separation: [f64; 2],
    /// Range of the companion's flux over the primary's (uniform).
    pub flux_ratio: [f64; 2],
}

impl Default for MergerModel {
    fn default() -> Self {
        MergerModel {
            separation: [1.0, 2.0],
            flux_ratio: [0.3, 1.0],
        }
    }
}

/// Configuration of [`simulate_cutouts`]; every field has a default (2000 stamps of 64×64
/// pixels at 0.2″/pixel, 0.7″ Moffat seeing, 2 % rare), unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CutoutConfig {
    /// Number of stamps (>= 1).
    pub n: usize,
    /// Side of each square stamp, pixels (8–1024).
    pub size: usize,
    /// Fraction of rare (label > 0) stamps, in [0, 1]; exactly `round(n · rare_fraction)`.
    pub rare_fraction: f64,
    /// Relative weights of the rare classes lens, merger, artefact (>= 0).
    pub rare_weights: [f64; 3],
    /// Pixel scale, arcsec per pixel.
    pub pixel_scale: f64,
    /// Point-spread function.
    pub psf: Psf,
    /// Sky background and noise.
    pub noise: NoiseConfig,
    /// Subtract the expected sky level (`sky_level / gain` ADU) from the images.
    pub subtract_sky: bool,
    /// Magnitude of a source giving 1 ADU per second.
    pub zeropoint: f64,
    /// Exposure time, seconds.
    pub exposure_time: f64,
    /// Largest offset of the primary galaxy from the stamp centre along each axis, pixels
    /// (uniform in `[-max_offset, max_offset]`).
    pub max_offset: f64,
    /// Galaxy population (primaries, merger companions).
    pub galaxies: GalaxyModel,
    /// Strong lenses.
    pub lens: LensModel,
    /// Close pairs.
    pub merger: MergerModel,
    /// Seed of every random stream.
    pub seed: u64,
}

impl Default for CutoutConfig {
    fn default() -> Self {
        CutoutConfig {
            n: 2000,
            size: 64,
            rare_fraction: 0.02,
            rare_weights: [1.0, 1.0, 1.0],
            pixel_scale: 0.2,
            psf: Psf::Moffat {
                fwhm: 0.7,
                beta: 3.0,
            },
            noise: NoiseConfig::default(),
            subtract_sky: true,
            zeropoint: 28.0,
            exposure_time: 60.0,
            max_offset: 1.0,
            galaxies: GalaxyModel {
                magnitudes: MagnitudeDistribution {
                    min: 18.5,
                    max: 23.0,
                    slope: 0.35,
                },
                sersic_n: [0.5, 4.0],
                r_half: [0.2, 1.0],
                ellipticity_max: 0.7,
            },
            lens: LensModel::default(),
            merger: MergerModel::default(),
            seed: 0,
        }
    }
}

/// At most 2^30 pixels (4 GB of f32) in a set.
const MAX_PIXELS: usize = 1 << 30;

impl CutoutConfig {
    /// Checks every parameter; the error names the offending parameter and its value.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(SimError::invalid("n", "must be at least 1, got 0"));
        }
        count("n", self.n)?;
        if !(8..=1024).contains(&self.size) {
            return Err(SimError::invalid(
                "size",
                format!("must be between 8 and 1024 pixels, got {}", self.size),
            ));
        }
        if self.n * self.size * self.size > MAX_PIXELS {
            return Err(SimError::invalid(
                "n",
                format!(
                    "{} stamps of {}x{} pixels exceed the limit of {MAX_PIXELS} pixels",
                    self.n, self.size, self.size
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.rare_fraction) {
            return Err(SimError::invalid(
                "rare_fraction",
                format!("must be within [0, 1], got {}", self.rare_fraction),
            ));
        }
        let wsum: f64 = self.rare_weights.iter().sum();
        if !(self.rare_weights.iter().all(|w| *w >= 0.0 && w.is_finite())
            && (wsum > 0.0 || self.rare_fraction == 0.0))
        {
            return Err(SimError::invalid(
                "rare_weights",
                format!(
                    "must be finite, >= 0 and not all 0 when rare_fraction > 0, got {:?}",
                    self.rare_weights
                ),
            ));
        }
        positive("pixel_scale", self.pixel_scale)?;
        self.psf.validate("psf", self.pixel_scale)?;
        self.noise.validate("noise")?;
        finite("zeropoint", self.zeropoint)?;
        positive("exposure_time", self.exposure_time)?;
        if !(self.max_offset >= 0.0 && self.max_offset <= self.size as f64 / 4.0) {
            return Err(SimError::invalid(
                "max_offset",
                format!(
                    "must be within [0, size/4 = {}] pixels, got {}",
                    self.size as f64 / 4.0,
                    self.max_offset
                ),
            ));
        }
        self.galaxies.validate("galaxies")?;
        let l = &self.lens;
        check_range(
            "lens.einstein_radius",
            l.einstein_radius,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        if !(l.source_offset_max >= 0.0 && l.source_offset_max <= 3.0) {
            return Err(SimError::invalid(
                "lens.source_offset_max",
                format!(
                    "must be within [0, 3] Einstein radii, got {}",
                    l.source_offset_max
                ),
            ));
        }
        check_range(
            "lens.source_sersic_n",
            l.source_sersic_n,
            SERSIC_N_MIN,
            SERSIC_N_MAX,
            "",
        )?;
        check_range(
            "lens.source_r_half",
            l.source_r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        check_range(
            "lens.source_mag_offset",
            l.source_mag_offset,
            -10.0,
            10.0,
            " mag",
        )?;
        check_range("lens.lens_mag", l.lens_mag, f64::MIN, f64::MAX, " mag")?;
        check_range(
            "lens.lens_sersic_n",
            l.lens_sersic_n,
            SERSIC_N_MIN,
            SERSIC_N_MAX,
            "",
        )?;
        check_range(
            "lens.lens_r_half",
            l.lens_r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " Einstein radii",
        )?;
        check_range("merger.separation", self.merger.separation, 0.0, 100.0, "")?;
        check_range(
            "merger.flux_ratio",
            self.merger.flux_ratio,
            f64::MIN_POSITIVE,
            100.0,
            "",
        )?;
        // Everything rendered must fit the largest render grid.
        let psf = PsfModel::new(&self.psf, self.pixel_scale);
        let px = |arcsec: f64| arcsec / self.pixel_scale;
        check_render_extent(
            "galaxies.r_half",
            SERSIC_TRUNCATION * px(self.galaxies.r_half[1]),
            &psf,
        )?;
        let lens_r_half = px(l.lens_r_half[1] * l.einstein_radius[1]);
        check_render_extent("lens.lens_r_half", SERSIC_TRUNCATION * lens_r_half, &psf)?;
        let lensed = px(l.einstein_radius[1] * (1.0 + l.source_offset_max))
            + SERSIC_TRUNCATION * px(l.source_r_half[1]);
        check_render_extent("lens.einstein_radius", lensed, &psf)?;
        check_render_extent("size", FRAC_1_SQRT_2 * self.size as f64 + 1.0, &psf)
    }

    fn flux_of_mag(&self, mag: f64) -> f64 {
        flux_of_mag(mag, self.zeropoint, self.exposure_time)
    }
}

/// Per-stamp truth parameters, one `Vec` per column; NaN where not applicable.
#[derive(Debug, Clone, Default)]
pub struct CutoutParams {
    /// Total flux of the primary galaxy (the lens galaxy for lenses), ADU.
    pub flux: Vec<f64>,
    /// Magnitude of the primary galaxy.
    pub mag: Vec<f64>,
    /// Sérsic index of the primary galaxy.
    pub sersic_n: Vec<f64>,
    /// Half-light semi-major axis of the primary galaxy before PSF convolution, pixels.
    pub r_half: Vec<f64>,
    /// Ellipticity `1 - b/a` of the primary galaxy.
    pub ellipticity: Vec<f64>,
    /// Position angle of the primary's major axis, degrees from +x towards +y.
    pub position_angle: Vec<f64>,
    /// x of the primary's centre minus the stamp centre, pixels.
    pub x_offset: Vec<f64>,
    /// y of the primary's centre minus the stamp centre, pixels.
    pub y_offset: Vec<f64>,
    /// Noiseless astronomical light inside the stamp (primary, lensed source, companion;
    /// no artefacts), ADU.
    pub stamp_flux: Vec<f64>,
    /// Matched-filter S/N of the noiseless astronomical light in the stamp, defined as for
    /// [`crate::sky::SkyCatalog::snr`]: `sqrt(Σ s_i² / ((s_i + sky)/gain + (read_noise/gain)²))`.
    pub snr: Vec<f64>,
    /// Einstein radius, pixels (lenses only).
    pub einstein_radius: Vec<f64>,
    /// Total magnification of the lensed source (lenses only).
    pub magnification: Vec<f64>,
    /// Unlensed magnitude of the lensed source (lenses only).
    pub source_mag: Vec<f64>,
    /// Distance of the source from the lens axis in the source plane, pixels (lenses only).
    pub source_offset: Vec<f64>,
    /// Magnitude of the companion (mergers only).
    pub companion_mag: Vec<f64>,
    /// Distance between primary and companion centres, pixels (mergers only).
    pub companion_separation: Vec<f64>,
    /// Artefact kind: `cosmic_ray`, `satellite_trail`, `hot_pixels`, or empty.
    pub artefact: Vec<String>,
}

impl CutoutParams {
    /// The columns as (name, unit, description, data), for writers.
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let f = |v: &Vec<f64>| F64(v.clone());
        vec![
            (
                "flux",
                "adu",
                "total flux of the primary (lens) galaxy",
                f(&self.flux),
            ),
            (
                "mag",
                "mag",
                "magnitude of the primary galaxy",
                f(&self.mag),
            ),
            (
                "sersic_n",
                "",
                "Sersic index of the primary",
                f(&self.sersic_n),
            ),
            (
                "r_half",
                "pixel",
                "half-light semi-major axis of the primary, before PSF",
                f(&self.r_half),
            ),
            (
                "ellipticity",
                "",
                "1 - b/a of the primary",
                f(&self.ellipticity),
            ),
            (
                "position_angle",
                "deg",
                "major axis of the primary, from +x towards +y",
                f(&self.position_angle),
            ),
            (
                "x_offset",
                "pixel",
                "primary centre x minus stamp centre",
                f(&self.x_offset),
            ),
            (
                "y_offset",
                "pixel",
                "primary centre y minus stamp centre",
                f(&self.y_offset),
            ),
            (
                "stamp_flux",
                "adu",
                "noiseless astronomical light inside the stamp",
                f(&self.stamp_flux),
            ),
            (
                "snr",
                "",
                "matched-filter S/N: sqrt(sum s^2/((s+sky)/gain+(rdnoise/gain)^2))",
                f(&self.snr),
            ),
            (
                "einstein_radius",
                "pixel",
                "SIS Einstein radius (lenses)",
                f(&self.einstein_radius),
            ),
            (
                "magnification",
                "",
                "total magnification of the source (lenses)",
                f(&self.magnification),
            ),
            (
                "source_mag",
                "mag",
                "unlensed source magnitude (lenses)",
                f(&self.source_mag),
            ),
            (
                "source_offset",
                "pixel",
                "source distance from the lens axis (lenses)",
                f(&self.source_offset),
            ),
            (
                "companion_mag",
                "mag",
                "companion magnitude (mergers)",
                f(&self.companion_mag),
            ),
            (
                "companion_separation",
                "pixel",
                "primary-companion distance (mergers)",
                f(&self.companion_separation),
            ),
            (
                "artefact",
                "",
                "cosmic_ray, satellite_trail, hot_pixels or empty",
                Str(self.artefact.clone()),
            ),
        ]
    }

    fn push(&mut self, p: StampTruth) {
        self.flux.push(p.flux);
        self.mag.push(p.mag);
        self.sersic_n.push(p.sersic_n);
        self.r_half.push(p.r_half);
        self.ellipticity.push(p.ellipticity);
        self.position_angle.push(p.position_angle);
        self.x_offset.push(p.x_offset);
        self.y_offset.push(p.y_offset);
        self.stamp_flux.push(p.stamp_flux);
        self.snr.push(p.snr);
        self.einstein_radius.push(p.einstein_radius);
        self.magnification.push(p.magnification);
        self.source_mag.push(p.source_mag);
        self.source_offset.push(p.source_offset);
        self.companion_mag.push(p.companion_mag);
        self.companion_separation.push(p.companion_separation);
        self.artefact.push(p.artefact.to_string());
    }
}

/// A simulated cutout set.
#[derive(Debug, Clone)]
pub struct CutoutSet {
    /// Stamps in ADU (sky-subtracted if `subtract_sky`), shape `(n, size, size)`, indexed
    /// `[stamp, row (y), column (x)]`.
    pub images: Array3<f32>,
    /// Label of each stamp, see [`label_names`].
    pub labels: Vec<i32>,
    /// Stamp number, 1-based.
    pub ids: Vec<i64>,
    /// Truth parameters of each stamp.
    pub params: CutoutParams,
    /// Configuration used.
    pub config: CutoutConfig,
}

impl CutoutSet {
    /// Number of stamps.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no stamps.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of stamps with each label.
    pub fn label_counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// All per-stamp columns: `id`, `label`, `label_name`, then [`CutoutParams::columns`].
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let names = label_names();
        let mut cols: Vec<Column> = vec![
            ("id", "", "stamp number, 1-based", I64(self.ids.clone())),
            (
                "label",
                "",
                "0 normal, 1 lens, 2 merger, 3 artefact",
                I64(self.labels.iter().map(|&l| l as i64).collect()),
            ),
            (
                "label_name",
                "",
                "normal, lens, merger or artefact",
                Str(self
                    .labels
                    .iter()
                    .map(|&l| names[l as usize].to_string())
                    .collect()),
            ),
        ];
        cols.extend(self.params.columns());
        cols
    }

    /// FITS header cards describing the set: observing parameters, PSF, seed, label names
    /// (`LABEL0`..`LABEL3`) and counts (`NLABEL0`..`NLABEL3`).
    pub fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        let c = &self.config;
        let mut cards = vec![
            card("BUNIT", Str("adu".into()), "pixel unit"),
            card("NSTAMP", Int(self.len() as i64), "number of stamps"),
            card("STAMPSZ", Int(c.size as i64), "[pixel] stamp side"),
            card("EXPTIME", Float(c.exposure_time), "[s] exposure time"),
            card("GAIN", Float(c.noise.gain), "[e-/adu] gain"),
            card("RDNOISE", Float(c.noise.read_noise), "[e-] read noise"),
            card(
                "SKYLEVEL",
                Float(c.noise.sky_level),
                "[e-/pixel] sky background",
            ),
            card(
                "SKYSUB",
                Bool(c.subtract_sky),
                "expected sky level subtracted",
            ),
            card(
                "NOISE",
                Bool(c.noise.enabled),
                "Poisson and read noise added",
            ),
            card(
                "MAGZP",
                Float(c.zeropoint),
                "[mag] magnitude giving 1 adu/s",
            ),
            card(
                "PIXSCALE",
                Float(c.pixel_scale),
                "[arcsec/pixel] pixel scale",
            ),
            card("PSF", Str(c.psf.name().into()), "PSF profile"),
            card(
                "PSF_FWHM",
                Float(c.psf.fwhm()),
                "[arcsec] PSF full width at half maximum",
            ),
        ];
        if let Psf::Moffat { beta, .. } = c.psf {
            cards.push(card("PSF_BETA", Float(beta), "Moffat power-law index"));
        }
        cards.push(card("SEED", seed_card(c.seed), "simulation seed"));
        cards.push(card(
            "RAREFRAC",
            Float(c.rare_fraction),
            "configured rare fraction",
        ));
        let counts = self.label_counts();
        for (k, name) in label_names().iter().enumerate() {
            cards.push(card(
                &format!("LABEL{k}"),
                Str(name.to_string()),
                "name of this label",
            ));
            cards.push(card(
                &format!("NLABEL{k}"),
                Int(counts[k] as i64),
                "stamps with this label",
            ));
        }
        cards
    }
}

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

/// Everything known about one stamp.
struct StampTruth {
    flux: f64,
    mag: f64,
    sersic_n: f64,
    r_half: f64,
    ellipticity: f64,
    position_angle: f64,
    x_offset: f64,
    y_offset: f64,
    stamp_flux: f64,
    snr: f64,
    einstein_radius: f64,
    magnification: f64,
    source_mag: f64,
    source_offset: f64,
    companion_mag: f64,
    companion_separation: f64,
    artefact: &'static str,
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
                let sigma_psf = renderer.psf.fwhm / 2.354_820_045_030_949_4;
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

/// Simulates a cutout set; see the [module documentation](self) for the model.
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
