//! `deepsky anomaly`: train an autoencoder on image stamps or table rows (or load one with
//! `--model`), score every object, and write the ranked catalogue, per-object tables, plots
//! and report. The computations are deepsky-repr's (`deepsky_repr::anomaly`); this module
//! resolves the config, drives them and writes their results with provenance.
//!
//! Steps: resolve config → read objects → fit (or load) the model → score → latent analysis
//! → tables → plots → report.json and provenance.json. See README "deepsky anomaly" for the
//! output contract.

mod merge;
mod output;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use deepsky_nn::train::{TrainOutcome, Trainer};
use deepsky_repr::anomaly::report::{AnomalyReport, RunTimings, Summary, TrainingReport};
use deepsky_repr::anomaly::{AnomalyModel, AnomalyResult, AnomalyScores};
use deepsky_repr::objects::Objects;
use deepsky_repr::ReprError;
use deepsky_runtime::{RunError, Shard};

pub use deepsky_repr::anomaly::AnomalyConfig;

use crate::common::{self, PipelineArgs, RunFrame, TrainProgress};

/// Arguments of `deepsky anomaly`.
#[derive(Args, Debug)]
pub struct AnomalyArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Apply a trained model (a directory with model.json and model.safetensors, e.g. an
    /// earlier run's OUT/model) instead of training.
    #[arg(long, value_name = "DIR", conflicts_with = "merge")]
    model: Option<PathBuf>,
    /// Merge the output directories of the shards of a `--model --shard K/N` run into one
    /// result in `-o DIR` (the same rows and values as one unsharded run).
    #[arg(long, value_name = "SHARD_DIR", num_args = 1..)]
    merge: Vec<PathBuf>,
}

/// Run the pipeline.
pub fn run(args: AnomalyArgs) -> Result<(), RunError> {
    let Some(cfg) = common::resolve::<AnomalyConfig>(&args.common)? else {
        return Ok(());
    };
    let mut frame = RunFrame::start("anomaly", &args.common, &cfg)?;
    let result = if args.merge.is_empty() {
        execute(&args, &cfg.config, &mut frame)
    } else {
        merge::run(&args.merge, &cfg.config, &mut frame)
    };
    frame.finish(result)
}

/// A library error as the runtime's kind (and so exit code).
fn repr_error(e: ReprError) -> RunError {
    match e {
        ReprError::Nn(e) => common::nn_error(e),
        ReprError::Io(e) => RunError::from(e),
        ReprError::Config(e) => RunError::from(e),
        e if e.is_bad_input() => RunError::input(e),
        e => RunError::failed(e),
    }
}

fn execute(args: &AnomalyArgs, cfg: &AnomalyConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
    let device = deepsky_nn::device::parse_device(&args.common.device).map_err(common::nn_error)?;
    let shard = args.common.shard.unwrap_or(Shard::WHOLE);
    if !shard.is_whole() && args.model.is_none() {
        return Err(RunError::input(
            "--shard splits the scoring of a trained model over many objects; give --model DIR (training is one job)",
        ));
    }
    frame.provenance.seed("train", cfg.train.seed);
    frame.provenance.seed("model_init", cfg.model_seed());
    frame.provenance.seed("cluster", cfg.cluster.seed);

    for (path, role) in cfg.input.files() {
        frame.provenance.input(path, role)?;
    }
    let objects = Objects::read(&cfg.input).map_err(repr_error)?;
    let objects = objects.select(shard.range(objects.len()));
    if objects.len() < 2 {
        return Err(RunError::input(format!(
            "{}: need at least 2 objects, found {}",
            cfg.input.path.display(),
            objects.len()
        )));
    }
    let t_load = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let (model, outcome) = match &args.model {
        Some(dir) => {
            for f in AnomalyModel::FILES {
                frame.provenance.input(&dir.join(f), "model")?;
            }
            let m = AnomalyModel::load(dir, &device).map_err(repr_error)?;
            if m.input_shape() != objects.shape {
                return Err(RunError::input(format!(
                    "{}: the model expects examples of shape {:?}, the input has {:?}",
                    dir.display(),
                    m.input_shape(),
                    objects.shape
                )));
            }
            (m, None)
        }
        None => {
            let train = &cfg.train;
            let steps = (objects.len() as f64 * (1.0 - train.val_fraction)).ceil() as usize;
            let mut hooks =
                TrainProgress::new("training", train.epochs, steps.div_ceil(train.batch_size));
            let trainer = Trainer::new(train)
                .checkpoints(frame.out.path("checkpoints"))
                .resume(args.common.resume)
                .hooks(&mut hooks);
            let (m, outcome) = cfg
                .params()
                .fit(&objects, trainer, &device)
                .map_err(repr_error)?;
            m.save(&frame.out.path("model")).map_err(repr_error)?;
            for (file, role) in [
                ("model/model.safetensors", "trained weights"),
                (
                    "model/model.json",
                    "model card (architecture, normalisation)",
                ),
                (
                    "model/baseline_pca.json",
                    "PCA baseline fitted on the training objects",
                ),
            ] {
                frame.provenance.output(file, role);
            }
            (m, Some(outcome))
        }
    };
    let t_train = t1.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    let t2 = Instant::now();
    let scores = model
        .score(&objects, cfg.output.score)
        .map_err(repr_error)?;
    let t_score = t2.elapsed().as_secs_f64();
    let summary = finish(&objects, scores, Some(&model), outcome.as_ref(), cfg, frame)?;
    let report = AnomalyReport {
        summary,
        training: outcome.as_ref().map(TrainingReport::from),
        shard: (!shard.is_whole()).then(|| shard.to_string()),
        timings_s: RunTimings {
            load: t_load,
            train: t_train,
            score: t_score,
            total: t0.elapsed().as_secs_f64(),
        },
    };
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "headline figures");
    Ok(())
}

/// The steps after scoring, shared by single runs and merges: latent embedding and clusters,
/// metrics, tables, plots (the gallery needs `model`, the loss plot `outcome`).
fn finish(
    objects: &Objects,
    scores: AnomalyScores,
    model: Option<&AnomalyModel>,
    outcome: Option<&TrainOutcome>,
    cfg: &AnomalyConfig,
    frame: &mut RunFrame,
) -> Result<Summary, RunError> {
    deepsky_runtime::interrupt::check()?;
    let t = Instant::now();
    let result = AnomalyResult::analyse(scores, &objects.ids, &cfg.cluster).map_err(repr_error)?;
    let metrics = result.metrics(objects, &cfg.input, cfg.output.top_k);
    output::write_tables(&result, objects, cfg.output.top_k, frame)?;
    let plots = output::write_plots(&result, objects, model, outcome, cfg, frame)?;
    Ok(Summary::new(
        &result,
        objects,
        cfg.output.top_k,
        metrics,
        plots,
        t.elapsed().as_secs_f64(),
    ))
}
