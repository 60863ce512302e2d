//! `deepsky fastsim train`.

use std::time::Instant;

use deepsky_fastsim::data::{Conditioning, ShowerTensors};
use deepsky_fastsim::shower_gan::ShowerGan;
use deepsky_nn::gan::{GanEpoch, GanHooks, GanTrainer};
use deepsky_plot::{save_formats, Curves, Dash, Series};
use deepsky_runtime::{Progress, RunError};
use serde_json::json;

use super::config::FastsimConfig;
use super::validate::compare;
use super::{fastsim_error, plot_dir, relative, samples, TrainArgs};
use crate::common::{self, RunFrame};

/// Progress bar, Ctrl-C, and the periodic check: generate at the energies of the first
/// training showers and compare their observables (χ² per observable, plots).
struct Hooks<'a> {
    bar: Progress,
    gan: &'a ShowerGan,
    reference: deepsky_io::calo::CaloGanShowers,
    particle: String,
    every: usize,
    frame: &'a RunFrame,
    checks: Vec<serde_json::Value>,
    seed: u64,
}

impl GanHooks for Hooks<'_> {
    fn on_step(&mut self, step: usize) {
        self.bar.advance_to(step as u64);
    }

    fn on_epoch(&mut self, r: &GanEpoch) -> deepsky_nn::Result<()> {
        let energy = r
            .terms
            .iter()
            .find(|t| t.0 == "energy")
            .map_or(0.0, |t| t.1);
        self.bar.message(&format!(
            "epoch {} critic {:.3} generator {:.3} energy {:.3}",
            r.epoch, r.critic_loss, r.generator_loss, energy
        ));
        tracing::info!(
            "epoch {}: critic {:.4}, generator {:.4}, energy term {:.4}",
            r.epoch,
            r.critic_loss,
            r.generator_loss,
            energy
        );
        if self.every == 0 || r.epoch % self.every != 0 {
            return Ok(());
        }
        let energies: Vec<f32> = self.reference.energy.iter().copied().collect();
        let generated = self
            .gan
            .simulator()
            .generate(
                &energies,
                &self.particle,
                self.seed,
                1000,
                &candle_core::Device::Cpu,
            )
            .map_err(check_failed)?;
        let dir = self
            .frame
            .out
            .path(&format!("plots/progress/epoch-{:05}", r.epoch));
        std::fs::create_dir_all(&dir).map_err(|e| deepsky_nn::NnError::checkpoint(&dir, e))?;
        let cmp = compare(
            &self.reference,
            &generated,
            None,
            30,
            &dir,
            &[deepsky_plot::Format::Png],
            self.frame,
        )
        .map_err(check_failed)?;
        let mean = cmp.iter().map(|c| c.chi2).sum::<f64>() / cmp.len() as f64;
        tracing::info!("epoch {}: mean χ² separation {mean:.4}", r.epoch);
        self.checks.push(json!({
            "epoch": r.epoch,
            "mean_chi2": mean,
            "chi2": cmp.iter().map(|c| (c.name.to_string(), json!(c.chi2))).collect::<serde_json::Map<_, _>>(),
        }));
        Ok(())
    }

    fn should_stop(&self) -> bool {
        deepsky_runtime::interrupt::interrupted()
    }
}

/// A failure of the periodic check (generation, plots, files): not bad input (exit 1).
fn check_failed(e: impl std::fmt::Display) -> deepsky_nn::NnError {
    deepsky_nn::NnError::Candle(candle_core::Error::Msg(format!("periodic check: {e}")))
}

pub fn run(args: &TrainArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    frame.provenance.seed("train", cfg.train.seed);
    let threshold = cfg.model.cell_threshold_mev as f32;
    let mut files = Vec::new();
    for s in &cfg.data.samples {
        frame.provenance.input(&s.path, "training showers")?;
        files.push(samples::read(&s.path, &s.particle, None, threshold)?);
    }
    let layout = files[0].layout;
    let mut particles: Vec<String> = Vec::new();
    for f in &files {
        if particles.contains(&f.sample.particle) {
            return Err(RunError::input(format!(
                "data.samples: two files of `{}`; give one file per particle type",
                f.sample.particle
            )));
        }
        particles.push(f.sample.particle.clone());
    }
    let (mut e_min, mut e_max) = (f64::INFINITY, 0f64);
    for f in &files {
        for &e in f.sample.showers.energy.iter() {
            e_min = e_min.min(e as f64);
            e_max = e_max.max(e as f64);
        }
    }
    let conditioning = Conditioning {
        e_min_gev: e_min,
        e_max_gev: e_max,
        particles: particles.clone(),
    };
    let samples: Vec<_> = files.into_iter().map(|f| f.sample).collect();
    let data = ShowerTensors::new(&samples, &conditioning, &device)
        .map_err(fastsim_error)?
        .with_mirror(cfg.data.mirror);
    let n = data.len();
    let mut gan = ShowerGan::new(&cfg.model, conditioning, layout, cfg.train.seed, &device)
        .map_err(fastsim_error)?;
    tracing::info!(
        "shower GAN: generator {} parameters, critic {}; {n} training showers ({})",
        gan.generator_parameters(),
        gan.critic_parameters(),
        particles.join(", ")
    );
    gan.set_data(data, cfg.loss.clone())
        .map_err(fastsim_error)?;

    // Periodic check against the first training showers of the first particle.
    let k = cfg.progress.showers.min(samples[0].showers.len());
    let reference = deepsky_fastsim::data::unflatten_cells(
        deepsky_fastsim::data::flatten_cells(&samples[0].showers)
            .slice(ndarray::s![..k, ..])
            .as_standard_layout()
            .as_slice()
            .expect("standard layout"),
        samples[0]
            .showers
            .overflow
            .slice(ndarray::s![..k, ..])
            .as_standard_layout()
            .as_slice()
            .expect("standard layout"),
        &samples[0]
            .showers
            .energy
            .iter()
            .take(k)
            .copied()
            .collect::<Vec<_>>(),
    );
    let steps_per_epoch = cfg.train.steps_per_epoch(n);
    let mut hooks = Hooks {
        bar: Progress::new(
            "training",
            (cfg.train.epochs * steps_per_epoch) as u64,
            "steps",
        ),
        gan: &gan,
        reference,
        particle: particles[0].clone(),
        every: cfg.progress.every,
        frame,
        checks: Vec::new(),
        seed: cfg.train.seed,
    };
    let ckpt = frame.out.path("checkpoints");
    let t1 = Instant::now();
    let outcome = GanTrainer::new(&cfg.train)
        .checkpoints(&ckpt)
        .resume(args.common.resume)
        .hooks(&mut hooks)
        .run(&gan)
        .map_err(common::nn_error)?;
    let t_train = t1.elapsed().as_secs_f64();
    hooks.bar.finish();
    let checks = std::mem::take(&mut hooks.checks);
    drop(hooks);
    gan.save(&frame.out.path("model"), outcome.state.epochs_done)
        .map_err(fastsim_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");

    // Loss curves.
    let formats = common::plot_formats(&cfg.output.plots)?;
    let pdir = plot_dir(frame, "plots")?;
    let h = &outcome.state.history;
    let term = |name: &str| -> Vec<f64> {
        h.iter()
            .map(|e| {
                e.terms
                    .iter()
                    .find(|t| t.0 == name)
                    .map_or(f64::NAN, |t| t.1)
            })
            .collect()
    };
    let curves = Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        log_y: true,
        legend: deepsky_plot::LegendPos::UpperRight,
        series: vec![
            Series::epochs("critic", h.iter().map(|e| e.critic_loss).collect()),
            Series::epochs(
                "generator",
                term("adversarial").iter().map(|v| v.abs()).collect(),
            )
            .with_dash(Dash::Dashed),
            Series::epochs("energy term", term("energy")).with_dash(Dash::Dotted),
        ],
        ..Default::default()
    };
    let loss_plots = save_formats(&curves, pdir.join("loss"), &formats)
        .map_err(|e| RunError::failed(format!("plot: {e}")))?;
    let report = json!({
        "model": "model",
        "particles": particles,
        "training_showers": n,
        "energy_range_gev": [e_min, e_max],
        "layout": layout,
        "generator_parameters": gan.generator_parameters(),
        "critic_parameters": gan.critic_parameters(),
        "epochs_run": outcome.state.epochs_done,
        "steps": outcome.state.steps,
        "resumed_from_epoch": outcome.resumed_from,
        "history": h,
        "progress_checks": checks,
        "plots": relative(frame, &loss_plots),
        "timing": {"train_s": t_train, "total_s": t0.elapsed().as_secs_f64()},
    });
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim train: {} epochs over {n} showers in {t_train:.0} s; model in {}",
        outcome.state.epochs_done,
        frame.out.path("model").display()
    );
    Ok(())
}
