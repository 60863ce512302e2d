//! `deepsky`: the command-line tool over the deepsky crates.
//!
//! The binary is thin glue: it parses arguments, sets up threads and logging, calls the
//! subcommand, and maps its outcome, a [`deepsky_runtime::RunError`], to an exit code (0
//! success, 1 failure, 2 bad input or config, 130 interrupted). Every error is printed as one
//! line naming the file and the problem.

mod anomaly;
mod common;
mod detect;
mod fastsim;
mod inspect;
mod segment;
mod simulate;
mod submit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deep learning for astrophysics and particle physics: FITS/HDF5 I/O, simulators and
/// learning pipelines.
#[derive(Parser, Debug)]
#[command(name = "deepsky", version, about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars, warnings and errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Worker threads for numerics (default: all cores; env DEEPSKY_THREADS). Use 1 when
    /// several runs share the cores: idle workers spin-wait, and oversubscribed cores turn
    /// that spinning into most of the run time (measured 3.5× slower).
    #[arg(long, global = true, env = "DEEPSKY_THREADS", value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Summarise FITS and HDF5 files: HDUs/datasets, shapes, types, columns, statistics.
    Inspect(inspect::InspectArgs),
    /// Generate reference data: sky fields, cutout sets, photon event lists, calorimeter showers.
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Train an autoencoder, score every object, cluster the latent space, rank anomalies.
    Anomaly(anomaly::AnomalyArgs),
    /// Find stars, galaxies and artefacts in sky images: train a detector, predict, evaluate.
    #[command(subcommand)]
    Detect(detect::DetectCommand),
    /// Fast Monte Carlo: train a conditional shower GAN, generate showers, validate them
    /// against reference Monte Carlo and measure the speed-up.
    #[command(subcommand)]
    Fastsim(fastsim::FastsimCommand),
    /// Pixel masks with a U-Net: cosmic rays, saturation and bleed trails, bad columns,
    /// satellite trails, source footprints; segmentation map and cleaned image.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// Run a pipeline over many inputs as a Slurm job array with a dependent merge job;
    /// `--status OUT` reports failed shards with their logs.
    Submit(submit::SubmitArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version are successes.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // Usage errors are bad input (exit 2), in one line like every other error.
        Err(e) => {
            eprintln!("deepsky: error: {}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Some(n) = cli.threads {
        // candle and rayon size their pools from this variable when first used, which is
        // after this point; nothing else reads the environment concurrently here.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    deepsky_nn::device::init_cpu_threads();
    deepsky_runtime::progress::init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Simulate(cmd) => simulate::run(cmd),
        Command::Anomaly(args) => anomaly::run(args),
        Command::Detect(cmd) => detect::run(cmd),
        Command::Fastsim(cmd) => fastsim::run(cmd),
        Command::Segment(cmd) => segment::run(cmd),
        Command::Submit(args) => submit::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deepsky: error: {}", escape_control(&e.to_string(), true));
            ExitCode::from(e.exit_code())
        }
    }
}

/// clap's error text in one line: what is wrong (its first paragraph, which names the option)
/// and its tip, without the usage block that follows.
fn one_line(text: &str) -> String {
    let mut parts: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .collect();
    parts.extend(
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("tip:")),
    );
    parts.join(" ")
}

/// `text` with its control characters written as `\x1b`-style escapes (tabs kept; newlines
/// kept unless `one_line`), for echoing file content to a terminal.
pub fn escape_control(text: &str, one_line: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' if !one_line => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
