//! `deepsky fastsim train`: the shower GAN on the training files, with progress, Ctrl-C,
//! checkpoints, periodic checks against the training showers, loss plots and report.json.

use std::time::Instant;

use deepsky_fastsim::data::{ShowerTensors, TrainingSet};
use deepsky_fastsim::report::{shower_loss_curves, ProgressCheck, TrainReport, TrainTiming};
use deepsky_fastsim::shower_gan::ShowerGan;
use deepsky_fastsim::validate::observable_samples;
use deepsky_io::calo::CaloGanShowers;
use deepsky_nn::gan::{GanEpoch, GanHooks, GanTrainer};
use deepsky_runtime::{Progress, RunError};

use super::{fastsim_error, FastsimConfig, TrainArgs};
use crate::common::{self, Plots, RunFrame};

/// Progress bar, Ctrl-C, and the periodic check: generate at the energies of the first
/// training showers and compare their observables (χ² per observable, plots).
struct Hooks<'a> {
    bar: Progress,
    gan: &'a ShowerGan,
    reference: CaloGanShowers,
    particle: String,
    every: usize,
    frame: &'a RunFrame,
    checks: Vec<ProgressCheck>,
    seed: u64,
}

impl Hooks<'_> {
    /// Generated against the reference showers, with PNG plots in
    /// `plots/progress/epoch-NNNNN`.
    fn check(&self, epoch: usize) -> Result<ProgressCheck, RunError> {
        let energies: Vec<f32> = self.reference.energy.iter().copied().collect();
        let cpu = candle_core::Device::Cpu;
        let generated = self
            .gan
            .simulator()
            .generate(&energies, &self.particle, self.seed, 1000, &cpu)
            .map_err(super::fastsim_error)?;
        let dir = format!("plots/progress/epoch-{epoch:05}");
        let mut plots = Plots::new(self.frame, &dir, &[deepsky_plot::Format::Png])?;
        let mut comparisons = Vec::new();
        for s in observable_samples(&self.reference, &generated, None, 30) {
            plots.save(&s.histogram(), s.observable.name)?;
            comparisons.push(s.comparison());
        }
        Ok(ProgressCheck::new(epoch, &comparisons))
    }
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
        // A failed check (generation, plots, files) is a failure, not bad input (exit 1).
        let check = self.check(r.epoch).map_err(|e| {
            deepsky_nn::NnError::Candle(candle_core::Error::Msg(format!("periodic check: {e}")))
        })?;
        tracing::info!(
            "epoch {}: mean χ² separation {:.4}",
            r.epoch,
            check.mean_chi2
        );
        self.checks.push(check);
        Ok(())
    }

    fn should_stop(&self) -> bool {
        deepsky_runtime::interrupt::interrupted()
    }
}

pub fn run(args: &TrainArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    frame.provenance.seed("train", cfg.train.seed);
    let mut files = Vec::new();
    for s in &cfg.data.samples {
        frame.provenance.input(&s.path, "training showers")?;
        files.push((
            s.path.as_path(),
            (!s.particle.is_empty()).then_some(s.particle.as_str()),
        ));
    }
    let set =
        TrainingSet::read(&files, cfg.model.cell_threshold_mev as f32).map_err(fastsim_error)?;
    let data = ShowerTensors::new(&set.samples, &set.conditioning, &device)
        .map_err(fastsim_error)?
        .with_mirror(cfg.data.mirror);
    let n = data.len();
    let c = &set.conditioning;
    let (energy_range_gev, particles) = ([c.e_min_gev, c.e_max_gev], c.particles.clone());
    let mut gan = ShowerGan::new(&cfg.model, c.clone(), set.layout, cfg.train.seed, &device)
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
    let steps_per_epoch = cfg.train.steps_per_epoch(n);
    let mut hooks = Hooks {
        bar: Progress::new(
            "training",
            (cfg.train.epochs * steps_per_epoch) as u64,
            "steps",
        ),
        gan: &gan,
        reference: set.samples[0].showers.head(cfg.progress.showers),
        particle: particles[0].clone(),
        every: cfg.progress.every,
        frame,
        checks: Vec::new(),
        seed: cfg.train.seed,
    };
    let t1 = Instant::now();
    let outcome = GanTrainer::new(&cfg.train)
        .checkpoints(&frame.out.path("checkpoints"))
        .resume(args.common.resume)
        .hooks(&mut hooks)
        .run(&gan)
        .map_err(common::nn_error)?;
    let t_train = t1.elapsed().as_secs_f64();
    hooks.bar.finish();
    let progress_checks = std::mem::take(&mut hooks.checks);
    drop(hooks);
    gan.save(&frame.out.path("model"), outcome.state.epochs_done)
        .map_err(fastsim_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");

    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    let h = &outcome.state.history;
    plots.save(&shower_loss_curves(h), "loss")?;
    frame.out.write_report(&TrainReport {
        model: "model".into(),
        particles,
        training_showers: n,
        energy_range_gev,
        layout: set.layout,
        generator_parameters: gan.generator_parameters(),
        critic_parameters: gan.critic_parameters(),
        epochs_run: outcome.state.epochs_done,
        steps: outcome.state.steps,
        resumed_from_epoch: outcome.resumed_from,
        history: h.clone(),
        progress_checks,
        plots: plots.written,
        timing: TrainTiming {
            train_s: t_train,
            total_s: t0.elapsed().as_secs_f64(),
        },
    })?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim train: {} epochs over {n} showers in {t_train:.0} s; model in {}",
        outcome.state.epochs_done,
        frame.out.published("model").display()
    );
    Ok(())
}
