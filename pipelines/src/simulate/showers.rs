//! The options of `deepsky simulate showers` that stand for keys of its settings
//! ([`ShowerSettings`]): `--particle`, `--energy`, `--energy-range`, `-n`, `--layout`.

use deepsky_io::calo::ShowerLayout;
use deepsky_runtime::RunError;
use deepsky_sim::shower::{Particle, ShowerSettings};

use super::{sim_error, Flag, ShowerArgs};

/// The shower options given on the command line, as settings flags; a value the settings
/// cannot hold (an unknown particle or layout, a range of other than two numbers) is bad input.
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
        let layout: ShowerLayout = l.parse().map_err(RunError::input)?;
        let apply = Box::new(move |c: &mut ShowerSettings| c.layout = layout);
        flags.push(("layout", format!("--layout {l}"), apply));
    }
    Ok(flags)
}
