//! `deepsky fastsim validate`: generated showers against held-out reference Monte Carlo.
//!
//! Three samples at the same incident-energy spectrum: reference A, an independent reference
//! B, and generated G at A's energies. Every number for G-vs-A is reported next to the same
//! number for B-vs-A, the noise floor: what a perfect generator would score with samples of
//! this size.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use deepsky_fastsim::data::{simulate_reference, Sample};
use deepsky_fastsim::metrics::{binning, chi2_separation, wasserstein1};
use deepsky_fastsim::observables::{
    cell_features, high_level_features, observable_list, observables,
};
use deepsky_fastsim::shower_gan::{FastSimulator, LoadedSimulator};
use deepsky_fastsim::two_sample::{classifier_auc, ClassifierConfig};
use deepsky_io::calo::CaloGanShowers;
use deepsky_plot::{save_formats, Format, Hist1d, HistSample, HistStyle, Roc, RocCurve};
use deepsky_runtime::{Progress, RunError};
use deepsky_sim::shower::{EnergySpec, Particle};
use serde::Serialize;
use serde_json::json;

use super::config::FastsimConfig;
use super::{fastsim_error, plot_dir, relative, samples, ValidateArgs};
use crate::common::{self, RunFrame};

/// One observable compared between a reference and other samples.
#[derive(Debug, Clone, Serialize)]
pub struct ObservableComparison {
    pub name: &'static str,
    /// χ² separation power of the generated sample against reference A.
    pub chi2: f64,
    /// Wasserstein-1 distance of the generated sample against reference A.
    pub w1: f64,
    /// The same for reference B against reference A (absent in training-time checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_chi2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_w1: Option<f64>,
    /// Means of reference A and generated, for a quick read.
    pub reference_mean: f64,
    pub generated_mean: f64,
    /// Plot files (relative to the output root).
    pub plots: Vec<String>,
}

fn column(a: &ndarray::Array2<f64>, k: usize) -> Vec<f64> {
    a.column(k).to_vec()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Compare `generated` (and an optional second reference) with `reference` observable by
/// observable; plots go to `dir` (none when `formats` is empty).
pub fn compare(
    reference: &CaloGanShowers,
    generated: &CaloGanShowers,
    reference_b: Option<&CaloGanShowers>,
    bins: usize,
    dir: &std::path::Path,
    formats: &[Format],
    frame: &RunFrame,
) -> Result<Vec<ObservableComparison>, RunError> {
    let list = observable_list();
    let oa = observables(reference);
    let og = observables(generated);
    let ob = reference_b.map(observables);
    let mut out = Vec::with_capacity(list.len());
    for (k, obs) in list.iter().enumerate() {
        let a = column(&oa, k);
        let g = column(&og, k);
        let b = ob.as_ref().map(|o| column(o, k));
        let edges = binning(&a, &g, bins, obs.log_x);
        let mut plots = Vec::new();
        if !formats.is_empty() {
            let mut samples =
                vec![HistSample::values("Reference", a.clone()).with_style(HistStyle::Filled)];
            if let Some(b) = &b {
                samples.push(HistSample::values("Reference 2", b.clone()));
            }
            samples.push(HistSample::values("GAN", g.clone()).with_style(HistStyle::Points));
            let hist = Hist1d {
                x_label: obs.label.into(),
                edges: edges.clone(),
                samples,
                log_x: obs.log_x && edges[0] > 0.0,
                density: true,
                ratio_to: Some(0),
                ratio_label: "Ratio to reference".into(),
                ..Default::default()
            };
            let written = save_formats(&hist, dir.join(obs.name), formats)
                .map_err(|e| RunError::failed(format!("plot {}: {e}", obs.name)))?;
            plots = relative(frame, &written);
        }
        out.push(ObservableComparison {
            name: obs.name,
            chi2: chi2_separation(&g, &a, &edges),
            w1: wasserstein1(&g, &a),
            // The floor on its own binning (the two references' range): the GAN's range must
            // not change what "perfect" scores.
            reference_chi2: b
                .as_ref()
                .map(|b| chi2_separation(b, &a, &binning(&a, b, bins, obs.log_x))),
            reference_w1: b.as_ref().map(|b| wasserstein1(b, &a)),
            reference_mean: mean(&a),
            generated_mean: mean(&g),
            plots,
        });
    }
    Ok(out)
}

/// The model directory: `--model`, else `generate.model`.
pub fn model_dir(arg: &Option<PathBuf>, cfg: &FastsimConfig) -> PathBuf {
    arg.clone().unwrap_or_else(|| cfg.generate.model.clone())
}

pub fn load_model(dir: &std::path::Path, device: &Device) -> Result<LoadedSimulator, RunError> {
    LoadedSimulator::load(dir, device).map_err(fastsim_error)
}

/// Showers/s of the generator and of the reference simulator at each energy.
#[derive(Debug, Clone, Serialize)]
struct SpeedPoint {
    energy_gev: f64,
    simulator_showers_per_s: f64,
    simulator_showers: usize,
    /// (batch, showers/s).
    generator: Vec<(usize, f64)>,
    /// Best generator rate over the simulator's.
    speedup: f64,
}

fn measure_speed(
    sim: &FastSimulator<'_>,
    particle: &str,
    cfg: &FastsimConfig,
    device: &Device,
) -> Result<Vec<SpeedPoint>, RunError> {
    let p: Particle = particle
        .parse()
        .map_err(|e| RunError::input(format!("speed: {e}")))?;
    let mut points = Vec::new();
    let bar = Progress::new(
        "measuring speed",
        (cfg.speed.energies_gev.len() * (1 + cfg.speed.batches.len())) as u64,
        "steps",
    );
    for &e in &cfg.speed.energies_gev {
        // The reference simulator, on the same threads the generator gets: grow the number of
        // showers until the run takes `simulator_seconds`.
        let mut n = 4usize;
        let (rate, simulated) = loop {
            let t = Instant::now();
            simulate_reference(p, EnergySpec::Fixed(e), n, 7, 0.0).map_err(fastsim_error)?;
            let dt = t.elapsed().as_secs_f64();
            if dt >= cfg.speed.simulator_seconds || n >= 1 << 20 {
                break (n as f64 / dt, n);
            }
            let grow = (cfg.speed.simulator_seconds / dt.max(1e-3) * 1.2).ceil() as usize;
            n = (n * grow.clamp(2, 64)).min(1 << 20);
        };
        bar.inc(1);
        let mut generator = Vec::new();
        for &b in &cfg.speed.batches {
            let n = cfg.speed.generated_showers.max(2 * b);
            let energies = vec![e as f32; n];
            // One warm-up batch (allocations, thread pool start-up), then the timed run.
            sim.generate(&energies[..b], particle, 1, b, device)
                .map_err(fastsim_error)?;
            let t = Instant::now();
            sim.generate(&energies, particle, 1, b, device)
                .map_err(fastsim_error)?;
            generator.push((b, n as f64 / t.elapsed().as_secs_f64()));
            bar.inc(1);
        }
        let best = generator.iter().map(|g| g.1).fold(0.0, f64::max);
        points.push(SpeedPoint {
            energy_gev: e,
            simulator_showers_per_s: rate,
            simulator_showers: simulated,
            generator,
            speedup: best / rate,
        });
    }
    bar.finish();
    Ok(points)
}

/// The two reference samples: files from the config, or simulated.
fn references(
    cfg: &FastsimConfig,
    sim: &FastSimulator<'_>,
    particle: &str,
    frame: &mut RunFrame,
) -> Result<(Sample, Sample, String), RunError> {
    let threshold = sim.card.model.cell_threshold_mev as f32;
    if cfg.validate.reference.len() == 2 {
        let mut out = Vec::new();
        for path in &cfg.validate.reference {
            frame.provenance.input(path, "reference")?;
            out.push(samples::read(path, "", Some(particle), threshold)?.sample);
        }
        let b = out.pop().expect("two");
        let a = out.pop().expect("two");
        return Ok((a, b, "files".into()));
    }
    let p: Particle = particle
        .parse()
        .map_err(|e| RunError::input(format!("validate: {e}")))?;
    let c = &sim.card.conditioning;
    let spec = if c.e_min_gev < c.e_max_gev {
        EnergySpec::Uniform {
            min: c.e_min_gev,
            max: c.e_max_gev,
        }
    } else {
        EnergySpec::Fixed(c.e_min_gev)
    };
    let n = cfg.validate.reference_showers;
    let s = cfg.validate.reference_seed;
    frame.provenance.seed("reference_a", s);
    frame.provenance.seed("reference_b", s + 1);
    let bar = Progress::new("simulating reference showers", 2, "samples");
    let a = simulate_reference(p, spec, n, s, threshold).map_err(fastsim_error)?;
    bar.inc(1);
    let b = simulate_reference(p, spec, n, s + 1, threshold).map_err(fastsim_error)?;
    bar.finish();
    Ok((
        a,
        b,
        format!(
            "simulated: {n} {particle} showers each, uniform {:.3}–{:.3} GeV, seeds {s} and {}",
            c.e_min_gev,
            c.e_max_gev,
            s + 1
        ),
    ))
}

fn auc_pair(
    a: &ndarray::Array2<f32>,
    other: &ndarray::Array2<f32>,
    cfg: &ClassifierConfig,
) -> Result<deepsky_fastsim::two_sample::TwoSampleResult, RunError> {
    classifier_auc(a.view(), other.view(), cfg).map_err(fastsim_error)
}

pub fn run(args: &ValidateArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let dir = model_dir(&args.model, cfg);
    let loaded = load_model(&dir, &device)?;
    frame
        .provenance
        .input(&dir.join("model.safetensors"), "model")?;
    let sim = loaded.simulator();
    // `generate.particle`, else the model's first particle.
    let particle = if cfg.generate.particle.is_empty() {
        loaded.card.conditioning.particles[0].clone()
    } else {
        loaded
            .card
            .conditioning
            .particle_index(&cfg.generate.particle)
            .map_err(fastsim_error)?;
        cfg.generate.particle.clone()
    };
    let (ref_a, ref_b, source) = references(cfg, &sim, &particle, frame)?;
    if ref_a.particle != particle || ref_b.particle != particle {
        return Err(RunError::input(format!(
            "the reference samples are {} and {}, the model makes {particle}",
            ref_a.particle, ref_b.particle
        )));
    }
    let t_ref = t0.elapsed().as_secs_f64();

    // Generated showers at reference A's energies.
    frame.provenance.seed("generate", cfg.validate.seed);
    let energies: Vec<f32> = ref_a.showers.energy.iter().copied().collect();
    let t1 = Instant::now();
    let generated = sim
        .generate(
            &energies,
            &particle,
            cfg.validate.seed,
            cfg.generate.batch,
            &device,
        )
        .map_err(fastsim_error)?;
    let t_gen = t1.elapsed().as_secs_f64();

    let formats = common::plot_formats(&cfg.output.plots)?;
    let pdir = plot_dir(frame, "plots")?;
    let comparisons = compare(
        &ref_a.showers,
        &generated,
        Some(&ref_b.showers),
        cfg.validate.bins,
        &pdir,
        &formats,
        frame,
    )?;

    // Classifier two-sample tests, generated vs A and B vs A, on the same features.
    let bar = Progress::new("classifier tests", 4, "classifiers");
    let cc = &cfg.validate.classifier;
    let (hl_a, hl_b, hl_g) = (
        high_level_features(&ref_a.showers),
        high_level_features(&ref_b.showers),
        high_level_features(&generated),
    );
    let hl = auc_pair(&hl_a, &hl_g, cc)?;
    bar.inc(1);
    let hl_ref = auc_pair(&hl_a, &hl_b, cc)?;
    bar.inc(1);
    let (c_a, c_b, c_g) = (
        cell_features(&ref_a.showers),
        cell_features(&ref_b.showers),
        cell_features(&generated),
    );
    let cells = auc_pair(&c_a, &c_g, cc)?;
    bar.inc(1);
    let cells_ref = auc_pair(&c_a, &c_b, cc)?;
    bar.finish();
    let roc = Roc {
        title: "Classifier two-sample test".into(),
        legend: deepsky_plot::LegendPos::LowerRight,
        curves: vec![
            RocCurve {
                label: "GAN, high-level".into(),
                fpr: hl.fpr.clone(),
                tpr: hl.tpr.clone(),
                auc: hl.auc,
            },
            RocCurve {
                label: "GAN, all cells".into(),
                fpr: cells.fpr.clone(),
                tpr: cells.tpr.clone(),
                auc: cells.auc,
            },
            RocCurve {
                label: "Ref. 2, high-level".into(),
                fpr: hl_ref.fpr.clone(),
                tpr: hl_ref.tpr.clone(),
                auc: hl_ref.auc,
            },
            RocCurve {
                label: "Ref. 2, all cells".into(),
                fpr: cells_ref.fpr.clone(),
                tpr: cells_ref.tpr.clone(),
                auc: cells_ref.auc,
            },
        ],
        ..Default::default()
    };
    let roc_plots = save_formats(&roc, pdir.join("classifier_roc"), &formats)
        .map_err(|e| RunError::failed(format!("plot: {e}")))?;

    let speed = if args.no_speed {
        Vec::new()
    } else {
        measure_speed(&sim, &particle, cfg, &device)?
    };
    let speedup_at = |e: f64| {
        speed
            .iter()
            .find(|p| (p.energy_gev - e).abs() < 1e-9)
            .map(|p| p.speedup)
    };
    let threads = rayon::current_num_threads();
    let obs_json: serde_json::Map<String, serde_json::Value> = comparisons
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                serde_json::to_value(c).expect("serialises"),
            )
        })
        .collect();
    let worst = comparisons
        .iter()
        .max_by(|a, b| a.chi2.total_cmp(&b.chi2))
        .map(|c| c.name);
    let report = json!({
        "model": dir.display().to_string(),
        "particle": particle,
        "reference": source,
        "n_reference": ref_a.showers.len(),
        "n_generated": generated.len(),
        "speedup_100gev": speedup_at(100.0),
        "auc_high_level": hl.auc,
        "auc_all_cells": cells.auc,
        "reference_auc_high_level": hl_ref.auc,
        "reference_auc_all_cells": cells_ref.auc,
        "classifier": {
            "config": cc,
            "high_level": {"n_train": hl.n_train, "n_test": hl.n_test, "epochs_run": hl.epochs_run},
            "all_cells": {"n_train": cells.n_train, "n_test": cells.n_test, "epochs_run": cells.epochs_run},
            "plots": relative(frame, &roc_plots),
        },
        "observables": obs_json,
        "mean_chi2": mean(&comparisons.iter().map(|c| c.chi2).collect::<Vec<_>>()),
        "reference_mean_chi2": mean(&comparisons.iter().filter_map(|c| c.reference_chi2).collect::<Vec<_>>()),
        "worst_observable": worst,
        "speed": {
            "threads": threads,
            "device": deepsky_nn::device::device_name(&device),
            "points": speed,
            "speedup_1gev": speedup_at(1.0),
            "speedup_10gev": speedup_at(10.0),
            "speedup_100gev": speedup_at(100.0),
        },
        "goals": {
            "speedup_100gev_at_least_1000": speedup_at(100.0).map(|s| s >= 1000.0),
            "auc_high_level_at_most_0_75": hl.auc <= 0.75,
        },
        "timing": {"reference_s": t_ref, "generate_s": t_gen, "total_s": t0.elapsed().as_secs_f64()},
    });
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "report");
    tracing::info!(
        "AUC high-level {:.3} (reference {:.3}), all cells {:.3} (reference {:.3})",
        hl.auc,
        hl_ref.auc,
        cells.auc,
        cells_ref.auc
    );
    eprintln!(
        "fastsim validate: AUC high-level {:.3} (ref-vs-ref {:.3}), all cells {:.3} (ref-vs-ref {:.3}); mean χ² {:.4}{}; report in {}",
        hl.auc,
        hl_ref.auc,
        cells.auc,
        cells_ref.auc,
        mean(&comparisons.iter().map(|c| c.chi2).collect::<Vec<_>>()),
        speedup_at(100.0)
            .map(|s| format!("; {s:.0}× faster than the simulator at 100 GeV"))
            .unwrap_or_default(),
        frame.out.path("report.json").display()
    );
    Ok(())
}
