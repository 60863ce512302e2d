//! The settings of `deepsky simulate showers`: a config like every simulator's, whose keys
//! the shower options (`--particle`, `--energy`, `--energy-range`, `-n`, `--layout`) stand for.

use deepsky_runtime::{ConfigError, RunError, Validate};
use deepsky_sim::shower::{EnergySpec, Particle, ShowerConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{sim_error, Flag, ShowerArgs};

/// The layout of a shower file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// CaloGAN: one dataset per layer (`layer_0` 3×96, `layer_1` 12×12, `layer_2` 12×6).
    Calogan,
    /// CaloChallenge: one flat `showers` dataset of 504 cells per shower.
    Calochallenge,
}

impl Layout {
    /// The layout's name as written in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Calogan => "calogan",
            Layout::Calochallenge => "calochallenge",
        }
    }
}

/// Settings of `deepsky simulate showers`; each has a command-line option too.
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
    pub layout: Layout,
}

impl Default for ShowerSettings {
    fn default() -> Self {
        ShowerSettings {
            particle: Particle::Electron,
            energy_gev: None,
            energy_range_gev: Some([1.0, 100.0]),
            showers: 1000,
            seed: 1,
            layout: Layout::Calogan,
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
            self.layout.name()
        )
    }

    /// The shower options given on the command line, as settings flags; a value the settings
    /// cannot hold (an unknown particle or layout, a range of other than two numbers) is bad
    /// input.
    pub fn flags(a: &ShowerArgs) -> Result<Vec<Flag<ShowerSettings>>, RunError> {
        let mut flags: Vec<Flag<ShowerSettings>> = vec![];
        if let Some(p) = &a.particle {
            let particle: Particle = p.parse().map_err(sim_error)?;
            let apply = Box::new(move |c: &mut ShowerSettings| c.particle = particle);
            flags.push(("particle", format!("--particle {p}"), apply));
        }
        if let Some(e) = a.energy {
            // The range keeps its value: a fixed energy wins over it.
            let apply = Box::new(move |c: &mut ShowerSettings| c.energy_gev = Some(e));
            flags.push(("energy_gev", format!("--energy {e}"), apply));
        }
        if let Some(r) = &a.energy_range {
            let &[min, max] = r.as_slice() else {
                return Err(RunError::input(format!(
                    "--energy-range takes MIN,MAX in GeV, got {} value(s)",
                    r.len()
                )));
            };
            let apply = Box::new(move |c: &mut ShowerSettings| {
                (c.energy_gev, c.energy_range_gev) = (None, Some([min, max]))
            });
            flags.push((
                "energy_range_gev",
                format!("--energy-range {min},{max}"),
                apply,
            ));
        }
        if let Some(n) = a.showers {
            let apply = Box::new(move |c: &mut ShowerSettings| c.showers = n);
            flags.push(("showers", format!("-n {n}"), apply));
        }
        if let Some(l) = &a.layout {
            let layout = match l.to_ascii_lowercase().as_str() {
                "calogan" => Layout::Calogan,
                "calochallenge" => Layout::Calochallenge,
                _ => {
                    return Err(RunError::input(format!(
                        "unknown layout `{l}`: expected calogan or calochallenge"
                    )))
                }
            };
            let apply = Box::new(move |c: &mut ShowerSettings| c.layout = layout);
            flags.push(("layout", format!("--layout {l}"), apply));
        }
        Ok(flags)
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
