//! `deepsky simulate`: reference data from the simulators in deepsky-sim, written with
//! deepsky-io (FITS for sky fields and event lists, HDF5 for cutouts and showers).
//!
//! Each simulator's settings are a config resolved as every pipeline's is (`-c` layered,
//! `--set`, `--dump-config` with each key's doc); its options (`--seed`, and the shower
//! options) stand for settings and win over both. Each output file records how it was made
//! (the run's provenance as FITS cards or HDF5 root attributes, with the resolved settings);
//! a simulation writes no provenance.json, since several of them often share one folder.

mod showers;
mod write;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use deepsky_io::h5::AttrValue;
use deepsky_runtime::{config, PipelineConfig, Resolved, RunError};
use deepsky_sim::cutouts::{self, CutoutConfig};
use deepsky_sim::events::{self, EventConfig};
use deepsky_sim::files;
use deepsky_sim::sky::{self, SkyConfig};
use serde::Serialize;

use deepsky_sim::shower::ShowerSettings;

use crate::common::dump_or_run;

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// Optical sky field (FITS image with TAN WCS), its truth catalogue and truth masks.
    Sky(SkyArgs),
    /// Galaxy cutout stamps with a small labelled fraction of rare classes (HDF5).
    Cutouts(CutoutArgs),
    /// X-ray photon event list (OGIP EVENTS + GTI) and its truth table.
    Events(EventsArgs),
    /// Electromagnetic showers in a CaloGAN-segmented sampling calorimeter (HDF5).
    Showers(ShowerArgs),
}

/// Options every simulator shares.
#[derive(Args, Debug)]
pub struct Common {
    /// TOML file with the simulator's settings; repeat to layer (later files win). See
    /// `--dump-config` for every key, its default and its meaning.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    /// Override one setting, e.g. `--set n_stars=50` (wins over files; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Random seed (the `seed` setting). Same seed, same output, any thread count.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the fully resolved settings as TOML, each key with its doc, and exit.
    #[arg(long)]
    dump_config: bool,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    common: Common,
    /// Output event file; the truth tables go to `<stem>_truth.fits` beside it, per-source
    /// light-curve features to `<stem>_features.fits`.
    #[arg(short, long, default_value = "events.fits")]
    out: PathBuf,
    /// Light-curve bin for the per-source features, seconds.
    #[arg(long, default_value_t = 500.0)]
    feature_bin: f64,
}

#[derive(Args, Debug)]
pub struct SkyArgs {
    #[command(flatten)]
    common: Common,
    /// Output image; the truth catalogue goes to `<stem>_truth.fits` beside it, the truth
    /// masks (MASK bitmask and SEGMENTATION) to `<stem>_masks.fits`.
    #[arg(short, long, default_value = "sky.fits")]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct CutoutArgs {
    #[command(flatten)]
    common: Common,
    /// Output HDF5 file.
    #[arg(short, long, default_value = "cutouts.h5")]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ShowerArgs {
    #[command(flatten)]
    common: Common,
    /// Incident particle: e-, e+ or gamma (the `particle` setting).
    #[arg(long)]
    particle: Option<String>,
    /// Fixed incident energy in GeV (`energy_gev`).
    #[arg(long, conflicts_with = "energy_range", allow_negative_numbers = true)]
    energy: Option<f64>,
    /// Incident energy uniform in MIN,MAX GeV (`energy_range_gev`).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "MIN,MAX",
        allow_hyphen_values = true
    )]
    energy_range: Option<Vec<f64>>,
    /// Number of showers (`showers`).
    #[arg(short = 'n', long, allow_negative_numbers = true)]
    showers: Option<usize>,
    /// Output layout: calogan or calochallenge (`layout`).
    #[arg(long)]
    layout: Option<String>,
    /// Output HDF5 file.
    #[arg(short, long, default_value = "showers.h5")]
    out: PathBuf,
}

/// Run `deepsky simulate`.
pub fn run(cmd: SimulateCommand) -> Result<(), RunError> {
    // Ctrl-C/SIGTERM: the shower simulator stops within a shower; every simulator checks
    // before writing, so an interrupted run exits 130 and writes nothing.
    deepsky_runtime::interrupt::install_handler();
    match cmd {
        SimulateCommand::Sky(a) => run_sky(a),
        SimulateCommand::Cutouts(a) => run_cutouts(a),
        SimulateCommand::Events(a) => run_events(a),
        SimulateCommand::Showers(a) => run_showers(a),
    }
}

/// A setting given by a command-line option: its key, the option as typed, and how it
/// changes the settings.
type Flag<C> = (&'static str, String, Box<dyn Fn(&mut C)>);

/// Resolve a simulator's settings: defaults, `-c` files, `--set`, then `flags` (`--seed`
/// first). None after `--dump-config` printed them.
fn settings<C: PipelineConfig + 'static>(
    common: &Common,
    seed: fn(&mut C) -> &mut u64,
    mut flags: Vec<Flag<C>>,
) -> Result<Option<Resolved<C>>, RunError> {
    if let Some(s) = common.seed {
        let apply = Box::new(move |c: &mut C| *seed(c) = s);
        flags.insert(0, ("seed", format!("--seed {s}"), apply));
    }
    let sources: Vec<(String, String)> = flags
        .iter()
        .map(|(k, f, _)| (k.to_string(), f.clone()))
        .collect();
    let resolved = config::load_with(&common.configs, &common.sets, &sources, |c: &mut C| {
        flags.iter().for_each(|(_, _, apply)| apply(c))
    })?;
    dump_or_run(resolved, common.dump_config)
}

/// The runtime's progress bar as the simulators' progress sink.
struct Ticks(deepsky_runtime::Progress);

impl Ticks {
    fn new(label: &str, total: usize, unit: &str) -> Ticks {
        Ticks(deepsky_runtime::Progress::new(label, total as u64, unit))
    }
}

impl deepsky_sim::Progress for Ticks {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

/// A simulator's error: a setting out of range names its key (exit 2).
fn sim_error(e: deepsky_sim::SimError) -> RunError {
    match e {
        deepsky_sim::SimError::Config(e) => RunError::from(e),
        deepsky_sim::SimError::Io(e) => RunError::from(e),
        e @ deepsky_sim::SimError::Table(_) => RunError::failed(e),
        deepsky_sim::SimError::Interrupted => RunError::Interrupted,
        e => RunError::input(e),
    }
}

fn json<C: Serialize>(cfg: &C) -> String {
    serde_json::to_string(cfg).expect("config serialises")
}

fn run_sky(a: SkyArgs) -> Result<(), RunError> {
    let Some(cfg) = settings::<SkyConfig>(&a.common, |c| &mut c.seed, vec![])? else {
        return Ok(());
    };
    let c = &cfg.config;
    let record = write::Record::start("sky", &cfg, c.seed, json(c));
    // One tick per source, cosmic ray and bad column.
    let work = c.n_stars
        + c.n_galaxies
        + c.artefacts.saturated_stars
        + c.artefacts.cosmic_rays
        + c.artefacts.bad_columns
        + c.injections.len();
    let field = sky::simulate_sky(c, &Ticks::new("sky", work, "sources")).map_err(sim_error)?;
    deepsky_runtime::interrupt::check()?;
    let truth = files::sky(&a.out, &field, &record.cards()).map_err(sim_error)?;
    let masks = files::sky_masks(&a.out, &field, &record.cards()).map_err(sim_error)?;
    let (w, h) = (field.image.ncols(), field.image.nrows());
    let (n, out) = (field.catalog.len(), a.out.display());
    eprintln!(
        "wrote a {w}x{h} field to {out}, {n} truth sources to {} and truth masks to {}",
        truth.display(),
        masks.display()
    );
    Ok(())
}

fn run_cutouts(a: CutoutArgs) -> Result<(), RunError> {
    let Some(cfg) = settings::<CutoutConfig>(&a.common, |c| &mut c.seed, vec![])? else {
        return Ok(());
    };
    let c = &cfg.config;
    let record = write::Record::start("cutouts", &cfg, c.seed, json(c));
    let ticks = Ticks::new("cutouts", c.n, "stamps");
    let set = cutouts::simulate_cutouts(c, &ticks).map_err(sim_error)?;
    deepsky_runtime::interrupt::check()?;
    files::cutouts(&a.out, &set, &record.attrs()).map_err(sim_error)?;
    let counts: Vec<String> = cutouts::label_names()
        .iter()
        .zip(set.label_counts())
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
    let (n, out) = (set.labels.len(), a.out.display());
    eprintln!("wrote {n} stamps to {out} ({})", counts.join(", "));
    Ok(())
}

fn run_events(a: EventsArgs) -> Result<(), RunError> {
    let Some(cfg) = settings::<EventConfig>(&a.common, |c| &mut c.seed, vec![])? else {
        return Ok(());
    };
    if !(a.feature_bin.is_finite() && a.feature_bin > 0.0) {
        return Err(RunError::input(format!(
            "--feature-bin must be a positive number of seconds, got {}",
            a.feature_bin
        )));
    }
    let c = &cfg.config;
    let record = write::Record::start("events", &cfg, c.seed, json(c));
    let ticks = Ticks::new("events", c.n_sources + c.n_gtis, "sources");
    let ev = events::simulate_events(c, &ticks).map_err(sim_error)?;
    // Per-source light-curve features, measured from the events as an analysis would.
    let features = events::light_curve_features(&ev, a.feature_bin);
    deepsky_runtime::interrupt::check()?;
    let (truth, features_path) =
        files::events(&a.out, &ev, &features, a.feature_bin, &record.cards()).map_err(sim_error)?;
    eprintln!(
        "wrote {} events to {}, the truth of {} sources to {} and their features to {}",
        ev.len(),
        a.out.display(),
        ev.sources.len(),
        truth.display(),
        features_path.display()
    );
    Ok(())
}

fn run_showers(a: ShowerArgs) -> Result<(), RunError> {
    let flags = showers::flags(&a)?;
    let Some(cfg) = settings::<ShowerSettings>(&a.common, |c| &mut c.seed, flags)? else {
        return Ok(());
    };
    let s = &cfg.config;
    let sim = s.simulation();
    let record = write::Record::start("showers", &cfg, sim.seed, s.attribute());
    let ticks = Ticks::new("showers", sim.n_showers, "showers");
    let stop = deepsky_runtime::interrupt::interrupted;
    let set =
        deepsky_sim::shower::simulate_showers_until(&sim, &ticks, &stop).map_err(sim_error)?;
    deepsky_runtime::interrupt::check()?;
    let mut attrs = record.attrs();
    attrs.push(("particle".into(), sim.particle.to_string().into()));
    let pdg = AttrValue::Int(sim.particle.pdg_id() as i64);
    attrs.push(("particle_pdg_id".into(), pdg));
    let showers = deepsky_io::calo::CaloGanShowers::from(set);
    showers.write_as(s.layout, &a.out, &attrs)?;
    let (n, particle, out, layout) = (showers.len(), sim.particle, a.out.display(), s.layout);
    eprintln!("wrote {n} {particle} showers to {out} ({layout} layout)");
    Ok(())
}
