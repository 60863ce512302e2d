//! X-ray / γ-ray photon event lists with a truth catalogue of constant, flaring and periodic
//! point sources.
//!
//! # The model
//!
//! An observation is a square field of `image_size` × `image_size` sky pixels seen for a set of
//! good time intervals (GTIs). It holds:
//!
//! * **Point sources** (ids `1..=n_sources`) at uniformly random positions at least
//!   `source_margin_px` from the edge. Quiescent count rates follow a power-law logN-logS,
//!   N(>S) ∝ S^-α between `rate_min` and `rate_max` counts/s (α = `lognlogs_slope`, 1.5 is the
//!   Euclidean value). Each source has a power-law photon spectrum dN/dE ∝ E^-Γ between `e_min`
//!   and `e_max` keV, with Γ drawn from a normal of mean `photon_index_mean` and standard
//!   deviation `photon_index_sigma` (or, for calibration runs, a single line at `line_kev`).
//! * **Variability**: `round(variable_fraction · n_sources)` sources are variable, of which
//!   `round(flare_fraction · n_variable)` flare and the rest are periodic; which sources they are
//!   is a seeded random choice.
//!   * A *flare* is a fast-rise exponential-decay (FRED) outburst: the rate is
//!     `q · (1 + (A − 1) · g(t))` where `q` is the quiescent rate, `A` the `amplitude` (peak rate /
//!     quiescent rate, so `A ≥ 1`), and `g` rises linearly from 0 at `t_start` to 1 at
//!     `t_peak = t_start + rise`, then decays as `exp(−(t − t_peak)/decay)`. A linear rise is used
//!     so that the flare has a genuine start time; `t_peak` is drawn uniformly over the *good*
//!     time so every labelled flare has its peak observed.
//!   * A *periodic* source has rate `q · (1 + p · sin(2π (t − TSTART)/P + φ))` with period `P`,
//!     pulsed fraction `p ∈ [0, 1]` and phase `φ` at TSTART. Its mean rate is `q`.
//! * **Background**: uniform over the field, `background_rate` counts/s in total (not per pixel),
//!   with its own power-law spectrum of index `background_photon_index` (0 = flat in energy,
//!   roughly what particle background looks like).
//! * **Instrument**: the effective area is flat in energy and over the field, so all rates are
//!   *detected* counts/s; `effective_area_cm2` only converts them to photon fluxes in the truth
//!   table. There is no dead time (LIVETIME = ONTIME, DEADC = 1). The PSF ([`Psf`]) is a circular
//!   Gaussian or a King profile `(1 + (r/r_c)²)^−β`, the same everywhere in the field. Events
//!   scattered by the PSF outside the field are lost (as off the detector), so a source's
//!   `n_events` can fall a little short of rate × exposure for King wings. Energy resolution is
//!   Gaussian with FWHM(E) = `fwhm_1kev` · sqrt(E / 1 keV) (0.1 keV at 1 keV by default, roughly a
//!   CCD; 0 disables dispersion); measured energies ≤ 0 are redrawn.
//!
//! Arrival times are an inhomogeneous Poisson process generated exactly by thinning (Lewis &
//! Shedler 1979): candidates are drawn at the source's peak rate within each GTI and each is
//! kept with probability λ(t)/λ_max. Photons exist only inside GTIs.
//!
//! # Units and conventions (OGIP)
//!
//! * `TIME` is mission time in seconds (f64): TSTART + seconds since the observation start, in
//!   the time system `timesys` (TT by default) relative to MJDREF (50814.0 = 1998-01-01 TT, the
//!   Chandra value). GTIs are given in the config relative to TSTART and reported in
//!   [`EventList::gti`] as absolute mission times, as a FITS GTI extension holds them.
//! * `X`, `Y` are sky pixel coordinates (f32), 1-based as in FITS images and Chandra/XMM sky
//!   coordinates: pixel `i` covers `[i − 0.5, i + 0.5)`, so the field is `TLMIN = 0.5` to
//!   `TLMAX = image_size + 0.5`.
//! * `ENERGY` is the measured energy in keV (f32), after energy dispersion.
//! * `PI` is the channel `floor(ENERGY / kev_per_channel) + 1`, clipped to `1..=n_channels`
//!   (14.59 eV channels and 1024 channels by default, like Chandra ACIS), i16.
//! * `SOURCE_ID` (i32) is the truth: 0 for background, otherwise the source id.
//! * Events are sorted by `TIME`; ties (practically never) keep the order sources, then
//!   background, so the output is fully deterministic.
//!
//! Every source `i` draws from `stream_rng(seed, "events.source", i)`, the background of GTI `g`
//! from `stream_rng(seed, "events.background", g)`, generated GTIs from `"events.gti"` and the
//! choice of variable sources from `"events.kinds"`, so the output is bit-identical for a seed
//! whatever the number of threads. A source's parameters are always drawn in the same order
//! (including flare and period parameters it may not use), so changing `variable_fraction` keeps
//! positions and rates.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::events::{light_curve_features, simulate_events, EventConfig};
//!
//! let cfg = EventConfig { n_sources: 4, exposure: 10_000.0, seed: 7, ..EventConfig::default() };
//! let ev = simulate_events(&cfg, &()).unwrap();
//! // Sorted, inside the good time intervals, with a truth id per event.
//! assert!(ev.time.windows(2).all(|w| w[0] <= w[1]));
//! assert!(ev.time.iter().all(|&t| ev.gti.iter().any(|&(a, b)| t >= a && t < b)));
//! assert_eq!(ev.source_id.len(), ev.len());
//! // Light-curve features per truth source, for anomaly (flare / pulsation) detection.
//! let features = light_curve_features(&ev, 500.0);
//! assert_eq!(features.source_id.len(), 4);
//! ```

use std::f64::consts::PI as PI_F64;

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};
use crate::rng::{stream_rng, SimRng};
use crate::Progress;

/// Most thinning candidates (source photons at peak rate, or background photons) a run may need;
/// about 10 GB of events, far beyond any sensible observation.
const MAX_CANDIDATES: f64 = 5e8;

/// FWHM / σ of a Gaussian, 2·sqrt(2·ln 2).
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_3;

pub use crate::output::{CardValue, Column, ColumnData};

/// Description of one column of the EVENTS table, for the FITS writer.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMeta {
    /// Column name (TTYPE).
    pub name: &'static str,
    /// FITS binary table format (TFORM): `D` f64, `E` f32, `I` i16, `J` i32.
    pub tform: &'static str,
    /// Physical unit (TUNIT), `""` when dimensionless.
    pub unit: &'static str,
    /// Legal minimum (TLMIN), if defined.
    pub tlmin: Option<f64>,
    /// Legal maximum (TLMAX), if defined.
    pub tlmax: Option<f64>,
    /// One-line description (for the TTYPE comment).
    pub description: &'static str,
}

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
    fn sample_offset(&self, rng: &mut SimRng) -> (f64, f64) {
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

    fn validate(&self) -> Result<()> {
        match *self {
            Psf::Gaussian { sigma_px } => {
                if !(sigma_px.is_finite() && sigma_px > 0.0) {
                    return Err(SimError::invalid(
                        "psf.sigma_px",
                        format!("{sigma_px} must be a positive number of pixels"),
                    ));
                }
            }
            Psf::King { r_c, beta } => {
                if !(r_c.is_finite() && r_c > 0.0) {
                    return Err(SimError::invalid(
                        "psf.r_c",
                        format!("{r_c} must be a positive number of pixels"),
                    ));
                }
                if !(beta.is_finite() && beta > 1.0) {
                    return Err(SimError::invalid(
                        "psf.beta",
                        format!("{beta} must be > 1 for the King profile to be normalisable"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The light-curve class of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variability {
    /// Constant rate.
    Constant,
    /// One fast-rise exponential-decay flare.
    Flare,
    /// Sinusoidally modulated.
    Periodic,
}

impl Variability {
    /// The name used in truth tables: `"constant"`, `"flare"` or `"periodic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Variability::Constant => "constant",
            Variability::Flare => "flare",
            Variability::Periodic => "periodic",
        }
    }

    /// The class label for learning: 0 constant, 1 flare, 2 periodic.
    pub fn label(self) -> i64 {
        match self {
            Variability::Constant => 0,
            Variability::Flare => 1,
            Variability::Periodic => 2,
        }
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

fn positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("{v} must be a positive finite number"),
        ))
    }
}

fn non_negative(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("{v} must be a finite number ≥ 0"),
        ))
    }
}

fn finite(name: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(SimError::invalid(name, format!("{v} must be finite")))
    }
}

fn fraction(name: &str, v: f64) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(SimError::invalid(name, format!("{v} must be in [0, 1]")))
    }
}

fn range(name: &str, r: [f64; 2], min: f64, max: f64) -> Result<()> {
    let [lo, hi] = r;
    if lo.is_finite() && hi.is_finite() && lo >= min && hi <= max && lo <= hi {
        Ok(())
    } else {
        Err(SimError::invalid(
            name,
            format!("[{lo}, {hi}] must be finite with {min} ≤ lo ≤ hi ≤ {max}"),
        ))
    }
}

impl EventConfig {
    /// Checks every parameter; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        if self.image_size == 0 {
            return Err(SimError::invalid("image_size", "must be at least 1 pixel"));
        }
        if self.n_sources > 10_000_000 {
            return Err(SimError::invalid(
                "n_sources",
                format!("{} is more than the 10 000 000 allowed", self.n_sources),
            ));
        }
        positive("rate_min", self.rate_min)?;
        finite("rate_max", self.rate_max)?;
        if self.rate_max < self.rate_min {
            return Err(SimError::invalid(
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
        self.psf.validate()?;
        non_negative("source_margin_px", self.source_margin_px)?;
        if 2.0 * self.source_margin_px >= self.image_size as f64 {
            return Err(SimError::invalid(
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
            return Err(SimError::invalid(
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
            return Err(SimError::invalid(
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
                    return Err(SimError::invalid("n_gtis", "must be at least 1"));
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
            return Err(SimError::invalid(
                "rate_max",
                format!(
                    "{} counts/s for {} sources over {good} s could need {src:.3e} candidate \
                     photons, more than the {MAX_CANDIDATES:e} allowed",
                    self.rate_max, self.n_sources
                ),
            ));
        }
        if bkg > MAX_CANDIDATES {
            return Err(SimError::invalid(
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
            return Err(SimError::invalid(
                "timesys",
                "must not be empty (e.g. \"TT\")",
            ));
        }
        Ok(())
    }

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
    fn disperse(&self, rng: &mut SimRng, e_true: f64) -> f64 {
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
    fn resolve_gtis(&self) -> Vec<(f64, f64)> {
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

fn validate_gtis(gtis: &[(f64, f64)]) -> Result<()> {
    if gtis.is_empty() {
        return Err(SimError::invalid(
            "gtis",
            "must hold at least one [start, stop] interval",
        ));
    }
    let mut prev_stop = f64::NEG_INFINITY;
    for (k, &(a, b)) in gtis.iter().enumerate() {
        if !(a.is_finite() && b.is_finite() && a >= 0.0 && b > a) {
            return Err(SimError::invalid(
                "gtis",
                format!("interval {k} [{a}, {b}] must have 0 ≤ start < stop (s from TSTART)"),
            ));
        }
        if a < prev_stop {
            return Err(SimError::invalid(
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

/// Truth for every source, one row per source in id order (ids 1..=n_sources).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceTruth {
    /// Source id (the SOURCE_ID of its events).
    pub id: Vec<i32>,
    /// True X position, sky pixels.
    pub x: Vec<f64>,
    /// True Y position, sky pixels.
    pub y: Vec<f64>,
    /// Quiescent (constant / pre-flare / mean periodic) rate, counts/s.
    pub rate: Vec<f64>,
    /// Photon flux, rate / effective area, photons/cm²/s.
    pub photon_flux: Vec<f64>,
    /// Photon index Γ (drawn even when `line_kev` overrides the spectrum).
    pub photon_index: Vec<f64>,
    /// Light-curve class.
    pub variability: Vec<Variability>,
    /// Number of events of this source in the event list.
    pub n_events: Vec<u64>,
    /// Period, s (NaN unless periodic).
    pub period: Vec<f64>,
    /// Pulsed fraction (NaN unless periodic).
    pub pulsed_fraction: Vec<f64>,
    /// Phase of the sinusoid at TSTART, radians (NaN unless periodic).
    pub phase: Vec<f64>,
}

impl SourceTruth {
    /// Number of sources.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// True when there are no sources.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// The table as `(name, unit, description, data)` columns.
    pub fn columns(&self) -> Vec<Column> {
        let i64s = |v: &[i32]| ColumnData::I64(v.iter().map(|&x| x as i64).collect());
        vec![
            (
                "SOURCE_ID",
                "",
                "source id (SOURCE_ID of its events)",
                i64s(&self.id),
            ),
            (
                "X",
                "pixel",
                "true sky X position",
                ColumnData::F64(self.x.clone()),
            ),
            (
                "Y",
                "pixel",
                "true sky Y position",
                ColumnData::F64(self.y.clone()),
            ),
            (
                "RATE",
                "count/s",
                "quiescent count rate",
                ColumnData::F64(self.rate.clone()),
            ),
            (
                "PHOTON_FLUX",
                "photon/cm**2/s",
                "quiescent photon flux (rate / effective area)",
                ColumnData::F64(self.photon_flux.clone()),
            ),
            (
                "PHOTON_INDEX",
                "",
                "power-law photon index (dN/dE ~ E^-index)",
                ColumnData::F64(self.photon_index.clone()),
            ),
            (
                "VARIABILITY",
                "",
                "light-curve class: constant, flare or periodic",
                ColumnData::Str(
                    self.variability
                        .iter()
                        .map(|v| v.as_str().to_string())
                        .collect(),
                ),
            ),
            (
                "LABEL",
                "",
                "class label: 0 constant, 1 flare, 2 periodic",
                ColumnData::I64(self.variability.iter().map(|v| v.label()).collect()),
            ),
            (
                "N_EVENTS",
                "count",
                "events of this source in the event list",
                ColumnData::I64(self.n_events.iter().map(|&n| n as i64).collect()),
            ),
            (
                "PERIOD",
                "s",
                "period (NaN unless periodic)",
                ColumnData::F64(self.period.clone()),
            ),
            (
                "PULSED_FRACTION",
                "",
                "pulsed fraction (NaN unless periodic)",
                ColumnData::F64(self.pulsed_fraction.clone()),
            ),
            (
                "PHASE",
                "rad",
                "sinusoid phase at TSTART (NaN unless periodic)",
                ColumnData::F64(self.phase.clone()),
            ),
        ]
    }
}

/// Truth for every flare, one row per flaring source in id order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlareTruth {
    /// Id of the flaring source.
    pub source_id: Vec<i32>,
    /// Onset (start of the linear rise), mission time, s.
    pub t_start: Vec<f64>,
    /// Peak time, mission time, s (= t_start + rise; always inside a GTI).
    pub t_peak: Vec<f64>,
    /// Rise time, s.
    pub rise: Vec<f64>,
    /// Exponential decay time, s.
    pub decay: Vec<f64>,
    /// Peak rate / quiescent rate.
    pub amplitude: Vec<f64>,
}

impl FlareTruth {
    /// Number of flares.
    pub fn len(&self) -> usize {
        self.source_id.len()
    }

    /// True when there are no flares.
    pub fn is_empty(&self) -> bool {
        self.source_id.is_empty()
    }

    /// The table as `(name, unit, description, data)` columns.
    pub fn columns(&self) -> Vec<Column> {
        vec![
            (
                "SOURCE_ID",
                "",
                "id of the flaring source",
                ColumnData::I64(self.source_id.iter().map(|&x| x as i64).collect()),
            ),
            (
                "T_START",
                "s",
                "flare onset, mission time",
                ColumnData::F64(self.t_start.clone()),
            ),
            (
                "T_PEAK",
                "s",
                "flare peak, mission time",
                ColumnData::F64(self.t_peak.clone()),
            ),
            (
                "RISE",
                "s",
                "linear rise time, onset to peak",
                ColumnData::F64(self.rise.clone()),
            ),
            (
                "DECAY",
                "s",
                "exponential decay time",
                ColumnData::F64(self.decay.clone()),
            ),
            (
                "AMPLITUDE",
                "",
                "peak rate / quiescent rate",
                ColumnData::F64(self.amplitude.clone()),
            ),
        ]
    }
}

/// A simulated observation: the EVENTS columns (all the same length, sorted by TIME), its GTIs,
/// the truth tables and the header keywords.
///
/// Note that `==` is false between two identical lists whose truth tables hold NaN (the
/// PERIOD of non-periodic sources); compare their `Debug` output to test bit-identity.
#[derive(Debug, Clone, PartialEq)]
pub struct EventList {
    /// Arrival time, mission time, s.
    pub time: Vec<f64>,
    /// Sky X, pixels.
    pub x: Vec<f32>,
    /// Sky Y, pixels.
    pub y: Vec<f32>,
    /// Measured energy, keV.
    pub energy: Vec<f32>,
    /// PI channel.
    pub pi: Vec<i16>,
    /// Truth: source id, 0 for background.
    pub source_id: Vec<i32>,
    /// Good time intervals, `(start, stop)` in mission time, s.
    pub gti: Vec<(f64, f64)>,
    /// Per-source truth.
    pub sources: SourceTruth,
    /// Per-flare truth.
    pub flares: FlareTruth,
    /// EVENTS header keywords: `(name, value, comment)`.
    pub keywords: Vec<(String, CardValue, String)>,
    /// The configuration that produced this list (for provenance and for [`Self::columns_meta`]).
    pub config: EventConfig,
}

impl EventList {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Total good time (sum of GTI lengths), s: the EXPOSURE keyword (recomputed from [`Self::gti`]
    /// if that keyword is missing).
    pub fn exposure(&self) -> f64 {
        match self.keyword("EXPOSURE") {
            Some(CardValue::Float(v)) => *v,
            _ => self.gti.iter().map(|&(a, b)| b - a).sum(),
        }
    }

    /// The value of header keyword `name`, if present.
    pub fn keyword(&self, name: &str) -> Option<&CardValue> {
        self.keywords
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, _)| v)
    }

    /// Metadata of the EVENTS columns in order TIME, X, Y, ENERGY, PI, SOURCE_ID.
    pub fn columns_meta(&self) -> Vec<ColumnMeta> {
        let c = &self.config;
        let tstop = self.gti.last().map_or(c.tstart, |g| g.1);
        let edge = c.image_size as f64 + 0.5;
        vec![
            ColumnMeta {
                name: "TIME",
                tform: "D",
                unit: "s",
                tlmin: Some(c.tstart),
                tlmax: Some(tstop),
                description: "arrival time, mission time since MJDREF",
            },
            ColumnMeta {
                name: "X",
                tform: "E",
                unit: "pixel",
                tlmin: Some(0.5),
                tlmax: Some(edge),
                description: "sky X coordinate",
            },
            ColumnMeta {
                name: "Y",
                tform: "E",
                unit: "pixel",
                tlmin: Some(0.5),
                tlmax: Some(edge),
                description: "sky Y coordinate",
            },
            ColumnMeta {
                name: "ENERGY",
                tform: "E",
                unit: "keV",
                tlmin: None,
                tlmax: None,
                description: "measured photon energy",
            },
            ColumnMeta {
                name: "PI",
                tform: "I",
                unit: "chan",
                tlmin: Some(1.0),
                tlmax: Some(c.n_channels as f64),
                description: "pulse invariant channel, floor(ENERGY/chan width)+1",
            },
            ColumnMeta {
                name: "SOURCE_ID",
                tform: "J",
                unit: "",
                tlmin: Some(0.0),
                tlmax: Some(c.n_sources as f64),
                description: "truth: source id, 0 = background",
            },
        ]
    }

    /// The model count rate (counts/s) of source `source_id` at mission time `time`, from the
    /// truth tables; 0 for an unknown id. Not masked by GTIs. Useful for plotting the true
    /// light curve next to binned events.
    pub fn source_rate_at(&self, source_id: i32, time: f64) -> f64 {
        let Some(row) = self.sources.id.iter().position(|&id| id == source_id) else {
            return 0.0;
        };
        let t_rel = time - self.config.tstart;
        let q = self.sources.rate[row];
        let profile = match self.sources.variability[row] {
            Variability::Constant => Profile::Constant,
            Variability::Periodic => Profile::Periodic {
                period: self.sources.period[row],
                pulsed_fraction: self.sources.pulsed_fraction[row],
                phase: self.sources.phase[row],
            },
            Variability::Flare => {
                let Some(f) = self.flares.source_id.iter().position(|&id| id == source_id) else {
                    return q;
                };
                Profile::Flare {
                    t_start: self.flares.t_start[f] - self.config.tstart,
                    rise: self.flares.rise[f],
                    decay: self.flares.decay[f],
                    amplitude: self.flares.amplitude[f],
                }
            }
        };
        q * profile.factor(t_rel)
    }
}

/// The time profile of a source: λ(t) = quiescent rate × `factor(t)`, t from TSTART.
#[derive(Debug, Clone, Copy)]
enum Profile {
    Constant,
    Flare {
        t_start: f64,
        rise: f64,
        decay: f64,
        amplitude: f64,
    },
    Periodic {
        period: f64,
        pulsed_fraction: f64,
        phase: f64,
    },
}

impl Profile {
    fn factor(&self, t: f64) -> f64 {
        match *self {
            Profile::Constant => 1.0,
            Profile::Flare {
                t_start,
                rise,
                decay,
                amplitude,
            } => {
                let t_peak = t_start + rise;
                let g = if t < t_start {
                    0.0
                } else if t < t_peak {
                    (t - t_start) / rise
                } else {
                    (-(t - t_peak) / decay).exp()
                };
                1.0 + (amplitude - 1.0) * g
            }
            Profile::Periodic {
                period,
                pulsed_fraction,
                phase,
            } => 1.0 + pulsed_fraction * (2.0 * PI_F64 * t / period + phase).sin(),
        }
    }

    /// An upper bound of `factor` over all t (exact maximum), the thinning envelope.
    fn max_factor(&self) -> f64 {
        match *self {
            Profile::Constant => 1.0,
            Profile::Flare { amplitude, .. } => amplitude,
            Profile::Periodic {
                pulsed_fraction, ..
            } => 1.0 + pulsed_fraction,
        }
    }
}

/// One event before the columns are split out.
#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    x: f32,
    y: f32,
    e: f32,
    pi: i16,
    id: i32,
}

/// A simulated source: its truth and its events (times still relative to TSTART).
struct SourceSim {
    x: f64,
    y: f64,
    rate: f64,
    photon_index: f64,
    kind: Variability,
    profile: Profile,
    events: Vec<Event>,
}

/// Draws E from dN/dE ∝ E^−γ on [lo, hi] by inverting the CDF.
fn sample_power_law(rng: &mut SimRng, gamma: f64, lo: f64, hi: f64) -> f64 {
    let u: f64 = rng.random();
    let a = 1.0 - gamma;
    let e = if a.abs() < 1e-6 {
        // Γ = 1: the CDF is logarithmic.
        lo * (hi / lo).powf(u)
    } else {
        let (la, ha) = (lo.powf(a), hi.powf(a));
        (la + u * (ha - la)).powf(1.0 / a)
    };
    e.clamp(lo, hi)
}

fn uniform_in(rng: &mut SimRng, [lo, hi]: [f64; 2]) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn log_uniform_in(rng: &mut SimRng, [lo, hi]: [f64; 2]) -> f64 {
    lo * (hi / lo).powf(rng.random::<f64>())
}

/// An exponential waiting time of rate `rate` (> 0).
fn exp_wait(rng: &mut SimRng, rate: f64) -> f64 {
    // 1 − u is in (0, 1], so the log is finite.
    -(1.0 - rng.random::<f64>()).ln() / rate
}

/// Which sources (0-based indices) flare and which are periodic: exact counts, random members.
fn assign_kinds(cfg: &EventConfig) -> Vec<Variability> {
    let n = cfg.n_sources;
    let n_var = ((cfg.variable_fraction * n as f64).round() as usize).min(n);
    let n_flare = ((cfg.flare_fraction * n_var as f64).round() as usize).min(n_var);
    let mut rng = stream_rng(cfg.seed, "events.kinds", 0);
    // Fisher–Yates written out so the permutation does not depend on rand's shuffle internals.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let mut kinds = vec![Variability::Constant; n];
    for (rank, &idx) in order.iter().enumerate().take(n_var) {
        kinds[idx] = if rank < n_flare {
            Variability::Flare
        } else {
            Variability::Periodic
        };
    }
    kinds
}

/// The point in good time at good-time offset `s` (0 ≤ s ≤ total good time).
fn good_time_point(gtis: &[(f64, f64)], mut s: f64) -> f64 {
    for &(a, b) in gtis {
        if s < b - a {
            return a + s;
        }
        s -= b - a;
    }
    // Only reached through rounding at the very end; stay strictly inside the last GTI.
    let (a, b) = gtis[gtis.len() - 1];
    a + (b - a) * (1.0 - 1e-12)
}

fn in_field(cfg: &EventConfig, x: f64, y: f64) -> bool {
    let hi = cfg.image_size as f64 + 0.5;
    (0.5..hi).contains(&x) && (0.5..hi).contains(&y)
}

/// A field coordinate as f32, kept below the (exclusive) upper edge that rounding to f32 could
/// otherwise reach.
fn field_f32(cfg: &EventConfig, v: f64) -> f32 {
    let hi = (cfg.image_size as f64 + 0.5) as f32;
    let f = v as f32;
    if f >= hi {
        // The largest f32 below `hi` (hi > 0, so one ulp down is the previous bit pattern).
        f32::from_bits(hi.to_bits() - 1)
    } else {
        f
    }
}

fn simulate_source(
    cfg: &EventConfig,
    index: usize,
    kind: Variability,
    gtis: &[(f64, f64)],
    good_total: f64,
) -> SourceSim {
    let mut rng = stream_rng(cfg.seed, "events.source", index as u64);
    let id = index as i32 + 1;
    // Parameters, always all of them and in this order (see the module docs).
    let lo = 0.5 + cfg.source_margin_px;
    let span = cfg.image_size as f64 - 2.0 * cfg.source_margin_px;
    let x = lo + span * rng.random::<f64>();
    let y = lo + span * rng.random::<f64>();
    let rate = {
        // Inverse CDF of the truncated Pareto N(>S) ∝ S^−α on [rate_min, rate_max].
        let u: f64 = rng.random();
        let r = cfg.rate_min / cfg.rate_max;
        let tail = 1.0 - r.powf(cfg.lognlogs_slope);
        (cfg.rate_min * (1.0 - u * tail).powf(-1.0 / cfg.lognlogs_slope))
            .clamp(cfg.rate_min, cfg.rate_max)
    };
    let z: f64 = rng.sample(StandardNormal);
    let photon_index = cfg.photon_index_mean + cfg.photon_index_sigma * z;
    let amplitude = uniform_in(&mut rng, cfg.flare_amplitude);
    let rise = log_uniform_in(&mut rng, cfg.flare_rise_s);
    let decay = log_uniform_in(&mut rng, cfg.flare_decay_s);
    let t_peak = good_time_point(gtis, good_total * rng.random::<f64>());
    let period = log_uniform_in(&mut rng, cfg.period_s);
    let pulsed_fraction = uniform_in(&mut rng, cfg.pulsed_fraction);
    let phase = 2.0 * PI_F64 * rng.random::<f64>();

    let profile = match kind {
        Variability::Constant => Profile::Constant,
        Variability::Flare => Profile::Flare {
            t_start: t_peak - rise,
            rise,
            decay,
            amplitude,
        },
        Variability::Periodic => Profile::Periodic {
            period,
            pulsed_fraction,
            phase,
        },
    };

    // Lewis–Shedler thinning: candidates from a homogeneous process at the peak rate, each kept
    // with probability λ(t)/λ_max. Restarting at each GTI start is exact by memorylessness.
    let max_f = profile.max_factor();
    let lam_max = rate * max_f;
    let mut events = Vec::with_capacity((rate * good_total * 1.2) as usize + 16);
    for &(a, b) in gtis {
        let mut t = a;
        loop {
            t += exp_wait(&mut rng, lam_max);
            if t >= b {
                break;
            }
            if !matches!(profile, Profile::Constant)
                && rng.random::<f64>() * max_f >= profile.factor(t)
            {
                continue;
            }
            let (dx, dy) = cfg.psf.sample_offset(&mut rng);
            let e_true = match cfg.line_kev {
                Some(line) => line,
                None => sample_power_law(&mut rng, photon_index, cfg.e_min, cfg.e_max),
            };
            let e = cfg.disperse(&mut rng, e_true) as f32;
            let (ex, ey) = (x + dx, y + dy);
            // Photons scattered off the field are lost, as off the detector.
            if !in_field(cfg, ex, ey) {
                continue;
            }
            events.push(Event {
                t,
                x: field_f32(cfg, ex),
                y: field_f32(cfg, ey),
                e,
                pi: cfg.pi_channel(e as f64),
                id,
            });
        }
    }
    SourceSim {
        x,
        y,
        rate,
        photon_index,
        kind,
        profile,
        events,
    }
}

fn simulate_background(cfg: &EventConfig, g: usize, (a, b): (f64, f64)) -> Vec<Event> {
    if cfg.background_rate == 0.0 {
        return Vec::new();
    }
    let mut rng = stream_rng(cfg.seed, "events.background", g as u64);
    let size = cfg.image_size as f64;
    let mut out = Vec::with_capacity((cfg.background_rate * (b - a) * 1.2) as usize + 16);
    let mut t = a;
    loop {
        t += exp_wait(&mut rng, cfg.background_rate);
        if t >= b {
            break;
        }
        let x = 0.5 + size * rng.random::<f64>();
        let y = 0.5 + size * rng.random::<f64>();
        let e_true = sample_power_law(&mut rng, cfg.background_photon_index, cfg.e_min, cfg.e_max);
        let e = cfg.disperse(&mut rng, e_true) as f32;
        out.push(Event {
            t,
            x: field_f32(cfg, x),
            y: field_f32(cfg, y),
            e,
            pi: cfg.pi_channel(e as f64),
            id: 0,
        });
    }
    out
}

/// Calendar date-time `YYYY-MM-DDThh:mm:ss` of a Modified Julian Date (no leap seconds: the
/// date is in the same time scale as the MJD).
fn mjd_to_iso(mjd: f64) -> String {
    let secs = (mjd * 86_400.0).round() as i64;
    let day = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Fliegel & Van Flandern (1968) on the Julian day number of that civil day.
    let l = day + 2_400_001 + 68_569;
    let n = 4 * l / 146_097;
    let l = l - (146_097 * n + 3) / 4;
    let i = 4000 * (l + 1) / 1_461_001;
    let l = l - 1461 * i / 4 + 31;
    let j = 80 * l / 2447;
    let d = l - 2447 * j / 80;
    let l = j / 11;
    let m = j + 2 - 12 * l;
    let y = 100 * (n - 49) + i + l;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Header keywords; `exposure` is summed from the GTIs relative to TSTART, which is exact where
/// differences of large absolute mission times would lose ~1e-7 s.
fn build_keywords(
    cfg: &EventConfig,
    gti: &[(f64, f64)],
    exposure: f64,
) -> Vec<(String, CardValue, String)> {
    let tstop = gti.last().map_or(cfg.tstart, |g| g.1);
    let mjdrefi = cfg.mjdref.floor();
    let s = |v: &str| CardValue::Str(v.to_string());
    let f = CardValue::Float;
    let mut k: Vec<(&str, CardValue, &str)> = vec![
        ("TELESCOP", s(&cfg.telescop), "mission name"),
        ("INSTRUME", s(&cfg.instrume), "instrument name"),
        ("HDUCLASS", s("OGIP"), "format conforms to OGIP standard"),
        ("HDUCLAS1", s("EVENTS"), "extension contains an event list"),
        ("CHANTYPE", s("PI"), "channel type of the PI column"),
        (
            "DETCHANS",
            CardValue::Int(cfg.n_channels as i64),
            "number of PI channels",
        ),
        ("TIMESYS", s(&cfg.timesys), "time system of TIME"),
        ("TIMEUNIT", s("s"), "unit of time keywords"),
        ("TIMEREF", s("LOCAL"), "times are not barycentred"),
        ("TASSIGN", s("SATELLITE"), "where times are assigned"),
        (
            "MJDREFI",
            CardValue::Int(mjdrefi as i64),
            "integer part of MJD of time zero",
        ),
        (
            "MJDREFF",
            f(cfg.mjdref - mjdrefi),
            "fractional part of MJD of time zero",
        ),
        ("TIMEZERO", f(0.0), "clock correction, s"),
        ("TSTART", f(cfg.tstart), "observation start, mission time"),
        ("TSTOP", f(tstop), "observation stop, mission time"),
        (
            "DATE-OBS",
            s(&mjd_to_iso(cfg.mjdref + cfg.tstart / 86_400.0)),
            "start, in TIMESYS",
        ),
        (
            "DATE-END",
            s(&mjd_to_iso(cfg.mjdref + tstop / 86_400.0)),
            "stop, in TIMESYS",
        ),
        ("ONTIME", f(exposure), "sum of good time intervals, s"),
        (
            "LIVETIME",
            f(exposure),
            "ontime corrected for dead time (none), s",
        ),
        (
            "EXPOSURE",
            f(exposure),
            "effective exposure (flat effective area), s",
        ),
        ("DEADC", f(1.0), "dead time correction (no dead time)"),
        ("EQUINOX", f(2000.0), "equinox of celestial coordinates"),
        ("RADESYS", s("ICRS"), "celestial reference frame"),
        (
            "CREATOR",
            s(concat!("deepsky-sim ", env!("CARGO_PKG_VERSION"))),
            "simulator",
        ),
        (
            "SIMNSRC",
            CardValue::Int(cfg.n_sources as i64),
            "number of simulated sources",
        ),
    ];
    // FITS integers are signed 64-bit; a seed above i64::MAX is kept exact as a string.
    let seed = match i64::try_from(cfg.seed) {
        Ok(v) => CardValue::Int(v),
        Err(_) => CardValue::Str(cfg.seed.to_string()),
    };
    k.push(("SIMSEED", seed, "random seed of the simulation"));
    k.into_iter()
        .map(|(n, v, c)| (n.to_string(), v, c.to_string()))
        .collect()
}

/// Simulates an observation. Progress counts one unit per source and one per GTI (background),
/// `n_sources + number of GTIs` in total.
///
/// The result is bit-identical for the same configuration whatever the number of rayon threads.
/// Errors name the first invalid parameter (see [`EventConfig::validate`]).
pub fn simulate_events(cfg: &EventConfig, progress: &dyn Progress) -> Result<EventList> {
    cfg.validate()?;
    let gtis_rel = cfg.resolve_gtis();
    let good_total: f64 = gtis_rel.iter().map(|&(a, b)| b - a).sum();
    let kinds = assign_kinds(cfg);

    let sims: Vec<SourceSim> = (0..cfg.n_sources)
        .into_par_iter()
        .map(|i| {
            let s = simulate_source(cfg, i, kinds[i], &gtis_rel, good_total);
            progress.inc(1);
            s
        })
        .collect();
    let background: Vec<Vec<Event>> = gtis_rel
        .par_iter()
        .enumerate()
        .map(|(g, &gti)| {
            let b = simulate_background(cfg, g, gti);
            progress.inc(1);
            b
        })
        .collect();

    let total = sims.iter().map(|s| s.events.len()).sum::<usize>()
        + background.iter().map(Vec::len).sum::<usize>();
    let mut events = Vec::with_capacity(total);
    for s in &sims {
        events.extend_from_slice(&s.events);
    }
    for b in &background {
        events.extend_from_slice(b);
    }
    // Stable sort: equal times keep the sources-then-background order, so it is deterministic.
    events.sort_by(|a, b| a.t.total_cmp(&b.t));

    let mut sources = SourceTruth::default();
    let mut flares = FlareTruth::default();
    for (i, s) in sims.iter().enumerate() {
        sources.id.push(i as i32 + 1);
        sources.x.push(s.x);
        sources.y.push(s.y);
        sources.rate.push(s.rate);
        sources.photon_flux.push(s.rate / cfg.effective_area_cm2);
        sources.photon_index.push(s.photon_index);
        sources.variability.push(s.kind);
        sources.n_events.push(s.events.len() as u64);
        let (p, pf, ph) = match s.profile {
            Profile::Periodic {
                period,
                pulsed_fraction,
                phase,
            } => (period, pulsed_fraction, phase),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        sources.period.push(p);
        sources.pulsed_fraction.push(pf);
        sources.phase.push(ph);
        if let Profile::Flare {
            t_start,
            rise,
            decay,
            amplitude,
        } = s.profile
        {
            flares.source_id.push(i as i32 + 1);
            flares.t_start.push(cfg.tstart + t_start);
            flares.t_peak.push(cfg.tstart + t_start + rise);
            flares.rise.push(rise);
            flares.decay.push(decay);
            flares.amplitude.push(amplitude);
        }
    }

    let gti: Vec<(f64, f64)> = gtis_rel
        .iter()
        .map(|&(a, b)| (cfg.tstart + a, cfg.tstart + b))
        .collect();
    let keywords = build_keywords(cfg, &gti, good_total);
    let n = events.len();
    let mut out = EventList {
        time: Vec::with_capacity(n),
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        energy: Vec::with_capacity(n),
        pi: Vec::with_capacity(n),
        source_id: Vec::with_capacity(n),
        gti,
        sources,
        flares,
        keywords,
        config: cfg.clone(),
    };
    for e in &events {
        out.time.push(cfg.tstart + e.t);
        out.x.push(e.x);
        out.y.push(e.y);
        out.energy.push(e.e);
        out.pi.push(e.pi);
        out.source_id.push(e.id);
    }
    tracing::info!(
        events = n,
        sources = cfg.n_sources,
        flares = out.flares.len(),
        exposure = out.exposure(),
        "simulated event list"
    );
    Ok(out)
}

/// Light-curve features per truth source, for anomaly (flare / pulsation) detection. One row per
/// source in [`SourceTruth`] order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureTable {
    /// Source id.
    pub source_id: Vec<i32>,
    /// Extraction centre X (the truth position), pixels.
    pub x: Vec<f64>,
    /// Extraction centre Y (the truth position), pixels.
    pub y: Vec<f64>,
    /// Extraction radius, pixels.
    pub radius: Vec<f64>,
    /// Events within the radius (any SOURCE_ID: background and neighbours included, as in a
    /// real extraction).
    pub n_events: Vec<i64>,
    /// Light-curve bins used.
    pub n_bins: Vec<i64>,
    /// Mean count rate, n_events / EXPOSURE, counts/s (not background-subtracted).
    pub rate: Vec<f64>,
    /// Normalised excess variance (S² − ⟨σ²_err⟩) / ⟨r⟩² of the binned rates (Vaughan et al.
    /// 2003), with Poisson errors from the mean rate; ≈ 0 for a constant source.
    pub excess_variance: Vec<f64>,
    /// Fractional variability amplitude sqrt(max(excess_variance, 0)).
    pub frac_var: Vec<f64>,
    /// Maximum / median binned rate (over the mean rate when the median is 0).
    pub max_median_ratio: Vec<f64>,
    /// χ² of a constant rate per degree of freedom (Pearson, expected counts from the mean rate).
    pub chi2_dof: Vec<f64>,
    /// Skewness of the binned rates (flares are right-skewed).
    pub skewness: Vec<f64>,
    /// Hardness ratio (H − S)/(H + S), H = counts 2–8 keV, S = 0.5–2 keV (measured ENERGY).
    pub hardness_ratio: Vec<f64>,
    /// Mean measured energy, keV.
    pub mean_energy: Vec<f64>,
    /// Truth label: 0 constant, 1 flare, 2 periodic.
    pub label: Vec<i64>,
}

impl FeatureTable {
    /// The table as `(name, unit, description, data)` columns.
    pub fn columns(&self) -> Vec<Column> {
        let f = |v: &Vec<f64>| ColumnData::F64(v.clone());
        vec![
            (
                "SOURCE_ID",
                "",
                "truth source id",
                ColumnData::I64(self.source_id.iter().map(|&x| x as i64).collect()),
            ),
            (
                "X",
                "pixel",
                "extraction centre X (truth position)",
                f(&self.x),
            ),
            (
                "Y",
                "pixel",
                "extraction centre Y (truth position)",
                f(&self.y),
            ),
            ("RADIUS", "pixel", "extraction radius", f(&self.radius)),
            (
                "N_EVENTS",
                "count",
                "events within the radius",
                ColumnData::I64(self.n_events.clone()),
            ),
            (
                "N_BINS",
                "",
                "light-curve bins used",
                ColumnData::I64(self.n_bins.clone()),
            ),
            (
                "RATE",
                "count/s",
                "mean count rate, not background-subtracted",
                f(&self.rate),
            ),
            (
                "EXCESS_VARIANCE",
                "",
                "normalised excess variance",
                f(&self.excess_variance),
            ),
            (
                "FRAC_VAR",
                "",
                "fractional variability amplitude",
                f(&self.frac_var),
            ),
            (
                "MAX_MEDIAN_RATIO",
                "",
                "max / median binned rate",
                f(&self.max_median_ratio),
            ),
            (
                "CHI2_DOF",
                "",
                "chi-squared of constancy per dof",
                f(&self.chi2_dof),
            ),
            (
                "SKEWNESS",
                "",
                "skewness of the binned rates",
                f(&self.skewness),
            ),
            (
                "HARDNESS_RATIO",
                "",
                "(H-S)/(H+S), H 2-8 keV, S 0.5-2 keV",
                f(&self.hardness_ratio),
            ),
            (
                "MEAN_ENERGY",
                "keV",
                "mean measured energy",
                f(&self.mean_energy),
            ),
            (
                "LABEL",
                "",
                "truth: 0 constant, 1 flare, 2 periodic",
                ColumnData::I64(self.label.clone()),
            ),
        ]
    }
}

/// [`light_curve_features_with_radius`] with the radius enclosing 90 % of the PSF (at least
/// 1 pixel), from the list's configuration.
///
/// # Panics
///
/// If `bin_s` is not a positive finite number of seconds.
pub fn light_curve_features(ev: &EventList, bin_s: f64) -> FeatureTable {
    let radius = ev.config.psf.enclosed_radius(0.9).max(1.0);
    light_curve_features_with_radius(ev, bin_s, radius)
}

/// Light-curve features of the events within `radius_px` of each truth source position, binned
/// in `bin_s` seconds.
///
/// Bins tile each GTI from its start; a final partial bin is kept if at least half a bin long
/// (rates use each bin's own length) and bins never straddle a gap. Statistics needing a spread
/// are NaN with fewer than 2 bins or no events; the hardness ratio is NaN with no events in
/// either band.
///
/// # Panics
///
/// If `bin_s` is not a positive finite number of seconds.
pub fn light_curve_features_with_radius(
    ev: &EventList,
    bin_s: f64,
    radius_px: f64,
) -> FeatureTable {
    assert!(
        bin_s.is_finite() && bin_s > 0.0,
        "bin_s must be positive, got {bin_s}"
    );
    // Bins: (GTI index, start, length) with the first bin index of each GTI.
    let mut bin_len = Vec::new();
    let mut first_bin = Vec::with_capacity(ev.gti.len());
    let mut n_in_gti = Vec::with_capacity(ev.gti.len());
    for &(a, b) in &ev.gti {
        first_bin.push(bin_len.len());
        let n_full = ((b - a) / bin_s).floor() as usize;
        let rest = (b - a) - n_full as f64 * bin_s;
        let mut n = n_full;
        bin_len.extend(std::iter::repeat_n(bin_s, n_full));
        if rest >= 0.5 * bin_s {
            bin_len.push(rest);
            n += 1;
        }
        n_in_gti.push(n);
    }
    let exposure = ev.exposure();
    let r2 = radius_px * radius_px;

    let rows: Vec<_> = (0..ev.sources.len())
        .into_par_iter()
        .map(|row| {
            let (sx, sy) = (ev.sources.x[row], ev.sources.y[row]);
            let mut counts = vec![0.0f64; bin_len.len()];
            let (mut n, mut hard, mut soft, mut e_sum) = (0i64, 0u64, 0u64, 0.0f64);
            for k in 0..ev.len() {
                let dx = ev.x[k] as f64 - sx;
                let dy = ev.y[k] as f64 - sy;
                if dx * dx + dy * dy > r2 {
                    continue;
                }
                n += 1;
                let e = ev.energy[k] as f64;
                e_sum += e;
                if (2.0..8.0).contains(&e) {
                    hard += 1;
                } else if (0.5..2.0).contains(&e) {
                    soft += 1;
                }
                let t = ev.time[k];
                // The GTI holding t: the last one starting at or before it.
                let g = ev.gti.partition_point(|&(a, _)| a <= t);
                if g == 0 || t >= ev.gti[g - 1].1 {
                    continue;
                }
                let g = g - 1;
                let kb = ((t - ev.gti[g].0) / bin_s).floor() as usize;
                if kb < n_in_gti[g] {
                    counts[first_bin[g] + kb] += 1.0;
                }
            }
            let lc = lc_stats(&counts, &bin_len);
            let hr = if hard + soft > 0 {
                (hard as f64 - soft as f64) / (hard + soft) as f64
            } else {
                f64::NAN
            };
            let mean_e = if n > 0 { e_sum / n as f64 } else { f64::NAN };
            (n, lc, hr, mean_e)
        })
        .collect();

    let mut out = FeatureTable::default();
    for (row, (n, lc, hr, mean_e)) in rows.into_iter().enumerate() {
        out.source_id.push(ev.sources.id[row]);
        out.x.push(ev.sources.x[row]);
        out.y.push(ev.sources.y[row]);
        out.radius.push(radius_px);
        out.n_events.push(n);
        out.n_bins.push(bin_len.len() as i64);
        out.rate.push(if exposure > 0.0 {
            n as f64 / exposure
        } else {
            f64::NAN
        });
        out.excess_variance.push(lc.nev);
        out.frac_var.push(if lc.nev.is_nan() {
            f64::NAN
        } else {
            lc.nev.max(0.0).sqrt()
        });
        out.max_median_ratio.push(lc.max_median);
        out.chi2_dof.push(lc.chi2_dof);
        out.skewness.push(lc.skewness);
        out.hardness_ratio.push(hr);
        out.mean_energy.push(mean_e);
        out.label.push(ev.sources.variability[row].label());
    }
    out
}

struct LcStats {
    nev: f64,
    max_median: f64,
    chi2_dof: f64,
    skewness: f64,
}

fn lc_stats(counts: &[f64], len: &[f64]) -> LcStats {
    let nan = LcStats {
        nev: f64::NAN,
        max_median: f64::NAN,
        chi2_dof: f64::NAN,
        skewness: f64::NAN,
    };
    let nb = counts.len();
    let c_tot: f64 = counts.iter().sum();
    let t_tot: f64 = len.iter().sum();
    if nb < 2 || c_tot == 0.0 {
        return nan;
    }
    let rates: Vec<f64> = counts.iter().zip(len).map(|(c, l)| c / l).collect();
    // Mean rate of the constant model (exposure-weighted), used for expected counts and errors;
    // model-based errors avoid the zero error of empty bins.
    let r_w = c_tot / t_tot;
    let nbf = nb as f64;
    let r_mean = rates.iter().sum::<f64>() / nbf;
    let m2 = rates.iter().map(|r| (r - r_mean).powi(2)).sum::<f64>() / nbf;
    let m3 = rates.iter().map(|r| (r - r_mean).powi(3)).sum::<f64>() / nbf;
    let s2 = m2 * nbf / (nbf - 1.0);
    let err2 = len.iter().map(|l| r_w / l).sum::<f64>() / nbf;
    let nev = (s2 - err2) / (r_mean * r_mean);
    let chi2 = counts
        .iter()
        .zip(len)
        .map(|(c, l)| (c - r_w * l).powi(2) / (r_w * l))
        .sum::<f64>();
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if nb % 2 == 1 {
        sorted[nb / 2]
    } else {
        0.5 * (sorted[nb / 2 - 1] + sorted[nb / 2])
    };
    let max = sorted[nb - 1];
    LcStats {
        nev,
        max_median: max / if median > 0.0 { median } else { r_w },
        chi2_dof: chi2 / (nbf - 1.0),
        skewness: if m2 > 0.0 {
            m3 / m2.powf(1.5)
        } else {
            f64::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mjd_dates() {
        assert_eq!(mjd_to_iso(50814.0), "1998-01-01T00:00:00");
        assert_eq!(mjd_to_iso(51544.5), "2000-01-01T12:00:00");
        assert_eq!(
            mjd_to_iso(60000.0 + 1.0 / 86400.0 * 3661.0),
            "2023-02-25T01:01:01"
        );
    }

    #[test]
    fn power_law_sampling_handles_gamma_one_and_bounds() {
        let mut rng = stream_rng(3, "t", 0);
        for g in [0.0, 1.0, 1.0 + 1e-8, 2.5] {
            for _ in 0..1000 {
                let e = sample_power_law(&mut rng, g, 0.5, 8.0);
                assert!((0.5..=8.0).contains(&e), "{g} {e}");
            }
        }
    }

    #[test]
    fn flare_profile_shape() {
        let p = Profile::Flare {
            t_start: 100.0,
            rise: 50.0,
            decay: 200.0,
            amplitude: 11.0,
        };
        assert_eq!(p.factor(0.0), 1.0);
        assert!((p.factor(125.0) - 6.0).abs() < 1e-12);
        assert!((p.factor(150.0) - 11.0).abs() < 1e-12);
        assert!((p.factor(350.0) - (1.0 + 10.0 / std::f64::consts::E)).abs() < 1e-12);
        assert_eq!(p.max_factor(), 11.0);
    }

    #[test]
    fn kinds_have_exact_counts() {
        let cfg = EventConfig {
            n_sources: 40,
            variable_fraction: 0.5,
            flare_fraction: 0.25,
            ..EventConfig::default()
        };
        let k = assign_kinds(&cfg);
        let count = |v| k.iter().filter(|&&x| x == v).count();
        assert_eq!(count(Variability::Flare), 5);
        assert_eq!(count(Variability::Periodic), 15);
        assert_eq!(count(Variability::Constant), 20);
    }

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
}
