//! `deepsky anomaly --merge SHARD_DIR...`: combine the outputs of `--shard K/N` runs of a
//! trained model into the result one unsharded run gives.
//!
//! Per-object numbers (latents, scores, baseline) do not depend on the sharding, because the
//! model, its normalisation and the PCA baseline are fixed by `--model`. What depends on all
//! objects at once — the latent embedding, the clusters, the ranking and the metrics — is
//! recomputed from the concatenated rows, in shard order (shard K holds the K-th contiguous
//! block of the inputs), so the merged files equal a single run's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use deepsky_repr::anomaly::products::{read_latent, ScoredObjects};
use deepsky_repr::anomaly::report::{self, AnomalyReport, MergeReport, MergeTimings};
use deepsky_repr::anomaly::AnomalyConfig;
use deepsky_repr::objects::Objects;
use deepsky_runtime::{RunError, Shard, ShardRecord};
use ndarray::Array2;

use super::{finish, repr_error};
use crate::common::RunFrame;

struct Part {
    shard: Shard,
    dir: PathBuf,
    input_shape: Vec<usize>,
    scored: ScoredObjects,
}

fn read_part(dir: &Path) -> Result<Part, RunError> {
    let report: AnomalyReport = report::read(&dir.join("report.json")).map_err(repr_error)?;
    let shard: Shard = report
        .shard
        .as_deref()
        .ok_or_else(|| {
            RunError::input(format!(
                "{}: report.json has no `shard`: not the output of a `--shard K/N` run",
                dir.display()
            ))
        })?
        .parse()
        .map_err(RunError::input)?;
    let s = &report.summary;
    let scored = read_latent(&dir.join("latent.h5"), s.latent, s.score).map_err(repr_error)?;
    Ok(Part {
        shard,
        dir: dir.to_path_buf(),
        input_shape: report.summary.input_shape,
        scored,
    })
}

/// Merge the shard directories into `frame`'s output directory.
pub fn run(dirs: &[PathBuf], cfg: &AnomalyConfig, frame: &mut RunFrame) -> Result<(), RunError> {
    let t0 = Instant::now();
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
    let shape = parts[0].input_shape.clone();
    let all =
        ScoredObjects::concat(parts.into_iter().map(|p| p.scored).collect()).map_err(repr_error)?;
    let objects = Objects {
        rows: Array2::zeros((all.ids.len(), 0)),
        shape,
        ids: all.ids,
        labels: all.labels,
        label_names: cfg.input.label_names.clone(),
        feature_names: vec![],
    };
    let summary = finish(&objects, all.scores, None, None, cfg, frame)?;
    let report = MergeReport {
        summary,
        merged_shards: count,
        timings_s: MergeTimings {
            total: t0.elapsed().as_secs_f64(),
        },
    };
    frame.out.write_report(&report)?;
    frame.provenance.output("report.json", "headline figures");
    Ok(())
}
