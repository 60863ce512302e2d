//! `deepsky fastsim images`: the DCGAN-style image GAN on galaxy cutouts, trained by the same
//! adversarial loop as the shower GAN, and its generated stamps compared with the training
//! stamps (per-stamp flux, peak and concentration: χ² separation and W1).

use std::time::Instant;

use deepsky_fastsim::image_gan::{read_cutouts, ImageGan};
use deepsky_fastsim::metrics::{binning, chi2_separation, wasserstein1};
use deepsky_io::h5::{AttrValue, H5Writer, WriteOptions};
use deepsky_io::NdData;
use deepsky_nn::gan::{GanEpoch, GanHooks, GanTrainer};
use deepsky_plot::{
    save_formats, Curves, Gallery, Hist1d, HistSample, HistStyle, Interval, Series, Stamp,
};
use deepsky_runtime::{Progress, RunError};
use ndarray::{s, Array3, Axis};
use serde_json::json;

use super::config::FastsimConfig;
use super::{fastsim_error, plot_dir, relative, TrainArgs};
use crate::common::{self, RunFrame};

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

/// Per-stamp summaries: total flux, peak pixel, fraction of the flux in the central quarter
/// of the stamp (the concentration).
fn summaries(images: &Array3<f32>) -> [(&'static str, &'static str, Vec<f64>); 3] {
    let (h, w) = (images.shape()[1], images.shape()[2]);
    let (r0, c0) = (h * 3 / 8, w * 3 / 8);
    let (r1, c1) = (h - r0, w - c0);
    let mut flux = Vec::new();
    let mut peak = Vec::new();
    let mut conc = Vec::new();
    for img in images.axis_iter(Axis(0)) {
        let total: f64 = img.iter().map(|&v| v as f64).sum();
        let centre: f64 = img
            .slice(s![r0..r1, c0..c1])
            .iter()
            .map(|&v| v as f64)
            .sum();
        flux.push(total);
        peak.push(img.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64);
        conc.push(if total.abs() > 0.0 {
            centre / total
        } else {
            0.0
        });
    }
    [
        ("flux", "total flux per stamp [ADU]", flux),
        ("peak", "brightest pixel [ADU]", peak),
        (
            "concentration",
            "flux fraction in the central quarter",
            conc,
        ),
    ]
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
    let pdir = plot_dir(frame, "plots")?;
    let mut plots = Vec::new();
    let mut comparison = serde_json::Map::new();
    for ((name, label, data), (_, _, gen)) in
        summaries(&images).into_iter().zip(summaries(&generated))
    {
        let edges = binning(&data, &gen, 40, false);
        let hist = Hist1d {
            x_label: label.into(),
            edges: edges.clone(),
            samples: vec![
                HistSample::values("Training stamps", data.clone()).with_style(HistStyle::Filled),
                HistSample::values("GAN", gen.clone()).with_style(HistStyle::Points),
            ],
            density: true,
            ratio_to: Some(0),
            ..Default::default()
        };
        let written = save_formats(&hist, pdir.join(name), &formats)
            .map_err(|e| RunError::failed(format!("plot {name}: {e}")))?;
        plots.extend(relative(frame, &written));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        comparison.insert(
            name.to_string(),
            json!({
                "chi2": chi2_separation(&gen, &data, &edges),
                "w1": wasserstein1(&gen, &data),
                "data_mean": mean(&data),
                "generated_mean": mean(&gen),
            }),
        );
    }
    // A gallery: training stamps in the first two rows, generated ones below.
    let k = 8.min(n).min(c.generate);
    let mut stamps = Vec::new();
    for i in 0..k {
        stamps.push(Stamp::new(
            images.index_axis(Axis(0), i).to_owned(),
            format!("data {i}"),
        ));
    }
    for i in 0..k {
        stamps.push(Stamp::new(
            generated.index_axis(Axis(0), i).to_owned(),
            format!("GAN {i}"),
        ));
    }
    let gallery = Gallery {
        title: "Training stamps (top) and generated (bottom)".into(),
        stamps,
        columns: k.div_ceil(2).max(1),
        interval: Interval::Percentile(99.5),
        ..Default::default()
    };
    let written = save_formats(&gallery, pdir.join("gallery"), &formats)
        .map_err(|e| RunError::failed(format!("plot gallery: {e}")))?;
    plots.extend(relative(frame, &written));
    let h = &outcome.state.history;
    let curves = Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        series: vec![
            Series::epochs("critic", h.iter().map(|e| e.critic_loss).collect()),
            Series::epochs("generator", h.iter().map(|e| e.generator_loss).collect()),
        ],
        ..Default::default()
    };
    let written = save_formats(&curves, pdir.join("loss"), &formats)
        .map_err(|e| RunError::failed(format!("plot loss: {e}")))?;
    plots.extend(relative(frame, &written));

    frame.out.write_report(&json!({
        "model": "model",
        "training_stamps": n,
        "label": c.label,
        "image_size": c.model.image_size,
        "generator_parameters": gan.generator_parameters(),
        "critic_parameters": gan.critic_parameters(),
        "epochs_run": outcome.state.epochs_done,
        "resumed_from_epoch": outcome.resumed_from,
        "history": h,
        "generated": c.generate,
        "comparison": comparison,
        "normalisation": gan.card.normalisation,
        "plots": plots,
        "timing": {"train_s": t_train, "total_s": t0.elapsed().as_secs_f64()},
    }))?;
    frame.provenance.output("report.json", "report");
    eprintln!(
        "fastsim images: {} epochs over {n} stamps in {t_train:.0} s; {} generated stamps in {}",
        outcome.state.epochs_done,
        c.generate,
        path.display()
    );
    Ok(())
}
