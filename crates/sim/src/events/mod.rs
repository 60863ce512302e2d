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

// The settings and their checks (config), the output event list and truth tables (list),
// the light-curve shapes of variable sources (profile), the simulation (simulate), and the
// light-curve features computed from a list (features).
pub(crate) mod config;
pub(crate) mod features;
pub(crate) mod list;
pub(crate) mod profile;
pub(crate) mod simulate;

/// The header-card and table-column types of the writers, also reachable from here.
pub use crate::output::{CardValue, Column, ColumnData};
pub use config::{EventConfig, Psf};
pub use features::{light_curve_features, light_curve_features_with_radius, FeatureTable};
pub use list::{ColumnMeta, EventList, FlareTruth, SourceTruth, Variability};
pub use simulate::simulate_events;
