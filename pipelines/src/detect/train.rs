//! `deepsky detect train`.

use std::time::Instant;

use deepsky_detect::dataset::{truth_objects, TrainData};
use deepsky_detect::metrics::{evaluate, DetectedObject};
use deepsky_detect::predict::predict;
use deepsky_detect::trained::{TrainedDetector, TrainedOn};
use deepsky_nn::train::Trainer;
use deepsky_plot::save_formats;
use deepsky_runtime::{Progress, RunError};
use serde_json::json;

use super::catalog::{self, Row};
use super::config::DetectConfig;
use super::predict::eval_json;
use super::{detect_error, TrainArgs};
use crate::common::{self, RunFrame, TrainProgress};

pub fn run(args: &TrainArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    if args.common.shard.is_some() {
        return Err(RunError::input(
            "--shard does not apply to training (one job)",
        ));
    }
    frame.provenance.seed("train", cfg.train.seed);
    frame.provenance.seed("model_init", cfg.model_seed());
    frame
        .provenance
        .seed("training_fields", cfg.data.field_seed);

    let bar = Progress::new("simulating training fields", 1, "steps");
    let data =
        TrainData::simulate(&cfg.data, &cfg.preprocess, cfg.train.seed).map_err(detect_error)?;
    bar.inc(1);
    bar.finish();
    let t_sim = t0.elapsed().as_secs_f64();
    let sky = &cfg.data.sky;
    let trained_on = TrainedOn {
        pixel_scale: sky.pixel_scale,
        psf_fwhm_pixels: sky.psf.fwhm() / sky.pixel_scale,
        fields: cfg.data.fields,
        crop: cfg.data.crop,
    };
    let det = TrainedDetector::new(
        &cfg.model,
        &cfg.preprocess,
        trained_on,
        cfg.model_seed(),
        &device,
    )
    .map_err(common::nn_error)?;
    let params = deepsky_detect::model::parameter_count(det.vars.varmap());
    tracing::info!(
        "detector with {params} parameters; {} examples per epoch",
        data.len()
    );

    let t1 = Instant::now();
    let steps = (data.len() as f64 * (1.0 - cfg.train.val_fraction)).ceil() as usize;
    let mut hooks = TrainProgress::new(
        "training",
        cfg.train.epochs,
        steps.div_ceil(cfg.train.batch_size),
    );
    let ckpt = frame.out.path("checkpoints");
    let outcome = det
        .fit(
            &data,
            &cfg.assign,
            &cfg.loss,
            Trainer::new(&cfg.train)
                .checkpoints(&ckpt)
                .resume(args.common.resume)
                .hooks(&mut hooks),
        )
        .map_err(common::nn_error)?;
    let t_train = t1.elapsed().as_secs_f64();
    let model_dir = frame.out.path("model");
    det.save(&model_dir).map_err(common::nn_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");

    // An unseen field (the seed after the training fields') with noise: how the trained
    // detector does on a whole image, through the same predict path users run.
    let mut val_sky = sky.clone();
    val_sky.seed = cfg.data.field_seed + cfg.data.fields as u64;
    val_sky.noise.enabled = true;
    let field = deepsky_sim::sky::simulate_sky(&val_sky, &())
        .map_err(|e| RunError::failed(format!("validation field: {e}")))?;
    let pred = predict(&det, field.image.view(), None, &cfg.predict, &mut |_, _| {
        !deepsky_runtime::interrupt::interrupted()
    })
    .map_err(detect_error)?;
    let classes = det.card.model.classes.clone();
    let rows = catalog::measure(
        field.image.view(),
        &pred.background,
        &pred.detections,
        &classes,
        &cfg.photometry,
        Some(val_sky.noise.gain),
        None,
    );
    let truth = truth_objects(&field.catalog);
    let dets: Vec<DetectedObject> = rows.iter().map(Row::detected).collect();
    let e = evaluate(&dets, &truth, &classes, &cfg.evaluate);

    // Loss curves.
    let formats = common::plot_formats(&cfg.output.plots)?;
    let plot_dir = frame.out.path("plots");
    std::fs::create_dir_all(&plot_dir)
        .map_err(|e| RunError::failed(format!("{}: {e}", plot_dir.display())))?;
    let h = &outcome.state.history;
    let plot = common::loss_curves(h);
    let written = save_formats(&plot, plot_dir.join("loss"), &formats)
        .map_err(|e| RunError::failed(format!("plot: {e}")))?;
    let plots: Vec<String> = written
        .iter()
        .filter_map(|p| {
            p.strip_prefix(frame.out.root())
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect();
    let report = json!({
        "model": "model",
        "parameters": params,
        "examples_per_epoch": data.len(),
        "epochs_run": outcome.state.epochs_done,
        "best_epoch": outcome.state.best_epoch,
        "stopped_early": outcome.state.stopped_early,
        "resumed_from_epoch": outcome.resumed_from,
        "first_train_loss": h.first().map(|r| r.train_loss),
        "final_train_loss": h.last().map(|r| r.train_loss),
        "best_val_loss": outcome.state.best_val,
        "history": h,
        "validation_field": {"seed": val_sky.seed, "n_detections": rows.len(), "evaluation": eval_json(&e)},
        "timing": {"simulate_s": t_sim, "train_s": t_train},
        "plots": plots,
    });
    frame.out.write_report(&report)?;
    eprintln!(
        "trained {} epochs (best {}); unseen field: completeness {:.3}, purity {:.3}; model in {}",
        outcome.state.epochs_done,
        outcome.state.best_epoch,
        e.completeness.unwrap_or(f64::NAN),
        e.purity.unwrap_or(f64::NAN),
        model_dir.display()
    );
    Ok(())
}
