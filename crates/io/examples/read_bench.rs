//! Read benchmark behind BENCHMARKS.md (run by benchmarks/io.sh):
//!
//! ```sh
//! cargo run --release -p deepsky-io --example read_bench -- image FILE
//! cargo run --release -p deepsky-io --example read_bench -- table FILE
//! cargo run --release -p deepsky-io --example read_bench -- chunks FILE ROWS
//! ```
//! Prints one JSON line: seconds, bytes of data, and peak resident memory (VmHWM).

use std::time::Instant;

use deepsky_io::fits::{FitsReader, HduSelector};

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sum with eight independent running sums, so that the additions pipeline.
fn sum_f64<T>(values: &[T], to_f64: impl Fn(&T) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(&to_f64).sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += to_f64(x);
        }
    }
    lanes.iter().sum::<f64>() + rest
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, path) = (
        args.get(1).map(String::as_str).unwrap_or(""),
        args.get(2).cloned().unwrap_or_default(),
    );
    let rss_before = peak_rss_bytes();
    let t = Instant::now();
    let mut f = FitsReader::open(&path)?;
    let (rows, check) = match mode {
        "image" => {
            let img = f.read_image(&HduSelector::Index(0))?;
            // The same check as astropy's side (`data.sum(dtype='f8')`): an f64 sum over the
            // contiguous buffer with eight running sums, as numpy's pairwise sum keeps them (a
            // single running sum waits on every addition and took a quarter of the time).
            let sum = match &img {
                deepsky_io::NdData::F32(a) => a.as_slice().map(|v| sum_f64(v, |&x| x as f64)),
                deepsky_io::NdData::F64(a) => a.as_slice().map(|v| sum_f64(v, |&x| x)),
                _ => None,
            };
            (
                img.shape().iter().product::<usize>(),
                sum.unwrap_or_else(|| img.stats().map_or(0.0, |s| s.sum)),
            )
        }
        "table" => {
            let t = f.read_table(&HduSelector::Index(1), None)?;
            let time = t
                .data
                .column("TIME")?
                .f64()?
                .get(t.data.height() - 1)
                .unwrap_or(0.0);
            (t.data.height(), time)
        }
        "chunks" => {
            let chunk: usize = args
                .get(3)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000);
            let mut n = 0;
            let mut last = 0.0;
            for c in f.table_chunks(&HduSelector::Index(1), None, chunk)? {
                let c = c?;
                n += c.data.height();
                last = c
                    .data
                    .column("TIME")?
                    .f64()?
                    .get(c.data.height() - 1)
                    .unwrap_or(0.0);
            }
            (n, last)
        }
        _ => return Err("usage: read_bench image|table|chunks FILE [ROWS]".into()),
    };
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"seconds\":{secs:.4},\"items\":{rows},\"check\":{check},\"peak_rss_bytes\":{},\"rss_before_bytes\":{rss_before}}}",
        peak_rss_bytes()
    );
    Ok(())
}
