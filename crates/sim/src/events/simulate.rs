//! [`simulate_events`]: sources and background by thinned Poisson processes within the good
//! time intervals, merged into one time-sorted list with its truth and header keywords.

use std::f64::consts::PI as PI_F64;

use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use deepsky_core::Validate;

use super::config::EventConfig;
use super::list::{EventList, FlareTruth, SourceTruth, Variability};
use super::profile::Profile;
use crate::error::Result;
use crate::output::CardValue;
use crate::rng::{stream_rng, SimRng};
use crate::Progress;

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
}
