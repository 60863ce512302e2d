//! `deepsky fastsim generate`.

use std::time::Instant;

use deepsky_io::h5::AttrValue;
use deepsky_nn::init::named_rng;
use deepsky_runtime::RunError;
use rand::Rng;
use serde_json::json;

use super::config::FastsimConfig;
use super::validate::{load_model, model_dir};
use super::{fastsim_error, GenerateArgs};
use crate::common::{self, RunFrame};

pub fn run(args: &GenerateArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let dir = model_dir(&args.model, cfg);
    let loaded = load_model(&dir, &device)?;
    frame
        .provenance
        .input(&dir.join("model.safetensors"), "model")?;
    let card = &loaded.card;
    let g = &cfg.generate;
    let n = args.showers.unwrap_or(g.showers);
    if n == 0 {
        return Err(RunError::input("-n/--showers must be at least 1"));
    }
    let seed = args.seed.unwrap_or(g.seed);
    frame.provenance.seed("generate", seed);
    let particle = args
        .particle
        .clone()
        .or_else(|| (!g.particle.is_empty()).then(|| g.particle.clone()))
        .unwrap_or_else(|| card.conditioning.particles[0].clone());
    // A range on the command line wins over a fixed energy in the config.
    let fixed = if args.energy_range.is_some() {
        args.energy
    } else {
        args.energy.or((g.energy_gev > 0.0).then_some(g.energy_gev))
    };
    // A model trained at one energy generates at that energy by default.
    let c = &card.conditioning;
    let fixed = fixed.or_else(|| {
        (args.energy_range.is_none() && g.energy_range_gev.is_empty() && c.e_min_gev == c.e_max_gev)
            .then_some(c.e_min_gev)
    });
    let range = args
        .energy_range
        .clone()
        .or_else(|| (!g.energy_range_gev.is_empty()).then(|| g.energy_range_gev.clone()))
        .unwrap_or_else(|| vec![card.conditioning.e_min_gev, card.conditioning.e_max_gev]);
    let energies: Vec<f32> = match fixed {
        Some(e) => {
            if !(e > 0.0 && e.is_finite()) {
                return Err(RunError::input(format!(
                    "--energy {e}: must be a positive energy in GeV"
                )));
            }
            vec![e as f32; n]
        }
        None => {
            if !(range.len() == 2 && range[0] > 0.0 && range[0] < range[1]) {
                return Err(RunError::input(format!(
                    "--energy-range {range:?}: must be MIN,MAX with 0 < MIN < MAX"
                )));
            }
            let mut rng = named_rng(seed, "energies");
            (0..n)
                .map(|_| (range[0] + (range[1] - range[0]) * rng.random::<f64>()) as f32)
                .collect()
        }
    };
    let (lo, hi) = energies
        .iter()
        .fold((f32::INFINITY, 0f32), |(a, b), &e| (a.min(e), b.max(e)));
    let c = &card.conditioning;
    if (lo as f64) < c.e_min_gev * 0.999 || (hi as f64) > c.e_max_gev * 1.001 {
        tracing::warn!(
            "energies {lo}–{hi} GeV reach outside the training range {}–{} GeV: the generator extrapolates",
            c.e_min_gev,
            c.e_max_gev
        );
    }
    let t = Instant::now();
    let showers = loaded
        .simulator()
        .generate(&energies, &particle, seed, g.batch, &device)
        .map_err(fastsim_error)?;
    let dt = t.elapsed().as_secs_f64();
    let layout = if g.layout.is_empty() {
        card.layout.clone()
    } else {
        g.layout.clone()
    };
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
    if layout == "calogan" {
        showers.write(&path, &attrs)?;
    } else {
        showers.to_calochallenge().write(&path, &attrs)?;
    }
    frame.provenance.output("showers.h5", "generated showers");
    frame.out.write_report(&json!({
        "showers": n,
        "particle": particle,
        "layout": layout,
        "energy_gev": fixed,
        "energy_range_gev": if fixed.is_none() { Some(range) } else { None },
        "seed": seed,
        "batch": g.batch,
        "generate_s": dt,
        "showers_per_s": n as f64 / dt,
    }))?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim generate: {n} {particle} showers in {dt:.2} s ({:.0}/s) to {} ({layout} layout)",
        n as f64 / dt,
        path.display()
    );
    Ok(())
}
