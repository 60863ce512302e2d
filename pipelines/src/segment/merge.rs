//! `deepsky segment merge SHARD_DIR... -o OUT`: combine the output folders of
//! `segment predict --shard K/N` runs into what one unsharded run writes. Every product
//! depends only on its own image, so the per-image folders are copied and report.json lists
//! the shards' image records in shard order (shard K holds the K-th contiguous block of the
//! sorted inputs).

use std::path::{Path, PathBuf};

use deepsky_runtime::outdir::read_json;
use deepsky_runtime::{RunError, Shard, ShardRecord};
use serde_json::Value;

use crate::common::RunFrame;

struct Part {
    shard: Shard,
    dir: PathBuf,
    report: Value,
}

fn read_part(dir: &Path) -> Result<Part, RunError> {
    crate::common::check_shard_finished(dir)?;
    let report: Value = read_json(&dir.join("report.json"))?;
    let shard: Shard = report["summary"]["shard"]
        .as_str()
        .ok_or_else(|| {
            RunError::input(format!(
                "{}: report.json has no `shard`: not the output of a `segment predict --shard K/N` run",
                dir.display()
            ))
        })?
        .parse()
        .map_err(|e| RunError::input(format!("{}: {e}", dir.display())))?;
    Ok(Part {
        shard,
        dir: dir.to_path_buf(),
        report,
    })
}

/// Merge the shard folders into `frame`'s output folder.
pub fn run(dirs: &[PathBuf], frame: &mut RunFrame) -> Result<(), RunError> {
    if !frame.provenance.shards.is_empty() {
        return Err(RunError::input(
            "--shard does not apply to `segment merge` (it merges shards)",
        ));
    }
    let mut parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|p| p.shard.index);
    let shards: Vec<Shard> = parts.iter().map(|p| p.shard).collect();
    Shard::check_complete(&shards).map_err(RunError::input)?;
    let mut images = Vec::new();
    for p in &parts {
        frame
            .provenance
            .input(&p.dir.join("report.json"), &format!("shard {}", p.shard))?;
        frame
            .provenance
            .shards
            .push(ShardRecord::read(p.shard, &p.dir)?);
        for record in p.report["images"].as_array().into_iter().flatten() {
            for rel in ["outputs", "plots"]
                .iter()
                .flat_map(|k| record[*k].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
            {
                let bytes = std::fs::read(p.dir.join(rel)).map_err(|e| {
                    RunError::input(format!("{}: cannot read: {e}", p.dir.join(rel).display()))
                })?;
                let to = frame.out.path(rel);
                if let Some(d) = to.parent() {
                    std::fs::create_dir_all(d)
                        .map_err(|e| RunError::failed(format!("{}: {e}", d.display())))?;
                }
                deepsky_io::atomic::write_atomic(&to, &bytes)?;
                frame.provenance.output(rel, "per-image product");
            }
            images.push(record.clone());
        }
    }
    let mut report = parts[0].report.clone();
    report["summary"]["n_images"] = images.len().into();
    report["summary"]["shard"] = Value::Null;
    report["images"] = Value::Array(images);
    frame.out.write_report(&report)?;
    eprintln!(
        "merged {} shards: {} images; outputs in {}",
        shards.len(),
        report["summary"]["n_images"],
        frame.out.published_root().display()
    );
    Ok(())
}
