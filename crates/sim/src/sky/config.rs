//! Settings of the sky-field simulator ([`SkyConfig`] and its parts), their checks, and the
//! random draws they describe (magnitudes, galaxy shapes).

use std::f64::consts::LN_10;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::psf::PsfModel;
use super::render::check_render_extent;
use super::sersic::{SERSIC_N_MAX, SERSIC_N_MIN, SERSIC_TRUNCATION};
use super::wcs::TanWcs;
use crate::output::{card, Card, CardValue};
use crate::rng::SimRng;
use deepsky_core::{ConfigError, Validate};

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

    /// FITS header cards of the PSF: `PSF` (the profile's name), `PSF_FWHM` (arcsec) and, for a
    /// Moffat, `PSF_BETA`.
    pub(crate) fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        let mut cards = vec![
            card("PSF", Str(self.name().into()), "PSF profile"),
            card(
                "PSF_FWHM",
                Float(self.fwhm()),
                "[arcsec] PSF full width at half maximum",
            ),
        ];
        if let Psf::Moffat { beta, .. } = *self {
            cards.push(card("PSF_BETA", Float(beta), "Moffat power-law index"));
        }
        cards
    }

    /// [`Validate::validate`], and also that the PSF is at least half a pixel wide at
    /// `pixel_scale` arcsec/pixel, the finest it can be sampled with at most 16× oversampling.
    /// Keys `fwhm`, `beta`.
    pub fn validate_sampling(&self, pixel_scale: f64) -> Result<(), ConfigError> {
        self.check(Some(pixel_scale))
    }

    /// The checks of [`Psf::validate_sampling`], of the sampling only with a pixel scale.
    fn check(&self, pixel_scale: Option<f64>) -> Result<(), ConfigError> {
        let fwhm = self.fwhm();
        if !(fwhm > 0.0 && fwhm.is_finite()) {
            return Err(ConfigError::at(
                "fwhm",
                format!("must be a positive number of arcsec, got {fwhm}"),
            ));
        }
        if let Some(pixel_scale) = pixel_scale {
            if pixel_scale > 0.0 && fwhm / pixel_scale < 0.5 {
                return Err(ConfigError::at(
                    "fwhm",
                    format!(
                        "{fwhm} arcsec is {:.3} pixels at {pixel_scale} arcsec/pixel; at least \
                         0.5 pixel is needed",
                        fwhm / pixel_scale
                    ),
                ));
            }
        }
        if let Psf::Moffat { beta, .. } = *self {
            if !(beta > 1.0 && beta <= 100.0) {
                return Err(ConfigError::at(
                    "beta",
                    format!("must be > 1 (finite flux) and <= 100, got {beta}"),
                ));
            }
        }
        Ok(())
    }
}

/// The profile's own ranges (`fwhm` > 0, Moffat `beta` in (1, 100]); whether it can be sampled
/// depends on the pixel scale of the image it is used in ([`Psf::validate_sampling`]).
impl Validate for Psf {
    fn validate(&self) -> Result<(), ConfigError> {
        self.check(None)
    }
}

/// The imaging cards the sky-field and cutout headers share, in their order: `NOISE`,
/// `MAGZP`, `PIXSCALE`, then the PSF's ([`Psf::header_cards`]).
pub(crate) fn imaging_cards(
    noise: &NoiseConfig,
    zeropoint: f64,
    pixel_scale: f64,
    psf: &Psf,
) -> Vec<Card> {
    use CardValue::*;
    let mut cards = vec![
        card("NOISE", Bool(noise.enabled), "Poisson and read noise added"),
        card("MAGZP", Float(zeropoint), "[mag] magnitude giving 1 adu/s"),
        card("PIXSCALE", Float(pixel_scale), "[arcsec/pixel] pixel scale"),
    ];
    cards.extend(psf.header_cards());
    cards
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
}

impl Validate for NoiseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_negative("sky_level", self.sky_level)?;
        positive("gain", self.gain)?;
        non_negative("read_noise", self.read_noise)
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

impl Validate for MagnitudeDistribution {
    fn validate(&self) -> Result<(), ConfigError> {
        finite("min", self.min)?;
        finite("max", self.max)?;
        if self.min > self.max {
            return Err(ConfigError::at(
                "min",
                format!("must be <= max ({}), got {}", self.max, self.min),
            ));
        }
        if !self.slope.is_finite() || self.slope.abs() > 3.0 {
            return Err(ConfigError::at(
                "slope",
                format!("must be within [-3, 3] per magnitude, got {}", self.slope),
            ));
        }
        Ok(())
    }
}

impl MagnitudeDistribution {
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

impl Validate for GalaxyModel {
    fn validate(&self) -> Result<(), ConfigError> {
        self.magnitudes
            .validate()
            .map_err(|e| e.within("magnitudes"))?;
        check_range("sersic_n", self.sersic_n, SERSIC_N_MIN, SERSIC_N_MAX, "")?;
        check_range(
            "r_half",
            self.r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        check_ellipticity("ellipticity_max", self.ellipticity_max)
    }
}

impl GalaxyModel {
    /// Draws (sersic_n, r_half in arcsec, ellipticity, position angle in degrees).
    pub(crate) fn sample_shape(&self, rng: &mut SimRng) -> (f64, f64, f64, f64) {
        let n = uniform(rng, self.sersic_n[0], self.sersic_n[1]);
        let r = log_uniform(rng, self.r_half[0], self.r_half[1]);
        let e = uniform(rng, 0.0, self.ellipticity_max);
        let pa = uniform(rng, 0.0, 180.0);
        (n, r, e, pa)
    }
}

/// Detector artefacts to add. Cosmic rays, saturated stars and bad columns become catalogue
/// rows of their own class; satellite trails and hot pixels are only masked (a class of their
/// own would change [`SourceClass::ALL`](super::SourceClass::ALL), which trained detectors
/// depend on).
///
/// Every artefact is also marked in the field's truth masks ([`TruthMasks`](super::TruthMasks)):
/// a pixel belongs to an artefact's plane when the signal that artefact added there exceeds
/// `truth_threshold_sigma` times the background noise σ of a pixel (Poisson sky and read
/// noise, `sqrt(sky_level + read_noise²) / gain` ADU, whether or not noise is enabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArtefactConfig {
    /// Number of cosmic-ray hits (when `cosmic_ray_rate` is 0). With the `simple` model:
    /// single pixels (30 %) or straight tracks of mean length 5 pixels (at most 25),
    /// 600–6000 e- per pixel of track, never PSF-convolved.
    pub cosmic_rays: usize,
    /// How cosmic-ray hits look: `simple` (the description of `cosmic_rays`, the default) or
    /// `physical` (tracks through the depletion layer, worms and spots, with charge diffusion;
    /// see `physical_cosmic_rays`).
    pub cosmic_ray_model: CosmicRayModel,
    /// Cosmic-ray flux, hits per cm² per second (>= 0). 0 (the default) uses the fixed count
    /// `cosmic_rays`; above 0 the count is Poisson with mean
    /// `rate × chip area × exposure_time`, the chip area from `physical_cosmic_rays.pixel_um`.
    /// Applies to either model.
    pub cosmic_ray_rate: f64,
    /// Parameters of the `physical` cosmic-ray model.
    pub physical_cosmic_rays: PhysicalCosmicRays,
    /// Number of extra stars bright enough that their peak is 3–100× the saturation level
    /// (log-uniform), so that they bleed along their columns.
    pub saturated_stars: usize,
    /// Number of bad columns, from a random row to the top or bottom edge; half are dead
    /// (0 ADU), half hot (a constant 5–30 background sigma above the sky).
    pub bad_columns: usize,
    /// Number of isolated hot pixels: a constant excess of 5–50 background sigma
    /// (log-uniform), masked in the bad-column plane; not catalogued.
    pub hot_pixels: usize,
    /// Number of satellite or aircraft trails: straight lines across the whole image at a
    /// random angle and offset, with a Gaussian cross-section; not catalogued, only masked.
    pub trails: usize,
    /// Shapes and brightness of the trails.
    pub trail_model: TrailModel,
    /// A pixel belongs to an artefact's mask plane when the artefact's added signal there
    /// exceeds this many background sigma (> 0). Default 0.5.
    pub truth_threshold_sigma: f64,
    /// A pixel belongs to the Detected plane when the noiseless light of the stars and
    /// galaxies there exceeds this many background sigma (> 0). Default 1.
    pub footprint_threshold_sigma: f64,
}

impl Default for ArtefactConfig {
    fn default() -> Self {
        ArtefactConfig {
            cosmic_rays: 5,
            cosmic_ray_model: CosmicRayModel::Simple,
            cosmic_ray_rate: 0.0,
            physical_cosmic_rays: PhysicalCosmicRays::default(),
            saturated_stars: 1,
            bad_columns: 1,
            hot_pixels: 0,
            trails: 0,
            trail_model: TrailModel::default(),
            truth_threshold_sigma: 0.5,
            footprint_threshold_sigma: 1.0,
        }
    }
}

impl Validate for ArtefactConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        count("cosmic_rays", self.cosmic_rays)?;
        non_negative("cosmic_ray_rate", self.cosmic_ray_rate)?;
        if self.cosmic_ray_rate > 1e6 {
            return Err(ConfigError::at(
                "cosmic_ray_rate",
                format!(
                    "must be at most 1e6 hits/cm2/s, got {}",
                    self.cosmic_ray_rate
                ),
            ));
        }
        self.physical_cosmic_rays
            .validate()
            .map_err(|e| e.within("physical_cosmic_rays"))?;
        count("saturated_stars", self.saturated_stars)?;
        count("bad_columns", self.bad_columns)?;
        count("hot_pixels", self.hot_pixels)?;
        count("trails", self.trails)?;
        self.trail_model
            .validate()
            .map_err(|e| e.within("trail_model"))?;
        positive("truth_threshold_sigma", self.truth_threshold_sigma)?;
        positive("footprint_threshold_sigma", self.footprint_threshold_sigma)
    }
}

/// The cosmic-ray model, `cosmic_ray_model = "simple"` or `"physical"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CosmicRayModel {
    /// Single pixels or short straight tracks of uniform charge, no diffusion (the model of
    /// every earlier release, kept bit for bit).
    #[default]
    Simple,
    /// Muon tracks through the depletion layer, curved electron worms and compact spots, with
    /// Landau-like charge and charge diffusion ([`PhysicalCosmicRays`]).
    Physical,
}

/// The `physical` cosmic-ray model. Each hit is, by these fractions, a compact spot, a curved
/// worm, or else a straight track:
///
/// * **Tracks** (through-going muons): the flux is isotropic above the chip, so the flux
///   through its horizontal plane goes as `cos θ sin θ` in zenith angle θ (drawn as
///   `sin θ = sqrt(u)`); the projected length is `depletion_um · tan θ / pixel_um` pixels,
///   capped at `max_track_px`, and the path in silicon is
///   `sqrt(depletion_um² + (length · pixel_um)²)` µm. The charge per µm of path, one value
///   per track, follows a Moyal distribution (the usual closed-form stand-in for the Landau)
///   with most probable value `mpv_e_per_um` and scale `landau_scale_e_per_um`.
/// * **Worms** (low-energy electrons): a walk of 0.25-pixel steps whose heading turns at a
///   constant curvature drawn in ±[0.05, 0.3] rad/pixel plus a small random wander, over
///   `worm_length_px` pixels (log-uniform); twice the track charge per µm, since slow
///   electrons ionise more densely.
/// * **Spots** (alphas, head-on hits): a Gaussian blob of σ drawn in `spot_sigma_px`, 1–4
///   pixels across once diffused, with `spot_charge_e` electrons (log-uniform).
///
/// Every deposit (10 per pixel of track or worm) is spread by charge diffusion, a Gaussian of
/// σ `diffusion_sigma_px` integrated over the pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PhysicalCosmicRays {
    /// Thickness of the depletion layer, µm (> 0). Default 40.
    pub depletion_um: f64,
    /// Pixel pitch, µm (> 0); also sets the chip area for `cosmic_ray_rate`. Default 15.
    pub pixel_um: f64,
    /// Longest projected track, pixels (>= 1); grazing tracks are cut there. Default 100.
    pub max_track_px: f64,
    /// Most probable charge per µm of path of a minimum-ionising particle in silicon,
    /// electrons (> 0). Default 80.
    pub mpv_e_per_um: f64,
    /// Scale of the Moyal distribution of the charge per µm, electrons (>= 0). Default 10.
    pub landau_scale_e_per_um: f64,
    /// Fraction of hits that are worms, in [0, 1]. Default 0.1.
    pub worm_fraction: f64,
    /// Range of a worm's walked length, pixels, log-uniform. Default [5, 30].
    pub worm_length_px: [f64; 2],
    /// Fraction of hits that are compact spots, in [0, 1] (with `worm_fraction` at most 1).
    /// Default 0.1.
    pub spot_fraction: f64,
    /// Range of a spot's own Gaussian σ before diffusion, pixels, uniform. Default [0, 0.8].
    pub spot_sigma_px: [f64; 2],
    /// Range of a spot's charge, electrons, log-uniform. Default [5000, 50000].
    pub spot_charge_e: [f64; 2],
    /// σ of the charge diffusion, pixels (>= 0, at most 5). Default 0.4.
    pub diffusion_sigma_px: f64,
}

impl Default for PhysicalCosmicRays {
    fn default() -> Self {
        PhysicalCosmicRays {
            depletion_um: 40.0,
            pixel_um: 15.0,
            max_track_px: 100.0,
            mpv_e_per_um: 80.0,
            landau_scale_e_per_um: 10.0,
            worm_fraction: 0.1,
            worm_length_px: [5.0, 30.0],
            spot_fraction: 0.1,
            spot_sigma_px: [0.0, 0.8],
            spot_charge_e: [5000.0, 50000.0],
            diffusion_sigma_px: 0.4,
        }
    }
}

impl Validate for PhysicalCosmicRays {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("depletion_um", self.depletion_um)?;
        positive("pixel_um", self.pixel_um)?;
        in_range("max_track_px", self.max_track_px, 1.0, 10_000.0, " pixels")?;
        positive("mpv_e_per_um", self.mpv_e_per_um)?;
        non_negative("landau_scale_e_per_um", self.landau_scale_e_per_um)?;
        in_range("worm_fraction", self.worm_fraction, 0.0, 1.0, "")?;
        in_range("spot_fraction", self.spot_fraction, 0.0, 1.0, "")?;
        if self.worm_fraction + self.spot_fraction > 1.0 {
            return Err(ConfigError::at(
                "spot_fraction",
                format!(
                    "worm_fraction + spot_fraction must be at most 1, got {}",
                    self.worm_fraction + self.spot_fraction
                ),
            ));
        }
        check_range(
            "worm_length_px",
            self.worm_length_px,
            0.5,
            1000.0,
            " pixels",
        )?;
        check_range("spot_sigma_px", self.spot_sigma_px, 0.0, 5.0, " pixels")?;
        check_range("spot_charge_e", self.spot_charge_e, 1.0, 1e9, " electrons")?;
        in_range(
            "diffusion_sigma_px",
            self.diffusion_sigma_px,
            0.0,
            5.0,
            " pixels",
        )
    }
}

/// Satellite and aircraft trails. A trail is a straight line through a random point of the
/// image at a random angle, with a Gaussian cross-section: a satellite's FWHM is the PSF's (a
/// point source moving along the line), an aircraft's is 2–6 times wider (it is out of focus)
/// and half of aircraft trails are a pair of parallel lines 4–12 pixels apart (wing-tip
/// lights). The peak of the cross-section is drawn log-uniformly in `peak_sigma` background
/// sigma per pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrailModel {
    /// Range of the peak surface brightness, background sigma per pixel (> 0). Default [1, 50].
    pub peak_sigma: [f64; 2],
    /// Fraction of trails that are aircraft, in [0, 1]. Default 0.2.
    pub aircraft_fraction: f64,
}

impl Default for TrailModel {
    fn default() -> Self {
        TrailModel {
            peak_sigma: [1.0, 50.0],
            aircraft_fraction: 0.2,
        }
    }
}

impl Validate for TrailModel {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "peak_sigma",
            self.peak_sigma,
            f64::MIN_POSITIVE,
            1e6,
            " sigma",
        )?;
        in_range("aircraft_fraction", self.aircraft_fraction, 0.0, 1.0, "")
    }
}

/// `lo <= v <= hi`.
pub(crate) fn in_range(
    name: &str,
    v: f64,
    lo: f64,
    hi: f64,
    unit: &str,
) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("must be within [{lo}, {hi}]{unit}, got {v}"),
        ))
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

/// Finite positions, magnitudes and angles, and a galaxy's shape within the accepted ranges.
/// Whether a galaxy fits the render grid depends on the PSF and pixel scale of the field
/// ([`SkyConfig`] checks it).
impl Validate for Injection {
    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Injection::Star { x, y, mag } => {
                finite("x", x)?;
                finite("y", y)?;
                finite("mag", mag)?;
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
                finite("x", x)?;
                finite("y", y)?;
                finite("mag", mag)?;
                check_range("sersic_n", [sersic_n; 2], SERSIC_N_MIN, SERSIC_N_MAX, "")?;
                positive("r_half", r_half)?;
                check_ellipticity("ellipticity", ellipticity)?;
                finite("position_angle", position_angle)?;
            }
        }
        Ok(())
    }
}

/// Configuration of [`simulate_sky`](super::simulate_sky). Every field has a default (a 256×256 field at
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
    /// Ellipticity `1 − b/a` of the PSF (0 = circular, at most 0.5), keeping `psf.fwhm` as
    /// the geometric mean of the major- and minor-axis FWHM.
    pub psf_ellipticity: f64,
    /// Position angle of the PSF's major axis, degrees from +x towards +y.
    pub psf_angle: f64,
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
            psf_ellipticity: 0.0,
            psf_angle: 0.0,
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

/// Checks every setting; the error names the first offending key (`psf.fwhm`,
/// `injections[2].r_half`) and its value. Besides each part's own ranges, the PSF must be
/// sampled finely enough at `pixel_scale`, the sky must stay below saturation, and the largest
/// galaxies and injected galaxies must fit the largest render grid.
impl Validate for SkyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_SIDE {
                return Err(ConfigError::at(
                    name,
                    format!("must be between 1 and {MAX_SIDE} pixels, got {v}"),
                ));
            }
        }
        if self.width * self.height > MAX_AREA {
            return Err(ConfigError::at(
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
            return Err(ConfigError::at(
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
                return Err(ConfigError::at(
                    "cd",
                    format!("must be a finite invertible matrix, got {cd:?}"),
                ));
            }
        }
        self.psf
            .validate_sampling(self.pixel_scale)
            .map_err(|e| e.within("psf"))?;
        if !(0.0..=0.5).contains(&self.psf_ellipticity) {
            return Err(ConfigError::at(
                "psf_ellipticity",
                format!("must be within [0, 0.5], got {}", self.psf_ellipticity),
            ));
        }
        finite("psf_angle", self.psf_angle)?;
        finite("zeropoint", self.zeropoint)?;
        positive("exposure_time", self.exposure_time)?;
        positive("saturation", self.saturation)?;
        self.noise.validate().map_err(|e| e.within("noise"))?;
        if self.noise.sky_adu() >= self.saturation {
            return Err(ConfigError::at(
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
        self.stars.validate().map_err(|e| e.within("stars"))?;
        count("n_galaxies", self.n_galaxies)?;
        self.galaxies.validate().map_err(|e| e.within("galaxies"))?;
        self.artefacts
            .validate()
            .map_err(|e| e.within("artefacts"))?;
        let expected_hits = super::artefacts::expected_cosmic_rays(
            self.artefacts.cosmic_ray_rate,
            self.artefacts.physical_cosmic_rays.pixel_um,
            self.width,
            self.height,
            self.exposure_time,
        );
        if expected_hits > MAX_COUNT as f64 {
            return Err(ConfigError::at(
                "artefacts.cosmic_ray_rate",
                format!(
                    "{} hits/cm2/s gives {expected_hits:.3e} expected hits on this chip, more \
                     than {MAX_COUNT}",
                    self.artefacts.cosmic_ray_rate
                ),
            ));
        }
        count("injections", self.injections.len())?;
        let psf = self.psf_model();
        let extent = |r_half_arcsec: f64| SERSIC_TRUNCATION * r_half_arcsec / self.pixel_scale;
        check_render_extent("galaxies.r_half", extent(self.galaxies.r_half[1]), &psf)?;
        for (i, inj) in self.injections.iter().enumerate() {
            let section = format!("injections[{i}]");
            inj.validate().map_err(|e| e.within(&section))?;
            if let Injection::Galaxy { r_half, .. } = *inj {
                check_render_extent(&format!("{section}.r_half"), extent(r_half), &psf)?;
            }
        }
        Ok(())
    }
}

impl SkyConfig {
    /// The PSF in pixel units, elliptical if `psf_ellipticity` > 0.
    pub(crate) fn psf_model(&self) -> PsfModel {
        PsfModel::new(&self.psf, self.pixel_scale)
            .with_ellipticity(self.psf_ellipticity, self.psf_angle)
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

// Checks of one setting, named by its key; `!(x > 0)` also rejects NaN.

/// `v` > 0 and finite.
pub(crate) fn positive(name: &str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("must be a positive finite number, got {v}"),
        ))
    }
}

/// `v` >= 0 and finite.
pub(crate) fn non_negative(name: &str, v: f64) -> Result<(), ConfigError> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

/// `v` finite.
pub(crate) fn finite(name: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("must be a finite number, got {v}"),
        ))
    }
}

/// A number of things of at most [`MAX_COUNT`].
pub(crate) fn count(name: &str, v: usize) -> Result<(), ConfigError> {
    if v <= MAX_COUNT {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("must be at most {MAX_COUNT}, got {v}"),
        ))
    }
}

/// Checks `[min, max]` with `lo <= min <= max <= hi`.
pub(crate) fn check_range(
    name: &str,
    r: [f64; 2],
    lo: f64,
    hi: f64,
    unit: &str,
) -> Result<(), ConfigError> {
    if !(r[0].is_finite() && r[1].is_finite()) {
        return Err(ConfigError::at(name, format!("must be finite, got {r:?}")));
    }
    if r[0] > r[1] {
        return Err(ConfigError::at(
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
        return Err(ConfigError::at(
            name,
            format!("values must be {bounds}{unit}, got {r:?}"),
        ));
    }
    Ok(())
}

/// An ellipticity `1 - b/a` in [0, 0.95).
pub(crate) fn check_ellipticity(name: &str, e: f64) -> Result<(), ConfigError> {
    if (0.0..0.95).contains(&e) {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("ellipticity 1 - b/a must be in [0, 0.95), got {e}"),
        ))
    }
}

pub(crate) fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

pub(crate) fn log_uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

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
    fn sky_settings_name_keys_relative_to_their_section() {
        let noise = NoiseConfig {
            gain: 0.0,
            ..NoiseConfig::default()
        };
        let e = noise.validate().unwrap_err();
        assert_eq!(e.key, "gain");
        assert_eq!(e.message, "must be a positive finite number, got 0");
        let cfg = SkyConfig {
            noise,
            ..SkyConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "noise.gain");

        let magnitudes = MagnitudeDistribution {
            min: 26.0,
            max: 25.0,
            slope: 0.3,
        };
        let e = magnitudes.validate().unwrap_err();
        assert_eq!(e.key, "min");
        assert_eq!(e.message, "must be <= max (25), got 26");
        let galaxies = GalaxyModel {
            magnitudes,
            ..GalaxyModel::default()
        };
        assert_eq!(galaxies.validate().unwrap_err().key, "magnitudes.min");
        let cfg = SkyConfig {
            galaxies,
            ..SkyConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "galaxies.magnitudes.min");

        let artefacts = ArtefactConfig {
            bad_columns: 2_000_000,
            ..ArtefactConfig::default()
        };
        let e = artefacts.validate().unwrap_err();
        assert_eq!(e.message, "must be at most 1000000, got 2000000");
        let cfg = SkyConfig {
            artefacts,
            ..SkyConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "artefacts.bad_columns");
        assert!(SkyConfig::default().validate().is_ok());
    }

    #[test]
    fn sky_psf_sampling_depends_on_the_pixel_scale() {
        let psf = Psf::Gaussian { fwhm: 0.1 };
        assert!(psf.validate().is_ok());
        let e = psf.validate_sampling(0.4).unwrap_err();
        assert_eq!(e.key, "fwhm");
        assert_eq!(
            e.message,
            "0.1 arcsec is 0.250 pixels at 0.4 arcsec/pixel; at least 0.5 pixel is needed"
        );
        assert!(psf.validate_sampling(0.2).is_ok());
        let cfg = SkyConfig {
            psf,
            ..SkyConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "psf.fwhm");
        let e = Psf::Moffat {
            fwhm: 1.0,
            beta: 1.0,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key, "beta");
        assert_eq!(e.message, "must be > 1 (finite flux) and <= 100, got 1");
    }

    #[test]
    fn sky_injections_are_checked_one_by_one() {
        let star = Injection::Star {
            x: 3.0,
            y: 4.0,
            mag: 20.0,
        };
        assert!(star.validate().is_ok());
        let galaxy = |r_half, ellipticity| Injection::Galaxy {
            x: 1.0,
            y: 1.0,
            mag: 20.0,
            sersic_n: 1.0,
            r_half,
            ellipticity,
            position_angle: 0.0,
        };
        let e = galaxy(1.0, 0.97).validate().unwrap_err();
        assert_eq!(e.key, "ellipticity");
        assert_eq!(
            e.message,
            "ellipticity 1 - b/a must be in [0, 0.95), got 0.97"
        );
        let cfg = SkyConfig {
            injections: vec![star.clone(), galaxy(1.0, 0.97)],
            ..SkyConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "injections[1].ellipticity");
        // 500 arcsec is 1250 pixels: a fine galaxy, but not on the largest render grid.
        assert!(galaxy(500.0, 0.0).validate().is_ok());
        let cfg = SkyConfig {
            injections: vec![star, galaxy(500.0, 0.0)],
            ..SkyConfig::default()
        };
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "injections[1].r_half");
        assert!(e.message.contains("above the limit of 2048"), "{e}");
    }

    #[test]
    fn sky_psf_header_cards_name_profile_width_and_moffat_index() {
        let names =
            |psf: Psf| -> Vec<String> { psf.header_cards().into_iter().map(|c| c.0).collect() };
        assert_eq!(names(Psf::Gaussian { fwhm: 0.8 }), ["PSF", "PSF_FWHM"]);
        let cards = Psf::Moffat {
            fwhm: 1.2,
            beta: 2.5,
        }
        .header_cards();
        assert_eq!(cards[0].1, CardValue::Str("moffat".into()));
        assert_eq!(cards[1].1, CardValue::Float(1.2));
        assert_eq!(cards[2].0, "PSF_BETA");
        assert_eq!(cards[2].1, CardValue::Float(2.5));
    }
}
