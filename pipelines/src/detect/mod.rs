//! `deepsky detect`: find stars, galaxies and artefacts in sky images with a YOLO-style
//! detector trained on simulated fields, and compare it with a classical detector.
//!
//! - `train`: simulate training fields, train through the shared loop (checkpoints,
//!   `--resume`), save OUT/model, evaluate on an unseen simulated field.
//! - `predict`: background, tiles, network, NMS, centroids, aperture photometry, WCS; writes
//!   catalog.fits/.csv, detections.reg (DS9), plots/overlay, report.json; with `--truth` the
//!   completeness/purity/F1/mAP evaluation of the network and of the classical baseline.
//! - `evaluate`: the same evaluation for any catalogue (e.g. SExtractor's), for benchmarks.

mod catalog;
mod config;
mod evaluate;
mod predict;
mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use deepsky_runtime::RunError;

pub use config::DetectConfig;

use crate::common::{self, PipelineArgs, RunFrame};

/// `deepsky detect` subcommands.
#[derive(Subcommand, Debug)]
pub enum DetectCommand {
    /// Train a detector on simulated fields (writes OUT/model).
    Train(TrainArgs),
    /// Detect sources in a FITS image with a trained detector.
    Predict(PredictArgs),
    /// Score any detection catalogue (FITS or Parquet table with x, y or X_IMAGE, Y_IMAGE)
    /// against a truth catalogue with the same rules as `predict --truth`.
    Evaluate(EvaluateArgs),
}

/// Arguments of `deepsky detect train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: PipelineArgs,
}

/// Arguments of `deepsky detect predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// The FITS image to search.
    #[arg(long, value_name = "IMAGE.fits")]
    input: PathBuf,
    /// Truth catalogue (FITS table with x, y, class, snr and bbox_* columns, as
    /// `deepsky simulate sky` writes): evaluate the detections and the classical baseline.
    #[arg(long, value_name = "TRUTH.fits")]
    truth: Option<PathBuf>,
    /// Model directory (overrides `input.model`).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Arguments of `deepsky detect evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Detection catalogue: FITS table (first extension) or Parquet, with x/y (or
    /// X_IMAGE/Y_IMAGE) in 1-based FITS pixels; optional box_* or X/YMIN/MAX_IMAGE, class_id,
    /// score, snr_aper or SNR_WIN or FLUX_AUTO/FLUXERR_AUTO.
    #[arg(long, value_name = "CATALOG")]
    catalog: PathBuf,
    /// Truth catalogue.
    #[arg(long, value_name = "TRUTH.fits")]
    truth: PathBuf,
    /// Label of this catalogue in report.json and plots.
    #[arg(long, default_value = "catalogue")]
    label: String,
}

/// Run a subcommand.
pub fn run(cmd: DetectCommand) -> Result<(), RunError> {
    let (name, args) = match &cmd {
        DetectCommand::Train(a) => ("detect train", &a.common),
        DetectCommand::Predict(a) => ("detect predict", &a.common),
        DetectCommand::Evaluate(a) => ("detect evaluate", &a.common),
    };
    let Some(cfg) = common::resolve::<DetectConfig>(args)? else {
        return Ok(());
    };
    let mut frame = RunFrame::start(name, args, &cfg)?;
    let result = match &cmd {
        DetectCommand::Train(a) => train::run(a, &cfg.config, &mut frame),
        DetectCommand::Predict(a) => predict::run(a, &cfg.config, &mut frame),
        DetectCommand::Evaluate(a) => evaluate::run(a, &cfg.config, &mut frame),
    };
    frame.finish(result)
}

/// Map a detection-library error to the runtime's kinds.
pub fn detect_error(e: deepsky_detect::DetectError) -> RunError {
    use deepsky_detect::DetectError as E;
    match e {
        E::Nn(n) => common::nn_error(n),
        E::InvalidConfig(m) => RunError::Input(m),
        e @ E::Input(_) => RunError::Input(e.to_string()),
        e => RunError::Failed(e.to_string()),
    }
}
