//! `deepsky detect calibrate`, and the calibration step at the end of `detect train`.

use deepsky_detect::calibrate::{self, OperatingPoint};
use deepsky_detect::config::DetectConfig;
use deepsky_detect::detector::Detector;
use deepsky_runtime::{Progress, RunError};
use serde::Serialize;

use super::{detect_error, CalibrateArgs};
use crate::common::{self, RunFrame};

/// The operating point of `det` by `cfg.calibrate` on `cfg.data`'s imagers, with a progress
/// bar; Ctrl-C stops it.
pub fn operating_point(det: &Detector, cfg: &DetectConfig) -> Result<OperatingPoint, RunError> {
    let c = &cfg.calibrate;
    let bar = Progress::new("calibrating the score threshold", c.fields as u64, "fields");
    let point = calibrate::calibrate(
        det,
        &cfg.data,
        &cfg.predict,
        &cfg.photometry,
        &cfg.evaluate,
        c,
        &mut |_, _| {
            bar.inc(1);
            !deepsky_runtime::interrupt::interrupted()
        },
    )
    .map_err(detect_error)?;
    bar.finish();
    let purities: Vec<f64> = point.per_field.iter().filter_map(|f| f.purity).collect();
    let lowest = purities.iter().copied().fold(f64::INFINITY, f64::min);
    tracing::info!(
        "operating point: score threshold {:.3} keeps purity {:.3} (target {}; lowest field {:.3}) \
         at completeness {:.3} over {} fields",
        point.score_threshold,
        point.purity,
        point.purity_target,
        lowest,
        point.completeness,
        point.per_field.len()
    );
    Ok(point)
}

/// `report.json` of `detect calibrate`.
#[derive(Serialize)]
struct CalibrateReport<'a> {
    /// The model written.
    model: &'a str,
    /// Its operating point.
    operating_point: &'a OperatingPoint,
    /// The one it replaced, if any.
    previous: Option<&'a OperatingPoint>,
}

pub fn run(args: &CalibrateArgs, cfg: &DetectConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    if args.common.shard.is_some() {
        return Err(RunError::input(
            "--shard does not apply to calibration (one job)",
        ));
    }
    let (_, mut det) = super::load_model(args.model.as_ref(), cfg, &device, frame)?;
    frame
        .provenance
        .seed("calibration_fields", cfg.calibrate.field_seed);
    let previous = det.card().operating_point.clone();
    let point = operating_point(&det, cfg)?;
    det.set_operating_point(point.clone());
    det.save(&frame.out.path("model"))
        .map_err(common::nn_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");
    frame.out.write_report(&CalibrateReport {
        model: "model",
        operating_point: &point,
        previous: previous.as_ref(),
    })?;
    eprintln!(
        "score threshold {:.3}: purity {:.3}, completeness {:.3} on {} calibration fields; model in {}",
        point.score_threshold,
        point.purity,
        point.completeness,
        point.per_field.len(),
        frame.out.published("model").display()
    );
    Ok(())
}
