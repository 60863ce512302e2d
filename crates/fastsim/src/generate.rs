//! What `deepsky fastsim generate` makes: the incident energies of the showers (fixed, or
//! uniform over a range, by default the model's), and the record of a generation run.
//!
//! ```
//! use deepsky_fastsim::config::GenerateConfig;
//! use deepsky_fastsim::data::Conditioning;
//! use deepsky_fastsim::generate::incident_energies;
//!
//! let model = Conditioning { e_min_gev: 1.0, e_max_gev: 100.0, particles: vec!["e-".into()] };
//! let cfg = GenerateConfig { energy_gev: 50.0, ..GenerateConfig::default() };
//! let e = incident_energies(&cfg, &model, 3, 1)?;
//! assert_eq!((e.values, e.fixed), (vec![50.0; 3], Some(50.0)));
//! # Ok::<(), deepsky_fastsim::FastsimError>(())
//! ```

use deepsky_io::calo::ShowerLayout;
use deepsky_nn::init::named_rng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::GenerateConfig;
use crate::data::Conditioning;
use crate::error::{FastsimError, Result};

/// The incident energies of a generation run and how they were chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEnergies {
    /// One energy per shower, GeV.
    pub values: Vec<f32>,
    /// The fixed energy, when there is one.
    pub fixed: Option<f64>,
    /// The `[min, max]` range drawn from uniformly, when there is no fixed energy.
    pub range: Option<Vec<f64>>,
}

/// `n` incident energies: `cfg.energy_gev` when set; else uniform in `cfg.energy_range_gev`,
/// or in the model's training range, from the `energies` stream of `seed`. A model trained at
/// one energy generates at that energy unless a range is given. Energies outside the training
/// range are allowed (the generator extrapolates) with a warning.
pub fn incident_energies(
    cfg: &GenerateConfig,
    model: &Conditioning,
    n: usize,
    seed: u64,
) -> Result<IncidentEnergies> {
    let fixed = if cfg.energy_gev > 0.0 {
        Some(cfg.energy_gev)
    } else {
        (cfg.energy_range_gev.is_empty() && model.e_min_gev == model.e_max_gev)
            .then_some(model.e_min_gev)
    };
    let range = if cfg.energy_range_gev.is_empty() {
        vec![model.e_min_gev, model.e_max_gev]
    } else {
        cfg.energy_range_gev.clone()
    };
    let values: Vec<f32> = match fixed {
        Some(e) => {
            if !(e > 0.0 && e.is_finite()) {
                return Err(FastsimError::Input(format!(
                    "energy {e}: must be a positive energy in GeV"
                )));
            }
            vec![e as f32; n]
        }
        None => {
            if !(range.len() == 2 && range[0] > 0.0 && range[0] < range[1]) {
                return Err(FastsimError::Input(format!(
                    "energy range {range:?}: must be MIN,MAX with 0 < MIN < MAX"
                )));
            }
            let mut rng = named_rng(seed, "energies");
            (0..n)
                .map(|_| (range[0] + (range[1] - range[0]) * rng.random::<f64>()) as f32)
                .collect()
        }
    };
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, 0f32), |(a, b), &e| (a.min(e), b.max(e)));
    if (lo as f64) < model.e_min_gev * 0.999 || (hi as f64) > model.e_max_gev * 1.001 {
        tracing::warn!(
            "energies {lo}–{hi} GeV reach outside the training range {}–{} GeV: the generator extrapolates",
            model.e_min_gev,
            model.e_max_gev
        );
    }
    Ok(IncidentEnergies {
        values,
        range: fixed.is_none().then_some(range),
        fixed,
    })
}

/// `report.json` of `deepsky fastsim generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateReport {
    /// Showers generated.
    pub showers: usize,
    /// Their particle.
    pub particle: String,
    /// Layout of `showers.h5`.
    pub layout: ShowerLayout,
    /// The fixed incident energy, GeV (null when drawn from a range).
    pub energy_gev: Option<f64>,
    /// The incident energy range, GeV (null at a fixed energy).
    pub energy_range_gev: Option<Vec<f64>>,
    /// Noise seed.
    pub seed: u64,
    /// Showers per forward pass.
    pub batch: usize,
    /// Seconds spent generating.
    pub generate_s: f64,
    /// Generation rate.
    pub showers_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(lo: f64, hi: f64) -> Conditioning {
        Conditioning {
            e_min_gev: lo,
            e_max_gev: hi,
            particles: vec!["e-".into()],
        }
    }

    #[test]
    fn energies_are_fixed_or_uniform_in_the_configured_or_trained_range() {
        let cfg = GenerateConfig::default();
        // The model's range, drawn from the seed: the same seed, the same energies.
        let e = incident_energies(&cfg, &model(1.0, 100.0), 500, 3).unwrap();
        assert_eq!((e.fixed, e.range.clone()), (None, Some(vec![1.0, 100.0])));
        assert!(e.values.iter().all(|&v| (1.0..=100.0).contains(&v)));
        let mean = e.values.iter().sum::<f32>() / 500.0;
        assert!((mean - 50.5).abs() < 5.0, "{mean}");
        assert_eq!(
            incident_energies(&cfg, &model(1.0, 100.0), 500, 3).unwrap(),
            e
        );
        assert_ne!(
            incident_energies(&cfg, &model(1.0, 100.0), 500, 4).unwrap(),
            e
        );
        // A model trained at one energy makes that energy, unless a range is configured.
        let e = incident_energies(&cfg, &model(20.0, 20.0), 2, 3).unwrap();
        assert_eq!(
            (e.values, e.fixed, e.range),
            (vec![20.0; 2], Some(20.0), None)
        );
        let ranged = GenerateConfig {
            energy_range_gev: vec![10.0, 30.0],
            ..cfg.clone()
        };
        let e = incident_energies(&ranged, &model(20.0, 20.0), 50, 3).unwrap();
        assert!(e.values.iter().all(|&v| (10.0..=30.0).contains(&v)));
        let bad = GenerateConfig {
            energy_range_gev: vec![30.0, 10.0],
            ..cfg
        };
        let err = incident_energies(&bad, &model(1.0, 2.0), 5, 1).unwrap_err();
        assert!(err.to_string().contains("0 < MIN < MAX"), "{err}");
    }
}
