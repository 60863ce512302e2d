//! What to simulate: the incident particle, its energy spectrum and the number of showers.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

impl EnergySpec {
    /// Checks that the energies are finite, within [`MIN_ENERGY_GEV`]..=[`MAX_ENERGY_GEV`] and
    /// that `min < max`; errors name the parameter `energy_gev`.
    pub fn validate(&self) -> Result<()> {
        let check = |what: &str, e: f64| -> Result<()> {
            if e.is_finite() && (MIN_ENERGY_GEV..=MAX_ENERGY_GEV).contains(&e) {
                Ok(())
            } else {
                Err(SimError::invalid(
                    "energy_gev",
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
                    Err(SimError::invalid(
                        "energy_gev",
                        format!("minimum {min} GeV must be below maximum {max} GeV"),
                    ))
                }
            }
        }
    }

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

impl ShowerConfig {
    /// Checks the energies (0.1..=1000 GeV, `min < max`; parameter `energy_gev`) and that
    /// `n_showers > 0` (parameter `n_showers`).
    pub fn validate(&self) -> Result<()> {
        self.energy_gev.validate()?;
        if self.n_showers == 0 {
            return Err(SimError::invalid("n_showers", "must be at least 1, got 0"));
        }
        Ok(())
    }
}
