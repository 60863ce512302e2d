//! `deepsky inspect`: fitsinfo and h5ls in one.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use deepsky_io::inspect::{inspect, write_text, InspectOptions};
use serde_json::Value;

use deepsky_runtime::RunError;

/// Arguments of `deepsky inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// FITS (.fits, .fits.gz) or HDF5 files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON document (an array when several files are given); a stable contract.
    #[arg(long)]
    json: bool,
    /// Add sum, min, max, mean and NaN count per image/dataset and numeric column.
    #[arg(long)]
    stats: bool,
    /// Print header cards (FITS) or attributes (HDF5).
    #[arg(long)]
    header: bool,
    /// Only this HDU (index or EXTNAME) or HDF5 dataset/group path.
    #[arg(long, value_name = "HDU|PATH")]
    hdu: Option<String>,
    /// Only these table columns (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    columns: Option<Vec<String>>,
}

/// Inspect a file, or a pipe (`<(zcat x.fits.gz)`, a FIFO): cfitsio and HDF5 seek, and
/// sniffing the format then opening would read a pipe twice and block, so a stream is first
/// copied to a temporary file (removed afterwards). Reports and errors name what the user gave.
fn inspect_any(
    path: &std::path::Path,
    opts: &InspectOptions,
) -> Result<Value, deepsky_io::IoError> {
    let is_stream = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if !is_stream {
        return inspect(path, opts);
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let copy = std::env::temp_dir().join(format!("deepsky-stream-{}-{n}", std::process::id()));
    let copied = std::fs::File::open(path)
        .and_then(|mut from| {
            let mut to = std::fs::File::create(&copy)?;
            std::io::copy(&mut from, &mut to)
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&copy);
            deepsky_io::IoError::new(
                path,
                deepsky_io::ErrorKind::InvalidInput,
                format!("cannot read the stream: {e}"),
            )
        });
    copied?;
    let result = inspect(&copy, opts);
    let _ = std::fs::remove_file(&copy);
    match result {
        Ok(mut report) => {
            report["file"] = Value::String(path.display().to_string());
            Ok(report)
        }
        Err(e) => Err(deepsky_io::IoError::new(
            path,
            e.kind().clone(),
            e.message().to_string(),
        )),
    }
}

/// Run `deepsky inspect`.
pub fn run(args: InspectArgs) -> Result<(), RunError> {
    let opts = InspectOptions {
        stats: args.stats,
        header: args.header,
        item: args.hdu,
        columns: args.columns,
    };
    // Inspect every file before printing anything, so a bad file gives one clean error line.
    let reports: Vec<Value> = args
        .files
        .iter()
        .map(|f| inspect_any(f, &opts))
        .collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    let result = if args.json {
        let doc = if reports.len() == 1 {
            reports.into_iter().next().unwrap()
        } else {
            Value::Array(reports)
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON values serialise")
        )
    } else {
        // File content (header cards, names) is echoed: escape control characters, so that a
        // crafted card cannot send escape sequences to the terminal.
        let mut text = Vec::new();
        reports
            .iter()
            .try_for_each(|r| write_text(&mut text, r))
            .and_then(|()| {
                let text = String::from_utf8_lossy(&text);
                out.write_all(crate::escape_control(&text, false).as_bytes())
            })
    };
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(RunError::failed(format!("cannot write output: {e}")))
        }
        _ => Ok(()),
    }
}
