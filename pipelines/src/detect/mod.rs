//! `deepsky detect`: find stars, galaxies and artefacts in sky images with a YOLO-style
//! detector trained on simulated fields, and compare it with a classical detector.
//!
//! - `train`: simulate training fields, train through the shared loop (checkpoints,
//!   `--resume`), calibrate the operating point, save OUT/model, evaluate on an unseen
//!   simulated field.
//! - `calibrate`: choose a trained model's operating point again (writes OUT/model).
//! - `predict`: background, tiles, network, NMS, centroids, aperture photometry, WCS; writes
//!   catalog.fits/.csv, detections.reg (DS9), plots/overlay, report.json; with `--truth` the
//!   completeness/purity/F1/mAP evaluation of the network and of the classical baseline;
//!   with `--mask` the pixels of a bitmask's planes are treated as missing data.
//! - `evaluate`: the same evaluation for any catalogue (e.g. SExtractor's), for benchmarks.
//! - `merge`: combine the output folders of `predict --shard K/N` runs into what one
//!   unsharded run writes (`deepsky submit` runs the shards as a Slurm job array).

mod calibrate;
mod evaluate;
pub mod merge;
mod predict;
mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use deepsky_io::fits::{Card, FitsWriter, TableMeta};
use deepsky_runtime::RunError;
use polars::prelude::DataFrame;

pub use deepsky_detect::config::DetectConfig;

use crate::common::{self, PipelineArgs, RunFrame};

/// `deepsky detect` subcommands.
#[derive(Subcommand, Debug)]
pub enum DetectCommand {
    /// Train a detector on simulated fields (writes OUT/model).
    Train(TrainArgs),
    /// Choose a trained detector's score threshold for a purity (`[calibrate]`) on simulated
    /// fields of the training's imagers; writes OUT/model, the model with that operating point.
    Calibrate(CalibrateArgs),
    /// Detect sources in FITS images with a trained detector.
    Predict(PredictArgs),
    /// Merge the output folders of `predict --shard K/N` runs into one result (the same rows,
    /// values and order as one unsharded run).
    Merge(MergeArgs),
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

/// Arguments of `deepsky detect calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Model directory (overrides `input.model`).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Arguments of `deepsky detect predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: PipelineArgs,
    /// The FITS images to search: files, folders (their FITS files), globs (`fields/s*.fits`)
    /// or `@list.txt` (one path per line); repeatable. They are processed in sorted order.
    #[arg(long, value_name = "IMAGE.fits|DIR|GLOB|@LIST", num_args = 1.., required = true)]
    pub input: Vec<String>,
    /// Truth catalogue (FITS table with x, y, class, snr and bbox_* columns, as
    /// `deepsky simulate sky` writes): evaluate the detections and the classical baseline.
    #[arg(long, value_name = "TRUTH.fits")]
    pub truth: Option<PathBuf>,
    /// Model directory (overrides `input.model`).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Bitmask image of the (single) input, e.g. `deepsky segment predict`'s mask.fits: its
    /// pixels in `input.mask_planes` are treated as missing data, like NaN pixels (overrides
    /// `input.mask`).
    #[arg(long, value_name = "MASK.fits")]
    pub mask: Option<PathBuf>,
}

/// Arguments of `deepsky detect merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Output folders of `detect predict --shard K/N` runs, one per shard, in any order.
    #[arg(value_name = "SHARD_DIR", required = true)]
    shards: Vec<PathBuf>,
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

/// The trained detector of `--model` (else `input.model`), its files recorded as the run's
/// inputs; a folder without one is a one-line input error.
fn load_model(
    model: Option<&PathBuf>,
    cfg: &DetectConfig,
    device: &candle_core::Device,
    frame: &mut RunFrame,
) -> Result<(PathBuf, deepsky_detect::Detector), RunError> {
    let model_dir = model.cloned().unwrap_or_else(|| cfg.input.model.clone());
    if !model_dir.join("model.json").exists() {
        return Err(RunError::input(format!(
            "{}: no trained detector here (model.json missing); train one with `deepsky detect train` or give --model DIR",
            model_dir.display()
        )));
    }
    for f in ["model.json", "model.safetensors"] {
        frame.provenance.input(&model_dir.join(f), "model")?;
    }
    let det = deepsky_detect::Detector::load(&model_dir, device).map_err(common::nn_error)?;
    Ok((model_dir, det))
}

/// Run a subcommand.
pub fn run(cmd: DetectCommand) -> Result<(), RunError> {
    let (name, args) = match &cmd {
        DetectCommand::Train(a) => ("detect train", &a.common),
        DetectCommand::Calibrate(a) => ("detect calibrate", &a.common),
        DetectCommand::Predict(a) => ("detect predict", &a.common),
        DetectCommand::Evaluate(a) => ("detect evaluate", &a.common),
        DetectCommand::Merge(a) => ("detect merge", &a.common),
    };
    let Some(cfg) = common::resolve::<DetectConfig>(args)? else {
        return Ok(());
    };
    let mut frame = RunFrame::start(name, args, &cfg)?;
    let result = match &cmd {
        DetectCommand::Train(a) => train::run(a, &cfg.config, &mut frame),
        DetectCommand::Calibrate(a) => calibrate::run(a, &cfg.config, &mut frame),
        DetectCommand::Predict(a) => predict::run(a, &cfg.config, &mut frame),
        DetectCommand::Evaluate(a) => evaluate::run(a, &cfg.config, &mut frame),
        DetectCommand::Merge(a) => merge::run(&a.shards, &mut frame),
    };
    frame.finish(result)
}

/// Map a detection-library error to the runtime's kinds.
pub fn detect_error(e: deepsky_detect::DetectError) -> RunError {
    use deepsky_detect::DetectError as E;
    match e {
        E::Nn(n) => common::nn_error(n),
        E::InvalidConfig(e) => RunError::from(e),
        E::Io(e) => RunError::from(e),
        e @ E::Input(_) => RunError::Input(e.to_string()),
        e => RunError::Failed(e.to_string()),
    }
}

/// Write the catalogue: catalog.fits (provenance cards and `cards` in the primary header, the
/// table in the CATALOG extension) and catalog.csv.
fn write_catalog(
    frame: &mut RunFrame,
    df: &DataFrame,
    meta: &TableMeta,
    cards: &[Card],
) -> Result<(), RunError> {
    let mut header = frame.provenance.fits_cards();
    header.extend_from_slice(cards);
    let mut fits = FitsWriter::create(frame.out.path("catalog.fits"))?;
    fits.write_primary_header(&header)?;
    fits.write_table(deepsky_detect::catalog::CATALOG_HDU, df, meta, &[])?;
    fits.finish()?;
    deepsky_io::tabular::write_csv(frame.out.path("catalog.csv"), df)?;
    for name in deepsky_detect::report::CATALOG_FILES {
        frame.provenance.output(name, "catalogue");
    }
    Ok(())
}
