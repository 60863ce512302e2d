//! Simulated optical sky fields with a truth catalogue.
//!
//! [`simulate_sky`] renders a CCD-like image of stars and galaxies seen through the atmosphere,
//! adds sky background, photon and read noise and optional detector artefacts, and returns the
//! image with a catalogue of everything it put in ([`SkyCatalog`]) and its TAN WCS ([`TanWcs`]).
//!
//! # Model
//!
//! * **PSF** ([`Psf`]): a circular Gaussian or Moffat profile, FWHM in arcsec. The Moffat is
//!   truncated where it encloses 99.5 % of its light (at most 6 FWHM) and renormalised, because
//!   its power-law wings would otherwise need unbounded stamps for β close to 1.
//! * **Stars** are the PSF integrated over each pixel: exactly with `erf` for the Gaussian, by
//!   adaptive sub-pixel sampling (finer in the core) for the Moffat.
//! * **Galaxies** are elliptical Sérsic profiles `I(ρ) ∝ exp(-b_n (ρ/r_s)^(1/n))` with
//!   `ρ² = u² + (v/q)²` in the frame of the major axis, `q = 1 - ellipticity` and `b_n` from the
//!   Ciotti & Bertin (1999) expansion, Newton-polished ([`sersic_b`]). Profiles are cut at
//!   `ρ = 6 r_half`, and the scale radius `r_s` is solved for so that the *truncated* profile
//!   still has exactly the catalogue's half-light radius. The profile is integrated over the
//!   cells of a grid oversampled 2–16× (2 cells per Gaussian σ of the PSF at least), with up to
//!   16×16 sub-samples in cells near the centre; the light of the innermost ellipse (semi-minor
//!   axis half a cell), where an n = 4 cusp smaller than a pixel keeps much of its light, is put
//!   in exactly from the incomplete gamma function as thin rings. The grid is convolved with the
//!   PSF sampled on the same grid (by FFT, large enough that nothing wraps) and binned to
//!   pixels.
//! * Every rendered source is then renormalised so that the light in its stamp is exactly its
//!   catalogue flux. The discretisation error this removes is below 0.5 % even for an n = 4
//!   galaxy 0.3 pixel across (unit-tested before renormalisation), so it makes the truth exact
//!   without changing the picture.
//! * **Magnitudes** follow power-law number counts `dN/dm ∝ 10^(slope·m)` between `min` and `max`
//!   ([`MagnitudeDistribution`]; equivalently `dN/dF ∝ F^-(1 + 2.5·slope)`), and
//!   `flux [ADU] = exposure_time · 10^(-0.4 (m - zeropoint))`: the zeropoint is the magnitude of a
//!   source giving 1 ADU/s.
//! * **Detector**: the expected image in electrons is `sky_level + gain · model`; it gets Poisson
//!   noise, then cosmic-ray charge, then charge bleeding (below), then Gaussian read noise, and is
//!   converted to ADU (`e- / gain`) and clipped at `saturation`. No bias level is added and the
//!   sky is not subtracted: the mean of an empty image is `sky_level / gain` ADU.
//! * **Artefacts** ([`ArtefactConfig`]), each catalogued with its own class: cosmic rays (charge
//!   deposited along short straight tracks, or single pixels, never PSF-convolved); saturation
//!   bleeding (charge above the full well `saturation · gain` spills half up, half down its
//!   column into the nearest pixels with room, which conserves charge except off the chip);
//!   `saturated_stars` bright enough for that to happen; and bad columns (dead: 0 ADU, or hot:
//!   a constant excess) from a random row to the chip edge.
//!
//! # Conventions
//!
//! * `image[[row, col]]`, row = y, shape `(height, width)`, values in ADU.
//! * Catalogue `x, y` and bounding boxes use the **FITS 1-based** convention: the centre of the
//!   first pixel `image[[0, 0]]` is `(x, y) = (1.0, 1.0)`, and a pixel covers `x ± 0.5`. A source
//!   at `(x, y)` is centred on the array index `[y - 1, x - 1]`.
//! * Sizes in the configuration (FWHM, half-light radii) are in **arcsec**; sizes in the
//!   catalogue (`r_half`) are in **pixels**. Position angles are in degrees, counter-clockwise
//!   from the +x pixel axis towards +y.
//! * Ellipticity is `1 - b/a`.
//!
//! # Determinism
//!
//! Every source and artefact draws from its own stream ([`crate::rng::stream_rng`]:
//! `"sky.star"`, `"sky.galaxy"`, `"sky.saturated_star"`, `"sky.cosmic_ray"`, `"sky.bad_column"`,
//! index = number within its kind), and noise from one stream per image row (`"sky.noise"`,
//! `"sky.read_noise"`). Stamps are rendered in parallel and added in catalogue order, so the
//! image is bit-identical for a seed whatever the number of threads. Changing the number of
//! galaxies does not move the stars.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::sky::{simulate_sky, SkyConfig};
//!
//! let cfg = SkyConfig { width: 64, height: 48, n_stars: 3, n_galaxies: 4, seed: 7, ..SkyConfig::default() };
//! let field = simulate_sky(&cfg, &()).unwrap();
//! assert_eq!(field.image.dim(), (48, 64)); // (height, width)
//! let cat = &field.catalog;
//! // The reference pixel maps to the reference sky position.
//! let (ra, dec) = field.wcs.pixel_to_world(field.wcs.crpix[0], field.wcs.crpix[1]);
//! assert_eq!((ra, dec), (cfg.crval[0], cfg.crval[1]));
//! for (name, _unit, _description, data) in cat.columns() {
//!     assert_eq!(data.len(), cat.len(), "column {name}");
//! }
//! ```

use std::f64::consts::{FRAC_1_SQRT_2, LN_10, PI};
use std::sync::OnceLock;

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_core::math::{gamma_p, ln_gamma, normal_cdf};

use crate::error::{Result, SimError};
use crate::rng::{stream_rng, SimRng};
use crate::Progress;

// ------------------------------------------------------------------------------------------------
// Output helper types shared with the cutout simulator and the writers
// ------------------------------------------------------------------------------------------------

pub(crate) use crate::output::{card, seed_card};
pub use crate::output::{Card, CardValue, Column, ColumnData};

// ------------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------------

/// Point-spread function (seeing) profile, selected by the `profile` tag:
/// `{"profile": "moffat", "fwhm": 1.0, "beta": 3.0}` or `{"profile": "gaussian", "fwhm": 1.0}`.
/// An unknown profile name is a deserialisation error that lists the known ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "profile", rename_all = "lowercase", deny_unknown_fields)]
pub enum Psf {
    /// Circular Gaussian.
    Gaussian {
        /// Full width at half maximum, arcsec.
        fwhm: f64,
    },
    /// Circular Moffat profile `I(r) ∝ (1 + (r/α)²)^(-β)`, with
    /// `FWHM = 2α·sqrt(2^(1/β) - 1)`; truncated where it encloses 99.5 % of its light (at most
    /// 6 FWHM) and renormalised.
    Moffat {
        /// Full width at half maximum, arcsec.
        fwhm: f64,
        /// Power-law index β (> 1; atmospheric seeing is typically 2.5–4.8). Default 3.
        #[serde(default = "default_moffat_beta")]
        beta: f64,
    },
}

fn default_moffat_beta() -> f64 {
    3.0
}

impl Default for Psf {
    fn default() -> Self {
        Psf::Moffat {
            fwhm: 1.0,
            beta: 3.0,
        }
    }
}

impl Psf {
    /// Full width at half maximum, arcsec.
    pub fn fwhm(&self) -> f64 {
        match *self {
            Psf::Gaussian { fwhm } | Psf::Moffat { fwhm, .. } => fwhm,
        }
    }

    /// The profile's name as written in configurations (`"gaussian"` or `"moffat"`).
    pub fn name(&self) -> &'static str {
        match self {
            Psf::Gaussian { .. } => "gaussian",
            Psf::Moffat { .. } => "moffat",
        }
    }

    /// Checks the parameters; `prefix` is the name of the field holding this PSF (e.g. `psf`).
    pub(crate) fn validate(&self, prefix: &str, pixel_scale: f64) -> Result<()> {
        let fwhm = self.fwhm();
        if !(fwhm > 0.0 && fwhm.is_finite()) {
            return Err(SimError::invalid(
                format!("{prefix}.fwhm"),
                format!("must be a positive number of arcsec, got {fwhm}"),
            ));
        }
        // Below half a pixel the PSF cannot be sampled on a grid of at most 16x oversampling.
        if pixel_scale > 0.0 && fwhm / pixel_scale < 0.5 {
            return Err(SimError::invalid(
                format!("{prefix}.fwhm"),
                format!(
                    "{fwhm} arcsec is {:.3} pixels at {pixel_scale} arcsec/pixel; at least 0.5 \
                     pixel is needed",
                    fwhm / pixel_scale
                ),
            ));
        }
        if let Psf::Moffat { beta, .. } = *self {
            if !(beta > 1.0 && beta <= 100.0) {
                return Err(SimError::invalid(
                    format!("{prefix}.beta"),
                    format!("must be > 1 (finite flux) and <= 100, got {beta}"),
                ));
            }
        }
        Ok(())
    }
}

/// Sky background and detector noise, shared by the sky-field and cutout simulators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseConfig {
    /// Add Poisson and read noise; `false` gives the expected (noiseless) image, useful for
    /// tests and truth images. Artefacts are still added.
    pub enabled: bool,
    /// Sky background accumulated over the exposure, electrons per pixel (>= 0).
    pub sky_level: f64,
    /// Gain, electrons per ADU (> 0).
    pub gain: f64,
    /// Read noise, electrons rms per pixel (>= 0).
    pub read_noise: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            enabled: true,
            sky_level: 1000.0,
            gain: 2.0,
            read_noise: 5.0,
        }
    }
}

impl NoiseConfig {
    /// Sky level in ADU per pixel (`sky_level / gain`).
    pub fn sky_adu(&self) -> f64 {
        self.sky_level / self.gain
    }

    /// Expected rms of an empty pixel in ADU: `sqrt(sky_adu / gain + (read_noise / gain)²)`.
    pub fn background_sigma_adu(&self) -> f64 {
        (self.sky_adu() / self.gain + (self.read_noise / self.gain).powi(2)).sqrt()
    }

    pub(crate) fn validate(&self, prefix: &str) -> Result<()> {
        non_negative(&format!("{prefix}.sky_level"), self.sky_level)?;
        positive(&format!("{prefix}.gain"), self.gain)?;
        non_negative(&format!("{prefix}.read_noise"), self.read_noise)
    }
}

/// Power-law magnitude distribution `dN/dm ∝ 10^(slope·m)` for `min <= m <= max`.
///
/// `slope` ≈ 0.3–0.6 for faint galaxy and star counts (0 gives uniform magnitudes); in flux
/// this is `dN/dF ∝ F^-(1 + 2.5·slope)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MagnitudeDistribution {
    /// Brightest magnitude.
    pub min: f64,
    /// Faintest magnitude.
    pub max: f64,
    /// Logarithmic slope of the counts, per magnitude (|slope| <= 3).
    pub slope: f64,
}

impl Default for MagnitudeDistribution {
    fn default() -> Self {
        MagnitudeDistribution {
            min: 19.0,
            max: 25.0,
            slope: 0.35,
        }
    }
}

impl MagnitudeDistribution {
    pub(crate) fn validate(&self, prefix: &str) -> Result<()> {
        finite(&format!("{prefix}.min"), self.min)?;
        finite(&format!("{prefix}.max"), self.max)?;
        if self.min > self.max {
            return Err(SimError::invalid(
                format!("{prefix}.min"),
                format!("must be <= {prefix}.max ({}), got {}", self.max, self.min),
            ));
        }
        if !self.slope.is_finite() || self.slope.abs() > 3.0 {
            return Err(SimError::invalid(
                format!("{prefix}.slope"),
                format!("must be within [-3, 3] per magnitude, got {}", self.slope),
            ));
        }
        Ok(())
    }

    /// Draws one magnitude by inverting the cumulative distribution.
    pub(crate) fn sample(&self, rng: &mut SimRng) -> f64 {
        let u: f64 = rng.random();
        let span = self.max - self.min;
        let k = self.slope * LN_10;
        if span <= 0.0 {
            self.min
        } else if (k * span).abs() < 1e-9 {
            self.min + u * span
        } else {
            // CDF(m) = (e^{k(m-min)} - 1) / (e^{k span} - 1); exp_m1/ln_1p keep it accurate
            // for small slopes.
            self.min + (u * (k * span).exp_m1()).ln_1p() / k
        }
    }
}

/// Population of Sérsic galaxies: magnitudes and shapes, drawn independently per galaxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GalaxyModel {
    /// Magnitude distribution.
    pub magnitudes: MagnitudeDistribution,
    /// Range of the Sérsic index n, drawn uniformly (0.5 ≈ Gaussian, 1 exponential disc,
    /// 4 de Vaucouleurs); allowed within [0.2, 8].
    pub sersic_n: [f64; 2],
    /// Range of the half-light radius along the major axis, arcsec, drawn log-uniformly.
    pub r_half: [f64; 2],
    /// Largest ellipticity `1 - b/a`, drawn uniformly in `[0, ellipticity_max]`; < 0.95.
    pub ellipticity_max: f64,
}

impl Default for GalaxyModel {
    fn default() -> Self {
        GalaxyModel {
            magnitudes: MagnitudeDistribution {
                min: 19.0,
                max: 25.5,
                slope: 0.35,
            },
            sersic_n: [0.5, 4.0],
            r_half: [0.3, 1.5],
            ellipticity_max: 0.7,
        }
    }
}

impl GalaxyModel {
    pub(crate) fn validate(&self, prefix: &str) -> Result<()> {
        self.magnitudes.validate(&format!("{prefix}.magnitudes"))?;
        check_range(
            &format!("{prefix}.sersic_n"),
            self.sersic_n,
            SERSIC_N_MIN,
            SERSIC_N_MAX,
            "",
        )?;
        check_range(
            &format!("{prefix}.r_half"),
            self.r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        check_ellipticity(&format!("{prefix}.ellipticity_max"), self.ellipticity_max)
    }

    /// Draws (sersic_n, r_half [arcsec], ellipticity, position angle [deg]).
    pub(crate) fn sample_shape(&self, rng: &mut SimRng) -> (f64, f64, f64, f64) {
        let n = uniform(rng, self.sersic_n[0], self.sersic_n[1]);
        let r = log_uniform(rng, self.r_half[0], self.r_half[1]);
        let e = uniform(rng, 0.0, self.ellipticity_max);
        let pa = uniform(rng, 0.0, 180.0);
        (n, r, e, pa)
    }
}

/// Detector artefacts to add; each becomes catalogue rows of its own class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArtefactConfig {
    /// Number of cosmic-ray hits: single pixels (30 %) or straight tracks of mean length 5
    /// pixels (at most 25), 600–6000 e- per pixel of track, never PSF-convolved.
    pub cosmic_rays: usize,
    /// Number of extra stars bright enough that their peak is 3–100× the saturation level
    /// (log-uniform), so that they bleed along their columns.
    pub saturated_stars: usize,
    /// Number of bad columns, from a random row to the top or bottom edge; half are dead
    /// (0 ADU), half hot (a constant 5–30 background sigma above the sky).
    pub bad_columns: usize,
}

impl Default for ArtefactConfig {
    fn default() -> Self {
        ArtefactConfig {
            cosmic_rays: 5,
            saturated_stars: 1,
            bad_columns: 1,
        }
    }
}

/// A source placed by hand, e.g. for injection–recovery tests. Positions use the catalogue's
/// FITS 1-based convention; the source is catalogued after the random ones with `injected = 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "class", rename_all = "snake_case", deny_unknown_fields)]
pub enum Injection {
    /// A point source.
    Star {
        /// x, FITS 1-based pixels.
        x: f64,
        /// y, FITS 1-based pixels.
        y: f64,
        /// Magnitude.
        mag: f64,
    },
    /// A Sérsic galaxy.
    Galaxy {
        /// x, FITS 1-based pixels.
        x: f64,
        /// y, FITS 1-based pixels.
        y: f64,
        /// Magnitude.
        mag: f64,
        /// Sérsic index, within [0.2, 8].
        sersic_n: f64,
        /// Half-light radius along the major axis, arcsec.
        r_half: f64,
        /// Ellipticity `1 - b/a` (default 0).
        #[serde(default)]
        ellipticity: f64,
        /// Position angle, degrees from +x towards +y (default 0).
        #[serde(default)]
        position_angle: f64,
    },
}

/// Configuration of [`simulate_sky`]. Every field has a default (a 256×256 field at
/// 0.4″/pixel with 1″ Moffat seeing, 30 stars, 150 galaxies and a few artefacts), so a
/// configuration file only lists what it changes; unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SkyConfig {
    /// Image width, pixels.
    pub width: usize,
    /// Image height, pixels.
    pub height: usize,
    /// Pixel scale, arcsec per pixel; converts the configuration's arcsec sizes to pixels and
    /// sets the default CD matrix.
    pub pixel_scale: f64,
    /// Sky position (RA, Dec) of the reference pixel, degrees (ICRS).
    pub crval: [f64; 2],
    /// Reference pixel, FITS 1-based; default the image centre `((width+1)/2, (height+1)/2)`.
    pub crpix: Option<[f64; 2]>,
    /// Rotation of the sky axes (CROTA2), degrees; 0 gives north up (+y) and east left (-x).
    pub rotation: f64,
    /// Explicit CD matrix `[[CD1_1, CD1_2], [CD2_1, CD2_2]]`, degrees per pixel, used verbatim
    /// for the WCS instead of the one from `pixel_scale` and `rotation`
    /// (`CD1_1 = -s·cos ρ, CD1_2 = -s·sin ρ, CD2_1 = -s·sin ρ, CD2_2 = s·cos ρ`, s = scale/3600).
    pub cd: Option<[[f64; 2]; 2]>,
    /// Point-spread function.
    pub psf: Psf,
    /// Magnitude of a source giving 1 ADU per second.
    pub zeropoint: f64,
    /// Exposure time, seconds; scales source fluxes (not the sky, which is given per exposure).
    pub exposure_time: f64,
    /// Saturation level, ADU; the full well is `saturation · gain` electrons.
    pub saturation: f64,
    /// Sky background and noise.
    pub noise: NoiseConfig,
    /// Number of random stars.
    pub n_stars: usize,
    /// Magnitudes of the random stars.
    pub stars: MagnitudeDistribution,
    /// Number of random galaxies.
    pub n_galaxies: usize,
    /// Population of the random galaxies.
    pub galaxies: GalaxyModel,
    /// Detector artefacts.
    pub artefacts: ArtefactConfig,
    /// Sources placed by hand, added after the random ones.
    pub injections: Vec<Injection>,
    /// Seed of every random stream.
    pub seed: u64,
}

impl Default for SkyConfig {
    fn default() -> Self {
        SkyConfig {
            width: 256,
            height: 256,
            pixel_scale: 0.4,
            crval: [150.1, 2.2],
            crpix: None,
            rotation: 0.0,
            cd: None,
            psf: Psf::default(),
            zeropoint: 28.0,
            exposure_time: 60.0,
            saturation: 60_000.0,
            noise: NoiseConfig::default(),
            n_stars: 30,
            stars: MagnitudeDistribution {
                min: 18.5,
                max: 25.0,
                slope: 0.3,
            },
            n_galaxies: 150,
            galaxies: GalaxyModel::default(),
            artefacts: ArtefactConfig::default(),
            injections: Vec::new(),
            seed: 0,
        }
    }
}

/// Counts above this are certainly mistakes and would only exhaust memory.
const MAX_COUNT: usize = 1_000_000;
/// Largest image side, pixels.
const MAX_SIDE: usize = 65_536;
/// Largest image area, pixels (2^28: 2 GB of f64 working space).
const MAX_AREA: usize = 1 << 28;

impl SkyConfig {
    /// Checks every parameter; the error names the offending parameter and its value.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_SIDE {
                return Err(SimError::invalid(
                    name,
                    format!("must be between 1 and {MAX_SIDE} pixels, got {v}"),
                ));
            }
        }
        if self.width * self.height > MAX_AREA {
            return Err(SimError::invalid(
                "width",
                format!(
                    "{}x{} pixels exceeds the limit of {MAX_AREA} pixels",
                    self.width, self.height
                ),
            ));
        }
        positive("pixel_scale", self.pixel_scale)?;
        finite("crval[0]", self.crval[0])?;
        if !self.crval[1].is_finite() || self.crval[1].abs() > 90.0 {
            return Err(SimError::invalid(
                "crval[1]",
                format!(
                    "declination must be within [-90, 90] deg, got {}",
                    self.crval[1]
                ),
            ));
        }
        if let Some(p) = self.crpix {
            finite("crpix[0]", p[0])?;
            finite("crpix[1]", p[1])?;
        }
        finite("rotation", self.rotation)?;
        if let Some(cd) = self.cd {
            let det = cd[0][0] * cd[1][1] - cd[0][1] * cd[1][0];
            if !(cd.iter().flatten().all(|v| v.is_finite()) && det != 0.0 && det.is_finite()) {
                return Err(SimError::invalid(
                    "cd",
                    format!("must be a finite invertible matrix, got {cd:?}"),
                ));
            }
        }
        self.psf.validate("psf", self.pixel_scale)?;
        finite("zeropoint", self.zeropoint)?;
        positive("exposure_time", self.exposure_time)?;
        positive("saturation", self.saturation)?;
        self.noise.validate("noise")?;
        if self.noise.sky_adu() >= self.saturation {
            return Err(SimError::invalid(
                "noise.sky_level",
                format!(
                    "{} e- is {} ADU, at or above the saturation level {} ADU",
                    self.noise.sky_level,
                    self.noise.sky_adu(),
                    self.saturation
                ),
            ));
        }
        count("n_stars", self.n_stars)?;
        self.stars.validate("stars")?;
        count("n_galaxies", self.n_galaxies)?;
        self.galaxies.validate("galaxies")?;
        count("artefacts.cosmic_rays", self.artefacts.cosmic_rays)?;
        count("artefacts.saturated_stars", self.artefacts.saturated_stars)?;
        count("artefacts.bad_columns", self.artefacts.bad_columns)?;
        count("injections", self.injections.len())?;
        let psf = PsfModel::new(&self.psf, self.pixel_scale);
        let extent = |r_half_arcsec: f64| SERSIC_TRUNCATION * r_half_arcsec / self.pixel_scale;
        check_render_extent("galaxies.r_half", extent(self.galaxies.r_half[1]), &psf)?;
        for (i, inj) in self.injections.iter().enumerate() {
            let p = |f: &str| format!("injections[{i}].{f}");
            match *inj {
                Injection::Star { x, y, mag } => {
                    finite(&p("x"), x)?;
                    finite(&p("y"), y)?;
                    finite(&p("mag"), mag)?;
                }
                Injection::Galaxy {
                    x,
                    y,
                    mag,
                    sersic_n,
                    r_half,
                    ellipticity,
                    position_angle,
                } => {
                    finite(&p("x"), x)?;
                    finite(&p("y"), y)?;
                    finite(&p("mag"), mag)?;
                    check_range(
                        &p("sersic_n"),
                        [sersic_n; 2],
                        SERSIC_N_MIN,
                        SERSIC_N_MAX,
                        "",
                    )?;
                    positive(&p("r_half"), r_half)?;
                    check_ellipticity(&p("ellipticity"), ellipticity)?;
                    finite(&p("position_angle"), position_angle)?;
                    check_render_extent(&p("r_half"), extent(r_half), &psf)?;
                }
            }
        }
        Ok(())
    }

    /// The field's WCS: `cd` if given, else from `pixel_scale` and `rotation`; `crpix` if given,
    /// else the image centre.
    pub fn wcs(&self) -> TanWcs {
        let crpix = self.crpix.unwrap_or([
            (self.width as f64 + 1.0) / 2.0,
            (self.height as f64 + 1.0) / 2.0,
        ]);
        match self.cd {
            Some(cd) => TanWcs {
                crval: self.crval,
                crpix,
                cd,
            },
            None => TanWcs::from_pixel_scale(self.crval, crpix, self.pixel_scale, self.rotation),
        }
    }

    /// Source flux in ADU of magnitude `mag`.
    pub fn flux_of_mag(&self, mag: f64) -> f64 {
        flux_of_mag(mag, self.zeropoint, self.exposure_time)
    }
}

pub(crate) fn flux_of_mag(mag: f64, zeropoint: f64, exposure_time: f64) -> f64 {
    exposure_time * 10f64.powf(-0.4 * (mag - zeropoint))
}

pub(crate) fn mag_of_flux(flux: f64, zeropoint: f64, exposure_time: f64) -> f64 {
    zeropoint - 2.5 * (flux / exposure_time).log10()
}

// Parameter checks that name the parameter; `!(x > 0)` also rejects NaN.

pub(crate) fn positive(name: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("must be a positive finite number, got {v}"),
        ))
    }
}

pub(crate) fn non_negative(name: &str, v: f64) -> Result<()> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

pub(crate) fn finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("must be a finite number, got {v}"),
        ))
    }
}

pub(crate) fn count(name: &str, v: usize) -> Result<()> {
    if v <= MAX_COUNT {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("must be at most {MAX_COUNT}, got {v}"),
        ))
    }
}

/// Checks `[min, max]` with `lo <= min <= max <= hi`.
pub(crate) fn check_range(name: &str, r: [f64; 2], lo: f64, hi: f64, unit: &str) -> Result<()> {
    if !(r[0].is_finite() && r[1].is_finite()) {
        return Err(SimError::invalid(
            name,
            format!("must be finite, got {r:?}"),
        ));
    }
    if r[0] > r[1] {
        return Err(SimError::invalid(
            name,
            format!(
                "min {} is greater than max {} (give [min, max])",
                r[0], r[1]
            ),
        ));
    }
    if r[0] < lo || r[1] > hi {
        let bounds = if hi == f64::MAX {
            format!("> {}", if lo == f64::MIN_POSITIVE { 0.0 } else { lo })
        } else {
            format!("within [{lo}, {hi}]")
        };
        return Err(SimError::invalid(
            name,
            format!("values must be {bounds}{unit}, got {r:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_ellipticity(name: &str, e: f64) -> Result<()> {
    if (0.0..0.95).contains(&e) {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("ellipticity 1 - b/a must be in [0, 0.95), got {e}"),
        ))
    }
}

/// Rejects light reaching `extent_px` pixels from a source's centre if it would not fit the
/// biggest render grid.
pub(crate) fn check_render_extent(name: &str, extent_px: f64, psf: &PsfModel) -> Result<()> {
    let n = grid_dims(extent_px, psf.radius, psf.oversample()).0;
    if n > 1 << MAX_LOG2_GRID {
        return Err(SimError::invalid(
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

pub(crate) fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

pub(crate) fn log_uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
}

// ------------------------------------------------------------------------------------------------
// WCS
// ------------------------------------------------------------------------------------------------

/// Gnomonic (TAN) world coordinate system in the FITS convention (Calabretta & Greisen 2002):
/// pixel coordinates are 1-based, `(ξ, η) = CD · (x - CRPIX1, y - CRPIX2)` are the intermediate
/// world coordinates in degrees, and LONPOLE = 180°.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TanWcs {
    /// (RA, Dec) of the reference point, degrees.
    pub crval: [f64; 2],
    /// Reference pixel (x, y), FITS 1-based.
    pub crpix: [f64; 2],
    /// Linear transformation `[[CD1_1, CD1_2], [CD2_1, CD2_2]]`, degrees per pixel.
    pub cd: [[f64; 2]; 2],
}

impl TanWcs {
    /// WCS with square pixels of `pixel_scale` arcsec, RA increasing to the left (-x) and Dec
    /// upwards (+y) when `rotation_deg` (CROTA2) is 0.
    pub fn from_pixel_scale(
        crval: [f64; 2],
        crpix: [f64; 2],
        pixel_scale: f64,
        rotation_deg: f64,
    ) -> Self {
        let s = pixel_scale / 3600.0;
        let (sin, cos) = rotation_deg.to_radians().sin_cos();
        // FITS Paper II eq. 189 with CDELT1 = -s, CDELT2 = +s.
        TanWcs {
            crval,
            crpix,
            cd: [[-s * cos, -s * sin], [-s * sin, s * cos]],
        }
    }

    /// Sky position (RA in [0, 360), Dec), degrees, of the 1-based pixel position `(x, y)`.
    /// The reference pixel gives `crval` exactly.
    pub fn pixel_to_world(&self, x: f64, y: f64) -> (f64, f64) {
        let dx = x - self.crpix[0];
        let dy = y - self.crpix[1];
        let xi = (self.cd[0][0] * dx + self.cd[0][1] * dy).to_radians();
        let eta = (self.cd[1][0] * dx + self.cd[1][1] * dy).to_radians();
        let (sd0, cd0) = self.crval[1].to_radians().sin_cos();
        let den = cd0 - eta * sd0;
        let dra = xi.atan2(den);
        // Dec as an offset from CRVAL2 (rather than atan2 of sin/cos of Dec), so that the
        // reference point returns CRVAL2 bit for bit instead of after a degree-radian round trip.
        let perp = (xi * xi + den * den).sqrt();
        let num = sd0 + eta * cd0; // sin(dec)·ρ with ρ = sqrt(1 + ξ² + η²)
        let sin_dd = num * cd0 - perp * sd0; // sin(dec - dec0)·ρ
        let cos_dd = perp * cd0 + num * sd0; // cos(dec - dec0)·ρ
        let ddec = sin_dd.atan2(cos_dd);
        let mut ra = (self.crval[0] + dra.to_degrees()).rem_euclid(360.0);
        if ra >= 360.0 {
            // rem_euclid of a tiny negative number rounds up to 360.
            ra -= 360.0;
        }
        (ra, self.crval[1] + ddec.to_degrees())
    }

    /// 1-based pixel position of the sky position `(ra, dec)` in degrees, or `None` for points
    /// 90° or more from the reference point, which the gnomonic projection cannot show.
    pub fn world_to_pixel(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        let (sd0, cd0) = self.crval[1].to_radians().sin_cos();
        let (sd, cdc) = dec.to_radians().sin_cos();
        let (sda, cda) = (ra - self.crval[0]).to_radians().sin_cos();
        let cos_c = sd0 * sd + cd0 * cdc * cda;
        if cos_c.is_nan() || cos_c <= 0.0 {
            return None;
        }
        let xi = (cdc * sda / cos_c).to_degrees();
        let eta = ((cd0 * sd - sd0 * cdc * cda) / cos_c).to_degrees();
        let [[a, b], [c, d]] = self.cd;
        let det = a * d - b * c;
        let dx = (d * xi - b * eta) / det;
        let dy = (-c * xi + a * eta) / det;
        Some((self.crpix[0] + dx, self.crpix[1] + dy))
    }

    /// The WCS as FITS header cards: WCSAXES, CTYPE1/2 = 'RA---TAN'/'DEC--TAN', CUNIT1/2,
    /// CRVAL1/2, CRPIX1/2, CD1_1, CD1_2, CD2_1, CD2_2, LONPOLE, RADESYS = 'ICRS', EQUINOX = 2000.
    pub fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        vec![
            card("WCSAXES", Int(2), "number of WCS axes"),
            card(
                "CTYPE1",
                Str("RA---TAN".into()),
                "gnomonic projection, right ascension",
            ),
            card(
                "CTYPE2",
                Str("DEC--TAN".into()),
                "gnomonic projection, declination",
            ),
            card("CUNIT1", Str("deg".into()), "unit of CRVAL1 and CD1_*"),
            card("CUNIT2", Str("deg".into()), "unit of CRVAL2 and CD2_*"),
            card(
                "CRVAL1",
                Float(self.crval[0]),
                "[deg] RA of the reference pixel",
            ),
            card(
                "CRVAL2",
                Float(self.crval[1]),
                "[deg] Dec of the reference pixel",
            ),
            card(
                "CRPIX1",
                Float(self.crpix[0]),
                "reference pixel x (1-based)",
            ),
            card(
                "CRPIX2",
                Float(self.crpix[1]),
                "reference pixel y (1-based)",
            ),
            card("CD1_1", Float(self.cd[0][0]), "[deg/pixel] dRA/dx"),
            card("CD1_2", Float(self.cd[0][1]), "[deg/pixel] dRA/dy"),
            card("CD2_1", Float(self.cd[1][0]), "[deg/pixel] dDec/dx"),
            card("CD2_2", Float(self.cd[1][1]), "[deg/pixel] dDec/dy"),
            card(
                "LONPOLE",
                Float(180.0),
                "[deg] native longitude of the celestial pole",
            ),
            card("RADESYS", Str("ICRS".into()), "celestial reference frame"),
            card("EQUINOX", Float(2000.0), "equinox of the coordinates"),
        ]
    }
}

/// Sérsic `b_n`, defined by `Γ(2n) = 2γ(2n, b_n)` so that the half-light radius encloses half
/// the light. Starts from the asymptotic expansion of Ciotti & Bertin (1999, A&A 352, 447) for
/// n >= 0.36 (the polynomial fit of MacArthur, Courteau & Holtzman 2003 below), whose relative
/// error is 4e-4 at n = 0.5 and 2e-5 at n = 1, and polishes it with Newton steps on
/// `P(2n, b) = 1/2` to ~1e-12.
pub fn sersic_b(n: f64) -> f64 {
    let mut b = if n >= 0.36 {
        2.0 * n - 1.0 / 3.0
            + 4.0 / (405.0 * n)
            + 46.0 / (25_515.0 * n * n)
            + 131.0 / (1_148_175.0 * n.powi(3))
            - 2_194_697.0 / (30_690_717_750.0 * n.powi(4))
    } else {
        0.01945 - 0.8902 * n + 10.95 * n * n - 19.67 * n.powi(3) + 13.43 * n.powi(4)
    };
    let a = 2.0 * n;
    let ln_gamma_a = ln_gamma(a);
    for _ in 0..4 {
        // dP(a, b)/db = b^(a-1) e^(-b) / Γ(a)
        let slope = ((a - 1.0) * b.ln() - b - ln_gamma_a).exp();
        let step = (gamma_p(a, b) - 0.5) / slope;
        b -= step;
        if step.abs() < 1e-14 * b {
            break;
        }
    }
    b
}

// ------------------------------------------------------------------------------------------------
// PSF model
// ------------------------------------------------------------------------------------------------

const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_4; // 2 sqrt(2 ln 2)
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

// ------------------------------------------------------------------------------------------------
// Sérsic profile
// ------------------------------------------------------------------------------------------------

/// Smallest and largest Sérsic index accepted.
pub(crate) const SERSIC_N_MIN: f64 = 0.2;
pub(crate) const SERSIC_N_MAX: f64 = 8.0;
/// Sérsic profiles are cut at this many half-light radii (elliptical radius).
pub(crate) const SERSIC_TRUNCATION: f64 = 6.0;

/// An elliptical Sérsic profile of unit total flux, truncated at `SERSIC_TRUNCATION · r_half`,
/// in pixel units.
#[derive(Debug, Clone)]
pub(crate) struct Sersic {
    r_half: f64,
    q: f64,
    cos: f64,
    sin: f64,
    b: f64,
    inv_rs2: f64,
    inv_2n: f64,
    trunc: f64,
    trunc2: f64,
    norm: f64,
    two_n: f64,
    rs: f64,
    /// P(2n, x) at the truncation: the truncated profile's share of the untruncated light.
    p_trunc: f64,
}

impl Sersic {
    /// `r_half` (pixels) is the half-light semi-major axis *of the truncated profile*;
    /// `pa` is the major axis angle in radians from +x towards +y.
    pub(crate) fn new(n: f64, r_half: f64, ellipticity: f64, pa: f64) -> Self {
        let b = sersic_b(n);
        let q = 1.0 - ellipticity;
        let two_n = 2.0 * n;
        let tn = SERSIC_TRUNCATION.powf(1.0 / n);
        // With a = (r_half / r_s)^(1/n) the light inside r_half, relative to the truncated
        // total, is P(2n, b·a) / P(2n, b·a·T^(1/n)); a = 1 is the untruncated profile. Solve
        // for the a that makes it exactly 1/2 (the root is in (0, 1]: truncation removes outer
        // light, so the untruncated scale would put more than half inside r_half).
        let g = |a: f64| gamma_p(two_n, b * a) - 0.5 * gamma_p(two_n, b * a * tn);
        let a = if g(1.0) <= 1e-13 {
            1.0
        } else {
            let (mut lo, mut hi) = (1e-3, 1.0);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if g(mid) > 0.0 {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            0.5 * (lo + hi)
        };
        let rs = r_half * a.powf(-n);
        let trunc = SERSIC_TRUNCATION * r_half;
        // ∫ exp(-b (ρ/r_s)^(1/n)) dA over the truncated ellipse
        //   = 2π q n r_s² Γ(2n) b^(-2n) P(2n, b (ρ_t/r_s)^(1/n)).
        let p_trunc = gamma_p(two_n, b * a * tn);
        let ln_total =
            (2.0 * PI * q * n * rs * rs).ln() + ln_gamma(two_n) - two_n * b.ln() + p_trunc.ln();
        let (sin, cos) = pa.sin_cos();
        Sersic {
            r_half,
            q,
            cos,
            sin,
            b,
            inv_rs2: 1.0 / (rs * rs),
            inv_2n: 1.0 / two_n,
            trunc,
            trunc2: trunc * trunc,
            norm: (-ln_total).exp(),
            two_n,
            rs,
            p_trunc,
        }
    }

    /// Semi-major axis of the core ellipse whose light is integrated analytically on a polar
    /// grid ([`Sersic::core_points`]) rather than by sampling cells of side `h`: the ellipse's
    /// semi-minor axis is h/2, so that everything sampled on the Cartesian grid is at least
    /// h/2 from the centre, where sub-cell sampling converges.
    fn core_radius(&self, h: f64) -> f64 {
        (0.5 * h / self.q).min(self.trunc)
    }

    /// Fraction of the (truncated, unit) light inside elliptical radius `rho`.
    fn enclosed(&self, rho: f64) -> f64 {
        let x = self.b * (rho.min(self.trunc) / self.rs).powf(2.0 * self.inv_2n);
        gamma_p(self.two_n, x) / self.p_trunc
    }

    /// The light inside the core ellipse (see [`Sersic::core_radius`]) for cells of side `h`,
    /// as point masses `(dx, dy, flux)`: thin elliptical rings, log-spaced in radius down to
    /// 1e-6 of the core radius, with their exact light from the incomplete gamma function,
    /// each split into 32 sectors. A steep n = 4 cusp smaller than a pixel holds much of its
    /// light within a small fraction of a cell of its centre, where no affordable sub-sampling
    /// converges; ring masses are exact however steep the profile.
    pub(crate) fn core_points(&self, h: f64) -> Vec<(f64, f64, f64)> {
        const STEP: f64 = 0.2;
        const RINGS: usize = 70; // e^(-14) ≈ 1e-6
        const SECTORS: usize = 32;
        let rho0 = self.core_radius(h);
        // Unit directions of the sector centres in the galaxy's frame, then rotated: (u, v)
        // on the unit ellipse is (cos t, q sin t).
        let dirs: Vec<(f64, f64)> = (0..SECTORS)
            .map(|j| {
                let (st, ct) = ((j as f64 + 0.5) / SECTORS as f64 * 2.0 * PI).sin_cos();
                let (u, v) = (ct, self.q * st);
                (u * self.cos - v * self.sin, u * self.sin + v * self.cos)
            })
            .collect();
        let mut points = Vec::with_capacity(RINGS * SECTORS + 1);
        let mut outer = rho0;
        let mut enclosed_outer = self.enclosed(rho0);
        for i in 1..=RINGS {
            let inner = rho0 * (-(i as f64) * STEP).exp();
            let enclosed_inner = self.enclosed(inner);
            let ring = (enclosed_outer - enclosed_inner) / SECTORS as f64;
            // Area-weighted mean radius of the ring.
            let rho = (0.5 * (outer * outer + inner * inner)).sqrt();
            points.extend(dirs.iter().map(|&(dx, dy)| (rho * dx, rho * dy, ring)));
            outer = inner;
            enclosed_outer = enclosed_inner;
        }
        points.push((0.0, 0.0, enclosed_outer));
        points
    }

    /// Half-light semi-minor axis, pixels.
    pub(crate) fn minor_half_light(&self) -> f64 {
        self.q * self.r_half
    }

    /// Largest distance from the centre with non-zero light (the truncation semi-major axis).
    pub(crate) fn extent(&self) -> f64 {
        self.trunc
    }

    /// Squared elliptical radius of offset `(dx, dy)`.
    fn rho2(&self, dx: f64, dy: f64) -> f64 {
        let u = dx * self.cos + dy * self.sin;
        let v = (-dx * self.sin + dy * self.cos) / self.q;
        u * u + v * v
    }

    /// Surface brightness per pixel² at offset `(dx, dy)` from the centre; integrates to 1.
    pub(crate) fn sb(&self, dx: f64, dy: f64) -> f64 {
        let rho2 = self.rho2(dx, dy);
        if rho2 > self.trunc2 {
            return 0.0;
        }
        self.norm * (-self.b * (rho2 * self.inv_rs2).powf(self.inv_2n)).exp()
    }

    /// Light in the square cell of side `h` centred at offset `(dx, dy)`, by k×k midpoint
    /// sampling. Samples are at most q·r_half/2 apart (resolves smooth low-n profiles) and at
    /// most half the distance to the centre (resolves the cusp of high-n profiles, where the
    /// logarithmic slope changes on the scale of the radius itself), with k <= 16.
    ///
    /// Light inside the core ellipse ([`Sersic::core_radius`]) is left out: it comes from
    /// [`Sersic::core_points`].
    pub(crate) fn cell_flux(&self, dx: f64, dy: f64, h: f64) -> f64 {
        let d_near = ((dx * dx + dy * dy).sqrt() - FRAC_1_SQRT_2 * h).max(0.0);
        // ρ >= Euclidean distance since q <= 1: the whole cell lies beyond the truncation.
        if d_near > self.trunc {
            return 0.0;
        }
        let rho0 = self.core_radius(h);
        let near_core = d_near <= rho0;
        let delta = (0.5 * self.q * self.r_half).min((0.25 * d_near).max(h / 16.0));
        let k = ((h / delta).ceil() as usize).clamp(if near_core { 4 } else { 1 }, 16);
        if k == 1 {
            return self.sb(dx, dy) * h * h;
        }
        let sub = h / k as f64;
        let start = -0.5 * h + 0.5 * sub;
        let core2 = if near_core { rho0 * rho0 } else { -1.0 };
        let mut acc = 0.0;
        for j in 0..k {
            let y = dy + start + j as f64 * sub;
            for i in 0..k {
                let x = dx + start + i as f64 * sub;
                if core2 > 0.0 && self.rho2(x, y) < core2 {
                    continue;
                }
                acc += self.sb(x, y);
            }
        }
        acc * sub * sub
    }
}

// ------------------------------------------------------------------------------------------------
// Stamps
// ------------------------------------------------------------------------------------------------

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
    /// [`SkyCatalog::snr`]: `sqrt(Σ s_i² / ((s_i + sky)/gain + (read_noise/gain)²))` over the
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

// ------------------------------------------------------------------------------------------------
// FFT convolution on an oversampled grid
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Cx {
    re: f64,
    im: f64,
}

/// Radix-2 complex FFT of one power-of-two size.
struct Fft {
    n: usize,
    /// `exp(-2πik/n)` for k < n/2, and their conjugates for the inverse transform.
    forward: Vec<Cx>,
    backward: Vec<Cx>,
    /// Bit-reversal permutation as (i, j) pairs with i < j.
    swaps: Vec<(usize, usize)>,
}

impl Fft {
    fn new(n: usize) -> Self {
        let forward: Vec<Cx> = (0..n / 2)
            .map(|k| {
                let (s, c) = (-2.0 * PI * k as f64 / n as f64).sin_cos();
                Cx { re: c, im: s }
            })
            .collect();
        let backward = forward
            .iter()
            .map(|w| Cx {
                re: w.re,
                im: -w.im,
            })
            .collect();
        let bits = n.trailing_zeros();
        let swaps = (0..n)
            .filter_map(|i| {
                let j = if bits == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - bits)
                };
                (i < j).then_some((i, j))
            })
            .collect();
        Fft {
            n,
            forward,
            backward,
            swaps,
        }
    }

    /// In-place unnormalised 1-D transform of `a` (length n).
    fn run(&self, a: &mut [Cx], inverse: bool) {
        let n = self.n;
        let tw = if inverse {
            &self.backward
        } else {
            &self.forward
        };
        for &(i, j) in &self.swaps {
            a.swap(i, j);
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for chunk in a.chunks_exact_mut(len) {
                let (lo, hi) = chunk.split_at_mut(half);
                for ((u, t), w) in lo
                    .iter_mut()
                    .zip(hi.iter_mut())
                    .zip(tw.iter().step_by(step))
                {
                    let v = Cx {
                        re: t.re * w.re - t.im * w.im,
                        im: t.re * w.im + t.im * w.re,
                    };
                    *t = Cx {
                        re: u.re - v.re,
                        im: u.im - v.im,
                    };
                    *u = Cx {
                        re: u.re + v.re,
                        im: u.im + v.im,
                    };
                }
            }
            len <<= 1;
        }
    }

    /// In-place transpose of the n×n grid, in 16×16 blocks to stay in cache.
    fn transpose(&self, a: &mut [Cx]) {
        const B: usize = 16;
        let n = self.n;
        for bi in (0..n).step_by(B) {
            for bj in (bi..n).step_by(B) {
                for i in bi..(bi + B).min(n) {
                    let j0 = if bi == bj { i + 1 } else { bj };
                    for j in j0..(bj + B).min(n) {
                        a.swap(i * n + j, j * n + i);
                    }
                }
            }
        }
    }

    /// Forward 2-D transform of a *real* n×n row-major grid (imaginary parts zero), leaving
    /// the spectrum *transposed* (rows, transpose, rows): elementwise products of two such
    /// spectra are still transposed products, and [`Fft::inverse_2d`] undoes the
    /// transposition, which saves two transposes. Rows flagged unused are known to be zero.
    ///
    /// The first pass transforms two real rows with one complex FFT (`z = x + i·y`, then
    /// `X_k = (Z_k + conj Z_-k)/2`, `Y_k = (Z_k - conj Z_-k)/2i`).
    fn forward_2d(&self, a: &mut [Cx], rows_used: Option<&[bool]>) {
        let n = self.n;
        let mut z = vec![Cx::default(); n];
        for r in (0..n).step_by(2) {
            if !rows_used.is_none_or(|u| u[r] || u[r + 1]) {
                continue;
            }
            let (x, y) = a[r * n..(r + 2) * n].split_at_mut(n);
            for ((zk, xk), yk) in z.iter_mut().zip(x.iter()).zip(y.iter()) {
                *zk = Cx {
                    re: xk.re,
                    im: yk.re,
                };
            }
            self.run(&mut z, false);
            for k in 0..n {
                let (p, q) = (z[k], z[(n - k) % n]);
                x[k] = Cx {
                    re: 0.5 * (p.re + q.re),
                    im: 0.5 * (p.im - q.im),
                };
                y[k] = Cx {
                    re: 0.5 * (p.im + q.im),
                    im: -0.5 * (p.re - q.re),
                };
            }
        }
        self.transpose(a);
        a.chunks_mut(n).for_each(|row| self.run(row, false));
    }

    /// Inverse of [`Fft::forward_2d`] (takes a transposed spectrum, returns the grid in the
    /// normal layout), normalised, for spectra of *real* grids: the last pass inverts two rows
    /// with one complex FFT (`Z = X + i·Y` gives `x + i·y`), leaving imaginary parts zero.
    fn inverse_2d(&self, a: &mut [Cx]) {
        let n = self.n;
        a.chunks_mut(n).for_each(|row| self.run(row, true));
        self.transpose(a);
        let scale = 1.0 / (n * n) as f64;
        let mut z = vec![Cx::default(); n];
        for r in (0..n).step_by(2) {
            let (x, y) = a[r * n..(r + 2) * n].split_at_mut(n);
            for ((zk, xk), yk) in z.iter_mut().zip(x.iter()).zip(y.iter()) {
                *zk = Cx {
                    re: xk.re - yk.im,
                    im: xk.im + yk.re,
                };
            }
            self.run(&mut z, true);
            for ((zk, xk), yk) in z.iter().zip(x.iter_mut()).zip(y.iter_mut()) {
                *xk = Cx {
                    re: zk.re * scale,
                    im: 0.0,
                };
                *yk = Cx {
                    re: zk.im * scale,
                    im: 0.0,
                };
            }
        }
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
                    let v = self.psf.density(ox * ox + oy * oy);
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
        let (n, m) = grid_dims(extent, self.psf.radius, s);
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

// ------------------------------------------------------------------------------------------------
// Noise and artefacts shared with the cutouts
// ------------------------------------------------------------------------------------------------

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
fn bleed_columns(e: &mut [f64], w: usize, h: usize, full_well: f64) {
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

// ------------------------------------------------------------------------------------------------
// Catalogue
// ------------------------------------------------------------------------------------------------

/// Kind of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceClass {
    /// An unsaturated point source.
    Star,
    /// A Sérsic galaxy.
    Galaxy,
    /// A cosmic-ray hit.
    CosmicRay,
    /// A point source whose noiseless peak pixel plus sky exceeds the saturation level; its
    /// charge bleeds along its columns.
    SaturatedStar,
    /// A dead or hot partial column.
    BadColumn,
}

impl SourceClass {
    /// All classes, in `class_id` order.
    pub const ALL: [SourceClass; 5] = [
        SourceClass::Star,
        SourceClass::Galaxy,
        SourceClass::CosmicRay,
        SourceClass::SaturatedStar,
        SourceClass::BadColumn,
    ];

    /// Name in the catalogue's `class` column.
    pub fn name(self) -> &'static str {
        match self {
            SourceClass::Star => "star",
            SourceClass::Galaxy => "galaxy",
            SourceClass::CosmicRay => "cosmic_ray",
            SourceClass::SaturatedStar => "saturated_star",
            SourceClass::BadColumn => "bad_column",
        }
    }

    /// Number in the catalogue's `class_id` column (0–4, the order of [`SourceClass::ALL`]).
    pub fn id(self) -> i64 {
        self as i64
    }
}

/// Truth catalogue of a simulated field, one `Vec` per column, one row per source or artefact:
/// random stars, random galaxies, saturated stars, injected sources, cosmic rays, bad columns,
/// in that order. `NaN` marks values that do not apply to a class.
#[derive(Debug, Clone, Default)]
pub struct SkyCatalog {
    /// Row number, 1-based.
    pub id: Vec<i64>,
    /// Class of the entry.
    pub class: Vec<SourceClass>,
    /// Centre x, FITS 1-based pixels (centre of the first pixel = 1.0; array column = x - 1).
    /// Cosmic rays: track midpoint. Bad columns: the column.
    pub x: Vec<f64>,
    /// Centre y, FITS 1-based pixels (array row = y - 1). Bad columns: middle of the bad span.
    pub y: Vec<f64>,
    /// Right ascension of (x, y), degrees (ICRS).
    pub ra: Vec<f64>,
    /// Declination of (x, y), degrees (ICRS).
    pub dec: Vec<f64>,
    /// Total noiseless flux, ADU, including light falling off the image (cosmic rays:
    /// deposited charge / gain; bad columns: NaN).
    pub flux: Vec<f64>,
    /// The part of `flux` that lands on the image, ADU.
    pub flux_in_image: Vec<f64>,
    /// Magnitude, `zeropoint - 2.5 log10(flux / exposure_time)` (NaN for artefacts).
    pub mag: Vec<f64>,
    /// Optimal (matched-filter) signal-to-noise ratio of the noiseless source alone:
    /// `snr = sqrt(Σ_i s_i² / V_i)` with `V_i = (s_i + b)/g + (σ_rn/g)²`, where the sum runs
    /// over the on-image pixels `i` of the source's stamp with `s_i > 0`, `s_i` is the source's
    /// noiseless expected value in pixel `i` (ADU, before saturation and bleeding), `b =
    /// sky_level/gain` the sky in ADU, `g` the gain and `σ_rn` the read noise in electrons. This
    /// is the S/N of the flux estimated by fitting the known profile on an otherwise empty sky;
    /// it ignores neighbours and does not depend on `noise.enabled`. NaN for bad columns.
    pub snr: Vec<f64>,
    /// Whether the noiseless peak pixel plus the sky exceeds the saturation level.
    pub saturated: Vec<bool>,
    /// Whether the entry comes from [`SkyConfig::injections`].
    pub injected: Vec<bool>,
    /// Bounding box, smallest x, 1-based inclusive pixel index, clipped to the image. Boxes
    /// are centred on (x, y) with half-size `3·sqrt(r_half² + (FWHM/2)²)` for galaxies and
    /// `1.5·FWHM` for stars, and hold the pixels whose centres are inside. Saturated stars'
    /// boxes are extended along y over their bleed trails; cosmic rays' and bad columns' boxes
    /// are the pixels they touch. (For a source centred off the image the box may be empty,
    /// `xmin > xmax`.)
    pub bbox_xmin: Vec<i64>,
    /// Bounding box, smallest y (see `bbox_xmin`).
    pub bbox_ymin: Vec<i64>,
    /// Bounding box, largest x (see `bbox_xmin`).
    pub bbox_xmax: Vec<i64>,
    /// Bounding box, largest y (see `bbox_xmin`).
    pub bbox_ymax: Vec<i64>,
    /// Sérsic index (galaxies only).
    pub sersic_n: Vec<f64>,
    /// Half-light semi-major axis before PSF convolution, pixels (galaxies only).
    pub r_half: Vec<f64>,
    /// Ellipticity `1 - b/a` (galaxies only).
    pub ellipticity: Vec<f64>,
    /// Position angle, degrees counter-clockwise from +x towards +y, in [0, 180): major axis
    /// of galaxies, track direction of cosmic rays (NaN otherwise).
    pub position_angle: Vec<f64>,
}

impl SkyCatalog {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Number of rows of class `class`.
    pub fn count(&self, class: SourceClass) -> usize {
        self.class.iter().filter(|&&c| c == class).count()
    }

    /// The columns as (name, unit, description, data), in table order, for writers.
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let b = |v: &Vec<bool>| I64(v.iter().map(|&x| x as i64).collect());
        vec![
            ("id", "", "row number, 1-based", I64(self.id.clone())),
            (
                "class",
                "",
                "star, galaxy, cosmic_ray, saturated_star or bad_column",
                Str(self.class.iter().map(|c| c.name().to_string()).collect()),
            ),
            (
                "class_id",
                "",
                "0 star, 1 galaxy, 2 cosmic_ray, 3 saturated_star, 4 bad_column",
                I64(self.class.iter().map(|c| c.id()).collect()),
            ),
            (
                "x",
                "pixel",
                "centre x, FITS 1-based (first pixel centre = 1)",
                F64(self.x.clone()),
            ),
            (
                "y",
                "pixel",
                "centre y, FITS 1-based (first pixel centre = 1)",
                F64(self.y.clone()),
            ),
            (
                "ra",
                "deg",
                "right ascension of (x, y), ICRS",
                F64(self.ra.clone()),
            ),
            (
                "dec",
                "deg",
                "declination of (x, y), ICRS",
                F64(self.dec.clone()),
            ),
            (
                "flux",
                "adu",
                "total noiseless flux, on and off the image",
                F64(self.flux.clone()),
            ),
            (
                "flux_in_image",
                "adu",
                "noiseless flux landing on the image",
                F64(self.flux_in_image.clone()),
            ),
            (
                "mag",
                "mag",
                "zeropoint - 2.5 log10(flux / exptime)",
                F64(self.mag.clone()),
            ),
            (
                "snr",
                "",
                "matched-filter S/N: sqrt(sum s^2/((s+sky)/gain+(rdnoise/gain)^2))",
                F64(self.snr.clone()),
            ),
            (
                "saturated",
                "",
                "1 if noiseless peak + sky exceeds saturation",
                b(&self.saturated),
            ),
            (
                "injected",
                "",
                "1 if placed by the injection list",
                b(&self.injected),
            ),
            (
                "bbox_xmin",
                "pixel",
                "bounding box min x, 1-based inclusive",
                I64(self.bbox_xmin.clone()),
            ),
            (
                "bbox_ymin",
                "pixel",
                "bounding box min y, 1-based inclusive",
                I64(self.bbox_ymin.clone()),
            ),
            (
                "bbox_xmax",
                "pixel",
                "bounding box max x, 1-based inclusive",
                I64(self.bbox_xmax.clone()),
            ),
            (
                "bbox_ymax",
                "pixel",
                "bounding box max y, 1-based inclusive",
                I64(self.bbox_ymax.clone()),
            ),
            (
                "sersic_n",
                "",
                "Sersic index (galaxies)",
                F64(self.sersic_n.clone()),
            ),
            (
                "r_half",
                "pixel",
                "half-light semi-major axis before PSF (galaxies)",
                F64(self.r_half.clone()),
            ),
            (
                "ellipticity",
                "",
                "1 - b/a (galaxies)",
                F64(self.ellipticity.clone()),
            ),
            (
                "position_angle",
                "deg",
                "major axis or cosmic-ray track, from +x towards +y",
                F64(self.position_angle.clone()),
            ),
        ]
    }

    fn push(&mut self, e: Entry, wcs: &TanWcs) {
        let (x, y) = (e.x + 1.0, e.y + 1.0);
        let (ra, dec) = wcs.pixel_to_world(x, y);
        self.id.push(self.id.len() as i64 + 1);
        self.class.push(e.class);
        self.x.push(x);
        self.y.push(y);
        self.ra.push(ra);
        self.dec.push(dec);
        self.flux.push(e.flux);
        self.flux_in_image.push(e.flux_in_image);
        self.mag.push(e.mag);
        self.snr.push(e.snr);
        self.saturated.push(e.saturated);
        self.injected.push(e.injected);
        self.bbox_xmin.push(e.bbox[0]);
        self.bbox_ymin.push(e.bbox[1]);
        self.bbox_xmax.push(e.bbox[2]);
        self.bbox_ymax.push(e.bbox[3]);
        self.sersic_n.push(e.sersic_n);
        self.r_half.push(e.r_half);
        self.ellipticity.push(e.ellipticity);
        self.position_angle.push(e.position_angle);
    }
}

/// One catalogue row while it is being built; `x, y` are 0-based.
struct Entry {
    class: SourceClass,
    x: f64,
    y: f64,
    flux: f64,
    flux_in_image: f64,
    mag: f64,
    snr: f64,
    saturated: bool,
    injected: bool,
    bbox: [i64; 4],
    sersic_n: f64,
    r_half: f64,
    ellipticity: f64,
    position_angle: f64,
}

/// 1-based inclusive box of the pixels whose centres lie within `half` of 0-based `(x, y)`,
/// clipped to a `w×h` image.
fn bbox_around(x: f64, y: f64, half: f64, w: usize, h: usize) -> [i64; 4] {
    let (x1, y1) = (x + 1.0, y + 1.0);
    [
        ((x1 - half).ceil() as i64).max(1),
        ((y1 - half).ceil() as i64).max(1),
        ((x1 + half).floor() as i64).min(w as i64),
        ((y1 + half).floor() as i64).min(h as i64),
    ]
}

// ------------------------------------------------------------------------------------------------
// Simulation
// ------------------------------------------------------------------------------------------------

/// A simulated field: image, truth catalogue, WCS and the configuration that made it.
#[derive(Debug, Clone)]
pub struct SkyField {
    /// Image in ADU, shape `(height, width)`, `image[[row, col]]` with row = y - 1 and
    /// col = x - 1 in FITS pixel coordinates. Includes the sky (not subtracted).
    pub image: Array2<f32>,
    /// Truth catalogue.
    pub catalog: SkyCatalog,
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

/// Simulates a sky field; see the [module documentation](self) for the model and conventions.
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
    let renderer = Renderer::new(PsfModel::new(&cfg.psf, cfg.pixel_scale));
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

    let mut model = vec![0.0f64; w * h];
    let mut entries = Vec::with_capacity(specs.len());
    let mut saturated_rows = Vec::new();
    for (spec, (stamp, flux)) in specs.iter().zip(&rendered) {
        let flux_in_image = stamp.add_to(&mut model, w, h);
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
    for i in 0..cfg.artefacts.cosmic_rays {
        let mut rng = stream_rng(cfg.seed, "sky.cosmic_ray", i as u64);
        let x = uniform(&mut rng, -0.5, w as f64 - 0.5);
        let y = uniform(&mut rng, -0.5, h as f64 - 0.5);
        let cr = CosmicRay::draw(&mut rng, x, y);
        let mut stamp = cr.stamp();
        stamp.add_to(&mut e, w, h);
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

    let full_well = cfg.saturation * gain;
    bleed_columns(&mut e, w, h, full_well);
    // Extend saturated stars' boxes along the full pixels of their bleed trails.
    let full = full_well * (1.0 - 1e-12);
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
            *v = if hot {
                (*v + level).min(cfg.saturation)
            } else {
                0.0
            };
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

    let mut catalog = SkyCatalog::default();
    for entry in entries {
        catalog.push(entry, &wcs);
    }
    let image = Array2::from_shape_vec((h, w), adu.into_iter().map(|v| v as f32).collect())
        .expect("image buffer has height*width pixels");
    tracing::debug!(rows = catalog.len(), "sky field done");
    Ok(SkyField {
        image,
        catalog,
        wcs,
        config: cfg.clone(),
    })
}

// ------------------------------------------------------------------------------------------------
// Unit tests of the numerical pieces (public behaviour is tested in tests/sky_*.rs)
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sky_sersic_b_puts_half_the_light_inside_r_half() {
        for n in [0.2, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0] {
            let p = gamma_p(2.0 * n, sersic_b(n));
            assert!((p - 0.5).abs() < 1e-10, "n={n}: P(2n, b_n) = {p}");
        }
        // Exact values: b_0.5 = ln 2; b_1 and b_4 from the literature.
        assert!((sersic_b(0.5) - 2f64.ln()).abs() < 1e-10);
        assert!((sersic_b(1.0) - 1.678_346_990).abs() < 1e-8);
        assert!((sersic_b(4.0) - 7.669_249_443).abs() < 1e-8);
    }

    #[test]
    fn sky_fft_convolution_round_trips() {
        let fft = Fft::new(16);
        let orig: Vec<Cx> = (0..256)
            .map(|i| Cx {
                re: ((i * 37) % 11) as f64 - 5.0,
                im: 0.0,
            })
            .collect();
        let mut a = orig.clone();
        fft.forward_2d(&mut a, None);
        // DC term is the sum.
        let sum: f64 = orig.iter().map(|c| c.re).sum();
        assert!((a[0].re - sum).abs() < 1e-9);
        fft.inverse_2d(&mut a);
        for (x, y) in a.iter().zip(&orig) {
            assert!((x.re - y.re).abs() < 1e-12 && x.im.abs() < 1e-12);
        }
    }

    /// Integral of the truncated profile over the plane, by brute-force fine sampling.
    fn brute_integral(s: &Sersic, half: f64, step: f64) -> f64 {
        let n = (2.0 * half / step) as i64;
        let mut acc = 0.0;
        for j in 0..n {
            for i in 0..n {
                acc += s.sb(
                    -half + (i as f64 + 0.5) * step,
                    -half + (j as f64 + 0.5) * step,
                );
            }
        }
        acc * step * step
    }

    #[test]
    fn sky_sersic_normalisation_and_half_light_radius() {
        for (n, e) in [(0.5, 0.0), (1.0, 0.3), (4.0, 0.5)] {
            let r = 4.0;
            let s = Sersic::new(n, r, e, 0.4);
            // Unit total: the analytic normalisation of the truncated profile.
            let total = brute_integral(&s, s.extent() + 1.0, 0.05);
            assert!((total - 1.0).abs() < 0.01, "n={n}: integral {total}");
            // Half the light within the ellipse of semi-major axis r_half (elliptical radius
            // sampled on a fine polar grid in the galaxy's frame: ρ² = u² + (v/q)²).
            let q = 1.0 - e;
            let mut inside = 0.0;
            let (nr, nt) = (4000, 64);
            for ir in 0..nr {
                let rho = (ir as f64 + 0.5) / nr as f64 * r;
                for it in 0..nt {
                    let t = (it as f64 + 0.5) / nt as f64 * 2.0 * PI;
                    let (u, v) = (rho * t.cos(), q * rho * t.sin());
                    let (dx, dy) = (
                        u * 0.4f64.cos() - v * 0.4f64.sin(),
                        u * 0.4f64.sin() + v * 0.4f64.cos(),
                    );
                    inside += s.sb(dx, dy) * q * rho * (r / nr as f64) * (2.0 * PI / nt as f64);
                }
            }
            assert!(
                (inside - 0.5).abs() < 0.005,
                "n={n}: {inside} inside r_half"
            );
        }
    }

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

    #[test]
    fn sky_magnitude_sampling_follows_the_power_law() {
        let d = MagnitudeDistribution {
            min: 20.0,
            max: 24.0,
            slope: 0.4,
        };
        let mut rng = stream_rng(1, "test", 0);
        let n = 40_000;
        let upper = (0..n).filter(|_| d.sample(&mut rng) > 22.0).count() as f64 / n as f64;
        // P(m > mid) = (e^{k·span} - e^{k·span/2}) / (e^{k·span} - 1), k = slope ln 10.
        let k = 0.4 * LN_10 * 4.0;
        let expect = (k.exp() - (k / 2.0).exp()) / (k.exp() - 1.0);
        assert!((upper - expect).abs() < 0.01, "{upper} vs {expect}");
    }

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
