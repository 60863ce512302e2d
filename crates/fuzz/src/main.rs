//! `deepsky-fuzz`: generate the damaged corpus and run deepsky's readers over all of it.
//!
//! ```text
//! cargo run --release -p deepsky-fuzz -- --deepsky target/release/deepsky \
//!     --sources data ../shared/testdata/external/fits ../shared/testdata/external/hdf5 \
//!     --per-source 100 --seed 1 --out target/fuzz
//! ```
//! prints the verdict counts as a markdown table (RELIABILITY.md) and exits 1 when any case
//! fails the criteria.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use deepsky_fuzz::{check_corpus, corpus_of, expand_sources, inspect_readers, Limits};

#[derive(Parser)]
#[command(about = "Run deepsky's readers over a seeded corpus of damaged FITS and HDF5 files")]
struct Args {
    /// The deepsky binary to test (or, with --reader, any program: the peer script's Python).
    #[arg(long, default_value = "target/release/deepsky")]
    deepsky: PathBuf,
    /// Source files, or folders whose FITS/HDF5 files are sources.
    #[arg(long, num_args = 1.., default_values = ["data", "../shared/testdata/external/fits", "../shared/testdata/external/hdf5"])]
    sources: Vec<PathBuf>,
    /// Damaged copies per source file.
    #[arg(long, default_value_t = 100)]
    per_source: usize,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write the corpus and report.json into.
    #[arg(long, default_value = "target/fuzz")]
    out: PathBuf,
    /// Reader command lines (arguments to the program, `{}` is the file); repeatable.
    /// Default: `inspect --json --stats {}` and `inspect --json --header {}`.
    #[arg(long = "reader")]
    readers: Vec<String>,
    /// Readers run at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Seconds before a run counts as a hang.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Address-space limit per run, GiB.
    #[arg(long, default_value_t = 4)]
    memory_gib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sources = expand_sources(&args.sources)?;
    let readers: Vec<Vec<String>> = if args.readers.is_empty() {
        inspect_readers()
    } else {
        args.readers
            .iter()
            .map(|r| r.split_whitespace().map(String::from).collect())
            .collect()
    };
    let cases = corpus_of(&sources, args.seed, args.per_source)?;
    eprintln!(
        "{} cases from {} sources, {} readers",
        cases.len(),
        sources.len(),
        readers.len()
    );
    let limits = Limits {
        timeout: Duration::from_secs(args.timeout),
        memory_bytes: args.memory_gib << 30,
    };
    let report = check_corpus(
        &args.deepsky,
        &readers,
        &cases,
        &args.out.join("corpus"),
        limits,
        args.jobs,
    )?;
    let json = args.out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    print!("{}", report.to_markdown());
    let slowest = report
        .outcomes
        .iter()
        .map(|o| o.run.seconds)
        .fold(0.0, f64::max);
    println!(
        "\nslowest run: {slowest:.2} s; details in {}",
        json.display()
    );
    if report.failures().next().is_some() {
        std::process::exit(1);
    }
    Ok(())
}
