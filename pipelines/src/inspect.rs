//! `deepsky inspect`: fitsinfo and h5ls in one.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use deepsky_io::inspect::{inspect, InspectOptions};
use serde_json::Value;

use crate::Failure;

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

pub fn run(args: InspectArgs) -> Result<(), Failure> {
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
        .map(|f| inspect(f, &opts))
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
        reports.iter().try_for_each(|r| print_text(&mut out, r))
    };
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::other(format!("cannot write output: {e}")))
        }
        _ => Ok(()),
    }
}

fn fmt_num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.6e}"),
        None => "nan".into(),
    }
}

fn fmt_stats(s: &Value) -> String {
    format!(
        "sum={} min={} max={} mean={} nan={}",
        fmt_num(&s["sum"]),
        fmt_num(&s["min"]),
        fmt_num(&s["max"]),
        fmt_num(&s["mean"]),
        s["nan_count"]
    )
}

fn print_text(out: &mut impl Write, r: &Value) -> std::io::Result<()> {
    writeln!(
        out,
        "{} ({})",
        r["file"].as_str().unwrap_or(""),
        r["format"].as_str().unwrap_or("")
    )?;
    for it in r["items"].as_array().into_iter().flatten() {
        let kind = it["kind"].as_str().unwrap_or("");
        let name = it["name"].as_str().unwrap_or("");
        let mut line = format!("  {:>3}  {:<24} {:<6}", it["index"], name, kind);
        match kind {
            "image" => line.push_str(&format!(
                " {} {}",
                it["dtype"].as_str().unwrap_or(""),
                it["shape"]
            )),
            "table" => line.push_str(&format!(" {} rows", it["rows"])),
            _ => {}
        }
        if let Some(c) = it.get("compression") {
            line.push_str(&format!(" [{}]", c.as_str().unwrap_or("")));
        }
        if let Some(s) = it.get("stats") {
            line.push_str(&format!("  {}", fmt_stats(s)));
        }
        writeln!(out, "{line}")?;
        for c in it["columns"].as_array().into_iter().flatten() {
            let unit = c["unit"]
                .as_str()
                .map(|u| format!(" [{u}]"))
                .unwrap_or_default();
            let mut l = format!(
                "         {:<20} {}{}",
                c["name"].as_str().unwrap_or(""),
                c["dtype"].as_str().unwrap_or(""),
                unit
            );
            if let Some(s) = c.get("stats") {
                l.push_str(&format!("  {}", fmt_stats(s)));
            }
            writeln!(out, "{l}")?;
        }
        match it.get("header") {
            Some(Value::Array(cards)) => {
                for c in cards {
                    let key = c["key"].as_str().unwrap_or("");
                    let val = match &c["value"] {
                        Value::Null => String::new(),
                        Value::String(s) => format!("'{s}'"),
                        v => v.to_string(),
                    };
                    writeln!(
                        out,
                        "         {key:<8} {val} {}",
                        c["comment"]
                            .as_str()
                            .map(|s| if s.is_empty() {
                                String::new()
                            } else {
                                format!("/ {s}")
                            })
                            .unwrap_or_default()
                    )?;
                }
            }
            Some(Value::Object(attrs)) => {
                for (k, v) in attrs {
                    writeln!(out, "         @{k} = {v}")?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
