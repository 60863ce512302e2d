//! `deepsky detect predict`.

use std::time::Instant;

use deepsky_detect::classical::detect_classical;
use deepsky_detect::metrics::{evaluate, DetectedObject, Evaluation, TruthObject};
use deepsky_detect::predict::predict;
use deepsky_detect::trained::TrainedDetector;
use deepsky_io::fits::{Card, CardValue};
use deepsky_runtime::{Progress, RunError};
use serde_json::{json, Value};

use super::catalog::{self, Row};
use super::config::DetectConfig;
use super::{detect_error, PredictArgs};
use crate::common::{self, RunFrame};

/// Evaluation as report.json shows it.
pub fn eval_json(e: &Evaluation) -> Value {
    serde_json::to_value(e).expect("evaluation serialises")
}

pub fn run(args: &PredictArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    if args.common.shard.is_some() {
        return Err(RunError::input(
            "--shard splits runs over many images; `detect predict` takes one image (run one job per image)",
        ));
    }
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(|| cfg.input.model.clone());
    if !model_dir.join("model.json").exists() {
        return Err(RunError::input(format!(
            "{}: no trained detector here (model.json missing); train one with `deepsky detect train` or give --model DIR",
            model_dir.display()
        )));
    }
    for f in ["model.json", "model.safetensors"] {
        frame.provenance.input(&model_dir.join(f), "model")?;
    }
    frame.provenance.input(&args.input, "image")?;
    let det = TrainedDetector::load(&model_dir, &device).map_err(common::nn_error)?;
    let classes = det.card.model.classes.clone();
    let truth = match &args.truth {
        Some(p) => {
            frame.provenance.input(p, "truth")?;
            Some(catalog::read_truth(p, &cfg.input.truth_hdu, &classes)?)
        }
        None => None,
    };
    let (image, header) = catalog::read_image(&args.input, &cfg.input.hdu)?;
    let (h, w) = image.dim();
    let wcs = match deepsky_io::wcs::Wcs::from_header(&header) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("{}: {e}; ra and dec will be NaN", args.input.display());
            None
        }
    };
    let gain = catalog::gain_of(&cfg.photometry, &header);
    let t_read = t0.elapsed().as_secs_f64();

    // The network.
    let t1 = Instant::now();
    let total = deepsky_detect::predict::tile_count(h, w, &cfg.predict);
    let bar = Progress::new("detecting", total as u64, "tiles");
    let mut on_tiles = |done: usize, _total: usize| {
        bar.inc((done as u64).saturating_sub(bar.done()));
        !deepsky_runtime::interrupt::interrupted()
    };
    let pred =
        predict(&det, image.view(), None, &cfg.predict, &mut on_tiles).map_err(detect_error)?;
    bar.finish();
    let t_net = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let rows = catalog::measure(
        image.view(),
        &pred.background,
        &pred.detections,
        &classes,
        &cfg.photometry,
        gain,
        wcs.as_ref(),
    );
    let t_measure = t2.elapsed().as_secs_f64();
    let megapixels = (h * w) as f64 / 1e6;
    let seconds = t_net + t_measure;

    // Evaluation against the truth, and the classical baseline beside it.
    let mut report = json!({
        "image": args.input.display().to_string(),
        "shape": [h, w],
        "model": model_dir.display().to_string(),
        "n_detections": rows.len(),
        "per_class_counts": class_counts(&rows, &classes),
        "background": {"global_level": pred.background.global_level, "global_rms": pred.background.global_rms},
        "tiles": pred.tiles,
        "timing": {"read_s": t_read, "detect_s": t_net, "measure_s": t_measure,
                   "megapixels_per_s": megapixels / seconds.max(1e-9)},
    });
    let formats = common::plot_formats(&cfg.output.plots)?;
    let plot_dir = frame.out.path("plots");
    std::fs::create_dir_all(&plot_dir)
        .map_err(|e| RunError::failed(format!("{}: {e}", plot_dir.display())))?;
    let mut plots = Vec::new();
    let mut truth_ids = None;
    let mut missed: Vec<TruthObject> = Vec::new();
    if let Some(truth) = &truth {
        let dets: Vec<DetectedObject> = rows.iter().map(Row::detected).collect();
        let e = evaluate(&dets, truth, &classes, &cfg.evaluate);
        truth_ids = Some(
            e.det_match
                .iter()
                .map(|m| m.map(|i| i as i64 + 1).unwrap_or(-1))
                .collect::<Vec<i64>>(),
        );
        missed = truth
            .iter()
            .zip(&e.truth_match)
            .filter(|(t, m)| m.is_none() && !t.artefact && t.snr >= cfg.evaluate.min_snr)
            .map(|(t, _)| *t)
            .collect();
        // The classical baseline on the same image and background.
        let tb = Instant::now();
        let base = detect_classical(image.view(), None, &pred.background, &cfg.baseline)
            .map_err(detect_error)?;
        let t_base = tb.elapsed().as_secs_f64();
        let base_dets: Vec<DetectedObject> = base
            .iter()
            .map(|d| DetectedObject {
                x: (d.x - 0.5) as f32,
                y: (d.y - 0.5) as f32,
                bbox: Some(deepsky_detect::boxes::BBox::from_fits_pixels(
                    d.xmin as i64,
                    d.ymin as i64,
                    d.xmax as i64,
                    d.ymax as i64,
                )),
                class: None,
                score: d.snr,
                snr: d.snr,
            })
            .collect();
        let be = evaluate(&base_dets, truth, &classes, &cfg.evaluate);
        let mut obj = report.as_object().cloned().unwrap_or_default();
        if let Value::Object(m) = eval_json(&e) {
            obj.extend(m);
        }
        let mut bj = eval_json(&be);
        bj["timing_s"] = json!(t_base);
        bj["settings_classical"] = serde_json::to_value(&cfg.baseline).expect("serialises");
        obj.insert("baseline".into(), bj);
        obj.insert(
            "truth".into(),
            json!(args.truth.as_ref().map(|p| p.display().to_string())),
        );
        report = Value::Object(obj);
        plots.extend(catalog::snr_plots(
            &[("detector", &e), ("classical baseline", &be)],
            &plot_dir,
            &formats,
        )?);
        tracing::info!(
            "detector: completeness {:.3} purity {:.3} (S/N 3-10: {:.3}); baseline: {:.3} {:.3} ({:.3})",
            e.completeness.unwrap_or(f64::NAN),
            e.purity.unwrap_or(f64::NAN),
            e.completeness_snr_3_10.unwrap_or(f64::NAN),
            be.completeness.unwrap_or(f64::NAN),
            be.purity.unwrap_or(f64::NAN),
            be.completeness_snr_3_10.unwrap_or(f64::NAN),
        );
    }

    // Outputs.
    let (df, meta) = catalog::catalog_frame(&rows, &classes, truth_ids.as_deref());
    let extra = [
        Card::new(
            "IMAGE",
            CardValue::Str(file_name(&args.input)),
            "searched image",
        ),
        Card::new(
            "MODEL",
            CardValue::Str(model_dir.display().to_string()),
            "detector",
        ),
        Card::new(
            "APERRAD",
            CardValue::Float(cfg.photometry.aperture_radius),
            "[pix] aperture radius",
        ),
    ];
    catalog::write_catalog(frame, "catalog", &df, &meta, &extra)?;
    frame.out.write_text(
        "detections.reg",
        &catalog::regions(&rows, &classes, &args.input),
    )?;
    let overlay = catalog::overlay_plot(
        image.view(),
        &rows,
        &classes,
        &missed,
        cfg.output.overlay_max_side,
    );
    plots.extend(
        deepsky_plot::save_formats(&overlay, plot_dir.join("overlay"), &formats)
            .map_err(|e| RunError::failed(format!("plot: {e}")))?,
    );
    for name in ["catalog.fits", "catalog.csv", "detections.reg"] {
        frame.provenance.output(name, "catalogue");
    }
    let plots: Vec<String> = plots
        .iter()
        .filter_map(|p| {
            p.strip_prefix(frame.out.root())
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect();
    report["plots"] = json!(plots);
    report["outputs"] = json!(["catalog.fits", "catalog.csv", "detections.reg"]);
    frame.out.write_report(&report)?;
    eprintln!(
        "{} detections in {} ({}×{}, {:.1} Mpix/s); catalogue in {}",
        rows.len(),
        args.input.display(),
        w,
        h,
        megapixels / seconds.max(1e-9),
        frame.out.path("catalog.fits").display()
    );
    Ok(())
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn class_counts(rows: &[Row], classes: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    for (c, name) in classes.iter().enumerate() {
        m.insert(
            name.clone(),
            json!(rows.iter().filter(|r| r.class == c).count()),
        );
    }
    Value::Object(m)
}
