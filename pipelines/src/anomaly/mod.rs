//! `deepsky anomaly`: train an autoencoder on image stamps or table rows, score every object,
//! analyse the latent space, and write a ranked catalogue of the most anomalous objects.
//!
//! Steps: resolve config → load inputs → fit the normalisation → train (or load `--model`) →
//! score → PCA-reconstruction baseline → latent PCA and clustering → outputs → plots →
//! report.json and provenance.json. See README "deepsky anomaly" for the output contract.

mod config;
mod input;
mod merge;
mod output;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use deepsky_nn::train::{TrainConfig, Trainer};
use deepsky_repr::fit::{Scores, Trained};
use deepsky_repr::latent::{self, PcaModel};
use deepsky_runtime::{RunError, Shard};
use serde_json::json;

pub use config::AnomalyConfig;

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

/// Per-object results, however they were obtained (scored here or read from shards).
pub struct Scored {
    /// Model scores and latents.
    pub scores: Scores,
    /// The ranking score (`neg_elbo` or `recon`).
    pub score: Vec<f64>,
    /// Which score ranks.
    pub score_name: &'static str,
    /// PCA-reconstruction baseline.
    pub baseline: Vec<f64>,
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

    // Inputs.
    let objects = input::load(&cfg.input, &mut frame.provenance)?;
    let objects = objects.select(shard.range(objects.len()));
    if objects.len() < 2 {
        return Err(RunError::input(format!(
            "{}: need at least 2 objects, found {}",
            cfg.input.path.display(),
            objects.len()
        )));
    }
    let t_load = t0.elapsed().as_secs_f64();

    // Model and baseline: train them, or load them.
    let t1 = Instant::now();
    let (model, baseline_pca, outcome, x) = match &args.model {
        Some(dir) => {
            for f in ["model.safetensors", "model.json", "baseline_pca.json"] {
                frame.provenance.input(&dir.join(f), "model")?;
            }
            let m = Trained::load(dir, &device).map_err(common::nn_error)?;
            if m.card.input_shape != objects.shape {
                return Err(RunError::input(format!(
                    "{}: the model expects examples of shape {:?}, the input has {:?}",
                    dir.display(),
                    m.card.input_shape,
                    objects.shape
                )));
            }
            let pca = PcaModel::load(&dir.join("baseline_pca.json")).map_err(RunError::input)?;
            let x = m.card.normaliser.apply(&objects.rows);
            (m, pca, None, x)
        }
        None => {
            cfg.model
                .validate_for(&objects.shape)
                .map_err(|e| e.within("model"))?;
            let normaliser = deepsky_repr::normalise::Normaliser::fit(
                cfg.input.normalise,
                cfg.input.softening,
                &objects.rows,
            );
            let m = Trained::new(
                &cfg.model,
                &objects.shape,
                normaliser,
                cfg.model_seed(),
                &device,
            )
            .map_err(common::nn_error)?;
            let x = m.card.normaliser.apply(&objects.rows);
            let train_cfg: &TrainConfig = &cfg.train;
            let steps = (objects.len() as f64 * (1.0 - train_cfg.val_fraction)).ceil() as usize;
            let mut hooks = TrainProgress::new(
                "training",
                train_cfg.epochs,
                steps.div_ceil(train_cfg.batch_size),
            );
            let ckpt = frame.out.path("checkpoints");
            let outcome = m
                .fit(
                    &x,
                    Trainer::new(train_cfg)
                        .checkpoints(&ckpt)
                        .resume(args.common.resume)
                        .hooks(&mut hooks),
                )
                .map_err(common::nn_error)?;
            // Baseline: PCA reconstruction with as many components as the latent space,
            // fitted on the same training objects, saved with the model so that applying the
            // model (in one job or in shards) scores the baseline identically.
            let train_rows = x.select(ndarray::Axis(0), &outcome.train_indices);
            let pca = PcaModel::fit(&train_rows, cfg.model.latent)
                .map_err(|e| RunError::failed(format!("PCA baseline: {e}")))?;
            let model_dir = frame.out.path("model");
            std::fs::create_dir_all(&model_dir)
                .map_err(|e| RunError::failed(format!("{}: {e}", model_dir.display())))?;
            m.save(&model_dir).map_err(common::nn_error)?;
            pca.save(&model_dir.join("baseline_pca.json"))
                .map_err(|e| RunError::failed(format!("PCA baseline: {e}")))?;
            frame
                .provenance
                .output("model/model.safetensors", "trained weights");
            frame.provenance.output(
                "model/model.json",
                "model card (architecture, normalisation)",
            );
            frame.provenance.output(
                "model/baseline_pca.json",
                "PCA baseline fitted on the training objects",
            );
            (m, pca, Some(outcome), x)
        }
    };
    let t_train = t1.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    // Scores.
    let t2 = Instant::now();
    if baseline_pca.features() != x.ncols() {
        return Err(RunError::input(
            "the saved PCA baseline does not match the input's features",
        ));
    }
    let scores = model.score(&x, 256).map_err(common::nn_error)?;
    let use_elbo = match cfg.output.score {
        config::ScoreKind::Elbo if scores.neg_elbo.is_none() => {
            return Err(RunError::input(
                "config: `output.score`: `elbo` needs a variational model (model.variational = true)",
            ));
        }
        config::ScoreKind::Elbo => true,
        config::ScoreKind::Auto => scores.neg_elbo.is_some(),
        config::ScoreKind::Recon => false,
    };
    let score = match (&scores.neg_elbo, use_elbo) {
        (Some(e), true) => e.clone(),
        _ => scores.recon.clone(),
    };
    let baseline = baseline_pca.reconstruction_error(&x);
    let scored = Scored {
        scores,
        score,
        score_name: if use_elbo { "neg_elbo" } else { "recon" },
        baseline,
    };
    let t_score = t2.elapsed().as_secs_f64();
    let mut report = finish(
        &objects,
        &scored,
        Some((&model, &x)),
        outcome.as_ref(),
        cfg,
        frame,
    )?;
    report["timings_s"] = json!({
        "load": t_load, "train": t_train, "score": t_score,
        "total": t0.elapsed().as_secs_f64(),
    });
    if !shard.is_whole() {
        report["shard"] = json!(shard.to_string());
    }
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "headline figures");
    Ok(())
}

/// The steps after scoring, shared by single runs and merges: latent embedding and clusters,
/// metrics, tables, plots. Returns the report (without timings).
fn finish(
    objects: &input::Objects,
    s: &Scored,
    model: Option<(&Trained, &ndarray::Array2<f32>)>,
    outcome: Option<&deepsky_nn::train::TrainOutcome>,
    cfg: &AnomalyConfig,
    frame: &mut RunFrame,
) -> Result<serde_json::Value, RunError> {
    deepsky_runtime::interrupt::check()?;
    let t = Instant::now();
    let embed = PcaModel::fit(&s.scores.latent, 2)
        .map_err(|e| RunError::failed(format!("latent PCA: {e}")))?;
    let embedding = embed.transform(&s.scores.latent);
    let clusters = latent::cluster(&s.scores.latent, &cfg.cluster)
        .map_err(|e| RunError::failed(format!("clustering: {e}")))?;
    let analysis = output::Analysis {
        objects,
        normalised: model.map(|m| m.1),
        model: model.map(|m| m.0),
        scores: &s.scores,
        score: &s.score,
        score_name: s.score_name,
        baseline: &s.baseline,
        embedding: &embedding,
        clusters: &clusters,
        outcome,
    };
    let metrics = output::metrics(&analysis, cfg)?;
    output::write_tables(&analysis, cfg, frame)?;
    let plots = output::write_plots(&analysis, cfg, &metrics, frame)?;
    let mut report = json!({
        "pipeline": "anomaly",
        "n_objects": objects.len(),
        "input_shape": objects.shape,
        "score": s.score_name,
        "latent": s.scores.latent.ncols(),
        "n_clusters": clusters.iter().filter(|&&c| c >= 0).collect::<std::collections::BTreeSet<_>>().len(),
        "cluster_sizes": output::cluster_sizes(&clusters),
        "top_k": cfg.output.top_k.min(objects.len()),
        "pca_baseline_components": s.scores.latent.ncols(),
        "plots": plots,
        "outputs_s": t.elapsed().as_secs_f64(),
    });
    if let Some(m) = metrics.as_object() {
        for (k, v) in m {
            report[k] = v.clone();
        }
    }
    if let Some(o) = outcome {
        report["training"] = json!({
            "epochs": o.state.epochs_done,
            "best_epoch": o.state.best_epoch,
            "stopped_early": o.state.stopped_early,
            "resumed_from_epoch": o.resumed_from,
            "final_train_loss": o.state.history.last().map(|r| r.train_loss),
            "best_val_loss": o.state.best_val,
            "history": o.state.history,
        });
    }
    Ok(report)
}
