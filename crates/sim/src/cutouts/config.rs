//! Settings of the cutout simulator ([`CutoutConfig`], [`LensModel`], [`MergerModel`]) and
//! their checks.

use std::f64::consts::FRAC_1_SQRT_2;

use deepsky_core::{ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sky::config::{
    check_range, count, finite, flux_of_mag, positive, GalaxyModel, MagnitudeDistribution,
    NoiseConfig, Psf,
};
use crate::sky::psf::PsfModel;
use crate::sky::render::check_render_extent;
use crate::sky::sersic::{SERSIC_N_MAX, SERSIC_N_MIN, SERSIC_TRUNCATION};

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

/// Every range finite, `[min, max]` and within its bounds; whether lenses fit the render grid
/// depends on the PSF and pixel scale ([`CutoutConfig`] checks it).
impl Validate for LensModel {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "einstein_radius",
            self.einstein_radius,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        if !(self.source_offset_max >= 0.0 && self.source_offset_max <= 3.0) {
            return Err(ConfigError::at(
                "source_offset_max",
                format!(
                    "must be within [0, 3] Einstein radii, got {}",
                    self.source_offset_max
                ),
            ));
        }
        check_range(
            "source_sersic_n",
            self.source_sersic_n,
            SERSIC_N_MIN,
            SERSIC_N_MAX,
            "",
        )?;
        check_range(
            "source_r_half",
            self.source_r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " arcsec",
        )?;
        check_range(
            "source_mag_offset",
            self.source_mag_offset,
            -10.0,
            10.0,
            " mag",
        )?;
        check_range("lens_mag", self.lens_mag, f64::MIN, f64::MAX, " mag")?;
        check_range(
            "lens_sersic_n",
            self.lens_sersic_n,
            SERSIC_N_MIN,
            SERSIC_N_MAX,
            "",
        )?;
        check_range(
            "lens_r_half",
            self.lens_r_half,
            f64::MIN_POSITIVE,
            f64::MAX,
            " Einstein radii",
        )
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

/// Ranges within bounds: separation in [0, 100], flux ratio in (0, 100].
impl Validate for MergerModel {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("separation", self.separation, 0.0, 100.0, "")?;
        check_range("flux_ratio", self.flux_ratio, f64::MIN_POSITIVE, 100.0, "")
    }
}

impl Default for MergerModel {
    fn default() -> Self {
        MergerModel {
            separation: [1.0, 2.0],
            flux_ratio: [0.3, 1.0],
        }
    }
}

/// Configuration of [`simulate_cutouts`](super::simulate_cutouts); every field has a default (2000 stamps of 64×64
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

/// Checks every setting; the error names the first offending key (`lens.einstein_radius`) and
/// its value. Besides each part's own ranges, the PSF must be sampled finely enough at
/// `pixel_scale`, and the largest galaxies, lenses, lensed sources and the stamp itself must
/// fit the largest render grid.
impl Validate for CutoutConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.n == 0 {
            return Err(ConfigError::at("n", "must be at least 1, got 0"));
        }
        count("n", self.n)?;
        if !(8..=1024).contains(&self.size) {
            return Err(ConfigError::at(
                "size",
                format!("must be between 8 and 1024 pixels, got {}", self.size),
            ));
        }
        if self.n * self.size * self.size > MAX_PIXELS {
            return Err(ConfigError::at(
                "n",
                format!(
                    "{} stamps of {}x{} pixels exceed the limit of {MAX_PIXELS} pixels",
                    self.n, self.size, self.size
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.rare_fraction) {
            return Err(ConfigError::at(
                "rare_fraction",
                format!("must be within [0, 1], got {}", self.rare_fraction),
            ));
        }
        let wsum: f64 = self.rare_weights.iter().sum();
        if !(self.rare_weights.iter().all(|w| *w >= 0.0 && w.is_finite())
            && (wsum > 0.0 || self.rare_fraction == 0.0))
        {
            return Err(ConfigError::at(
                "rare_weights",
                format!(
                    "must be finite, >= 0 and not all 0 when rare_fraction > 0, got {:?}",
                    self.rare_weights
                ),
            ));
        }
        positive("pixel_scale", self.pixel_scale)?;
        self.psf
            .validate_sampling(self.pixel_scale)
            .map_err(|e| e.within("psf"))?;
        self.noise.validate().map_err(|e| e.within("noise"))?;
        finite("zeropoint", self.zeropoint)?;
        positive("exposure_time", self.exposure_time)?;
        if !(self.max_offset >= 0.0 && self.max_offset <= self.size as f64 / 4.0) {
            return Err(ConfigError::at(
                "max_offset",
                format!(
                    "must be within [0, size/4 = {}] pixels, got {}",
                    self.size as f64 / 4.0,
                    self.max_offset
                ),
            ));
        }
        self.galaxies.validate().map_err(|e| e.within("galaxies"))?;
        self.lens.validate().map_err(|e| e.within("lens"))?;
        self.merger.validate().map_err(|e| e.within("merger"))?;
        // Everything rendered must fit the largest render grid.
        let l = &self.lens;
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
}

impl CutoutConfig {
    /// Source flux in ADU of magnitude `mag`.
    pub(super) fn flux_of_mag(&self, mag: f64) -> f64 {
        flux_of_mag(mag, self.zeropoint, self.exposure_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutout_settings_name_keys_relative_to_their_section() {
        let lens = LensModel {
            source_offset_max: -0.5,
            ..LensModel::default()
        };
        let e = lens.validate().unwrap_err();
        assert_eq!(e.key, "source_offset_max");
        assert_eq!(e.message, "must be within [0, 3] Einstein radii, got -0.5");
        let cfg = CutoutConfig {
            lens,
            ..CutoutConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "lens.source_offset_max");

        let merger = MergerModel {
            flux_ratio: [0.5, 0.2],
            ..MergerModel::default()
        };
        let e = merger.validate().unwrap_err();
        assert_eq!(e.key, "flux_ratio");
        assert_eq!(
            e.message,
            "min 0.5 is greater than max 0.2 (give [min, max])"
        );
        let cfg = CutoutConfig {
            merger,
            ..CutoutConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "merger.flux_ratio");

        // Lens galaxies of up to 1.2 × 300 arcsec are valid lenses, but do not fit the render
        // grid at 0.2 arcsec/pixel.
        let lens = LensModel {
            einstein_radius: [1.0, 300.0],
            ..LensModel::default()
        };
        assert!(lens.validate().is_ok());
        let cfg = CutoutConfig {
            lens,
            ..CutoutConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "lens.lens_r_half");
        assert!(CutoutConfig::default().validate().is_ok());
    }
}
