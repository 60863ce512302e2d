//! `deepsky detect evaluate`: score any catalogue against a truth catalogue.

use deepsky_detect::catalog::{read_detections, read_truth};
use deepsky_detect::config::DetectConfig;
use deepsky_detect::figures::snr_curves;
use deepsky_detect::metrics::evaluate;
use deepsky_detect::model::DetectorConfig;
use deepsky_detect::report::EvaluateReport;
use deepsky_runtime::RunError;

use super::{detect_error, EvaluateArgs};
use crate::common::Plots;
use crate::common::RunFrame;

pub fn run(args: &EvaluateArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    frame.provenance.input(&args.catalog, "catalogue")?;
    frame.provenance.input(&args.truth, "truth")?;
    let classes = DetectorConfig::default().classes;
    let truth = read_truth(&args.truth, &cfg.input.truth_hdu, &classes).map_err(detect_error)?;
    let dets = read_detections(&args.catalog).map_err(detect_error)?;
    let e = evaluate(&dets, &truth, &classes, &cfg.evaluate);
    let formats = crate::common::plot_formats(&cfg.output.plots)?;
    let mut plots = Plots::new(frame, "plots", &formats)?;
    for (stem, plot) in snr_curves(&[(args.label.as_str(), &e)]) {
        plots.save(&plot, stem)?;
    }
    let report = EvaluateReport {
        evaluation: e,
        label: args.label.clone(),
        catalog: args.catalog.display().to_string(),
        truth: args.truth.display().to_string(),
        plots: plots.written,
    };
    frame.out.write_report(&report)?;
    let e = &report.evaluation;
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
