//! The files `deepsky simulate` writes: each simulator's result in its documented layout (FITS
//! images and OGIP tables, the cutout and shower HDF5 layouts), with the provenance cards or
//! attributes of the run.

use std::path::{Path, PathBuf};

use deepsky_io::fits::{Card, CardValue, ColumnMeta, FitsWriter, TableMeta};
use deepsky_io::h5::AttrValue;
use deepsky_runtime::{Provenance, Resolved, RunError};
use deepsky_sim::cutouts::{self, CutoutSet};
use deepsky_sim::events::{EventList, FeatureTable};
use deepsky_sim::output::{CardValue as SimCard, Column, ColumnData};
use deepsky_sim::sky::SkyField;
use polars::prelude::*;
use serde::Serialize;

use super::Layout;

/// The provenance of one simulation, as it goes into each output file.
pub struct Record {
    provenance: Provenance,
    seed: u64,
    config_json: String,
}

impl Record {
    pub fn start<C: Serialize>(
        name: &str,
        cfg: &Resolved<C>,
        seed: u64,
        config_json: String,
    ) -> Self {
        let features = deepsky_nn::device::enabled_features();
        let version = env!("CARGO_PKG_VERSION");
        let mut provenance =
            Provenance::start(&format!("simulate {name}"), version, &features, cfg);
        provenance.seed("simulation", seed);
        Record {
            provenance,
            seed,
            config_json,
        }
    }

    fn creator() -> String {
        format!("deepsky {}", env!("CARGO_PKG_VERSION"))
    }

    /// FITS primary-header cards: CREATOR and SIMSEED, the pipelines' provenance cards, and
    /// HISTORY cards with the resolved settings as JSON.
    pub fn cards(&self) -> Vec<Card> {
        let mut cards = vec![
            Card::new("CREATOR", Record::creator(), "software that made this file"),
            Card::new("SIMSEED", self.seed as i64, "random seed of the simulation"),
        ];
        cards.extend(self.provenance.fits_cards());
        for chunk in wrap(&format!("config: {}", self.config_json), 70) {
            cards.push(Card::history(&chunk));
        }
        cards
    }

    /// HDF5 root attributes: `creator`, `seed`, `command`, `config` (the resolved settings as
    /// JSON), and the pipelines' provenance attributes.
    pub fn attrs(&self) -> Vec<(String, AttrValue)> {
        let command = self.provenance.command_line.join(" ");
        let mut attrs = vec![
            ("creator".into(), Record::creator().into()),
            ("seed".into(), AttrValue::Int(self.seed as i64)),
            ("command".into(), command.into()),
            ("config".into(), self.config_json.clone().into()),
        ];
        attrs.extend(self.provenance.hdf5_attrs());
        attrs
    }
}

/// `s` in pieces of at most `width` bytes (HISTORY card text).
pub fn wrap(s: &str, width: usize) -> Vec<String> {
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

/// The sky field's image to `out` and its truth catalogue beside it; returns the truth path.
pub fn sky(out: &Path, field: &SkyField, prov: &[Card]) -> Result<PathBuf, RunError> {
    let mut header = cards(&field.header_cards());
    header.push(Card::new("BUNIT", "adu", "pixel unit"));
    header.extend(prov.iter().cloned());
    let mut w = FitsWriter::create(out)?;
    w.write_image(
        None,
        &deepsky_io::NdData::F32(field.image.clone().into_dyn()),
        &header,
    )?;
    w.finish()?;

    let truth = truth_path(out);
    let (cat, meta) = columns_frame(field.catalog.columns())?;
    let mut w = FitsWriter::create(&truth)?;
    w.write_primary_header(prov)?;
    let wcs_cards: Vec<Card> = cards(&field.wcs.header_cards());
    let mut cat_cards = vec![Card::comment(
        "simulation truth: one row per source; x, y are FITS pixels (1-based)",
    )];
    cat_cards.extend(wcs_cards);
    w.write_table("CATALOG", &cat, &meta, &cat_cards)?;
    w.finish()?;
    Ok(truth)
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

/// The cutout set to `out` (HDF5, the `deepsky-cutouts` layout).
pub fn cutouts(
    out: &Path,
    set: &CutoutSet,
    prov: Vec<(String, AttrValue)>,
) -> Result<(), RunError> {
    use deepsky_io::h5::{H5Writer, WriteOptions};
    let w = H5Writer::create(out)?;
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
    for (k, v) in prov {
        w.set_attr("/", &k, v)?;
    }
    w.finish()?;
    Ok(())
}

/// The event list to `out` (OGIP EVENTS and GTI), its truth (SOURCES, FLARES) and the
/// per-source light-curve features beside it; returns the truth and features paths.
pub fn events(
    out: &Path,
    ev: &EventList,
    features: &FeatureTable,
    feature_bin: f64,
    prov: &[Card],
) -> Result<(PathBuf, PathBuf), RunError> {
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

    let mut w = FitsWriter::create(out)?;
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

    let truth = truth_path(out);
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

    // Per-source light-curve features (the LABEL column is the truth, for evaluating anomaly
    // searches on them).
    let features_path = sibling(out, "features");
    let mut w = FitsWriter::create(&features_path)?;
    w.write_primary_header(&prov)?;
    let (ft, ft_meta) = columns_frame(features.columns())?;
    w.write_table(
        "FEATURES",
        &ft,
        &ft_meta,
        &[
            Card::new("BINSIZE", feature_bin, "[s] light-curve bin"),
            Card::comment("light-curve features per source, measured from the event list"),
        ],
    )?;
    w.finish()?;
    Ok((truth, features_path))
}

/// The showers to `out` in `layout` (HDF5); returns how many.
pub fn showers(
    out: &Path,
    set: deepsky_sim::shower::ShowerSet,
    layout: Layout,
    attrs: &[(String, AttrValue)],
) -> Result<usize, RunError> {
    let showers = deepsky_io::calo::CaloGanShowers {
        layer_0: set.layer_0,
        layer_1: set.layer_1,
        layer_2: set.layer_2,
        energy: set.energy,
        overflow: set.overflow,
    };
    match layout {
        Layout::Calogan => showers.write(out, attrs)?,
        Layout::Calochallenge => showers.to_calochallenge().write(out, attrs)?,
    }
    Ok(showers.len())
}
