//! `deepsky simulate`: reference data from the simulators in deepsky-sim, written with
//! deepsky-io (FITS for sky fields and event lists, HDF5 for cutouts and showers).
//!
//! Each simulator reads an optional TOML config (its fields are the simulator's config struct,
//! unknown keys are an error), takes `--seed`, and records how the output was made in the
//! files themselves (FITS HISTORY cards, HDF5 root attributes).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use deepsky_core::Validate;
use deepsky_io::fits::{Card, CardValue, ColumnMeta, FitsWriter, TableMeta};
use deepsky_io::h5::AttrValue;
use deepsky_sim::cutouts::{self, CutoutConfig};
use deepsky_sim::events::{self, EventConfig};
use deepsky_sim::output::{CardValue as SimCard, Column, ColumnData};
use deepsky_sim::shower::{EnergySpec, Particle, ShowerConfig};
use deepsky_sim::sky::{self, SkyConfig};
use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use deepsky_runtime::RunError;

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// Optical sky field (FITS image with TAN WCS) and its truth catalogue.
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
    /// TOML file with the simulator's settings (see `--dump-config` for all keys and defaults).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Random seed (overrides the config's). Same seed, same output, any thread count.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the fully resolved settings as TOML and exit.
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
    /// Output image; the truth catalogue goes to `<stem>_truth.fits` beside it.
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
    /// Incident particle: e-, e+ or gamma.
    #[arg(long)]
    particle: Option<String>,
    /// Fixed incident energy in GeV.
    #[arg(long, conflicts_with = "energy_range", allow_negative_numbers = true)]
    energy: Option<f64>,
    /// Incident energy uniform in MIN,MAX GeV.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "MIN,MAX",
        allow_negative_numbers = true
    )]
    energy_range: Option<Vec<f64>>,
    /// Number of showers.
    #[arg(short = 'n', long, allow_negative_numbers = true)]
    showers: Option<usize>,
    /// Output layout: calogan or calochallenge.
    #[arg(long, default_value = "calogan")]
    layout: String,
    /// Output HDF5 file.
    #[arg(short, long, default_value = "showers.h5")]
    out: PathBuf,
}

pub fn run(cmd: SimulateCommand) -> Result<(), RunError> {
    match cmd {
        SimulateCommand::Sky(a) => run_sky(a, deepsky_runtime::progress::is_quiet()),
        SimulateCommand::Cutouts(a) => run_cutouts(a, deepsky_runtime::progress::is_quiet()),
        SimulateCommand::Events(a) => run_events(a, deepsky_runtime::progress::is_quiet()),
        SimulateCommand::Showers(a) => run_showers(a, deepsky_runtime::progress::is_quiet()),
    }
}

/// Load a simulator config from TOML (or its defaults), strictly: unknown keys are errors.
fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, RunError> {
    match path {
        None => Ok(T::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| RunError::input(format!("{}: {e}", p.display())))?;
            toml::from_str(&text)
                .map_err(|e| RunError::input(format!("{}: {}", p.display(), e.message())))
        }
    }
}

fn dump<T: Serialize>(cfg: &T) -> Result<(), RunError> {
    let text = toml::to_string_pretty(cfg)
        .map_err(|e| RunError::failed(format!("cannot print config: {e}")))?;
    print!("{text}");
    Ok(())
}

/// A progress bar on stderr, hidden with --quiet or when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new(len: u64, what: &str, quiet: bool) -> Bar {
        let pb = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(len)
        };
        pb.set_style(
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Bar(pb)
    }
}

impl deepsky_sim::Progress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// How this output was made, as header cards: tool, version, command line, seed, config.
/// The command line as typed, with the program called `deepsky` wherever it was installed, so
/// that the same command gives the same file.
fn command_line() -> String {
    std::iter::once("deepsky".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

fn provenance_cards(seed: u64, config_json: &str) -> Vec<Card> {
    let mut cards = vec![
        Card::new(
            "CREATOR",
            format!("deepsky {}", env!("CARGO_PKG_VERSION")),
            "software that made this file",
        ),
        Card::new("SIMSEED", seed as i64, "random seed of the simulation"),
        Card::history(&format!("deepsky {} simulate", env!("CARGO_PKG_VERSION"))),
    ];
    for chunk in wrap(&format!("command: {}", command_line()), 70) {
        cards.push(Card::history(&chunk));
    }
    for chunk in wrap(&format!("config: {config_json}"), 70) {
        cards.push(Card::history(&chunk));
    }
    cards
}

fn provenance_attrs(seed: u64, config_json: &str) -> Vec<(String, AttrValue)> {
    vec![
        (
            "creator".into(),
            format!("deepsky {}", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("seed".into(), AttrValue::Int(seed as i64)),
        ("command".into(), command_line().into()),
        ("config".into(), config_json.to_string().into()),
    ]
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    s.as_bytes()
        .chunks(width)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// `<dir>/<stem>_truth.fits` for `<dir>/<stem>.fits[.gz]`.
fn truth_path(out: &Path) -> PathBuf {
    sibling(out, "truth")
}

/// `<stem>_<suffix>.fits` beside `out`.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .trim_end_matches(".gz")
        .trim_end_matches(".fits")
        .trim_end_matches(".fit");
    out.with_file_name(format!("{stem}_{suffix}.fits"))
}

/// A simulator's (name, unit, description, data) columns as a DataFrame and its FITS metadata.
pub fn columns_frame(cols: Vec<Column>) -> Result<(DataFrame, TableMeta), RunError> {
    let mut meta = TableMeta::new();
    let mut out = Vec::with_capacity(cols.len());
    for (name, unit, desc, data) in cols {
        meta.insert(name.to_string(), ColumnMeta::new(unit, desc));
        let s = match data {
            ColumnData::I64(v) => Series::from_vec(name.into(), v),
            ColumnData::F64(v) => Series::from_vec(name.into(), v),
            ColumnData::Str(v) => Series::new(name.into(), v),
        };
        out.push(s.into_column());
    }
    let df = DataFrame::new_infer_height(out)
        .map_err(|e| RunError::failed(format!("inconsistent truth table: {e}")))?;
    Ok((df, meta))
}

fn card_value(v: &SimCard) -> CardValue {
    match v {
        SimCard::Float(f) => CardValue::Float(*f),
        SimCard::Int(i) => CardValue::Int(*i),
        SimCard::Str(s) => CardValue::Str(s.clone()),
        SimCard::Bool(b) => CardValue::Bool(*b),
    }
}

fn cards(sim: &[(String, SimCard, String)]) -> Vec<Card> {
    sim.iter()
        .map(|(k, v, c)| Card {
            key: k.clone(),
            value: Some(card_value(v)),
            comment: c.clone(),
        })
        .collect()
}

fn attr_value(v: &SimCard) -> AttrValue {
    match v {
        SimCard::Float(f) => AttrValue::Float(*f),
        SimCard::Int(i) => AttrValue::Int(*i),
        SimCard::Str(s) => AttrValue::Str(s.clone()),
        SimCard::Bool(b) => AttrValue::Int(*b as i64),
    }
}

fn run_sky(a: SkyArgs, quiet: bool) -> Result<(), RunError> {
    let mut cfg: SkyConfig = load_config(a.common.config.as_deref())?;
    if let Some(s) = a.common.seed {
        cfg.seed = s;
    }
    if a.common.dump_config {
        return dump(&cfg);
    }
    cfg.validate().map_err(RunError::input)?;
    // One tick per source, cosmic ray and bad column.
    let work = cfg.n_stars
        + cfg.n_galaxies
        + cfg.artefacts.saturated_stars
        + cfg.artefacts.cosmic_rays
        + cfg.artefacts.bad_columns
        + cfg.injections.len();
    let bar = Bar::new(work as u64, "sky", quiet);
    let field = sky::simulate_sky(&cfg, &bar).map_err(RunError::input)?;
    drop(bar);
    let config_json = serde_json::to_string(&cfg).expect("config serialises");
    let mut header = cards(&field.header_cards());
    header.push(Card::new("BUNIT", "adu", "pixel unit"));
    header.extend(provenance_cards(cfg.seed, &config_json));
    let mut w = FitsWriter::create(&a.out)?;
    w.write_image(
        None,
        &deepsky_io::NdData::F32(field.image.clone().into_dyn()),
        &header,
    )?;
    w.finish()?;

    let truth = truth_path(&a.out);
    let (cat, meta) = columns_frame(field.catalog.columns())?;
    let mut w = FitsWriter::create(&truth)?;
    w.write_primary_header(&provenance_cards(cfg.seed, &config_json))?;
    let wcs_cards: Vec<Card> = cards(&field.wcs.header_cards());
    let mut cat_cards = vec![Card::comment(
        "simulation truth: one row per source; x, y are FITS pixels (1-based)",
    )];
    cat_cards.extend(wcs_cards);
    w.write_table("CATALOG", &cat, &meta, &cat_cards)?;
    w.finish()?;
    eprintln!(
        "wrote a {}x{} field to {} and {} truth sources to {}",
        field.image.ncols(),
        field.image.nrows(),
        a.out.display(),
        field.catalog.len(),
        truth.display()
    );
    Ok(())
}

fn run_cutouts(a: CutoutArgs, quiet: bool) -> Result<(), RunError> {
    use deepsky_io::h5::{H5Writer, WriteOptions};
    let mut cfg: CutoutConfig = load_config(a.common.config.as_deref())?;
    if let Some(s) = a.common.seed {
        cfg.seed = s;
    }
    if a.common.dump_config {
        return dump(&cfg);
    }
    cfg.validate().map_err(RunError::input)?;
    let bar = Bar::new(cfg.n as u64, "cutouts", quiet);
    let set = cutouts::simulate_cutouts(&cfg, &bar).map_err(RunError::input)?;
    drop(bar);
    let config_json = serde_json::to_string(&cfg).expect("config serialises");
    let w = H5Writer::create(&a.out)?;
    let opts = WriteOptions::default();
    w.write(
        CUTOUT_IMAGES,
        &deepsky_io::NdData::F32(set.images.clone().into_dyn()),
        &opts,
    )?;
    w.write(
        CUTOUT_LABELS,
        &deepsky_io::NdData::I32(ndarray::Array1::from(set.labels.clone()).into_dyn()),
        &opts,
    )?;
    w.write(
        CUTOUT_IDS,
        &deepsky_io::NdData::I64(ndarray::Array1::from(set.ids.clone()).into_dyn()),
        &opts,
    )?;
    w.set_attr(
        CUTOUT_LABELS,
        "names",
        cutouts::label_names().join(",").into(),
    )?;
    w.set_attr(CUTOUT_IMAGES, "unit", "adu".into())?;
    for (name, unit, desc, data) in set.columns() {
        let path = format!("{CUTOUT_PARAMS}/{name}");
        let nd = match data {
            ColumnData::I64(v) => deepsky_io::NdData::I64(ndarray::Array1::from(v).into_dyn()),
            ColumnData::F64(v) => deepsky_io::NdData::F64(ndarray::Array1::from(v).into_dyn()),
            ColumnData::Str(v) => deepsky_io::NdData::Str(ndarray::Array1::from(v).into_dyn()),
        };
        w.write(&path, &nd, &opts)?;
        w.set_attr(&path, "unit", unit.into())?;
        w.set_attr(&path, "description", desc.into())?;
    }
    for (k, v, _) in set.header_cards() {
        w.set_attr("/", &k.to_ascii_lowercase(), attr_value(&v))?;
    }
    w.set_attr("/", "layout", "deepsky-cutouts".into())?;
    w.set_attr("/", "layout_version", AttrValue::Int(CUTOUT_LAYOUT_VERSION))?;
    for (k, v) in provenance_attrs(cfg.seed, &config_json) {
        w.set_attr("/", &k, v)?;
    }
    w.finish()?;
    let c = set.label_counts();
    eprintln!(
        "wrote {} stamps to {} ({})",
        set.labels.len(),
        a.out.display(),
        cutouts::label_names()
            .iter()
            .zip(c)
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Version of the cutout file layout (root attribute `layout_version`); bump on any change.
pub const CUTOUT_LAYOUT_VERSION: i64 = 1;
/// Dataset names of a cutout file.
pub const CUTOUT_IMAGES: &str = "/images";
/// Labels: 0 normal, 1 lens, 2 merger, 3 artefact (names in the `names` attribute).
pub const CUTOUT_LABELS: &str = "/labels";
/// Object ids.
pub const CUTOUT_IDS: &str = "/ids";
/// Group of per-stamp parameters, one dataset per column with `unit` and `description`.
pub const CUTOUT_PARAMS: &str = "/params";

fn run_events(a: EventsArgs, quiet: bool) -> Result<(), RunError> {
    let mut cfg: EventConfig = load_config(a.common.config.as_deref())?;
    if let Some(s) = a.common.seed {
        cfg.seed = s;
    }
    if a.common.dump_config {
        return dump(&cfg);
    }
    cfg.validate().map_err(RunError::input)?;
    if !(a.feature_bin.is_finite() && a.feature_bin > 0.0) {
        return Err(RunError::input(format!(
            "--feature-bin must be a positive number of seconds, got {}",
            a.feature_bin
        )));
    }
    let bar = Bar::new((cfg.n_sources + cfg.n_gtis) as u64, "events", quiet);
    let ev = events::simulate_events(&cfg, &bar).map_err(RunError::input)?;
    drop(bar);
    let config_json = serde_json::to_string(&cfg).expect("config serialises");
    let prov = provenance_cards(cfg.seed, &config_json);

    // EVENTS: OGIP columns with units and legal ranges, the standard keywords.
    let df = df![
        "TIME" => &ev.time, "X" => &ev.x, "Y" => &ev.y, "ENERGY" => &ev.energy, "PI" => &ev.pi,
        "SOURCE_ID" => &ev.source_id,
    ]
    .map_err(|e| RunError::failed(e.to_string()))?;
    let mut meta = TableMeta::new();
    for m in ev.columns_meta() {
        meta.insert(
            m.name.to_string(),
            ColumnMeta {
                unit: (!m.unit.is_empty()).then(|| m.unit.to_string()),
                description: Some(m.description.to_string()),
                tlmin: m.tlmin,
                tlmax: m.tlmax,
            },
        );
    }
    meta.entry("SOURCE_ID".into()).or_insert_with(|| {
        ColumnMeta::new(
            "",
            "simulation truth: source that emitted the photon, 0 = background",
        )
    });
    let keywords: Vec<Card> = cards(&ev.keywords);
    let mut ev_cards = vec![Card::new("HDUCLAS2", "ALL", "all events")];
    ev_cards.extend(keywords.iter().cloned());
    let gti = df!["START" => ev.gti.iter().map(|g| g.0).collect::<Vec<_>>(), "STOP" => ev.gti.iter().map(|g| g.1).collect::<Vec<_>>()]
        .map_err(|e| RunError::failed(e.to_string()))?;
    let mut gti_meta = TableMeta::new();
    gti_meta.insert(
        "START".into(),
        ColumnMeta::new("s", "start of good time interval"),
    );
    gti_meta.insert(
        "STOP".into(),
        ColumnMeta::new("s", "end of good time interval"),
    );
    let mut gti_cards = vec![
        Card::new("HDUCLASS", "OGIP", "format conforms to OGIP standard"),
        Card::new("HDUCLAS1", "GTI", "good time intervals"),
    ];
    gti_cards.extend(
        keywords
            .iter()
            .filter(|c| {
                [
                    "TELESCOP", "INSTRUME", "MJDREFI", "MJDREFF", "TIMESYS", "TIMEUNIT", "TSTART",
                    "TSTOP",
                ]
                .contains(&c.key.as_str())
            })
            .cloned(),
    );

    let mut w = FitsWriter::create(&a.out)?;
    let mut primary = keywords
        .iter()
        .filter(|c| ["TELESCOP", "INSTRUME", "DATE-OBS", "DATE-END"].contains(&c.key.as_str()))
        .cloned()
        .collect::<Vec<_>>();
    primary.extend(prov.iter().cloned());
    w.write_primary_header(&primary)?;
    w.write_table("EVENTS", &df, &meta, &ev_cards)?;
    w.write_table("GTI", &gti, &gti_meta, &gti_cards)?;
    w.finish()?;

    let truth = truth_path(&a.out);
    let mut w = FitsWriter::create(&truth)?;
    w.write_primary_header(&prov)?;
    let (src, src_meta) = columns_frame(ev.sources.columns())?;
    w.write_table(
        "SOURCES",
        &src,
        &src_meta,
        &[Card::comment("simulation truth: one row per source")],
    )?;
    let (fl, fl_meta) = columns_frame(ev.flares.columns())?;
    w.write_table(
        "FLARES",
        &fl,
        &fl_meta,
        &[Card::comment("simulation truth: one row per flare")],
    )?;
    w.finish()?;

    // Per-source light-curve features, measured from the events as an analysis would (the
    // LABEL column is the truth, for evaluating anomaly searches on them).
    let features = events::light_curve_features(&ev, a.feature_bin);
    let features_path = sibling(&a.out, "features");
    let mut w = FitsWriter::create(&features_path)?;
    w.write_primary_header(&prov)?;
    let (ft, ft_meta) = columns_frame(features.columns())?;
    w.write_table(
        "FEATURES",
        &ft,
        &ft_meta,
        &[
            Card::new("BINSIZE", a.feature_bin, "[s] light-curve bin"),
            Card::comment("light-curve features per source, measured from the event list"),
        ],
    )?;
    w.finish()?;
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

fn run_showers(a: ShowerArgs, quiet: bool) -> Result<(), RunError> {
    #[derive(serde::Deserialize, Serialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct ShowerFile {
        particle: Option<String>,
        energy_gev: Option<f64>,
        energy_range_gev: Option<[f64; 2]>,
        showers: Option<usize>,
        seed: Option<u64>,
    }
    let file: ShowerFile = load_config(a.common.config.as_deref())?;
    if let Some(r) = &a.energy_range {
        if r.len() != 2 {
            return Err(RunError::input(format!(
                "--energy-range takes MIN,MAX in GeV, got {} value(s)",
                r.len()
            )));
        }
    }
    let particle_name = a.particle.or(file.particle).unwrap_or_else(|| "e-".into());
    let particle: Particle = particle_name.parse().map_err(RunError::input)?;
    let energy = match (
        a.energy,
        a.energy_range,
        file.energy_gev,
        file.energy_range_gev,
    ) {
        (Some(e), _, _, _) => EnergySpec::Fixed(e),
        (None, Some(r), _, _) => EnergySpec::Uniform {
            min: r[0],
            max: r[1],
        },
        (None, None, Some(e), _) => EnergySpec::Fixed(e),
        (None, None, None, Some(r)) => EnergySpec::Uniform {
            min: r[0],
            max: r[1],
        },
        _ => EnergySpec::Uniform {
            min: 1.0,
            max: 100.0,
        },
    };
    let cfg = ShowerConfig {
        particle,
        energy_gev: energy,
        n_showers: a.showers.or(file.showers).unwrap_or(1000),
        seed: a.common.seed.or(file.seed).unwrap_or(1),
    };
    if a.common.dump_config {
        let (e, r) = match cfg.energy_gev {
            EnergySpec::Fixed(e) => (Some(e), None),
            EnergySpec::Uniform { min, max } => (None, Some([min, max])),
            #[allow(unreachable_patterns)]
            _ => (None, None),
        };
        return dump(&ShowerFile {
            particle: Some(particle.to_string()),
            energy_gev: e,
            energy_range_gev: r,
            showers: Some(cfg.n_showers),
            seed: Some(cfg.seed),
        });
    }
    let layout = a.layout.to_ascii_lowercase();
    if layout != "calogan" && layout != "calochallenge" {
        return Err(RunError::input(format!(
            "unknown layout `{}`: expected calogan or calochallenge",
            a.layout
        )));
    }
    cfg.validate().map_err(RunError::input)?;
    let bar = Bar::new(cfg.n_showers as u64, "showers", quiet);
    let set = deepsky_sim::shower::simulate_showers(&cfg, &bar).map_err(RunError::input)?;
    drop(bar);
    let config_json = format!("{{\"particle\":\"{}\",\"energy_gev\":{:?},\"n_showers\":{},\"seed\":{},\"layout\":\"{layout}\"}}", particle, cfg.energy_gev, cfg.n_showers, cfg.seed);
    let mut attrs = provenance_attrs(cfg.seed, &config_json);
    attrs.push(("particle".into(), particle.to_string().into()));
    attrs.push((
        "particle_pdg_id".into(),
        AttrValue::Int(particle.pdg_id() as i64),
    ));
    let showers = deepsky_io::calo::CaloGanShowers {
        layer_0: set.layer_0,
        layer_1: set.layer_1,
        layer_2: set.layer_2,
        energy: set.energy,
        overflow: set.overflow,
    };
    if layout == "calogan" {
        showers.write(&a.out, &attrs)?;
    } else {
        showers.to_calochallenge().write(&a.out, &attrs)?;
    }
    eprintln!(
        "wrote {} {} showers to {} ({layout} layout)",
        showers.len(),
        particle,
        a.out.display()
    );
    Ok(())
}
