//! `deepsky segment`: pixel masks for sky images with a U-Net trained on simulated fields —
//! cosmic rays, saturation and bleed trails, bad columns and hot pixels, satellite trails,
//! and source footprints with a numbered segmentation map.
//!
//! - `train`: simulate fields of randomised imagers with artefacts and truth masks, train
//!   through the shared loop (checkpoints, `--resume`), choose each plane's threshold at a
//!   false-positive rate on unseen fields, save OUT/model.
//! - `calibrate`: choose a trained model's thresholds again (writes OUT/model).
//! - `predict`: mask.fits (bitmask, `MP_<PLANE>` cards, the input's WCS), probabilities.fits,
//!   segmentation.fits + sources.csv, cleaned.fits, report.json (with `--truth`: TPR/FPR and
//!   ROC per plane), overlay plot; files, folders, globs, `--shard K/N`.
//! - `merge`: combine the output folders of `predict --shard K/N` runs.

mod calibrate;
mod merge;
mod predict;
mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use deepsky_runtime::RunError;

pub use deepsky_segment::config::SegmentConfig;

use crate::common::{self, PipelineArgs, RunFrame};

/// `deepsky segment` subcommands.
#[derive(Subcommand, Debug)]
pub enum SegmentCommand {
    /// Train a U-Net on simulated fields with artefacts (writes OUT/model).
    Train(TrainArgs),
    /// Choose a trained model's per-plane thresholds (`[calibrate]`) on simulated fields;
    /// writes OUT/model, the model with them.
    Calibrate(CalibrateArgs),
    /// Mask FITS images: bitmask, probabilities, segmentation map, cleaned image.
    Predict(PredictArgs),
    /// Merge the output folders of `predict --shard K/N` runs into one result.
    Merge(MergeArgs),
}

/// Arguments of `deepsky segment train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: PipelineArgs,
}

/// Arguments of `deepsky segment calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Model directory (overrides `input.model`).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Arguments of `deepsky segment predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: PipelineArgs,
    /// The FITS images to mask: files, folders (their FITS files), globs (`fields/s*.fits`)
    /// or `@list.txt` (one path per line); repeatable. They are processed in sorted order.
    #[arg(long, value_name = "IMAGE.fits|DIR|GLOB|@LIST", num_args = 1.., required = true)]
    pub input: Vec<String>,
    /// Truth bitmask (an integer image with `MP_<PLANE>` cards, as `deepsky simulate sky`
    /// writes in *_masks.fits): score each plane (TPR, FPR, ROC) in report.json.
    #[arg(long, value_name = "MASKS.fits")]
    pub truth: Option<PathBuf>,
    /// Model directory (overrides `input.model`).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}

/// Arguments of `deepsky segment merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Output folders of `segment predict --shard K/N` runs, one per shard, in any order.
    #[arg(value_name = "SHARD_DIR", required = true)]
    shards: Vec<PathBuf>,
}

/// The trained segmenter of `model` (else `input.model`), its files recorded as inputs; a
/// folder without one is a one-line input error.
fn load_model(
    model: Option<&PathBuf>,
    cfg: &SegmentConfig,
    device: &candle_core::Device,
    frame: &mut RunFrame,
) -> Result<(PathBuf, deepsky_segment::Segmenter), RunError> {
    let dir = model.cloned().unwrap_or_else(|| cfg.input.model.clone());
    if !dir.join("model.json").exists() {
        return Err(RunError::input(format!(
            "{}: no trained segmenter here (model.json missing); train one with `deepsky segment train` or give --model DIR",
            dir.display()
        )));
    }
    for f in ["model.json", "model.safetensors"] {
        frame.provenance.input(&dir.join(f), "model")?;
    }
    let seg = deepsky_segment::Segmenter::load(&dir, device).map_err(common::nn_error)?;
    Ok((dir, seg))
}

/// Run a subcommand.
pub fn run(cmd: SegmentCommand) -> Result<(), RunError> {
    let (name, args) = match &cmd {
        SegmentCommand::Train(a) => ("segment train", &a.common),
        SegmentCommand::Calibrate(a) => ("segment calibrate", &a.common),
        SegmentCommand::Predict(a) => ("segment predict", &a.common),
        SegmentCommand::Merge(a) => ("segment merge", &a.common),
    };
    let Some(cfg) = common::resolve::<SegmentConfig>(args)? else {
        return Ok(());
    };
    let mut frame = RunFrame::start(name, args, &cfg)?;
    let result = match &cmd {
        SegmentCommand::Train(a) => train::run(a, &cfg.config, &mut frame),
        SegmentCommand::Calibrate(a) => calibrate::run(a, &cfg.config, &mut frame),
        SegmentCommand::Predict(a) => predict::run(a, &cfg.config, &mut frame),
        SegmentCommand::Merge(a) => merge::run(&a.shards, &mut frame),
    };
    frame.finish(result)
}
