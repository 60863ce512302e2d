//! `deepsky fastsim generate`: showers from a saved generator, in the training file's layout
//! or the configured one ([`deepsky_fastsim::generate`] chooses the energies).

use std::time::Instant;

use deepsky_fastsim::generate::{incident_energies, GenerateReport};
use deepsky_io::h5::AttrValue;
use deepsky_runtime::RunError;

use super::{fastsim_error, load_model, model_dir, FastsimConfig, GenerateArgs};
use crate::common::{self, RunFrame};

pub fn run(args: &GenerateArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let dir = model_dir(&args.model, cfg);
    let loaded = load_model(&dir, &device, frame)?;
    let card = &loaded.card;
    // The command line's options over the config's keys; a range on the command line wins
    // over a fixed energy in the config.
    let mut g = cfg.generate.clone();
    if let Some(e) = args.energy {
        if !(e > 0.0 && e.is_finite()) {
            return Err(RunError::input(format!(
                "--energy {e}: must be a positive energy in GeV"
            )));
        }
        g.energy_gev = e;
    }
    if let Some(range) = &args.energy_range {
        if !(range.len() == 2 && range[0] > 0.0 && range[0] < range[1]) {
            return Err(RunError::input(format!(
                "--energy-range {range:?}: must be MIN,MAX with 0 < MIN < MAX"
            )));
        }
        (g.energy_gev, g.energy_range_gev) = (0.0, range.clone());
    }
    let n = match args.showers {
        Some(n) if n < 1 => {
            return Err(RunError::input(format!(
                "-n/--showers must be at least 1, got {n}"
            )))
        }
        Some(n) => n as usize,
        None => g.showers,
    };
    if n == 0 {
        return Err(RunError::input("generate.showers must be at least 1"));
    }
    let seed = args.seed.unwrap_or(g.seed);
    frame.provenance.seed("generate", seed);
    let particle = args
        .particle
        .clone()
        .or_else(|| (!g.particle.is_empty()).then(|| g.particle.clone()))
        .unwrap_or_else(|| card.conditioning.particles[0].clone());
    let energies = incident_energies(&g, &card.conditioning, n, seed).map_err(fastsim_error)?;
    let t = Instant::now();
    let showers = loaded
        .simulator()
        .generate(&energies.values, &particle, seed, g.batch, &device)
        .map_err(fastsim_error)?;
    let dt = t.elapsed().as_secs_f64();
    let layout = g.layout.unwrap_or(card.layout);
    let mut attrs = frame.provenance.hdf5_attrs();
    attrs.push(("particle".into(), AttrValue::Str(particle.clone())));
    if let Ok(p) = particle.parse::<deepsky_sim::shower::Particle>() {
        attrs.push(("particle_pdg_id".into(), AttrValue::Int(p.pdg_id() as i64)));
    }
    attrs.push((
        "generator".into(),
        AttrValue::Str(dir.display().to_string()),
    ));
    // (The layout writers add `layout` and `units` themselves.)
    let path = frame.out.path("showers.h5");
    showers.write_as(layout, &path, &attrs)?;
    frame.provenance.output("showers.h5", "generated showers");
    frame.out.write_report(&GenerateReport {
        showers: n,
        particle: particle.clone(),
        layout,
        energy_gev: energies.fixed,
        energy_range_gev: energies.range,
        seed,
        batch: g.batch,
        generate_s: dt,
        showers_per_s: n as f64 / dt,
    })?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim generate: {n} {particle} showers in {dt:.2} s ({:.0}/s) to {} ({layout} layout)",
        n as f64 / dt,
        frame.out.published("showers.h5").display()
    );
    Ok(())
}
