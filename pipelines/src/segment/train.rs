//! `deepsky segment train`.

use std::time::Instant;

use deepsky_nn::train::Trainer;
use deepsky_runtime::{Progress, RunError};
use deepsky_segment::calibrate::{self, truth_field};
use deepsky_segment::dataset::TrainData;
use deepsky_segment::model::{Segmenter, TrainedOn};
use deepsky_segment::predict::predict;
use deepsky_segment::SegmentConfig;
use serde_json::json;

use super::TrainArgs;
use crate::common::{self, Plots, RunFrame, TrainProgress};
use crate::detect::detect_error;

pub fn run(args: &TrainArgs, cfg: &SegmentConfig, frame: &mut RunFrame) -> Result<(), RunError> {
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
    frame
        .provenance
        .seed("calibration_fields", cfg.calibration_seed());

    let bar = Progress::new("simulating training fields", 1, "steps");
    let planes = cfg.model.mask_planes();
    let data = TrainData::simulate(&cfg.data, &cfg.preprocess, &planes, cfg.train.seed)
        .map_err(detect_error)?;
    bar.inc(1);
    bar.finish();
    let t_sim = t0.elapsed().as_secs_f64();
    let trained_on = match &cfg.data.randomise {
        Some(r) => TrainedOn {
            fields: cfg.data.fields,
            crop: cfg.data.crop,
            psf_fwhm_pixels: r.psf_fwhm_pixels,
            pixel_scale: r.pixel_scale,
        },
        None => {
            let sky = &cfg.data.sky;
            let f = sky.psf.fwhm() / sky.pixel_scale;
            TrainedOn {
                fields: cfg.data.fields,
                crop: cfg.data.crop,
                psf_fwhm_pixels: [f, f],
                pixel_scale: [sky.pixel_scale, sky.pixel_scale],
            }
        }
    };
    let mut seg = Segmenter::init(
        &cfg.model,
        &cfg.preprocess,
        trained_on,
        cfg.model_seed(),
        &device,
    )
    .map_err(common::nn_error)?;
    let params = seg.parameter_count();
    tracing::info!(
        "U-Net with {params} parameters; {} examples per epoch",
        data.len()
    );

    let t1 = Instant::now();
    let steps = (data.len() as f64 * (1.0 - cfg.train.val_fraction)).ceil() as usize;
    let mut hooks = TrainProgress::new(
        "training",
        cfg.train.epochs,
        steps.div_ceil(cfg.train.batch_size),
    );
    let trainer = Trainer::new(&cfg.train)
        .checkpoints(frame.out.path("checkpoints"))
        .resume(args.common.resume)
        .hooks(&mut hooks);
    let outcome = seg
        .fit(&data, &cfg.loss, trainer)
        .map_err(common::nn_error)?;
    let t_train = t1.elapsed().as_secs_f64();

    // Thresholds on unseen fields, then scores on one more unseen field at those thresholds.
    let t2 = Instant::now();
    let thresholds = calibrate::calibrate(&seg, cfg).map_err(detect_error)?;
    seg.set_thresholds(thresholds.clone());
    let model_dir = frame.out.path("model");
    seg.save(&model_dir).map_err(common::nn_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");
    let seed = cfg.calibration_seed() + cfg.calibrate.fields as u64;
    let field = truth_field(cfg, seed).map_err(detect_error)?;
    let net = seg.compile().map_err(common::nn_error)?;
    let pred = predict(&seg, &net, field.image.view(), &cfg.predict, &|_, _| true)
        .map_err(detect_error)?;
    let scores = calibrate::evaluate(&pred, &field.image, &field.bits);
    let t_cal = t2.elapsed().as_secs_f64();

    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    plots.save(&common::loss_curves(&outcome.state.history), "loss")?;
    let report = json!({
        "model": "model",
        "parameters": params,
        "multiply_adds_per_pixel": net.multiply_adds_per_pixel(),
        "examples_per_epoch": data.len(),
        "epochs_done": outcome.state.epochs_done,
        "best_epoch": outcome.state.best_epoch,
        "history": outcome.state.history,
        "thresholds": thresholds,
        "validation_field": { "seed": seed, "planes": scores },
        "timing": { "simulate_s": t_sim, "train_s": t_train, "calibrate_s": t_cal },
        "plots": plots.written,
    });
    frame.out.write_report(&report)?;
    let cr = scores.iter().find(|s| s.plane == "COSMIC_RAY");
    eprintln!(
        "trained {} epochs (best {}); unseen field: cosmic-ray TPR {:.3} at FPR {:.1e}; model in {}",
        outcome.state.epochs_done,
        outcome.state.best_epoch,
        cr.map(|s| s.tpr).unwrap_or(f64::NAN),
        cr.map(|s| s.fpr).unwrap_or(f64::NAN),
        frame.out.published("model").display()
    );
    Ok(())
}
