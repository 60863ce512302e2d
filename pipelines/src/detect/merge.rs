//! `deepsky detect merge SHARD_DIR... -o OUT`: combine the output folders of
//! `detect predict --shard K/N` runs into what one unsharded run over the same inputs writes.
//!
//! Every number in a catalogue row depends only on its own image, so the merged catalogue is
//! the shards' catalogues concatenated in shard order (shard K holds the K-th contiguous block
//! of the sorted inputs) with `id` renumbered; the per-image products (regions, overlay plots)
//! are copied; report.json is rebuilt from the per-image records by the function a single run
//! uses. The merged provenance.json lists every shard with its status, host, times and inputs.

use std::path::{Path, PathBuf};

use deepsky_detect::catalog;
use deepsky_detect::report::PredictReport;
use deepsky_runtime::outdir::read_json;
use deepsky_runtime::{RunError, Shard, ShardRecord};

use super::{detect_error, write_catalog};
use crate::common::RunFrame;

struct Part {
    shard: Shard,
    dir: PathBuf,
    report: PredictReport,
}

fn read_part(dir: &Path) -> Result<Part, RunError> {
    crate::common::check_shard_finished(dir)?;
    let path = dir.join("report.json");
    let report: PredictReport = serde_json::from_value(read_json::<serde_json::Value>(&path)?)
        .map_err(|e| RunError::input(format!("{}: {e}", path.display())))?;
    let shard: Shard = report
        .summary
        .shard
        .as_deref()
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
    let reports = parts.iter().map(|p| p.report.clone()).collect();
    let report = PredictReport::merge(reports).map_err(detect_error)?;

    // Rows in shard order, numbered again from 1.
    let mut frames = Vec::new();
    let mut cards = Vec::new();
    for p in &parts {
        let (df, c) = catalog::read_catalog(&p.dir.join("catalog.fits")).map_err(detect_error)?;
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
    let df = catalog::concat(&frames).map_err(detect_error)?;
    let (_, mut meta) = catalog::catalog_frame(&[], &report.summary.classes, None);
    catalog::add_image_meta(&mut meta);
    write_catalog(frame, &df, &meta, &cards)?;

    // Each image's own products, copied from the shard that made them.
    for p in &parts {
        let records = &p.report.summary.images;
        for rel in records
            .iter()
            .flat_map(|r| r.outputs.iter().chain(&r.plots))
        {
            copy_into(&p.dir.join(rel), &frame.out.path(rel))?;
            frame.provenance.output(rel, "per-image product");
        }
    }
    frame.out.write_report(&report)?;
    eprintln!(
        "merged {} shards: {} detections in {} images; catalogue in {}",
        shards.len(),
        df.height(),
        report.summary.n_images,
        frame.out.published("catalog.fits").display()
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
