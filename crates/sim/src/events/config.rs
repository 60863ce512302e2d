//! Settings of the event-list simulator ([`EventConfig`], [`Psf`]), their checks, and the
//! instrument response they describe (energy resolution, PI channels, good time intervals).

use std::f64::consts::PI as PI_F64;

use rand::Rng;
use rand_distr::StandardNormal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_core::{ConfigError, Validate};

use crate::rng::{stream_rng, SimRng};
use crate::sky::psf::FWHM_PER_SIGMA;

/// Most thinning candidates (source photons at peak rate, or background photons) a run may need;
/// about 10 GB of events, far beyond any sensible observation.
const MAX_CANDIDATES: f64 = 5e8;

/// The point spread function, the same over the whole field. Sizes are in sky pixels.
///
/// Serialised with a `kind` tag: `{"kind": "gaussian", "sigma_px": 2.0}` or
/// `{"kind": "king", "r_c": 2.0, "beta": 1.5}`; an unknown kind or field is an error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Psf {
    /// Circular Gaussian of standard deviation `sigma_px` per axis.
    Gaussian {
        /// Standard deviation per axis, pixels (> 0).
        sigma_px: f64,
    },
    /// King profile, surface brightness ∝ (1 + (r/r_c)²)^−β, as used for XMM-Newton's PSF.
    King {
        /// Core radius, pixels (> 0).
        r_c: f64,
        /// Slope (> 1, so that the profile is normalisable).
        beta: f64,
    },
}

impl Default for Psf {
    fn default() -> Self {
        Psf::Gaussian { sigma_px: 2.0 }
    }
}

impl Psf {
    /// The radius (pixels) enclosing a fraction `frac` (in `[0, 1)`) of the photons.
    pub fn enclosed_radius(&self, frac: f64) -> f64 {
        let frac = frac.clamp(0.0, 1.0 - 1e-12);
        match *self {
            // The radius of a 2-D Gaussian is Rayleigh distributed: F(r) = 1 − exp(−r²/2σ²).
            Psf::Gaussian { sigma_px } => sigma_px * (-2.0 * (1.0 - frac).ln()).sqrt(),
            // F(r) = 1 − (1 + (r/r_c)²)^(1−β).
            Psf::King { r_c, beta } => r_c * ((1.0 - frac).powf(1.0 / (1.0 - beta)) - 1.0).sqrt(),
        }
    }

    /// A random (dx, dy) offset from the source position.
    pub(super) fn sample_offset(&self, rng: &mut SimRng) -> (f64, f64) {
        match *self {
            Psf::Gaussian { sigma_px } => {
                let dx: f64 = rng.sample(StandardNormal);
                let dy: f64 = rng.sample(StandardNormal);
                (sigma_px * dx, sigma_px * dy)
            }
            Psf::King { .. } => {
                // Inverse-CDF in radius, uniform angle.
                let r = self.enclosed_radius(rng.random::<f64>());
                let phi = 2.0 * PI_F64 * rng.random::<f64>();
                (r * phi.cos(), r * phi.sin())
            }
        }
    }
}

/// Sizes positive and finite, King `beta` > 1.
impl Validate for Psf {
    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Psf::Gaussian { sigma_px } => {
                if !(sigma_px.is_finite() && sigma_px > 0.0) {
                    return Err(ConfigError::at(
                        "sigma_px",
                        format!("{sigma_px} must be a positive number of pixels"),
                    ));
                }
            }
            Psf::King { r_c, beta } => {
                if !(r_c.is_finite() && r_c > 0.0) {
                    return Err(ConfigError::at(
                        "r_c",
                        format!("{r_c} must be a positive number of pixels"),
                    ));
                }
                if !(beta.is_finite() && beta > 1.0) {
                    return Err(ConfigError::at(
                        "beta",
                        format!("{beta} must be > 1 for the King profile to be normalisable"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parameters of an event-list simulation. Every field has a default; unknown fields are an
/// error when deserialising.
///
/// Ranges written `[lo, hi]` are sampled uniformly, except those marked log-uniform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventConfig {
    /// Seed of all random streams.
    pub seed: u64,
    /// Side of the square field, sky pixels (X and Y run from 0.5 to `image_size + 0.5`).
    pub image_size: u32,
    /// Number of point sources (ids 1..=n_sources).
    pub n_sources: usize,
    /// Lowest quiescent source rate, counts/s (> 0).
    pub rate_min: f64,
    /// Highest quiescent source rate, counts/s (≥ `rate_min`; equal gives one fixed rate).
    pub rate_max: f64,
    /// Slope α of the cumulative logN-logS, N(>S) ∝ S^−α (1.5 = Euclidean).
    pub lognlogs_slope: f64,
    /// Mean source photon index Γ (dN/dE ∝ E^−Γ).
    pub photon_index_mean: f64,
    /// Standard deviation of the source photon index (0 = all equal to the mean).
    pub photon_index_sigma: f64,
    /// If set, every source photon has this true energy (keV) instead of a power law: a
    /// monochromatic line for calibrating energy resolution. Background keeps its spectrum.
    pub line_kev: Option<f64>,
    /// Flat effective area, cm²; only converts rates to photon fluxes in the truth table.
    pub effective_area_cm2: f64,
    /// Point spread function.
    pub psf: Psf,
    /// Minimum distance of source positions from the field edge, pixels.
    pub source_margin_px: f64,
    /// Total background rate over the whole field, counts/s (≥ 0).
    pub background_rate: f64,
    /// Background photon index (0 = flat in energy).
    pub background_photon_index: f64,
    /// Lower edge of the true-energy band, keV.
    pub e_min: f64,
    /// Upper edge of the true-energy band, keV.
    pub e_max: f64,
    /// Energy resolution FWHM at 1 keV, keV; FWHM(E) = fwhm_1kev·sqrt(E/1 keV). 0 = perfect.
    pub fwhm_1kev: f64,
    /// Width of a PI channel, keV (0.01459 = Chandra ACIS).
    pub kev_per_channel: f64,
    /// Number of PI channels (PI runs 1..=n_channels, at most 32767).
    pub n_channels: u32,
    /// Mission time of the observation start (TSTART), s since MJDREF.
    pub tstart: f64,
    /// Total good time, s, when `gtis` is not given (it is then split into `n_gtis` GTIs).
    pub exposure: f64,
    /// Explicit GTIs as `[start, stop]` seconds from TSTART, sorted and non-overlapping.
    /// When given, `exposure`, `n_gtis` and `gti_gap_s` are ignored.
    pub gtis: Option<Vec<(f64, f64)>>,
    /// Number of generated GTIs (their lengths are random and sum to `exposure`).
    pub n_gtis: usize,
    /// Mean gap between generated GTIs, s (each gap is uniform in 0.5–1.5 times this).
    pub gti_gap_s: f64,
    /// Fraction of sources that are variable, in [0, 1].
    pub variable_fraction: f64,
    /// Fraction of the variable sources that flare (the rest are periodic), in [0, 1].
    pub flare_fraction: f64,
    /// Flare peak rate / quiescent rate, `[lo, hi]`, ≥ 1.
    pub flare_amplitude: [f64; 2],
    /// Flare rise time (linear rise from onset to peak), s, `[lo, hi]`, log-uniform.
    pub flare_rise_s: [f64; 2],
    /// Flare exponential decay time, s, `[lo, hi]`, log-uniform.
    pub flare_decay_s: [f64; 2],
    /// Period of periodic sources, s, `[lo, hi]`, log-uniform.
    pub period_s: [f64; 2],
    /// Pulsed fraction of periodic sources, `[lo, hi]` within [0, 1].
    pub pulsed_fraction: [f64; 2],
    /// TELESCOP keyword.
    pub telescop: String,
    /// INSTRUME keyword.
    pub instrume: String,
    /// Reference MJD of mission time zero (written as MJDREFI + MJDREFF).
    pub mjdref: f64,
    /// Time system of TIME (TIMESYS), e.g. `"TT"`.
    pub timesys: String,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            seed: 1,
            image_size: 1024,
            n_sources: 20,
            rate_min: 0.002,
            rate_max: 0.2,
            lognlogs_slope: 1.5,
            photon_index_mean: 1.7,
            photon_index_sigma: 0.3,
            line_kev: None,
            effective_area_cm2: 400.0,
            psf: Psf::default(),
            source_margin_px: 32.0,
            background_rate: 0.1,
            background_photon_index: 0.0,
            e_min: 0.3,
            e_max: 10.0,
            fwhm_1kev: 0.1,
            kev_per_channel: 0.01459,
            n_channels: 1024,
            // About 2020-03-21 with the Chandra MJDREF.
            tstart: 7.0e8,
            exposure: 50_000.0,
            gtis: None,
            n_gtis: 3,
            gti_gap_s: 3_000.0,
            variable_fraction: 0.3,
            flare_fraction: 0.5,
            flare_amplitude: [5.0, 30.0],
            flare_rise_s: [100.0, 1_000.0],
            flare_decay_s: [1_000.0, 8_000.0],
            period_s: [300.0, 5_000.0],
            pulsed_fraction: [0.3, 0.9],
            telescop: "DEEPSKY".into(),
            instrume: "SIMXRAY".into(),
            mjdref: 50814.0,
            timesys: "TT".into(),
        }
    }
}

fn positive(name: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("{v} must be a positive finite number"),
        ))
    }
}

fn non_negative(name: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("{v} must be a finite number ≥ 0"),
        ))
    }
}

fn finite(name: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::at(name, format!("{v} must be finite")))
    }
}

fn fraction(name: &str, v: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::at(name, format!("{v} must be in [0, 1]")))
    }
}

fn range(name: &str, r: [f64; 2], min: f64, max: f64) -> Result<(), ConfigError> {
    let [lo, hi] = r;
    if lo.is_finite() && hi.is_finite() && lo >= min && hi <= max && lo <= hi {
        Ok(())
    } else {
        Err(ConfigError::at(
            name,
            format!("[{lo}, {hi}] must be finite with {min} ≤ lo ≤ hi ≤ {max}"),
        ))
    }
}

/// Checks every setting; the error names the first offending key and its value. Besides the
/// ranges, the rates and exposure are bounded so that a typo cannot hang a run or exhaust
/// memory.
impl Validate for EventConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.image_size == 0 {
            return Err(ConfigError::at("image_size", "must be at least 1 pixel"));
        }
        if self.n_sources > 10_000_000 {
            return Err(ConfigError::at(
                "n_sources",
                format!("{} is more than the 10 000 000 allowed", self.n_sources),
            ));
        }
        positive("rate_min", self.rate_min)?;
        finite("rate_max", self.rate_max)?;
        if self.rate_max < self.rate_min {
            return Err(ConfigError::at(
                "rate_max",
                format!("{} must be ≥ rate_min = {}", self.rate_max, self.rate_min),
            ));
        }
        positive("lognlogs_slope", self.lognlogs_slope)?;
        finite("photon_index_mean", self.photon_index_mean)?;
        non_negative("photon_index_sigma", self.photon_index_sigma)?;
        if let Some(line) = self.line_kev {
            positive("line_kev", line)?;
        }
        positive("effective_area_cm2", self.effective_area_cm2)?;
        self.psf.validate().map_err(|e| e.within("psf"))?;
        non_negative("source_margin_px", self.source_margin_px)?;
        if 2.0 * self.source_margin_px >= self.image_size as f64 {
            return Err(ConfigError::at(
                "source_margin_px",
                format!(
                    "{} leaves no room for sources in a {}-pixel field",
                    self.source_margin_px, self.image_size
                ),
            ));
        }
        non_negative("background_rate", self.background_rate)?;
        finite("background_photon_index", self.background_photon_index)?;
        positive("e_min", self.e_min)?;
        finite("e_max", self.e_max)?;
        if self.e_min >= self.e_max {
            return Err(ConfigError::at(
                "e_min",
                format!(
                    "{} keV must be below e_max = {} keV",
                    self.e_min, self.e_max
                ),
            ));
        }
        non_negative("fwhm_1kev", self.fwhm_1kev)?;
        positive("kev_per_channel", self.kev_per_channel)?;
        if self.n_channels == 0 || self.n_channels > i16::MAX as u32 {
            return Err(ConfigError::at(
                "n_channels",
                format!(
                    "{} must be in 1..=32767 (PI is a 16-bit column)",
                    self.n_channels
                ),
            ));
        }
        finite("tstart", self.tstart)?;
        match &self.gtis {
            Some(gtis) => validate_gtis(gtis)?,
            None => {
                positive("exposure", self.exposure)?;
                if self.n_gtis == 0 {
                    return Err(ConfigError::at("n_gtis", "must be at least 1"));
                }
                non_negative("gti_gap_s", self.gti_gap_s)?;
            }
        }
        fraction("variable_fraction", self.variable_fraction)?;
        fraction("flare_fraction", self.flare_fraction)?;
        range("flare_amplitude", self.flare_amplitude, 1.0, f64::MAX)?;
        range(
            "flare_rise_s",
            self.flare_rise_s,
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
        range(
            "flare_decay_s",
            self.flare_decay_s,
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
        range("period_s", self.period_s, f64::MIN_POSITIVE, f64::MAX)?;
        range("pulsed_fraction", self.pulsed_fraction, 0.0, 1.0)?;
        // A typo in a rate (1e6 for 1e-6) would otherwise hang the run or exhaust memory:
        // bound the number of thinning candidates.
        let good: f64 = match &self.gtis {
            Some(g) => g.iter().map(|&(a, b)| b - a).sum(),
            None => self.exposure,
        };
        let peak = self.flare_amplitude[1].max(1.0 + self.pulsed_fraction[1]);
        let src = self.n_sources as f64 * self.rate_max * peak * good;
        let bkg = self.background_rate * good;
        if src > MAX_CANDIDATES {
            return Err(ConfigError::at(
                "rate_max",
                format!(
                    "{} counts/s for {} sources over {good} s could need {src:.3e} candidate \
                     photons, more than the {MAX_CANDIDATES:e} allowed",
                    self.rate_max, self.n_sources
                ),
            ));
        }
        if bkg > MAX_CANDIDATES {
            return Err(ConfigError::at(
                "background_rate",
                format!(
                    "{} counts/s over {good} s gives {bkg:.3e} photons, more than the \
                     {MAX_CANDIDATES:e} allowed",
                    self.background_rate
                ),
            ));
        }
        non_negative("mjdref", self.mjdref)?;
        if self.timesys.trim().is_empty() {
            return Err(ConfigError::at(
                "timesys",
                "must not be empty (e.g. \"TT\")",
            ));
        }
        Ok(())
    }
}

impl EventConfig {
    /// The Gaussian σ of the energy resolution at true energy `e_kev`, keV:
    /// `fwhm_1kev · sqrt(e_kev / 1 keV) / 2.3548`.
    pub fn energy_sigma_kev(&self, e_kev: f64) -> f64 {
        self.fwhm_1kev * e_kev.max(0.0).sqrt() / FWHM_PER_SIGMA
    }

    /// The PI channel of a measured energy: `floor(e_kev / kev_per_channel) + 1`, clipped to
    /// `1..=n_channels`.
    pub fn pi_channel(&self, e_kev: f64) -> i16 {
        let ch = (e_kev / self.kev_per_channel).floor() + 1.0;
        // NaN clamps to 1 via max(); only a programming error could produce it.
        ch.max(1.0).min(self.n_channels as f64) as i16
    }

    /// A measured energy for true energy `e_true`, dispersed by the energy resolution.
    pub(super) fn disperse(&self, rng: &mut SimRng, e_true: f64) -> f64 {
        let sigma = self.energy_sigma_kev(e_true);
        if sigma == 0.0 {
            return e_true;
        }
        // Redraw the (rare, for sane resolutions) non-physical energies ≤ 0; a bounded loop so
        // a silly resolution cannot hang the run.
        for _ in 0..64 {
            let z: f64 = rng.sample(StandardNormal);
            let e = e_true + sigma * z;
            if e > 0.0 {
                return e;
            }
        }
        e_true
    }

    /// GTIs relative to TSTART: explicit, or `n_gtis` random-length intervals summing to
    /// `exposure`, separated by random gaps, the first starting at TSTART.
    pub(super) fn resolve_gtis(&self) -> Vec<(f64, f64)> {
        if let Some(g) = &self.gtis {
            return g.clone();
        }
        let mut rng = stream_rng(self.seed, "events.gti", 0);
        let n = self.n_gtis;
        let weights: Vec<f64> = (0..n).map(|_| 0.5 + rng.random::<f64>()).collect();
        let wsum: f64 = weights.iter().sum();
        let mut out = Vec::with_capacity(n);
        let mut t = 0.0;
        for (k, w) in weights.iter().enumerate() {
            if k > 0 {
                t += self.gti_gap_s * (0.5 + rng.random::<f64>());
            }
            let len = self.exposure * w / wsum;
            out.push((t, t + len));
            t += len;
        }
        out
    }
}

fn validate_gtis(gtis: &[(f64, f64)]) -> Result<(), ConfigError> {
    if gtis.is_empty() {
        return Err(ConfigError::at(
            "gtis",
            "must hold at least one [start, stop] interval",
        ));
    }
    let mut prev_stop = f64::NEG_INFINITY;
    for (k, &(a, b)) in gtis.iter().enumerate() {
        if !(a.is_finite() && b.is_finite() && a >= 0.0 && b > a) {
            return Err(ConfigError::at(
                "gtis",
                format!("interval {k} [{a}, {b}] must have 0 ≤ start < stop (s from TSTART)"),
            ));
        }
        if a < prev_stop {
            return Err(ConfigError::at(
                "gtis",
                format!(
                    "interval {k} [{a}, {b}] starts before the previous one stops ({prev_stop}): \
                     GTIs must be sorted and non-overlapping"
                ),
            ));
        }
        prev_stop = b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_gtis_sum_to_exposure() {
        let cfg = EventConfig {
            n_gtis: 4,
            ..EventConfig::default()
        };
        let g = cfg.resolve_gtis();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0].0, 0.0);
        let sum: f64 = g.iter().map(|&(a, b)| b - a).sum();
        assert!((sum - cfg.exposure).abs() < 1e-6);
        assert!(g.windows(2).all(|w| w[1].0 > w[0].1));
        validate_gtis(&g).unwrap();
    }

    #[test]
    fn event_settings_name_keys_relative_to_their_section() {
        let psf = Psf::King {
            r_c: 2.0,
            beta: 1.0,
        };
        let e = psf.validate().unwrap_err();
        assert_eq!(e.key, "beta");
        assert_eq!(
            e.message,
            "1 must be > 1 for the King profile to be normalisable"
        );
        let cfg = EventConfig {
            psf,
            ..EventConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "psf.beta");

        let cfg = EventConfig {
            gtis: Some(vec![(0.0, 10.0), (5.0, 20.0)]),
            ..EventConfig::default()
        };
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "gtis");
        assert!(
            e.message
                .starts_with("interval 1 [5, 20] starts before the previous one stops (10)"),
            "{e}"
        );
        // 20 sources at up to 1e6 counts/s (30× in a flare) for 50 ks: far too many photons.
        let cfg = EventConfig {
            rate_max: 1e6,
            ..EventConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "rate_max");
        assert!(EventConfig::default().validate().is_ok());
    }
}
