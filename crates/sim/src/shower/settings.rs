//! The settings of a shower sample file (what `deepsky simulate showers` takes as its
//! config): the simulation, and the layout to write it in.

use deepsky_core::config::{ConfigError, Validate};
use deepsky_io::calo::ShowerLayout;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EnergySpec, Particle, ShowerConfig};

/// Settings of a shower sample: particle, energy, count, seed and file layout (the config of
/// `deepsky simulate showers`, whose options stand for these keys).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShowerSettings {
    /// Incident particle: `e-`, `e+` or `gamma`.
    pub particle: Particle,
    /// Fixed incident energy, GeV; when set, `energy_range_gev` is not used.
    pub energy_gev: Option<f64>,
    /// Incident energy drawn uniformly in `[min, max]` GeV.
    pub energy_range_gev: Option<[f64; 2]>,
    /// Number of showers.
    pub showers: usize,
    /// Run seed: shower `i` draws from its own stream of this seed.
    pub seed: u64,
    /// Output layout: `calogan` or `calochallenge`.
    pub layout: ShowerLayout,
}

impl Default for ShowerSettings {
    fn default() -> Self {
        ShowerSettings {
            particle: Particle::Electron,
            energy_gev: None,
            energy_range_gev: Some([1.0, 100.0]),
            showers: 1000,
            seed: 1,
            layout: ShowerLayout::CaloGan,
        }
    }
}

impl ShowerSettings {
    /// The simulator's configuration.
    pub fn simulation(&self) -> ShowerConfig {
        let [min, max] = self.energy_range_gev.unwrap_or([1.0, 100.0]);
        ShowerConfig {
            particle: self.particle,
            energy_gev: match self.energy_gev {
                Some(e) => EnergySpec::Fixed(e),
                None => EnergySpec::Uniform { min, max },
            },
            n_showers: self.showers,
            seed: self.seed,
        }
    }

    /// The `config` root attribute of a shower file: particle, energy (the simulator's
    /// notation), count, seed and layout.
    pub fn attribute(&self) -> String {
        let c = self.simulation();
        format!(
            "{{\"particle\":\"{}\",\"energy_gev\":{:?},\"n_showers\":{},\"seed\":{},\"layout\":\"{}\"}}",
            c.particle,
            c.energy_gev,
            c.n_showers,
            c.seed,
            self.layout
        )
    }
}

impl Validate for ShowerSettings {
    /// The simulator's checks, named by this struct's keys.
    fn validate(&self) -> Result<(), ConfigError> {
        self.simulation().validate().map_err(|mut e| {
            e.key = match e.key.as_str() {
                "n_showers" => "showers".into(),
                k if k.starts_with("energy_gev") && self.energy_gev.is_none() => {
                    "energy_range_gev".into()
                }
                _ => e.key,
            };
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_energy_wins_and_errors_name_the_settings_keys() {
        let s = ShowerSettings {
            energy_gev: Some(20.0),
            ..ShowerSettings::default()
        };
        assert_eq!(s.simulation().energy_gev, EnergySpec::Fixed(20.0));
        assert!(
            s.attribute().contains("\"energy_gev\":Fixed(20.0)"),
            "{}",
            s.attribute()
        );
        assert!(s.attribute().ends_with("\"layout\":\"calogan\"}"));
        let none = ShowerSettings {
            showers: 0,
            ..ShowerSettings::default()
        };
        assert_eq!(none.validate().unwrap_err().key, "showers");
        let bad = ShowerSettings {
            energy_range_gev: Some([5.0, 1.0]),
            ..ShowerSettings::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .key
            .starts_with("energy_range_gev"));
    }
}
