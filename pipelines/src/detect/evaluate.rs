//! `deepsky detect evaluate`: score any catalogue against a truth catalogue.

use deepsky_detect::boxes::BBox;
use deepsky_detect::metrics::{evaluate, DetectedObject};
use deepsky_runtime::RunError;
use serde_json::json;

use super::catalog;
use super::config::DetectConfig;
use super::predict::eval_json;
use super::EvaluateArgs;
use crate::common::RunFrame;

pub fn run(args: &EvaluateArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    frame.provenance.input(&args.catalog, "catalogue")?;
    frame.provenance.input(&args.truth, "truth")?;
    let classes = deepsky_detect::model::DetectorConfig::default().classes;
    let truth = catalog::read_truth(&args.truth, &cfg.input.truth_hdu, &classes)?;
    let df = catalog::read_table(&args.catalog, "")?;
    let p = &args.catalog;
    // Our catalogues (x, y, box_*, class, score) or SExtractor's (X_IMAGE, ... FLUX_AUTO).
    let x = catalog::column_f64(p, &df, &["x", "X_IMAGE", "XWIN_IMAGE"])?;
    let y = catalog::column_f64(p, &df, &["y", "Y_IMAGE", "YWIN_IMAGE"])?;
    let has = |n: &str| df.column(n).is_ok();
    let boxes: Option<[Vec<f64>; 4]> = if has("box_xmin") {
        Some([
            catalog::column_f64(p, &df, &["box_xmin"])?,
            catalog::column_f64(p, &df, &["box_ymin"])?,
            catalog::column_f64(p, &df, &["box_xmax"])?,
            catalog::column_f64(p, &df, &["box_ymax"])?,
        ])
    } else if has("XMIN_IMAGE") {
        // SExtractor's are inclusive 1-based pixel indices.
        let v = |n: &str| catalog::column_f64(p, &df, &[n]);
        let (a, b, c, d) = (
            v("XMIN_IMAGE")?,
            v("YMIN_IMAGE")?,
            v("XMAX_IMAGE")?,
            v("YMAX_IMAGE")?,
        );
        Some([
            a.iter().map(|v| v - 0.5).collect(),
            b.iter().map(|v| v - 0.5).collect(),
            c.iter().map(|v| v + 0.5).collect(),
            d.iter().map(|v| v + 0.5).collect(),
        ])
    } else {
        None
    };
    let snr: Vec<f64> = if has("snr_aper") {
        catalog::column_f64(p, &df, &["snr_aper"])?
    } else if has("SNR_WIN") {
        catalog::column_f64(p, &df, &["SNR_WIN"])?
    } else if has("FLUX_AUTO") && has("FLUXERR_AUTO") {
        let f = catalog::column_f64(p, &df, &["FLUX_AUTO"])?;
        let e = catalog::column_f64(p, &df, &["FLUXERR_AUTO"])?;
        f.iter().zip(&e).map(|(f, e)| f / e).collect()
    } else {
        vec![f64::NAN; x.len()]
    };
    let score = if has("score") {
        catalog::column_f64(p, &df, &["score"])?
    } else {
        snr.clone()
    };
    let class: Option<Vec<f64>> = if has("class_id") {
        Some(catalog::column_f64(p, &df, &["class_id"])?)
    } else {
        None
    };
    let dets: Vec<DetectedObject> = (0..x.len())
        .map(|i| DetectedObject {
            x: (x[i] - 0.5) as f32,
            y: (y[i] - 0.5) as f32,
            bbox: boxes.as_ref().map(|b| {
                // FITS pixel coordinates of the edges → continuous 0-based.
                BBox::new(
                    (b[0][i] - 0.5) as f32,
                    (b[1][i] - 0.5) as f32,
                    (b[2][i] - 0.5) as f32,
                    (b[3][i] - 0.5) as f32,
                )
            }),
            class: class.as_ref().map(|c| c[i].max(0.0) as usize),
            score: score[i],
            snr: snr[i],
        })
        .collect();
    let e = evaluate(&dets, &truth, &classes, &cfg.evaluate);
    let formats = crate::common::plot_formats(&cfg.output.plots)?;
    let plot_dir = frame.out.path("plots");
    std::fs::create_dir_all(&plot_dir)
        .map_err(|e| RunError::failed(format!("{}: {e}", plot_dir.display())))?;
    let written = catalog::snr_plots(&[(args.label.as_str(), &e)], &plot_dir, &formats)?;
    let mut report = eval_json(&e);
    report["label"] = json!(args.label);
    report["catalog"] = json!(args.catalog.display().to_string());
    report["truth"] = json!(args.truth.display().to_string());
    report["plots"] = json!(written
        .iter()
        .filter_map(|p| p
            .strip_prefix(frame.out.root())
            .ok()
            .map(|r| r.display().to_string()))
        .collect::<Vec<_>>());
    frame.out.write_report(&report)?;
    eprintln!(
        "{}: completeness {:.3}, purity {:.3}, F1 {:.3} (S/N 3-10: completeness {:.3})",
        args.label,
        e.completeness.unwrap_or(f64::NAN),
        e.purity.unwrap_or(f64::NAN),
        e.f1.unwrap_or(f64::NAN),
        e.completeness_snr_3_10.unwrap_or(f64::NAN)
    );
    Ok(())
}
