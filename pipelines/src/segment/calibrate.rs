//! `deepsky segment calibrate`: choose a trained segmenter's thresholds again (e.g. at another
//! `calibrate.fpr`, or on other simulated fields) and write the model with them to OUT/model.

use deepsky_runtime::RunError;
use deepsky_segment::calibrate;
use deepsky_segment::SegmentConfig;
use serde_json::json;

use super::CalibrateArgs;
use crate::common::{self, RunFrame};
use crate::detect::detect_error;

pub fn run(
    args: &CalibrateArgs,
    cfg: &SegmentConfig,
    frame: &mut RunFrame,
) -> Result<(), RunError> {
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let (dir, mut seg) = super::load_model(args.model.as_ref(), cfg, &device, frame)?;
    frame
        .provenance
        .seed("calibration_fields", cfg.calibration_seed());
    let thresholds = calibrate::calibrate(&seg, cfg).map_err(detect_error)?;
    seg.set_thresholds(thresholds.clone());
    seg.save(&frame.out.path("model"))
        .map_err(common::nn_error)?;
    frame.provenance.output("model/model.safetensors", "model");
    frame.provenance.output("model/model.json", "model");
    frame.out.write_report(&json!({
        "model": dir.display().to_string(),
        "calibration_seed": cfg.calibration_seed(),
        "fields": cfg.calibrate.fields,
        "fpr": cfg.calibrate.fpr,
        "thresholds": thresholds,
    }))?;
    for t in &thresholds {
        eprintln!(
            "{}: threshold {:.3} ({}): TPR {:.3} at FPR {:.1e}",
            t.plane, t.threshold, t.rule, t.tpr, t.fpr
        );
    }
    Ok(())
}
