//! `deepsky anomaly`: train an autoencoder on image stamps or table rows, score every object,
//! analyse the latent space, and write a ranked catalogue of the most anomalous objects.
//!
//! Steps: resolve config → load inputs → fit the normalisation → train (or load `--model`) →
//! score → PCA-reconstruction baseline → latent PCA and clustering → outputs → plots →
//! report.json and provenance.json. See README "deepsky anomaly" for the output contract.

mod config;
mod input;
mod output;

use std::time::Instant;

use clap::Args;
use deepsky_nn::train::TrainConfig;
use deepsky_repr::fit::Trained;
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
    #[arg(long, value_name = "DIR")]
    model: Option<std::path::PathBuf>,
}

/// Run the pipeline.
pub fn run(args: AnomalyArgs) -> Result<(), RunError> {
    let Some(cfg) = common::resolve::<AnomalyConfig>(&args.common)? else {
        return Ok(());
    };
    let frame = RunFrame::start("anomaly", &args.common, &cfg)?;
    let mut frame = frame;
    let result = execute(&args, &cfg.config, &mut frame);
    frame.finish(result)
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
    if let Err((k, m)) = cfg.model.check(&objects.shape) {
        return Err(RunError::input(format!("config: `model.{k}`: {m}")));
    }
    let t_load = t0.elapsed().as_secs_f64();

    // Model: train, or load and apply.
    let t1 = Instant::now();
    let (model, outcome) = match &args.model {
        Some(dir) => {
            frame
                .provenance
                .input(&dir.join("model.safetensors"), "model")?;
            frame
                .provenance
                .input(&dir.join("model.json"), "model card")?;
            let m = Trained::load(dir, &device).map_err(common::nn_error)?;
            if m.card.input_shape != objects.shape {
                return Err(RunError::input(format!(
                    "{}: the model expects examples of shape {:?}, the input has {:?}",
                    dir.display(),
                    m.card.input_shape,
                    objects.shape
                )));
            }
            (m, None)
        }
        None => {
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
                .fit(&x, train_cfg, Some(&ckpt), args.common.resume, &mut hooks)
                .map_err(common::nn_error)?;
            let model_dir = frame.out.path("model");
            std::fs::create_dir_all(&model_dir)
                .map_err(|e| RunError::failed(format!("{}: {e}", model_dir.display())))?;
            m.save(&model_dir).map_err(common::nn_error)?;
            frame
                .provenance
                .output("model/model.safetensors", "trained weights");
            frame.provenance.output(
                "model/model.json",
                "model card (architecture, normalisation)",
            );
            (m, Some(outcome))
        }
    };
    let t_train = t1.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    // Scores.
    let t2 = Instant::now();
    let x = model.card.normaliser.apply(&objects.rows);
    let scores = model.score(&x, 256).map_err(common::nn_error)?;
    let use_elbo = cfg.output.score == config::ScoreKind::Elbo
        || (cfg.output.score == config::ScoreKind::Auto && scores.neg_elbo.is_some());
    let score: Vec<f64> = match (&scores.neg_elbo, use_elbo) {
        (Some(e), true) => e.clone(),
        (None, true) if cfg.output.score == config::ScoreKind::Elbo => {
            return Err(RunError::input("config: `output.score`: `elbo` needs a variational model (model.variational = true)"));
        }
        _ => scores.recon.clone(),
    };

    // Baseline: PCA reconstruction with as many components as the latent space, fitted on the
    // same training objects.
    let train_rows = match &outcome {
        Some(o) => x.select(ndarray::Axis(0), &o.train_indices),
        None => x.clone(),
    };
    let pca = PcaModel::fit(&train_rows, cfg.model.latent)
        .map_err(|e| RunError::failed(format!("PCA baseline: {e}")))?;
    let baseline = pca.reconstruction_error(&x);

    // Latent space: 2-D PCA embedding and clusters.
    let embed = PcaModel::fit(&scores.latent, 2)
        .map_err(|e| RunError::failed(format!("latent PCA: {e}")))?;
    let embedding = embed.transform(&scores.latent);
    let clusters = latent::cluster(&scores.latent, &cfg.cluster)
        .map_err(|e| RunError::failed(format!("clustering: {e}")))?;
    let t_score = t2.elapsed().as_secs_f64();
    deepsky_runtime::interrupt::check()?;

    // Outputs.
    let t3 = Instant::now();
    let analysis = output::Analysis {
        objects: &objects,
        normalised: &x,
        model: &model,
        scores: &scores,
        score: &score,
        score_name: if use_elbo { "neg_elbo" } else { "recon" },
        baseline: &baseline,
        embedding: &embedding,
        clusters: &clusters,
        outcome: outcome.as_ref(),
    };
    let metrics = output::metrics(&analysis, cfg)?;
    output::write_tables(&analysis, cfg, frame)?;
    let plots = output::write_plots(&analysis, cfg, &metrics, frame)?;
    let t_out = t3.elapsed().as_secs_f64();

    let mut report = json!({
        "pipeline": "anomaly",
        "n_objects": objects.len(),
        "input_shape": objects.shape,
        "score": if use_elbo { "neg_elbo" } else { "recon" },
        "latent": cfg.model.latent,
        "n_clusters": clusters.iter().filter(|&&c| c >= 0).collect::<std::collections::BTreeSet<_>>().len(),
        "cluster_sizes": output::cluster_sizes(&clusters),
        "top_k": cfg.output.top_k.min(objects.len()),
        "pca_baseline_components": cfg.model.latent,
        "plots": plots,
        "timings_s": { "load": t_load, "train": t_train, "score": t_score, "outputs": t_out, "total": t0.elapsed().as_secs_f64() },
    });
    if let Some(m) = metrics.as_object() {
        for (k, v) in m {
            report[k] = v.clone();
        }
    }
    if let Some(o) = &outcome {
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
    if !shard.is_whole() {
        report["shard"] = json!(shard.to_string());
    }
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "headline figures");
    Ok(())
}
