//! Many showers in parallel: a [`ShowerSet`] for a [`ShowerConfig`], or summed diagnostics for
//! physics checks.

use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;

use deepsky_core::Validate;

use super::calorimeter::Calorimeter;
use super::config::{EnergySpec, Particle, ShowerConfig};
use super::diagnostics::ShowerDiagnostics;
use super::set::{OneShower, ShowerSet};
use super::transport::{simulate_one, simulate_one_with_diagnostics};
use crate::rng::stream_rng;
use crate::{Progress, Result};

/// Simulates `cfg.n_showers` showers in parallel (rayon) in the CaloGAN calorimeter.
///
/// Shower `i` draws its energy and its cascade from `stream_rng(cfg.seed, "shower", i)`, so the
/// result does not depend on the number of threads. Calls `progress.inc(1)` per shower.
pub fn simulate_showers(cfg: &ShowerConfig, progress: &dyn Progress) -> Result<ShowerSet> {
    simulate_showers_until(cfg, progress, &|| false)
}

/// [`simulate_showers`], polling `stop` before each shower: once it returns true the workers
/// stop within one shower each and the call returns [`SimError::Interrupted`](crate::SimError::Interrupted)
/// (a Ctrl-C honoured in milliseconds, not after the whole sample).
pub fn simulate_showers_until(
    cfg: &ShowerConfig,
    progress: &dyn Progress,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<ShowerSet> {
    cfg.validate()?;
    let cal = Calorimeter::calogan();
    tracing::debug!(
        particle = %cfg.particle,
        n = cfg.n_showers,
        seed = cfg.seed,
        "simulating calorimeter showers"
    );
    let showers: Option<Vec<OneShower>> = (0..cfg.n_showers)
        .into_par_iter()
        .map(|i| {
            if stop() {
                return None;
            }
            let mut rng = stream_rng(cfg.seed, "shower", i as u64);
            let e = cfg.energy_gev.sample(&mut rng);
            let s = simulate_one(&cal, cfg.particle, e, &mut rng);
            progress.inc(1);
            Some(s)
        })
        .collect();
    let showers = showers.ok_or(crate::SimError::Interrupted)?;
    let n = showers.len();
    let [l0, l1, l2] = cal.layers;
    let mut set = ShowerSet {
        layer_0: Array3::zeros((n, l0.n_eta, l0.n_phi)),
        layer_1: Array3::zeros((n, l1.n_eta, l1.n_phi)),
        layer_2: Array3::zeros((n, l2.n_eta, l2.n_phi)),
        energy: Array2::zeros((n, 1)),
        overflow: Array2::zeros((n, 3)),
        particle: cfg.particle,
    };
    for (i, s) in showers.iter().enumerate() {
        let copy = |dst: &mut Array3<f32>, src: &[f32]| {
            for (d, &v) in dst.index_axis_mut(Axis(0), i).iter_mut().zip(src) {
                *d = v;
            }
        };
        copy(&mut set.layer_0, &s.layer_0);
        copy(&mut set.layer_1, &s.layer_1);
        copy(&mut set.layer_2, &s.layer_2);
        set.energy[[i, 0]] = s.energy_gev as f32;
        for (d, &v) in set.overflow.row_mut(i).iter_mut().zip(&s.overflow) {
            *d = v;
        }
    }
    Ok(set)
}

/// Runs `n_showers` showers of fixed energy in parallel and accumulates their true deposits
/// with the default binning ([`ShowerDiagnostics::for_calorimeter`]).
///
/// Shower `i` uses `stream_rng(seed, "shower", i)`, i.e. the same cascades as
/// [`simulate_showers`] with [`EnergySpec::Fixed`] and the same seed. Showers are summed in
/// fixed chunks in index order, so the result does not depend on the number of threads.
pub fn shower_diagnostics(
    cal: &Calorimeter,
    particle: Particle,
    energy_gev: f64,
    n_showers: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<ShowerDiagnostics> {
    ShowerConfig {
        particle,
        energy_gev: EnergySpec::Fixed(energy_gev),
        n_showers,
        seed,
    }
    .validate()?;
    const CHUNK: usize = 8;
    let parts: Vec<ShowerDiagnostics> = (0..n_showers.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut d = ShowerDiagnostics::for_calorimeter(cal);
            for i in c * CHUNK..((c + 1) * CHUNK).min(n_showers) {
                let mut rng = stream_rng(seed, "shower", i as u64);
                simulate_one_with_diagnostics(cal, particle, energy_gev, &mut rng, &mut d);
                progress.inc(1);
            }
            d
        })
        .collect();
    let mut total = ShowerDiagnostics::for_calorimeter(cal);
    for p in &parts {
        total.merge(p)?;
    }
    Ok(total)
}

/// Mean longitudinal profile of `n_showers` showers: (bin centres in X0, mean true dE/dt in MeV
/// per X0), in 0.25 X0 bins over the full depth, independent of the layer segmentation.
pub fn longitudinal_profile(
    cal: &Calorimeter,
    particle: Particle,
    energy_gev: f64,
    n_showers: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    Ok(shower_diagnostics(cal, particle, energy_gev, n_showers, seed, &())?.longitudinal_profile())
}
