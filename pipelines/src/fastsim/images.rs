//! `deepsky fastsim images`: the DCGAN-style image GAN on galaxy cutouts, trained by the same
//! adversarial loop as the shower GAN, and its generated stamps compared with the training
//! stamps (per-stamp flux, peak and concentration: χ² separation and W1).

use std::time::Instant;

use deepsky_fastsim::image_gan::{read_cutouts, ImageGan};
use deepsky_fastsim::report::{image_loss_curves, ImagesReport, TrainTiming};
use deepsky_fastsim::stamps::{compare_stamps, gallery};
use deepsky_io::h5::{AttrValue, H5Writer, WriteOptions};
use deepsky_io::NdData;
use deepsky_nn::gan::{GanEpoch, GanHooks, GanTrainer};
use deepsky_runtime::{Progress, RunError};

use super::{fastsim_error, FastsimConfig, TrainArgs};
use crate::common::{self, Plots, RunFrame};

struct Hooks {
    bar: Progress,
}

impl GanHooks for Hooks {
    fn on_step(&mut self, step: usize) {
        self.bar.advance_to(step as u64);
    }
    fn on_epoch(&mut self, r: &GanEpoch) -> deepsky_nn::Result<()> {
        self.bar.message(&format!(
            "epoch {} critic {:.3} generator {:.3}",
            r.epoch, r.critic_loss, r.generator_loss
        ));
        Ok(())
    }
    fn should_stop(&self) -> bool {
        deepsky_runtime::interrupt::interrupted()
    }
}

pub fn run(args: &TrainArgs, cfg: &FastsimConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let c = &cfg.images;
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    frame.provenance.input(&c.path, "training stamps")?;
    frame.provenance.seed("train", c.train.seed);
    frame.provenance.seed("generate", c.seed);
    let label = (c.label >= 0).then_some(c.label);
    let images = read_cutouts(&c.path, label).map_err(fastsim_error)?;
    if images.shape()[0] < 2 {
        return Err(RunError::input(format!(
            "{}: {} stamps with label {}; need at least 2",
            c.path.display(),
            images.shape()[0],
            c.label
        )));
    }
    let mut gan = ImageGan::new(&c.model, c.train.seed, &device).map_err(fastsim_error)?;
    gan.set_data(&images).map_err(fastsim_error)?;
    let n = images.shape()[0];
    let steps = c.train.steps_per_epoch(n);
    let mut hooks = Hooks {
        bar: Progress::new("training", (c.train.epochs * steps) as u64, "steps"),
    };
    let t1 = Instant::now();
    let outcome = GanTrainer::new(&c.train)
        .checkpoints(&frame.out.path("checkpoints"))
        .resume(args.common.resume)
        .hooks(&mut hooks)
        .run(&gan)
        .map_err(common::nn_error)?;
    hooks.bar.finish();
    let t_train = t1.elapsed().as_secs_f64();
    gan.save(&frame.out.path("model"), outcome.state.epochs_done)
        .map_err(fastsim_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");

    let generated = gan.generate(c.generate, c.seed).map_err(fastsim_error)?;
    let mut attrs = frame.provenance.hdf5_attrs();
    attrs.push((
        "units".into(),
        AttrValue::Str("pixel values as in the training stamps".into()),
    ));
    let path = frame.out.path("generated.h5");
    let w = H5Writer::create(&path)?;
    w.write(
        "/images",
        &NdData::F32(generated.clone().into_dyn()),
        &WriteOptions::default(),
    )?;
    for (k, v) in attrs {
        w.set_attr("/", &k, v)?;
    }
    w.finish()?;
    frame.provenance.output("generated.h5", "generated stamps");

    // Generated against the training stamps.
    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    let mut comparison = std::collections::BTreeMap::new();
    for summary in compare_stamps(&images, &generated, 40) {
        plots.save(&summary.histogram(), summary.name)?;
        comparison.insert(summary.name.to_string(), summary.comparison);
    }
    plots.save(&gallery(&images, &generated), "gallery")?;
    let h = &outcome.state.history;
    plots.save(&image_loss_curves(h), "loss")?;
    frame.out.write_report(&ImagesReport {
        model: "model".into(),
        training_stamps: n,
        label: c.label,
        image_size: c.model.image_size,
        generator_parameters: gan.generator_parameters(),
        critic_parameters: gan.critic_parameters(),
        epochs_run: outcome.state.epochs_done,
        resumed_from_epoch: outcome.resumed_from,
        history: h.clone(),
        generated: c.generate,
        comparison,
        normalisation: gan.card.normalisation,
        plots: plots.written,
        timing: TrainTiming {
            train_s: t_train,
            total_s: t0.elapsed().as_secs_f64(),
        },
    })?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim images: {} epochs over {n} stamps in {t_train:.0} s; {} generated stamps in {}",
        outcome.state.epochs_done,
        c.generate,
        frame.out.published("generated.h5").display()
    );
    Ok(())
}
