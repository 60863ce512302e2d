//! `deepsky detect predict`: one image, or many (`--input` files, folders, globs, `@list`)
//! processed one after another in sorted order; `--shard K/N` takes the K-th contiguous
//! block of that list, through exactly the same steps.

use std::path::Path;
use std::time::Instant;

use deepsky_detect::classical::detect_classical;
use deepsky_detect::metrics::{evaluate, DetectedObject, Evaluation, TruthObject};
use deepsky_detect::predict::predict;
use deepsky_detect::trained::TrainedDetector;
use deepsky_io::fits::{Card, CardValue};
use deepsky_runtime::{Progress, RunError, Shard};
use serde_json::{json, Value};

use super::catalog::{self, Row};
use super::config::DetectConfig;
use super::inputs;
use super::{detect_error, PredictArgs};
use crate::common::{self, RunFrame};

/// Evaluation as report.json shows it.
pub fn eval_json(e: &Evaluation) -> Value {
    serde_json::to_value(e).expect("evaluation serialises")
}

/// What one image gave: its rows, its record for report.json, and (with `--truth`) the
/// evaluation keys and matched truth ids.
struct ImageResult {
    rows: Vec<Row>,
    record: Value,
    evaluation: Option<serde_json::Map<String, Value>>,
    truth_ids: Option<Vec<i64>>,
}

/// Where an image's own products go: the output root when the run has one image (as it
/// always had), `images/<stem>/` when it has several.
pub fn image_prefix(multi: bool, image: &Path) -> String {
    if multi {
        format!("{IMAGES_DIR}/{}/", inputs::stem(image))
    } else {
        String::new()
    }
}

/// Folder of per-image products in runs over several images.
pub const IMAGES_DIR: &str = "images";

pub fn run(args: &PredictArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let images = inputs::expand(&args.input)?;
    let shard = args.common.shard.unwrap_or(Shard::WHOLE);
    let multi = images.len() > 1;
    if args.truth.is_some() && (multi || !shard.is_whole()) {
        return Err(RunError::input(
            "--truth evaluates one image in one run; give a single --input image without --shard",
        ));
    }
    let mine = shard.select(&images);
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
    for image in mine {
        frame.provenance.input(image, "image")?;
    }
    let det = TrainedDetector::load(&model_dir, &device).map_err(common::nn_error)?;
    let classes = det.card.model.classes.clone();
    let truth = match &args.truth {
        Some(p) => {
            frame.provenance.input(p, "truth")?;
            Some(catalog::read_truth(p, &cfg.input.truth_hdu, &classes)?)
        }
        None => None,
    };
    let formats = common::plot_formats(&cfg.output.plots)?;

    // Each image in turn: the same steps for one image, a directory of them, or a shard.
    let mut results = Vec::with_capacity(mine.len());
    for (k, image) in mine.iter().enumerate() {
        if mine.len() > 1 {
            tracing::info!("image {}/{}: {}", k + 1, mine.len(), image.display());
        }
        let r = process_image(
            image,
            multi,
            &det,
            &classes,
            truth.as_deref(),
            cfg,
            &formats,
            frame,
        )?;
        if deepsky_runtime::interrupt::interrupted() {
            return Err(RunError::Interrupted);
        }
        results.push(r);
    }

    // The catalogue over all images, in input order.
    let rows: Vec<(&Path, &Row)> = mine
        .iter()
        .zip(&results)
        .flat_map(|(p, r)| r.rows.iter().map(move |row| (p.as_path(), row)))
        .collect();
    let all_rows: Vec<Row> = rows.iter().map(|(_, r)| (*r).clone()).collect();
    let image_names: Vec<String> = rows.iter().map(|(p, _)| p.display().to_string()).collect();
    let truth_ids = results.first().and_then(|r| r.truth_ids.clone());
    let (df, meta) = catalog::catalog_frame(&all_rows, &classes, truth_ids.as_deref());
    let (df, meta) = catalog::with_image_column(df, meta, image_names);
    let first = if multi {
        Card::new(
            "NIMAGES",
            CardValue::Int(images.len() as i64),
            "images searched by the whole run",
        )
    } else {
        Card::new(
            "IMAGE",
            CardValue::Str(images.first().map(|p| file_name(p)).unwrap_or_default()),
            "searched image",
        )
    };
    let extra = [
        first,
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
    for name in ["catalog.fits", "catalog.csv"] {
        frame.provenance.output(name, "catalogue");
    }

    let records: Vec<Value> = results.iter().map(|r| r.record.clone()).collect();
    let mut report = summary_report(&records, multi, &model_dir, &classes);
    report["inputs_total"] = json!(images.len());
    if let Some(r) = results.first().filter(|_| !multi) {
        if let Some(eval) = &r.evaluation {
            let obj = report.as_object_mut().expect("object");
            obj.extend(eval.clone());
        }
    }
    if let Some(t) = &args.truth {
        report["truth"] = json!(t.display().to_string());
    }
    if !shard.is_whole() {
        report["shard"] = json!(shard.to_string());
    }
    frame.out.write_report(&report)?;
    eprintln!(
        "{} detections in {} image{}{}; catalogue in {}",
        all_rows.len(),
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        if shard.is_whole() {
            String::new()
        } else {
            format!(" (shard {shard} of {} images)", images.len())
        },
        frame.out.path("catalog.fits").display()
    );
    Ok(())
}

/// report.json from the per-image records, the same for a single run and a merge: the one
/// image's figures at the top level for a one-image run (as it always was), totals and the
/// `images` list for several.
pub fn summary_report(
    records: &[Value],
    multi: bool,
    model_dir: &Path,
    classes: &[String],
) -> Value {
    let n_detections: u64 = records
        .iter()
        .map(|r| r["n_detections"].as_u64().unwrap_or(0))
        .sum();
    let mut counts = serde_json::Map::new();
    for c in classes {
        let n: u64 = records
            .iter()
            .map(|r| r["per_class_counts"][c].as_u64().unwrap_or(0))
            .sum();
        counts.insert(c.clone(), json!(n));
    }
    let sum = |k: &str| -> f64 {
        records
            .iter()
            .map(|r| r["timing"][k].as_f64().unwrap_or(0.0))
            .sum()
    };
    let megapixels: f64 = records
        .iter()
        .map(|r| {
            r["shape"]
                .as_array()
                .map(|s| s.iter().filter_map(Value::as_f64).product::<f64>())
                .unwrap_or(0.0)
                / 1e6
        })
        .sum();
    let seconds = sum("detect_s") + sum("measure_s");
    let outputs: Vec<Value> = ["catalog.fits", "catalog.csv"]
        .into_iter()
        .map(|s| json!(s))
        .chain(
            records
                .iter()
                .flat_map(|r| r["outputs"].as_array().cloned().unwrap_or_default()),
        )
        .collect();
    let plots: Vec<Value> = records
        .iter()
        .flat_map(|r| r["plots"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut report = if !multi && records.len() == 1 {
        let mut r = records[0].clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("outputs");
            o.remove("plots");
        }
        r
    } else {
        json!({
            "n_detections": n_detections,
            "per_class_counts": counts,
            "timing": {"read_s": sum("read_s"), "detect_s": sum("detect_s"),
                       "measure_s": sum("measure_s"),
                       "megapixels_per_s": megapixels / seconds.max(1e-9)},
        })
    };
    report["model"] = json!(model_dir.display().to_string());
    report["classes"] = json!(classes);
    report["n_images"] = json!(records.len());
    report["images"] = json!(records);
    report["outputs"] = json!(outputs);
    report["plots"] = json!(plots);
    report
}

#[allow(clippy::too_many_arguments)]
fn process_image(
    path: &Path,
    multi: bool,
    det: &TrainedDetector,
    classes: &[String],
    truth: Option<&[TruthObject]>,
    cfg: &DetectConfig,
    formats: &[deepsky_plot::Format],
    frame: &mut RunFrame,
) -> Result<ImageResult, RunError> {
    let t0 = Instant::now();
    let prefix = image_prefix(multi, path);
    let (image, header) = catalog::read_image(path, &cfg.input.hdu)?;
    let (h, w) = image.dim();
    let wcs = match deepsky_io::wcs::Wcs::from_header(&header) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("{}: {e}; ra and dec will be NaN", path.display());
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
        predict(det, image.view(), None, &cfg.predict, &mut on_tiles).map_err(detect_error)?;
    bar.finish();
    let t_net = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let rows = catalog::measure(
        image.view(),
        &pred.background,
        &pred.detections,
        classes,
        &cfg.photometry,
        gain,
        wcs.as_ref(),
    );
    let t_measure = t2.elapsed().as_secs_f64();
    let megapixels = (h * w) as f64 / 1e6;
    let seconds = t_net + t_measure;

    let plot_dir = if multi {
        frame.out.path(&prefix)
    } else {
        frame.out.path("plots")
    };
    std::fs::create_dir_all(&plot_dir)
        .map_err(|e| RunError::failed(format!("{}: {e}", plot_dir.display())))?;
    let mut plots = Vec::new();
    let mut truth_ids = None;
    let mut evaluation = None;
    let mut missed: Vec<TruthObject> = Vec::new();
    // Evaluation against the truth, and the classical baseline beside it.
    if let Some(truth) = truth {
        let dets: Vec<DetectedObject> = rows.iter().map(Row::detected).collect();
        let e = evaluate(&dets, truth, classes, &cfg.evaluate);
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
        let be = evaluate(&base_dets, truth, classes, &cfg.evaluate);
        let mut obj = serde_json::Map::new();
        if let Value::Object(m) = eval_json(&e) {
            obj.extend(m);
        }
        let mut bj = eval_json(&be);
        bj["timing_s"] = json!(t_base);
        bj["settings_classical"] = serde_json::to_value(&cfg.baseline).expect("serialises");
        obj.insert("baseline".into(), bj);
        evaluation = Some(obj);
        plots.extend(catalog::snr_plots(
            &[("detector", &e), ("classical baseline", &be)],
            &plot_dir,
            formats,
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

    // The image's own products: DS9 regions and the overlay plot.
    let reg = format!("{prefix}detections.reg");
    frame
        .out
        .write_text(&reg, &catalog::regions(&rows, classes, path))?;
    frame.provenance.output(&reg, "regions");
    let overlay = catalog::overlay_plot(
        image.view(),
        &rows,
        classes,
        &missed,
        cfg.output.overlay_max_side,
    );
    plots.extend(
        deepsky_plot::save_formats(&overlay, plot_dir.join("overlay"), formats)
            .map_err(|e| RunError::failed(format!("plot: {e}")))?,
    );
    let rel = |p: &std::path::PathBuf| {
        p.strip_prefix(frame.out.root())
            .ok()
            .map(|r| r.display().to_string())
    };
    let plot_names: Vec<String> = plots.iter().filter_map(rel).collect();
    let record = json!({
        "image": path.display().to_string(),
        "shape": [h, w],
        "n_detections": rows.len(),
        "per_class_counts": class_counts(&rows, classes),
        "background": {"global_level": pred.background.global_level, "global_rms": pred.background.global_rms},
        "tiles": pred.tiles,
        "timing": {"read_s": t_read, "detect_s": t_net, "measure_s": t_measure,
                   "megapixels_per_s": megapixels / seconds.max(1e-9)},
        "outputs": [reg],
        "plots": plot_names,
    });
    tracing::info!(
        "{} detections in {} ({}×{}, {:.1} Mpix/s)",
        rows.len(),
        path.display(),
        w,
        h,
        megapixels / seconds.max(1e-9),
    );
    Ok(ImageResult {
        rows,
        record,
        evaluation,
        truth_ids,
    })
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
