//! What to simulate: the incident particle, its energy spectrum and the number of showers.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_core::{ConfigError, Validate};

use crate::{Result, SimError};

/// Lowest incident energy accepted by [`ShowerConfig::validate`], GeV.
pub const MIN_ENERGY_GEV: f64 = 0.1;
/// Highest incident energy accepted by [`ShowerConfig::validate`], GeV.
pub const MAX_ENERGY_GEV: f64 = 1000.0;

/// The incident particle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Particle {
    /// Electron, written `e-`.
    #[serde(rename = "e-", alias = "electron")]
    Electron,
    /// Positron, written `e+`.
    #[serde(rename = "e+", alias = "positron")]
    Positron,
    /// Photon, written `gamma`.
    #[serde(rename = "gamma", alias = "photon")]
    Photon,
}

impl Particle {
    /// PDG Monte Carlo particle number: 11 (e⁻), −11 (e⁺), 22 (γ).
    pub fn pdg_id(&self) -> i32 {
        match self {
            Particle::Electron => 11,
            Particle::Positron => -11,
            Particle::Photon => 22,
        }
    }
}

impl fmt::Display for Particle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Particle::Electron => "e-",
            Particle::Positron => "e+",
            Particle::Photon => "gamma",
        })
    }
}

impl FromStr for Particle {
    type Err = SimError;

    /// Accepts `e-`, `e+`, `gamma` and the names `electron`, `positron`, `photon`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "e-" | "electron" => Ok(Particle::Electron),
            "e+" | "positron" => Ok(Particle::Positron),
            "gamma" | "photon" => Ok(Particle::Photon),
            other => Err(SimError::invalid(
                "particle",
                format!("unknown particle `{other}`; expected one of e-, e+, gamma"),
            )),
        }
    }
}

/// How the incident energy of each shower is chosen, in GeV.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnergySpec {
    /// Every shower has this energy, GeV.
    Fixed(f64),
    /// Flat in energy between `min` and `max` GeV (CaloGAN used 1–100 GeV flat).
    Uniform {
        /// Lowest energy, GeV.
        min: f64,
        /// Highest energy, GeV.
        max: f64,
    },
    /// Flat in log(energy) between `min` and `max` GeV (CaloChallenge style).
    LogUniform {
        /// Lowest energy, GeV.
        min: f64,
        /// Highest energy, GeV.
        max: f64,
    },
}

/// The energies are finite, within [`MIN_ENERGY_GEV`]..=[`MAX_ENERGY_GEV`], and `min < max`.
/// The error's key is empty: the specification is one setting (`energy_gev` of a
/// [`ShowerConfig`]).
impl Validate for EnergySpec {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let check = |what: &str, e: f64| -> std::result::Result<(), ConfigError> {
            if e.is_finite() && (MIN_ENERGY_GEV..=MAX_ENERGY_GEV).contains(&e) {
                Ok(())
            } else {
                Err(ConfigError::at(
                    "",
                    format!(
                        "{what}energy {e} GeV is outside the supported range \
                         {MIN_ENERGY_GEV}..={MAX_ENERGY_GEV} GeV"
                    ),
                ))
            }
        };
        match *self {
            EnergySpec::Fixed(e) => check("", e),
            EnergySpec::Uniform { min, max } | EnergySpec::LogUniform { min, max } => {
                check("minimum ", min)?;
                check("maximum ", max)?;
                if min < max {
                    Ok(())
                } else {
                    Err(ConfigError::at(
                        "",
                        format!("minimum {min} GeV must be below maximum {max} GeV"),
                    ))
                }
            }
        }
    }
}

impl EnergySpec {
    /// Draws one energy in GeV. `Fixed` draws no random number.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            EnergySpec::Fixed(e) => e,
            EnergySpec::Uniform { min, max } => min + (max - min) * rng.random::<f64>(),
            EnergySpec::LogUniform { min, max } => {
                (min.ln() + (max.ln() - min.ln()) * rng.random::<f64>()).exp()
            }
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShowerConfig {
    /// The incident particle.
    pub particle: Particle,
    /// Incident (kinetic) energy of each shower, GeV.
    pub energy_gev: EnergySpec,
    /// Number of showers.
    pub n_showers: usize,
    /// Run seed; shower `i` uses `stream_rng(seed, "shower", i)`.
    pub seed: u64,
}

/// The energies (0.1..=1000 GeV, `min < max`; key `energy_gev`) and `n_showers > 0`.
impl Validate for ShowerConfig {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.energy_gev
            .validate()
            .map_err(|e| e.within("energy_gev"))?;
        if self.n_showers == 0 {
            return Err(ConfigError::at("n_showers", "must be at least 1, got 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shower_energy_errors_are_keyed_by_the_config_field() {
        let spec = EnergySpec::Uniform {
            min: 10.0,
            max: 5.0,
        };
        let e = spec.validate().unwrap_err();
        assert_eq!(e.key, "");
        assert_eq!(e.message, "minimum 10 GeV must be below maximum 5 GeV");
        let cfg = ShowerConfig {
            particle: Particle::Photon,
            energy_gev: spec,
            n_showers: 1,
            seed: 0,
        };
        assert_eq!(cfg.validate().unwrap_err().key, "energy_gev");
        let e = EnergySpec::Fixed(2000.0).validate().unwrap_err();
        assert_eq!(
            e.message,
            "energy 2000 GeV is outside the supported range 0.1..=1000 GeV"
        );
        let cfg = ShowerConfig {
            energy_gev: EnergySpec::Fixed(10.0),
            n_showers: 0,
            ..cfg
        };
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "n_showers");
        assert_eq!(e.message, "must be at least 1, got 0");
        assert!(ShowerConfig {
            n_showers: 1,
            ..cfg
        }
        .validate()
        .is_ok());
    }
}
