//! `deepsky fastsim`: learn the calorimeter-shower simulator with a conditional GAN, generate
//! showers with it, and validate them against reference Monte Carlo with the field's metrics.
//!
//! - `train`: read the training showers, train (checkpoints, `--resume`, periodic validation
//!   plots), save OUT/model (the moving-average generator).
//! - `generate`: showers at a fixed energy or over a range, written in the training file's
//!   layout (CaloGAN or CaloChallenge) so existing tools read them.
//! - `validate`: observables with χ² separation and Wasserstein-1, classifier AUCs on the
//!   high-level observables and on all cells, the same numbers for two independent reference
//!   samples (the noise floor), and the speed against the reference simulator.
//! - `images`: the same adversarial machinery on galaxy cutouts (a DCGAN-style image GAN).

mod generate;
mod images;
mod train;
mod validate;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use deepsky_runtime::RunError;

pub use deepsky_fastsim::config::FastsimConfig;

use crate::common::{self, PipelineArgs, RunFrame};

/// `deepsky fastsim` subcommands.
#[derive(Subcommand, Debug)]
pub enum FastsimCommand {
    /// Train a conditional shower GAN (writes OUT/model).
    Train(TrainArgs),
    /// Generate showers with a trained model (writes OUT/showers.h5).
    Generate(GenerateArgs),
    /// Compare generated showers with reference Monte Carlo; measure the speed-up.
    Validate(ValidateArgs),
    /// Train the DCGAN-style image GAN on galaxy cutouts (`[images]`); writes OUT/model,
    /// generated stamps and their comparison with the training stamps.
    Images(TrainArgs),
}

/// Arguments of `deepsky fastsim train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: PipelineArgs,
}

/// Arguments of `deepsky fastsim generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Model directory (overrides `generate.model`).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Number of showers (overrides `generate.showers`).
    // Negative values parse (and are refused by the range check naming the flag) instead of
    // being taken for unknown flags.
    #[arg(short = 'n', long, allow_negative_numbers = true)]
    showers: Option<i64>,
    /// Fixed incident energy in GeV (overrides `generate.energy_gev`).
    #[arg(
        long,
        value_name = "GEV",
        conflicts_with = "energy_range",
        allow_negative_numbers = true
    )]
    energy: Option<f64>,
    /// Incident energy uniform in MIN,MAX GeV.
    #[arg(
        long,
        value_name = "MIN,MAX",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    energy_range: Option<Vec<f64>>,
    /// Particle (overrides `generate.particle`).
    #[arg(long)]
    particle: Option<String>,
    /// Noise seed (overrides `generate.seed`).
    #[arg(long)]
    seed: Option<u64>,
}

/// Arguments of `deepsky fastsim validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    common: PipelineArgs,
    /// Model directory (overrides `generate.model`).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Skip the speed measurement.
    #[arg(long)]
    no_speed: bool,
}

/// Run a subcommand.
pub fn run(cmd: FastsimCommand) -> Result<(), RunError> {
    let (name, args) = match &cmd {
        FastsimCommand::Train(a) => ("fastsim train", &a.common),
        FastsimCommand::Generate(a) => ("fastsim generate", &a.common),
        FastsimCommand::Validate(a) => ("fastsim validate", &a.common),
        FastsimCommand::Images(a) => ("fastsim images", &a.common),
    };
    let Some(cfg) = common::resolve::<FastsimConfig>(args)? else {
        return Ok(());
    };
    if args.shard.is_some() {
        return Err(RunError::input("--shard does not apply to fastsim"));
    }
    let mut frame = RunFrame::start(name, args, &cfg)?;
    let result = match &cmd {
        FastsimCommand::Train(a) => train::run(a, &cfg.config, &mut frame),
        FastsimCommand::Generate(a) => generate::run(a, &cfg.config, &mut frame),
        FastsimCommand::Validate(a) => validate::run(a, &cfg.config, &mut frame),
        FastsimCommand::Images(a) => images::run(a, &cfg.config, &mut frame),
    };
    frame.finish(result)
}

/// Map a fastsim-library error to the runtime's kinds.
pub fn fastsim_error(e: deepsky_fastsim::FastsimError) -> RunError {
    use deepsky_fastsim::FastsimError as E;
    match e {
        E::Nn(n) => common::nn_error(n),
        E::InvalidConfig(e) => RunError::from(e),
        E::Io(e) => RunError::from(e),
        e @ E::Input(_) => RunError::Input(e.to_string()),
        e => RunError::Failed(e.to_string()),
    }
}

/// The model directory: `--model`, else `generate.model`.
fn model_dir(arg: &Option<PathBuf>, cfg: &FastsimConfig) -> PathBuf {
    arg.clone().unwrap_or_else(|| cfg.generate.model.clone())
}

/// Load the saved generator in `dir`, recorded as the run's model input.
fn load_model(
    dir: &Path,
    device: &candle_core::Device,
    frame: &mut RunFrame,
) -> Result<deepsky_fastsim::shower_gan::LoadedSimulator, RunError> {
    let loaded =
        deepsky_fastsim::shower_gan::LoadedSimulator::load(dir, device).map_err(fastsim_error)?;
    frame
        .provenance
        .input(&dir.join("model.safetensors"), "model")?;
    Ok(loaded)
}
