//! A simulated observation ([`EventList`]) and its truth tables.

use super::config::EventConfig;
use super::profile::Profile;
use crate::output::{CardValue, Column, ColumnData};

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
