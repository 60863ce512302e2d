//! `deepsky anomaly --merge SHARD_DIR...`: combine the outputs of `--shard K/N` runs of a
//! trained model into the result one unsharded run gives.
//!
//! Per-object numbers (latents, scores, baseline) do not depend on the sharding, because the
//! model, its normalisation and the PCA baseline are fixed by `--model`. What depends on all
//! objects at once — the latent embedding, the clusters, the ranking and the metrics — is
//! recomputed here from the concatenated rows, in shard order (shard K holds the K-th
//! contiguous block of the inputs), so the merged files equal a single run's.

use std::path::{Path, PathBuf};

use deepsky_io::h5::H5Reader;
use deepsky_repr::fit::Scores;
use deepsky_runtime::{RunError, Shard, ShardRecord};
use ndarray::{Array2, Axis};
use serde_json::json;

use super::config::AnomalyConfig;
use super::input::Objects;
use super::{finish, Scored};
use crate::common::RunFrame;

struct Part {
    shard: Shard,
    dir: PathBuf,
    ids: Vec<i64>,
    labels: Option<Vec<i64>>,
    latent: Array2<f32>,
    recon: Vec<f64>,
    neg_elbo: Option<Vec<f64>>,
    baseline: Vec<f64>,
    score: Vec<f64>,
    score_name: String,
    input_shape: Vec<usize>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, RunError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::input(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| RunError::input(format!("{}: not JSON: {e}", path.display())))
}

fn f64s(h5: &H5Reader, name: &str) -> Result<Vec<f64>, RunError> {
    let d = h5.read(name)?;
    let v = d.to_f64().ok_or_else(|| {
        RunError::input(format!("{}: `{name}` is not numeric", h5.path().display()))
    })?;
    Ok(v.iter().copied().collect())
}

fn read_part(dir: &Path) -> Result<Part, RunError> {
    let report = read_json(&dir.join("report.json"))?;
    let shard: Shard = report["shard"]
        .as_str()
        .ok_or_else(|| {
            RunError::input(format!(
                "{}: report.json has no `shard`: not the output of a `--shard K/N` run",
                dir.display()
            ))
        })?
        .parse()
        .map_err(RunError::input)?;
    let h5 = H5Reader::open(dir.join("latent.h5"))?;
    let latent = h5.read_f32("/latent")?;
    let n = latent.shape()[0];
    let latent = latent
        .into_shape_with_order((n, latent_dim(&report)))
        .map_err(|e| RunError::input(format!("{}: /latent: {e}", dir.display())))?;
    let names: Vec<String> = h5.items()?.into_iter().map(|i| i.path).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    Ok(Part {
        shard,
        dir: dir.to_path_buf(),
        ids: f64s(&h5, "/ids")?.into_iter().map(|v| v as i64).collect(),
        labels: if has("/labels") {
            Some(
                f64s(&h5, "/labels")?
                    .into_iter()
                    .map(|v| v as i64)
                    .collect(),
            )
        } else {
            None
        },
        latent,
        recon: f64s(&h5, "/recon_error")?,
        neg_elbo: if has("/neg_elbo") {
            Some(f64s(&h5, "/neg_elbo")?)
        } else {
            None
        },
        baseline: f64s(&h5, "/baseline_score")?,
        score: f64s(&h5, "/score")?,
        score_name: report["score"].as_str().unwrap_or("recon").to_string(),
        input_shape: report["input_shape"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as usize)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn latent_dim(report: &serde_json::Value) -> usize {
    report["latent"].as_u64().unwrap_or(0) as usize
}

/// Merge the shard directories into `frame`'s output directory.
pub fn run(dirs: &[PathBuf], cfg: &AnomalyConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = std::time::Instant::now();
    let mut parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|p| p.shard.index);
    let count = parts[0].shard.count;
    if parts.iter().any(|p| p.shard.count != count) {
        return Err(RunError::input(
            "the shard directories come from runs with different shard counts",
        ));
    }
    let shards: Vec<Shard> = parts.iter().map(|p| p.shard).collect();
    Shard::check_complete(&shards).map_err(RunError::input)?;
    for p in &parts {
        for f in ["latent.h5", "report.json"] {
            frame
                .provenance
                .input(&p.dir.join(f), &format!("shard {}", p.shard))?;
        }
        frame.provenance.shards.push(ShardRecord {
            command_line: None,
            ..ShardRecord::read(p.shard, &p.dir)?
        });
    }
    let cat = |f: &dyn Fn(&Part) -> Vec<f64>| parts.iter().flat_map(f).collect::<Vec<f64>>();
    let latents: Vec<_> = parts.iter().map(|p| p.latent.view()).collect();
    let latent = ndarray::concatenate(Axis(0), &latents)
        .map_err(|e| RunError::input(format!("shards have different latent sizes: {e}")))?;
    let neg_elbo = if parts.iter().all(|p| p.neg_elbo.is_some()) {
        Some(cat(&|p| p.neg_elbo.clone().unwrap_or_default()))
    } else {
        None
    };
    let labels = if parts.iter().all(|p| p.labels.is_some()) {
        Some(
            parts
                .iter()
                .flat_map(|p| p.labels.clone().unwrap_or_default())
                .collect(),
        )
    } else {
        None
    };
    let ids: Vec<i64> = parts.iter().flat_map(|p| p.ids.clone()).collect();
    let n = ids.len();
    let objects = Objects {
        rows: Array2::zeros((n, 0)),
        shape: parts[0].input_shape.clone(),
        ids,
        labels,
        label_names: cfg.input.label_names.clone(),
        feature_names: vec![],
    };
    let score_name: &'static str = if parts[0].score_name == "neg_elbo" {
        "neg_elbo"
    } else {
        "recon"
    };
    let scored = Scored {
        scores: Scores {
            recon: cat(&|p| p.recon.clone()),
            neg_elbo,
            latent,
        },
        score: cat(&|p| p.score.clone()),
        score_name,
        baseline: cat(&|p| p.baseline.clone()),
    };
    let mut report = finish(&objects, &scored, None, None, cfg, frame)?;
    report["merged_shards"] = json!(count);
    report["timings_s"] = json!({ "total": t0.elapsed().as_secs_f64() });
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "headline figures");
    Ok(())
}
