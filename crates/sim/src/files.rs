//! The simulators' results as files, in their documented layouts: the sky field as a FITS
//! image with its truth catalogue beside it ([`sky`]) and its truth masks ([`sky_masks`]), the cutout set as an HDF5 file
//! ([`cutouts`], the `deepsky-cutouts` layout), the event list as OGIP EVENTS and GTI tables
//! with its truth and light-curve features beside it ([`events`]). Showers are written by
//! `deepsky-io` ([`deepsky_io::calo::CaloGanShowers::write_as`], after
//! `CaloGanShowers::from(set)`). Each writer takes the caller's provenance cards or attributes
//! and adds them to every file.
//!
//! ```no_run
//! use deepsky_sim::files;
//! use deepsky_sim::sky::{simulate_sky, SkyConfig};
//!
//! let field = simulate_sky(&SkyConfig::default(), &())?;
//! let truth = files::sky("field.fits".as_ref(), &field, &[])?;
//! assert!(truth.ends_with("field_truth.fits"));
//! # Ok::<(), deepsky_sim::SimError>(())
//! ```

use std::path::{Path, PathBuf};

use deepsky_io::fits::{Card, CardValue, ColumnMeta, FitsWriter, TableMeta};
use deepsky_io::h5::AttrValue;
use polars::prelude::*;

use crate::cutouts::CutoutSet;
use crate::error::{Result, SimError};
use crate::events::{EventList, FeatureTable};
use crate::output::{CardValue as SimCard, Column, ColumnData};
use crate::sky::SkyField;

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
fn columns_frame(cols: Vec<Column>) -> Result<(DataFrame, TableMeta)> {
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
        .map_err(|e| SimError::Table(format!("inconsistent truth table: {e}")))?;
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
pub fn sky(out: &Path, field: &SkyField, prov: &[Card]) -> Result<PathBuf> {
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

/// `<dir>/<stem>_masks.fits` for `<dir>/<stem>.fits[.gz]`.
pub fn masks_path(out: &Path) -> PathBuf {
    sibling(out, "masks")
}

/// The sky field's truth masks beside the image `out`, in `<stem>_masks.fits`: an empty
/// primary HDU with the provenance cards `prov`, then `MASK` (int32 bitmask of
/// [`deepsky_core::mask::MaskPlane`] bits, with the `MP_<PLANE>` cards of
/// [`deepsky_io::mask::write_mask_hdu`]) and `SEGMENTATION` (int32: 0 for sky, else the
/// catalogue `id` of the dominant source), both with the image's WCS cards. Returns the path.
pub fn sky_masks(out: &Path, field: &SkyField, prov: &[Card]) -> Result<PathBuf> {
    let path = masks_path(out);
    let wcs_cards: Vec<Card> = cards(&field.wcs.header_cards());
    let mut w = FitsWriter::create(&path)?;
    w.write_primary_header(prov)?;
    let mut mask_cards = vec![Card::comment(
        "simulation truth: pixels each artefact and source touched",
    )];
    mask_cards.extend(wcs_cards.iter().cloned());
    deepsky_io::mask::write_mask_hdu(&mut w, "MASK", &field.masks.bits, &mask_cards)?;
    let mut seg_cards = vec![Card::comment(
        "0 = sky, else the CATALOG id of the source dominating the pixel",
    )];
    seg_cards.extend(wcs_cards);
    w.write_image(
        Some("SEGMENTATION"),
        &deepsky_io::NdData::I32(field.masks.segmentation.clone().into_dyn()),
        &seg_cards,
    )?;
    w.finish()?;
    Ok(path)
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
pub fn cutouts(out: &Path, set: &CutoutSet, prov: &[(String, AttrValue)]) -> Result<()> {
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
        crate::cutouts::label_names().join(",").into(),
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
        w.set_attr("/", k, v.clone())?;
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
) -> Result<(PathBuf, PathBuf)> {
    // EVENTS: OGIP columns with units and legal ranges, the standard keywords.
    let df = df![
        "TIME" => &ev.time, "X" => &ev.x, "Y" => &ev.y, "ENERGY" => &ev.energy, "PI" => &ev.pi,
        "SOURCE_ID" => &ev.source_id,
    ]
    .map_err(|e| SimError::Table(e.to_string()))?;
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
        .map_err(|e| SimError::Table(e.to_string()))?;
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
    w.write_primary_header(prov)?;
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
    w.write_primary_header(prov)?;
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

#[cfg(test)]
mod tests {
    use deepsky_io::fits::{FitsReader, HduSelector};
    use deepsky_io::h5::H5Reader;

    use super::*;
    use crate::cutouts::{simulate_cutouts, CutoutConfig};
    use crate::sky::{simulate_sky, SkyConfig};

    #[test]
    fn the_sky_file_holds_the_image_and_its_truth_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SkyConfig {
            width: 40,
            height: 30,
            n_stars: 3,
            n_galaxies: 2,
            seed: 5,
            ..SkyConfig::default()
        };
        let field = simulate_sky(&cfg, &()).unwrap();
        let out = dir.path().join("f.fits.gz");
        let prov = [Card::new("DSTEST", 7i64, "a provenance card")];
        let truth = sky(&out, &field, &prov).unwrap();
        assert_eq!(truth, dir.path().join("f_truth.fits"));

        let mut r = FitsReader::open(&out).unwrap();
        let image = r.read_image_f32(&HduSelector::Index(0)).unwrap();
        let sum = |v: &mut dyn Iterator<Item = f32>| v.map(f64::from).sum::<f64>();
        assert_eq!(image.shape(), [30, 40]);
        assert_eq!(
            sum(&mut image.iter().copied()),
            sum(&mut field.image.iter().copied())
        );
        let header = r.header(&HduSelector::Index(0)).unwrap();
        assert_eq!(header.get_str("BUNIT"), Some("adu"));
        assert_eq!(header.get_f64("DSTEST"), Some(7.0));

        let mut t = FitsReader::open(&truth).unwrap();
        let cat = t
            .read_table(&HduSelector::Name("CATALOG".into()), None)
            .unwrap();
        assert_eq!(cat.data.height(), field.catalog.len());
    }

    #[test]
    fn the_cutout_file_has_labels_names_and_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CutoutConfig {
            n: 6,
            seed: 2,
            ..CutoutConfig::default()
        };
        let set = simulate_cutouts(&cfg, &()).unwrap();
        let out = dir.path().join("c.h5");
        cutouts(&out, &set, &[("seed".into(), AttrValue::Int(2))]).unwrap();
        let f = H5Reader::open(&out).unwrap();
        let images = f.read_f32(CUTOUT_IMAGES).unwrap();
        assert_eq!(images.shape()[0], 6);
        assert_eq!(images.iter().sum::<f32>(), set.images.iter().sum::<f32>());
        let attrs = f.root_attrs().unwrap();
        let attr = |k: &str| attrs.iter().find(|a| a.0 == k).map(|a| a.1.clone());
        assert_eq!(
            attr("layout"),
            Some(AttrValue::Str("deepsky-cutouts".into()))
        );
        assert_eq!(attr("seed"), Some(AttrValue::Int(2)));
        let columns = set.columns();
        assert!(!columns.is_empty());
        let first = format!("{CUTOUT_PARAMS}/{}", columns[0].0);
        assert_eq!(f.read(&first).unwrap().shape(), [6]);
    }
}
