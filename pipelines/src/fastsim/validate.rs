//! `deepsky fastsim validate`: generated showers against two held-out reference samples
//! ([`deepsky_fastsim::validate`] does the comparing), with progress, plots and report.json.

use std::time::Instant;

use deepsky_fastsim::validate::{
    measure_speed, observable_samples, ClassifierTests, ObservableEntry, References, SpeedSection,
    ValidationReport, ValidationTiming,
};
use deepsky_runtime::{Progress, RunError};

use super::{fastsim_error, load_model, model_dir, FastsimConfig, ValidateArgs};
use crate::common::{self, Plots, RunFrame};

pub fn run(args: &ValidateArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    // Ctrl-C/SIGTERM: every long step polls this (between showers, optimiser steps and
    // timings) and the run ends with exit 130 within a second or two.
    let stop = deepsky_runtime::interrupt::interrupted;
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let dir = model_dir(&args.model, cfg);
    let loaded = load_model(&dir, &device, frame)?;
    let sim = loaded.simulator();
    // `generate.particle`, else the model's first particle.
    let conditioning = &loaded.card.conditioning;
    let particle = if cfg.generate.particle.is_empty() {
        conditioning.particles[0].clone()
    } else {
        conditioning
            .particle_index(&cfg.generate.particle)
            .map_err(fastsim_error)?;
        cfg.generate.particle.clone()
    };
    let threshold = loaded.card.model.cell_threshold_mev as f32;
    let v = &cfg.validate;
    let references = if let [a, b] = v.reference.as_slice() {
        frame.provenance.input(a, "reference")?;
        frame.provenance.input(b, "reference")?;
        References::read([a, b], &particle, threshold)
    } else {
        frame.provenance.seed("reference_a", v.reference_seed);
        frame.provenance.seed("reference_b", v.reference_seed + 1);
        let bar = Progress::new("simulating reference showers", 2, "samples");
        let refs = References::simulate(
            &particle,
            conditioning,
            v.reference_showers,
            v.reference_seed,
            threshold,
            &mut || bar.inc(1),
            &stop,
        );
        bar.finish();
        refs
    }
    .map_err(fastsim_error)?;
    let (ref_a, ref_b) = (&references.a, &references.b);
    if ref_a.particle != particle || ref_b.particle != particle {
        return Err(RunError::input(format!(
            "the reference samples are {} and {}, the model makes {particle}",
            ref_a.particle, ref_b.particle
        )));
    }
    let t_ref = t0.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    // Generated showers at reference A's energies.
    frame.provenance.seed("generate", v.seed);
    let energies: Vec<f32> = ref_a.showers.energy.iter().copied().collect();
    let t1 = Instant::now();
    let generated = sim
        .generate(&energies, &particle, v.seed, cfg.generate.batch, &device)
        .map_err(fastsim_error)?;
    let t_gen = t1.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    let mut observables = Vec::new();
    for s in observable_samples(&ref_a.showers, &generated, Some(&ref_b.showers), v.bins) {
        let written = plots.save(&s.histogram(), s.observable.name)?;
        observables.push(ObservableEntry {
            comparison: s.comparison(),
            plots: written,
        });
    }

    let bar = Progress::new("classifier tests", 4, "classifiers");
    let tests = ClassifierTests::run(
        &ref_a.showers,
        &ref_b.showers,
        &generated,
        &v.classifier,
        &mut || bar.inc(1),
        &stop,
    )
    .map_err(fastsim_error)?;
    bar.finish();
    deepsky_runtime::interrupt::check()?;
    let roc_plots = plots.save(&tests.roc(), "classifier_roc")?;

    let speed = if args.no_speed {
        Vec::new()
    } else {
        let steps = cfg.speed.energies_gev.len() * (1 + cfg.speed.batches.len());
        let bar = Progress::new("measuring speed", steps as u64, "steps");
        let points = measure_speed(
            &sim,
            &particle,
            &cfg.speed,
            &device,
            &mut || bar.inc(1),
            &stop,
        )
        .map_err(fastsim_error)?;
        bar.finish();
        points
    };
    let speed = SpeedSection::new(
        speed,
        rayon::current_num_threads(),
        deepsky_nn::device::device_name(&device),
    );
    let report = ValidationReport::new(
        &dir,
        &particle,
        &references,
        generated.len(),
        observables,
        &tests,
        (&v.classifier, roc_plots),
        speed,
        ValidationTiming {
            reference_s: t_ref,
            generate_s: t_gen,
            total_s: t0.elapsed().as_secs_f64(),
        },
    );
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "report");
    let r = &report;
    tracing::info!(
        "AUC high-level {:.3} (reference {:.3}), all cells {:.3} (reference {:.3})",
        r.auc_high_level,
        r.reference_auc_high_level,
        r.auc_all_cells,
        r.reference_auc_all_cells
    );
    eprintln!(
        "fastsim validate: AUC high-level {:.3} (ref-vs-ref {:.3}), all cells {:.3} (ref-vs-ref {:.3}); mean χ² {:.4}{}; report in {}",
        r.auc_high_level,
        r.reference_auc_high_level,
        r.auc_all_cells,
        r.reference_auc_all_cells,
        r.mean_chi2,
        r.speedup_100gev
            .map(|s| format!("; {s:.0}× faster than the simulator at 100 GeV"))
            .unwrap_or_default(),
        frame.out.published("report.json").display()
    );
    Ok(())
}
