//! `deepsky detect train`.

use std::time::Instant;

use deepsky_detect::config::DetectConfig;
use deepsky_detect::dataset::TrainData;
use deepsky_detect::detector::{Detector, TrainedOn};
use deepsky_detect::report::{TrainReport, TrainTiming, ValidationField};
use deepsky_nn::train::Trainer;
use deepsky_runtime::{Progress, RunError};

use super::{detect_error, TrainArgs};
use crate::common::Plots;
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
    let trained_on = match &cfg.data.randomise {
        None => TrainedOn {
            pixel_scale: sky.pixel_scale,
            psf_fwhm_pixels: sky.psf.fwhm() / sky.pixel_scale,
            fields: cfg.data.fields,
            crop: cfg.data.crop,
            psf_fwhm_pixels_range: None,
        },
        Some(r) => {
            let [lo, hi] = r.psf_fwhm_pixels;
            TrainedOn {
                pixel_scale: (r.pixel_scale[0] * r.pixel_scale[1]).sqrt(),
                psf_fwhm_pixels: (lo * hi).sqrt(),
                fields: cfg.data.fields,
                crop: cfg.data.crop,
                psf_fwhm_pixels_range: Some([lo, hi]),
            }
        }
    };
    let seed = cfg.model_seed();
    let mut det = Detector::init(&cfg.model, &cfg.preprocess, trained_on, seed, &device)
        .map_err(common::nn_error)?;
    let params = det.parameter_count();
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
    let trainer = Trainer::new(&cfg.train)
        .checkpoints(&ckpt)
        .resume(args.common.resume)
        .hooks(&mut hooks);
    let outcome = det
        .fit(&data, &cfg.assign, &cfg.loss, trainer)
        .map_err(common::nn_error)?;
    let t_train = t1.elapsed().as_secs_f64();
    match super::calibrate::operating_point(&det, cfg) {
        Ok(point) => det.set_operating_point(point),
        // A barely trained model may reach the purity at no threshold: it keeps none, and
        // predict falls back to its default threshold.
        Err(RunError::Failed(m)) if m.contains("no score threshold reaches purity") => {
            tracing::warn!("{m}; the model is saved without an operating point")
        }
        Err(e) => return Err(e),
    }
    let model_dir = frame.out.path("model");
    det.save(&model_dir).map_err(common::nn_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");

    // An unseen field with noise: how the trained detector does on a whole image, through the
    // same predict path users run.
    let validation = ValidationField::run(
        &det,
        &cfg.data.validation_sky(),
        &cfg.predict,
        &cfg.photometry,
        &cfg.evaluate,
        &mut |_, _| !deepsky_runtime::interrupt::interrupted(),
    )
    .map_err(detect_error)?;

    // Loss curves.
    let formats = common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    plots.save(&common::loss_curves(&outcome.state.history), "loss")?;
    let timing = TrainTiming {
        simulate_s: t_sim,
        train_s: t_train,
    };
    let examples = data.len();
    let report = TrainReport::new(
        "model",
        params,
        examples,
        &outcome,
        validation,
        timing,
        plots.written,
    );
    frame.out.write_report(&report)?;
    let e = &report.validation_field.evaluation;
    eprintln!(
        "trained {} epochs (best {}); unseen field: completeness {:.3}, purity {:.3}; model in {}",
        outcome.state.epochs_done,
        outcome.state.best_epoch,
        e.completeness.unwrap_or(f64::NAN),
        e.purity.unwrap_or(f64::NAN),
        frame.out.published("model").display()
    );
    Ok(())
}
