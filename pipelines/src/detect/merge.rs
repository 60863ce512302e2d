//! `deepsky detect merge SHARD_DIR... -o OUT`: combine the output folders of
//! `detect predict --shard K/N` runs into what one unsharded run over the same inputs writes.
//!
//! Every number in a catalogue row depends only on its own image, so the merged catalogue is
//! the shards' catalogues concatenated in shard order (shard K holds the K-th contiguous block
//! of the sorted inputs) with `id` renumbered; the per-image products (regions, overlay plots)
//! are copied; report.json is rebuilt from the per-image records by the function a single run
//! uses. The merged provenance.json lists every shard with its status, host, times and inputs.

use std::path::{Path, PathBuf};

use deepsky_io::fits::{Card, FitsReader, HduSelector};
use deepsky_runtime::{RunError, Shard, ShardRecord};
use polars::prelude::*;
use serde_json::{json, Value};

use super::catalog;
use super::predict::summary_report;
use crate::common::RunFrame;

/// Read a JSON file, with an error naming it.
fn read_json(path: &Path) -> Result<Value, RunError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::input(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| RunError::input(format!("{}: not JSON: {e}", path.display())))
}

struct Part {
    shard: Shard,
    dir: PathBuf,
    report: Value,
}

fn read_part(dir: &Path) -> Result<Part, RunError> {
    let prov_path = dir.join("provenance.json");
    if !prov_path.is_file() {
        return Err(RunError::input(format!(
            "{}: no provenance.json: this shard has not run (or was killed before it ended)",
            dir.display()
        )));
    }
    let provenance = read_json(&prov_path)?;
    if provenance["status"] != "success" {
        return Err(RunError::input(format!(
            "{}: this shard ended with status `{}` (exit code {}); rerun it",
            dir.display(),
            provenance["status"].as_str().unwrap_or("?"),
            provenance["exit_code"]
        )));
    }
    let report = read_json(&dir.join("report.json"))?;
    let shard: Shard = report["shard"]
        .as_str()
        .ok_or_else(|| {
            RunError::input(format!(
                "{}: report.json has no `shard`: not the output of a `detect predict --shard K/N` run",
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

/// The catalogue of one shard and its primary header's own cards.
fn read_catalog(dir: &Path) -> Result<(DataFrame, Vec<Card>), RunError> {
    let path = dir.join("catalog.fits");
    let mut f = FitsReader::open(&path)?;
    let header = f.header(&HduSelector::Index(0))?;
    let cards = header
        .cards()
        .iter()
        .filter(|c| ["IMAGE", "NIMAGES", "MODEL", "APERRAD"].contains(&c.key.as_str()))
        .cloned()
        .collect();
    let mut df = f
        .read_table(&"CATALOG".parse().expect("infallible"), None)?
        .data;
    // FITS pads strings with blanks, which carry no meaning (FITS standard 7.3.3.1).
    let names: Vec<PlSmallStr> = df
        .columns()
        .iter()
        .filter(|c| c.dtype() == &DataType::String)
        .map(|c| c.name().clone())
        .collect();
    for name in names {
        let trimmed: Vec<Option<String>> = df
            .column(&name)
            .and_then(|c| c.str().cloned())
            .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?
            .iter()
            .map(|v| v.map(|s| s.trim_end().to_string()))
            .collect();
        df.with_column(Column::new(name, trimmed))
            .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?;
    }
    Ok((df, cards))
}

/// Merge the shard folders into `frame`'s output folder.
pub fn run(dirs: &[PathBuf], frame: &mut RunFrame) -> Result<(), RunError> {
    if !frame.provenance.shards.is_empty() {
        return Err(RunError::input(
            "--shard does not apply to `detect merge` (it merges shards)",
        ));
    }
    let mut parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|p| p.shard.index);
    let count = parts[0].shard.count;
    if let Some(p) = parts.iter().find(|p| p.shard.count != count) {
        return Err(RunError::input(format!(
            "{}: shard {} is from a run in {} shards, {} from one in {count}",
            p.dir.display(),
            p.shard,
            p.shard.count,
            parts[0].dir.display()
        )));
    }
    let shards: Vec<Shard> = parts.iter().map(|p| p.shard).collect();
    Shard::check_complete(&shards).map_err(RunError::input)?;
    let total = &parts[0].report["inputs_total"];
    let model = parts[0].report["model"].clone();
    for p in &parts {
        if p.report["inputs_total"] != *total || p.report["model"] != model {
            return Err(RunError::input(format!(
                "{}: this shard ran over {} images with model {}, {} over {} with {}: not the same run",
                p.dir.display(),
                p.report["inputs_total"],
                p.report["model"],
                parts[0].dir.display(),
                total,
                model
            )));
        }
    }
    let total = total.as_u64().unwrap_or(0) as usize;
    let multi = total > 1;

    // Rows in shard order, numbered again from 1.
    let mut frames = Vec::new();
    let mut cards = Vec::new();
    for p in &parts {
        let (df, c) = read_catalog(&p.dir)?;
        if cards.is_empty() {
            cards = c;
        }
        frames.push(df);
        for f in ["catalog.fits", "report.json"] {
            frame
                .provenance
                .input(&p.dir.join(f), &format!("shard {}", p.shard))?;
        }
        frame
            .provenance
            .shards
            .push(ShardRecord::read(p.shard, &p.dir)?);
    }
    let mut df = frames[0].clone();
    for other in &frames[1..] {
        df.vstack_mut(other).map_err(|e| {
            RunError::input(format!(
                "the shards' catalogues have different columns: {e}"
            ))
        })?;
    }
    df.rechunk_mut();
    let n = df.height();
    df.with_column(Column::new(
        "id".into(),
        (1..=n as i64).collect::<Vec<i64>>(),
    ))
    .map_err(|e| RunError::failed(format!("catalogue: {e}")))?;
    let classes: Vec<String> = parts[0].report["classes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let (_, mut meta) = catalog::catalog_frame(&[], &classes, None);
    catalog::add_image_meta(&mut meta);
    catalog::write_catalog(frame, "catalog", &df, &meta, &cards)?;
    for name in ["catalog.fits", "catalog.csv"] {
        frame.provenance.output(name, "catalogue");
    }

    // Each image's own products, copied from the shard that made them.
    let mut records = Vec::new();
    for p in &parts {
        for r in p.report["images"].as_array().cloned().unwrap_or_default() {
            for f in ["outputs", "plots"]
                .iter()
                .flat_map(|k| r[*k].as_array().cloned().unwrap_or_default())
            {
                let rel = f.as_str().unwrap_or_default();
                copy_into(&p.dir.join(rel), &frame.out.path(rel))?;
                frame.provenance.output(rel, "per-image product");
            }
            records.push(r);
        }
    }
    let model_dir = PathBuf::from(model.as_str().unwrap_or_default());
    let mut report = summary_report(&records, multi, &model_dir, &classes);
    report["inputs_total"] = json!(total);
    report["merged_shards"] = json!(count);
    frame.out.write_report(&report)?;
    eprintln!(
        "merged {count} shards: {} detections in {} images; catalogue in {}",
        n,
        records.len(),
        frame.out.path("catalog.fits").display()
    );
    Ok(())
}

fn copy_into(from: &Path, to: &Path) -> Result<(), RunError> {
    let bytes = std::fs::read(from)
        .map_err(|e| RunError::input(format!("{}: cannot read: {e}", from.display())))?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::failed(format!("{}: {e}", dir.display())))?;
    }
    deepsky_io::atomic::write_atomic(to, &bytes)?;
    Ok(())
}
