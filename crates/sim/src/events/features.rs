//! Light-curve features per source (variability, hardness, mean energy) from an event list,
//! the input of flare and pulsation detection.

use rayon::prelude::*;

use super::list::EventList;
use crate::output::{Column, ColumnData};

/// Light-curve features per truth source, for anomaly (flare / pulsation) detection. One row per
/// source in [`SourceTruth`](super::SourceTruth) order.
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
