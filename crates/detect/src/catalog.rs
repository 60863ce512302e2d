//! Images and catalogues in and out: what `deepsky detect` reads, and its catalogue as data.
//!
//! - [`read_image`]: a 2-D image and its header from a FITS file.
//! - [`catalog_frame`]: measured detections as a DataFrame with each column's unit and
//!   description (what `catalog.fits` and `catalog.csv` hold), [`with_image_column`] for runs
//!   over several images, [`header_cards`] for the primary header.
//! - [`regions`]: a DS9 region file.
//! - [`read_truth`]: a truth catalogue as `deepsky simulate sky` writes it; [`read_detections`]:
//!   any detection catalogue (ours, or SExtractor's `X_IMAGE`… columns) for the evaluation;
//!   [`read_catalog`] and [`concat()`]: our own catalogues read back and joined (`detect merge`).
//!
//! Catalogues count pixels the FITS way (the centre of the first pixel is 1.0); inside, positions
//! are continuous 0-based, and [`deepsky_core::pixel`] converts between the two.
//!
//! ```
//! use deepsky_detect::boxes::BBox;
//! use deepsky_detect::catalog::catalog_frame;
//! use deepsky_detect::measure::MeasuredObject;
//!
//! let star = MeasuredObject {
//!     x: 10.5, y: 20.25, ra: f64::NAN, dec: f64::NAN,
//!     bbox: BBox::new(8.0, 18.0, 13.0, 23.0),
//!     class: 0, score: 0.9, flux: 1200.0, flux_err: 40.0, point_source: None,
//!     aperture_masked: 0,
//! };
//! let (df, meta) = catalog_frame(&[star], &["star".to_string()], None);
//! let x = df.column("x").unwrap().f64().unwrap().get(0);
//! assert_eq!(x, Some(11.0)); // FITS 1-based
//! assert_eq!(meta["x"].unit.as_deref(), Some("pix"));
//! ```

use std::path::{Path, PathBuf};

use deepsky_core::pixel::{fits_index_outer_edges, from_fits, to_fits};
use deepsky_io::fits::{Card, CardValue, ColumnMeta, FitsReader, HduSelector, Header, TableMeta};
use ndarray::Array2;
use polars::prelude::*;

use crate::boxes::BBox;
use crate::classes::source_class;
use crate::error::{DetectError, Result};
use crate::measure::MeasuredObject;
use crate::metrics::{DetectedObject, TruthObject};

/// Extension name of the catalogue table in `catalog.fits`.
pub const CATALOG_HDU: &str = "CATALOG";

/// The column [`with_masked_column`] adds.
pub const MASKED_COLUMN: &str = "aper_masked";

/// The keys of the catalogue's own primary-header cards (see [`header_cards`]).
pub const HEADER_KEYS: [&str; 4] = ["IMAGE", "NIMAGES", "MODEL", "APERRAD"];

fn input(message: String) -> DetectError {
    DetectError::Input(message)
}

/// Read a 2-D image and its header: HDU `hdu` (an index or an EXTNAME), or when `hdu` is
/// empty the primary HDU, or the first extension when the primary holds no image. Leading axes
/// of length 1 are dropped ((1, h, w) cubes are common); anything else that is not 2-D is an
/// error naming the file.
pub fn read_image(path: &Path, hdu: &str) -> Result<(Array2<f32>, Header)> {
    let mut f = FitsReader::open(path)?;
    let sel = if hdu.is_empty() {
        let info = f.hdu_info(&HduSelector::Index(0))?;
        if info.shape.len() >= 2 {
            HduSelector::Index(0)
        } else if f.num_hdus()? > 1 {
            HduSelector::Index(1)
        } else {
            return Err(input(format!(
                "{}: no image: the primary HDU has shape {:?} and there are no extensions",
                path.display(),
                info.shape
            )));
        }
    } else {
        hdu.parse().expect("infallible")
    };
    let image = f.read_image_f32(&sel)?;
    let shape: Vec<usize> = image
        .shape()
        .iter()
        .copied()
        .skip_while(|&n| n == 1)
        .collect();
    if shape.len() < 2 && image.ndim() >= 2 {
        return Err(input(format!(
            "{}: the image is {:?} pixels; detection needs at least 2 × 2",
            path.display(),
            image.shape()
        )));
    }
    if shape.len() != 2 {
        return Err(input(format!(
            "{}: the image has shape {:?}; detection needs a 2-D image",
            path.display(),
            image.shape()
        )));
    }
    let image = image
        .into_shape_with_order((shape[0], shape[1]))
        .map_err(|e| input(format!("{}: {e}", path.display())))?;
    let header = f.header(&sel)?;
    Ok((image, header))
}

/// Read a table: Parquet (by the extension `.parquet` or `.pq`), CSV with a header row
/// (`.csv`), else FITS, HDU `hdu` (an index or an EXTNAME; empty: the first extension).
pub fn read_table(path: &Path, hdu: &str) -> Result<DataFrame> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "parquet" || ext == "pq" {
        return Ok(deepsky_io::tabular::read_parquet(path)?);
    }
    if ext == "csv" {
        return Ok(deepsky_io::tabular::read_csv(path)?);
    }
    let mut f = FitsReader::open(path)?;
    let sel = if hdu.is_empty() {
        HduSelector::Index(1)
    } else {
        hdu.parse().expect("infallible")
    };
    Ok(f.read_table(&sel, None)?.data)
}

/// The first of the columns `names` that `df` has, as f64 (NaN for nulls); the error names the
/// file `path`, the columns looked for and those there are.
pub fn column_f64(path: &Path, df: &DataFrame, names: &[&str]) -> Result<Vec<f64>> {
    let Some(col) = names.iter().find_map(|n| df.column(n).ok()) else {
        let have: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        return Err(input(format!(
            "{}: no column {} (columns: {})",
            path.display(),
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or "),
            have.join(", ")
        )));
    };
    let not_numeric = || {
        input(format!(
            "{}: column `{}` is not numeric",
            path.display(),
            col.name()
        ))
    };
    let cast = col.cast(&DataType::Float64).map_err(|_| not_numeric())?;
    Ok(cast
        .f64()
        .map_err(|_| not_numeric())?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Read a truth catalogue as `deepsky simulate sky` writes it (HDU `hdu`, falling back to the
/// first extension): `x`, `y` (FITS pixels), `class` (a name of `classes`) or `class_id`,
/// `snr`, `bbox_xmin/ymin/xmax/ymax` (1-based inclusive pixels). Rows with an empty box (a
/// source centred off the image) are left out.
pub fn read_truth(path: &Path, hdu: &str, classes: &[String]) -> Result<Vec<TruthObject>> {
    let df = match read_table(path, hdu) {
        Ok(d) => d,
        Err(_) if !hdu.is_empty() => read_table(path, "")?,
        Err(e) => return Err(e),
    };
    let x = column_f64(path, &df, &["x"])?;
    let y = column_f64(path, &df, &["y"])?;
    let snr = column_f64(path, &df, &["snr"])?;
    let bx0 = column_f64(path, &df, &["bbox_xmin"])?;
    let by0 = column_f64(path, &df, &["bbox_ymin"])?;
    let bx1 = column_f64(path, &df, &["bbox_xmax"])?;
    let by1 = column_f64(path, &df, &["bbox_ymax"])?;
    let class: Vec<usize> = match df.column("class").ok().and_then(|c| c.str().ok().cloned()) {
        Some(names) => names
            .iter()
            .map(|n| {
                let n = n.unwrap_or("").trim_end();
                classes.iter().position(|c| c == n).ok_or_else(|| {
                    input(format!(
                        "{}: truth class `{n}` is not one of the model's classes ({})",
                        path.display(),
                        classes.join(", ")
                    ))
                })
            })
            .collect::<Result<_>>()?,
        None => column_f64(path, &df, &["class_id"])?
            .into_iter()
            .map(|v| v.max(0.0) as usize)
            .collect(),
    };
    Ok((0..x.len())
        .filter(|&i| bx0[i] <= bx1[i] && by0[i] <= by1[i])
        .map(|i| {
            let bbox = [bx0[i], by0[i], bx1[i], by1[i]].map(|v| v as i64);
            let kind = classes.get(class[i]).and_then(|n| source_class(n));
            TruthObject::from_catalog((x[i], y[i]), bbox, class[i], kind, snr[i])
        })
        .collect())
}

/// Read a detection catalogue to score it (FITS, first extension, or Parquet): ours (`x`, `y`,
/// `box_*`, `class_id`, `score`, `snr_aper`) or SExtractor's (`X_IMAGE`/`XWIN_IMAGE`,
/// `Y_IMAGE`/`YWIN_IMAGE`, `XMIN_IMAGE`… inclusive pixel indices, `SNR_WIN` or
/// `FLUX_AUTO`/`FLUXERR_AUTO`). Positions are FITS 1-based; boxes, classes and S/N are
/// optional (a catalogue without S/N ranks by NaN and fills no S/N bin).
pub fn read_detections(path: &Path) -> Result<Vec<DetectedObject>> {
    let df = read_table(path, "")?;
    let p = path;
    let col = |names: &[&str]| column_f64(p, &df, names);
    let x = col(&["x", "X_IMAGE", "XWIN_IMAGE"])?;
    let y = col(&["y", "Y_IMAGE", "YWIN_IMAGE"])?;
    let has = |n: &str| df.column(n).is_ok();
    // Box edges in FITS pixel coordinates.
    let boxes: Option<[Vec<f64>; 4]> = if has("box_xmin") {
        Some([
            col(&["box_xmin"])?,
            col(&["box_ymin"])?,
            col(&["box_xmax"])?,
            col(&["box_ymax"])?,
        ])
    } else if has("XMIN_IMAGE") {
        // SExtractor's are inclusive 1-based pixel indices: the edges are half a pixel out.
        let edges = |lo: &str, hi: &str| -> Result<(Vec<f64>, Vec<f64>)> {
            let (lo, hi) = (col(&[lo])?, col(&[hi])?);
            Ok(lo
                .iter()
                .zip(&hi)
                .map(|(&a, &b)| fits_index_outer_edges(a, b))
                .unzip())
        };
        let ((x0, x1), (y0, y1)) = (
            edges("XMIN_IMAGE", "XMAX_IMAGE")?,
            edges("YMIN_IMAGE", "YMAX_IMAGE")?,
        );
        Some([x0, y0, x1, y1])
    } else {
        None
    };
    let snr: Vec<f64> = if has("snr_aper") {
        col(&["snr_aper"])?
    } else if has("SNR_WIN") {
        col(&["SNR_WIN"])?
    } else if has("FLUX_AUTO") && has("FLUXERR_AUTO") {
        let f = col(&["FLUX_AUTO"])?;
        let e = col(&["FLUXERR_AUTO"])?;
        f.iter().zip(&e).map(|(f, e)| f / e).collect()
    } else {
        vec![f64::NAN; x.len()]
    };
    let score = if has("score") {
        col(&["score"])?
    } else {
        snr.clone()
    };
    let class: Option<Vec<f64>> = if has("class_id") {
        Some(col(&["class_id"])?)
    } else {
        None
    };
    Ok((0..x.len())
        .map(|i| DetectedObject {
            x: from_fits(x[i]) as f32,
            y: from_fits(y[i]) as f32,
            bbox: boxes.as_ref().map(|b| {
                let e = |k: usize| from_fits(b[k][i]) as f32;
                BBox::new(e(0), e(1), e(2), e(3))
            }),
            class: class.as_ref().map(|c| c[i].max(0.0) as usize),
            score: score[i],
            snr: snr[i],
        })
        .collect())
}

/// The catalogue as a DataFrame, one row per object in the given order, with its column
/// metadata (units and descriptions): `id`, `x`, `y` (FITS 1-based), `ra`, `dec`, `box_*`,
/// `class`, `class_id`, `score`, `flux_aper`, `flux_aper_err`, `snr_aper`, `class_star`,
/// `spread_model`, `spread_model_err` (the point-source test), and `truth_id` when
/// `truth_ids` are given (the matched truth row, -1 for none).
pub fn catalog_frame(
    rows: &[MeasuredObject],
    classes: &[String],
    truth_ids: Option<&[i64]>,
) -> (DataFrame, TableMeta) {
    let f = |g: &dyn Fn(&MeasuredObject) -> f64| rows.iter().map(g).collect::<Vec<f64>>();
    let mut cols = vec![
        Column::new("id".into(), (1..=rows.len() as i64).collect::<Vec<i64>>()),
        Column::new("x".into(), f(&|r| to_fits(r.x))),
        Column::new("y".into(), f(&|r| to_fits(r.y))),
        Column::new("ra".into(), f(&|r| r.ra)),
        Column::new("dec".into(), f(&|r| r.dec)),
        Column::new("box_xmin".into(), f(&|r| to_fits(r.bbox.x0 as f64))),
        Column::new("box_ymin".into(), f(&|r| to_fits(r.bbox.y0 as f64))),
        Column::new("box_xmax".into(), f(&|r| to_fits(r.bbox.x1 as f64))),
        Column::new("box_ymax".into(), f(&|r| to_fits(r.bbox.y1 as f64))),
        Column::new(
            "class".into(),
            rows.iter()
                .map(|r| classes.get(r.class).cloned().unwrap_or_default())
                .collect::<Vec<String>>(),
        ),
        Column::new(
            "class_id".into(),
            rows.iter().map(|r| r.class as i64).collect::<Vec<i64>>(),
        ),
        Column::new("score".into(), f(&|r| r.score)),
        Column::new("flux_aper".into(), f(&|r| r.flux)),
        Column::new("flux_aper_err".into(), f(&|r| r.flux_err)),
        Column::new("snr_aper".into(), f(&|r| r.snr())),
        Column::new(
            "class_star".into(),
            f(&|r| r.point_source.map_or(f64::NAN, |p| p.class_star)),
        ),
        Column::new(
            "spread_model".into(),
            f(&|r| r.point_source.map_or(f64::NAN, |p| p.spread)),
        ),
        Column::new(
            "spread_model_err".into(),
            f(&|r| r.point_source.map_or(f64::NAN, |p| p.spread_err)),
        ),
    ];
    if let Some(t) = truth_ids {
        cols.push(Column::new("truth_id".into(), t.to_vec()));
    }
    let df = DataFrame::new(rows.len(), cols).expect("columns of equal length");
    let mut meta = TableMeta::new();
    let m = |u: &str, d: &str| ColumnMeta::new(u, d);
    meta.insert("id".into(), m("", "detection number, by decreasing score"));
    meta.insert(
        "x".into(),
        m("pix", "x, FITS 1-based (centre of first pixel = 1.0)"),
    );
    meta.insert("y".into(), m("pix", "y, FITS 1-based"));
    meta.insert("ra".into(), m("deg", "right ascension from the image WCS"));
    meta.insert("dec".into(), m("deg", "declination from the image WCS"));
    for k in ["box_xmin", "box_ymin", "box_xmax", "box_ymax"] {
        meta.insert(k.into(), m("pix", "box edge, FITS pixel coordinates"));
    }
    meta.insert("class".into(), m("", &classes.join(", ")));
    meta.insert("class_id".into(), m("", "index of class"));
    meta.insert("score".into(), m("", "detector confidence in [0, 1]"));
    meta.insert(
        "flux_aper".into(),
        m("adu", "background-subtracted aperture flux"),
    );
    meta.insert(
        "flux_aper_err".into(),
        m("adu", "1-sigma error of flux_aper"),
    );
    meta.insert("snr_aper".into(), m("", "flux_aper / flux_aper_err"));
    meta.insert(
        "class_star".into(),
        m(
            "",
            "point-source test against the image PSF: >0.5 point source, <0.5 resolved, 0.5 undecided, NaN not tested",
        ),
    );
    meta.insert(
        "spread_model".into(),
        m(
            "",
            "width relative to the PSF: ~0 point source, >0 resolved",
        ),
    );
    meta.insert(
        "spread_model_err".into(),
        m("", "1-sigma error of spread_model"),
    );
    meta.insert("truth_id".into(), m("", "matched truth row id (-1: none)"));
    (df, meta)
}

/// Add the `image` column (which input each detection was found in, one name per row) after
/// `id`, with its metadata.
pub fn with_image_column(
    mut df: DataFrame,
    mut meta: TableMeta,
    images: Vec<String>,
) -> (DataFrame, TableMeta) {
    df.insert_column(1, Column::new("image".into(), images))
        .expect("one image per row");
    add_image_meta(&mut meta);
    (df, meta)
}

/// Add the `aper_masked` column (pixels of each aperture left out as masked or NaN, from
/// [`MeasuredObject::aperture_masked`]) at the end. `detect predict` adds it only with a mask,
/// so that catalogues of runs without one keep their columns.
pub fn with_masked_column(
    mut df: DataFrame,
    mut meta: TableMeta,
    rows: &[MeasuredObject],
) -> (DataFrame, TableMeta) {
    let counts: Vec<i64> = rows.iter().map(|r| r.aperture_masked as i64).collect();
    df.with_column(Column::new(MASKED_COLUMN.into(), counts))
        .expect("one count per row");
    meta.insert(
        MASKED_COLUMN.into(),
        ColumnMeta::new(
            "pix",
            "pixels overlapping the aperture left out as masked (--mask) or NaN; 0: clean",
        ),
    );
    (df, meta)
}

/// The `image` column's unit and description.
pub fn add_image_meta(meta: &mut TableMeta) {
    meta.insert(
        "image".into(),
        ColumnMeta::new("", "image the detection was found in, as given to --input"),
    );
}

/// The catalogue's own primary-header cards: the searched image's file name (`IMAGE`), or the
/// number of images of a run over several (`NIMAGES`); the detector's directory (`MODEL`); the
/// aperture radius (`APERRAD`).
pub fn header_cards(images: &[PathBuf], model_dir: &Path, aperture_radius: f64) -> Vec<Card> {
    let first = if images.len() > 1 {
        Card::new(
            "NIMAGES",
            CardValue::Int(images.len() as i64),
            "images searched by the whole run",
        )
    } else {
        let name = images
            .first()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Card::new("IMAGE", CardValue::Str(name), "searched image")
    };
    vec![
        first,
        Card::new(
            "MODEL",
            CardValue::Str(model_dir.display().to_string()),
            "detector",
        ),
        Card::new(
            "APERRAD",
            CardValue::Float(aperture_radius),
            "[pix] aperture radius",
        ),
    ]
}

/// Read a catalogue this crate wrote (`catalog.fits`): the table, with the blanks FITS pads
/// strings with removed (they carry no meaning, FITS standard 7.3.3.1), and the primary
/// header's [`HEADER_KEYS`] cards.
pub fn read_catalog(path: &Path) -> Result<(DataFrame, Vec<Card>)> {
    let mut f = FitsReader::open(path)?;
    let header = f.header(&HduSelector::Index(0))?;
    let cards = header
        .cards()
        .iter()
        .filter(|c| HEADER_KEYS.contains(&c.key.as_str()))
        .cloned()
        .collect();
    let mut df = f
        .read_table(&CATALOG_HDU.parse().expect("infallible"), None)?
        .data;
    let names: Vec<PlSmallStr> = df
        .columns()
        .iter()
        .filter(|c| c.dtype() == &DataType::String)
        .map(|c| c.name().clone())
        .collect();
    let broken = |e: PolarsError| input(format!("{}: {e}", path.display()));
    for name in names {
        let trimmed: Vec<Option<String>> = df
            .column(&name)
            .and_then(|c| c.str().cloned())
            .map_err(broken)?
            .iter()
            .map(|v| v.map(|s| s.trim_end().to_string()))
            .collect();
        df.with_column(Column::new(name, trimmed)).map_err(broken)?;
    }
    Ok((df, cards))
}

/// Join catalogues read with [`read_catalog`] one after another, numbering `id` again from 1.
/// Catalogues with different columns are an error.
pub fn concat(frames: &[DataFrame]) -> Result<DataFrame> {
    let Some((first, rest)) = frames.split_first() else {
        return Err(input("no catalogue to join".into()));
    };
    let mut df = first.clone();
    for other in rest {
        df.vstack_mut(other)
            .map_err(|e| input(format!("the catalogues have different columns: {e}")))?;
    }
    df.rechunk_mut();
    let n = df.height();
    df.with_column(Column::new(
        "id".into(),
        (1..=n as i64).collect::<Vec<i64>>(),
    ))
    .map_err(|e| input(format!("catalogue: {e}")))?;
    Ok(df)
}

const DS9_COLORS: [&str; 6] = ["green", "cyan", "magenta", "yellow", "red", "blue"];

/// A DS9 region file (image coordinates, 1-based) with one box per object, coloured and
/// labelled by class and score; `image` is named in its header comment.
pub fn regions(rows: &[MeasuredObject], classes: &[String], image: &Path) -> String {
    let mut s = String::new();
    s.push_str("# Region file format: DS9 version 4.1\n");
    s.push_str(&format!(
        "# deepsky detect predict: {} detections in {}\n",
        rows.len(),
        image.display()
    ));
    s.push_str("global color=green dashlist=8 3 width=1 font=\"helvetica 9 normal roman\" select=1 highlite=1 dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1\n");
    s.push_str("image\n");
    for r in rows {
        let (cx, cy) = r.bbox.centre();
        s.push_str(&format!(
            "box({:.2},{:.2},{:.2},{:.2},0) # color={} text={{{} {:.2}}}\n",
            to_fits(cx as f64),
            to_fits(cy as f64),
            r.bbox.width(),
            r.bbox.height(),
            DS9_COLORS[r.class % DS9_COLORS.len()],
            classes.get(r.class).map(String::as_str).unwrap_or("?"),
            r.score
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsky_io::fits::FitsWriter;

    fn object(x: f64, class: usize, score: f64) -> MeasuredObject {
        MeasuredObject {
            x,
            y: 20.25,
            ra: 150.0,
            dec: f64::NAN,
            bbox: BBox::new(x as f32 - 2.0, 18.0, x as f32 + 3.0, 23.0),
            class,
            score,
            flux: 1000.0,
            flux_err: 50.0,
            point_source: None,
            aperture_masked: 0,
        }
    }

    #[test]
    fn the_masked_column_is_added_only_when_asked_for() {
        let mut rows = [object(10.5, 0, 0.9), object(30.0, 1, 0.4)];
        rows[1].aperture_masked = 3;
        let (df, meta) = catalog_frame(&rows, &classes(), None);
        assert!(df.column(MASKED_COLUMN).is_err());
        let width = df.width();
        let (df, meta) = with_masked_column(df, meta, &rows);
        assert_eq!(df.width(), width + 1);
        assert_eq!(ints(&df, MASKED_COLUMN), [0, 3]);
        assert_eq!(meta[MASKED_COLUMN].unit.as_deref(), Some("pix"));
    }

    fn classes() -> Vec<String> {
        ["star", "galaxy"].map(String::from).to_vec()
    }

    fn ints(df: &DataFrame, name: &str) -> Vec<i64> {
        let col = df.column(name).unwrap().i64().unwrap();
        col.into_no_null_iter().collect()
    }

    fn strings(df: &DataFrame, name: &str) -> Vec<String> {
        let col = df.column(name).unwrap().str().unwrap();
        col.iter().flatten().map(String::from).collect()
    }

    #[test]
    fn frame_columns_are_fits_based_and_described() {
        let rows = [object(10.5, 0, 0.9), object(30.0, 1, 0.4)];
        let (df, meta) = catalog_frame(&rows, &classes(), Some(&[3, -1]));
        let f = |c: &str| -> Vec<f64> {
            df.column(c)
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect()
        };
        assert_eq!(f("x"), [11.0, 30.5]);
        assert_eq!(f("box_xmin"), [9.0, 28.5]);
        assert_eq!(f("box_ymax"), [23.5, 23.5]);
        assert_eq!(f("snr_aper"), [20.0, 20.0]);
        assert_eq!(ints(&df, "id"), [1, 2]);
        assert_eq!(strings(&df, "class"), ["star", "galaxy"]);
        assert_eq!(ints(&df, "truth_id"), [3, -1]);
        // Not tested against the PSF: NaN.
        assert!(f("class_star").iter().all(|v| v.is_nan()));
        assert!(meta.contains_key("spread_model_err"));
        assert_eq!(meta["class"].description.as_deref(), Some("star, galaxy"));
        let (df, meta) = with_image_column(df, meta, vec!["a.fits".into(), "b.fits".into()]);
        assert_eq!(df.get_column_names()[1].as_str(), "image");
        assert!(meta.contains_key("image"));
        let (empty, _) = catalog_frame(&[], &classes(), None);
        assert_eq!((empty.height(), empty.width()), (0, 18));
    }

    #[test]
    fn regions_are_fits_boxes_by_class() {
        let text = regions(&[object(10.5, 1, 0.875)], &classes(), Path::new("f.fits"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "# deepsky detect predict: 1 detections in f.fits");
        assert_eq!(lines[3], "image");
        // Box 8.5..13.5 × 18..23: centre (11, 20.5) + 0.5.
        assert_eq!(
            lines[4],
            "box(11.50,21.00,5.00,5.00,0) # color=cyan text={galaxy 0.88}"
        );
    }

    #[test]
    fn header_cards_name_one_image_or_count_several() {
        let one = header_cards(&[PathBuf::from("d/f1.fits")], Path::new("m"), 2.5);
        assert_eq!(one[0].key, "IMAGE");
        assert_eq!(one[0].value, Some(CardValue::Str("f1.fits".into())));
        let two = header_cards(
            &[PathBuf::from("a.fits"), PathBuf::from("b.fits")],
            Path::new("m"),
            2.5,
        );
        assert_eq!(two[0].value, Some(CardValue::Int(2)));
        let keys: Vec<&str> = two.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["NIMAGES", "MODEL", "APERRAD"]);
        assert!(keys.iter().all(|k| HEADER_KEYS.contains(k)));
    }

    #[test]
    fn catalogues_round_trip_and_join_with_new_ids() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [object(10.5, 0, 0.9), object(30.0, 1, 0.4)];
        let (df, meta) = catalog_frame(&rows, &classes(), None);
        let (df, meta) = with_image_column(df, meta, vec!["a.fits".into(), "a.fits".into()]);
        let path = dir.path().join("catalog.fits");
        let mut w = FitsWriter::create(&path).unwrap();
        let cards = header_cards(&[PathBuf::from("a.fits")], Path::new("m"), 2.5);
        w.write_primary_header(&cards).unwrap();
        w.write_table(CATALOG_HDU, &df, &meta, &[]).unwrap();
        w.finish().unwrap();
        let (back, cards_back) = read_catalog(&path).unwrap();
        assert_eq!(cards_back.len(), 3);
        assert_eq!(strings(&back, "image"), ["a.fits", "a.fits"]);
        let joined = concat(&[back.clone(), back.clone()]).unwrap();
        assert_eq!(ints(&joined, "id"), [1, 2, 3, 4]);
        assert!(concat(&[back.clone(), back.drop("score").unwrap()]).is_err());
        assert!(concat(&[]).is_err());

        // Read back for scoring: FITS positions become continuous 0-based again.
        let dets = read_detections(&path).unwrap();
        assert_eq!((dets[0].x, dets[0].y), (10.5, 20.25));
        assert_eq!(dets[0].bbox, Some(rows[0].bbox));
        assert_eq!(
            (dets[1].class, dets[1].score, dets[1].snr),
            (Some(1), 0.4, 20.0)
        );
    }

    #[test]
    fn sextractor_and_truth_catalogues() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, cols: Vec<Column>| {
            let df = DataFrame::new(cols[0].len(), cols).unwrap();
            let path = dir.path().join(name);
            let mut w = FitsWriter::create(&path).unwrap();
            w.write_primary_header(&[]).unwrap();
            w.write_table("CATALOG", &df, &TableMeta::new(), &[])
                .unwrap();
            w.finish().unwrap();
            path
        };
        let c = |n: &str, v: Vec<f64>| Column::new(n.into(), v);
        let sex = write(
            "sex.fits",
            vec![
                c("X_IMAGE", vec![11.0]),
                c("Y_IMAGE", vec![21.0]),
                c("XMIN_IMAGE", vec![9.0]),
                c("YMIN_IMAGE", vec![19.0]),
                c("XMAX_IMAGE", vec![13.0]),
                c("YMAX_IMAGE", vec![23.0]),
                c("FLUX_AUTO", vec![300.0]),
                c("FLUXERR_AUTO", vec![30.0]),
            ],
        );
        let d = read_detections(&sex).unwrap();
        // Pixels 9..=13 span [8, 13) in continuous coordinates.
        assert_eq!(d[0].bbox, Some(BBox::new(8.0, 18.0, 13.0, 23.0)));
        assert_eq!(
            (d[0].x, d[0].class, d[0].snr, d[0].score),
            (10.5, None, 10.0, 10.0)
        );

        let truth = write(
            "truth.fits",
            vec![
                Column::new("class".into(), vec!["star", "cosmic_ray"]),
                c("x", vec![11.0, 40.0]),
                c("y", vec![21.0, 5.0]),
                c("snr", vec![8.0, f64::NAN]),
                c("bbox_xmin", vec![9.0, 38.0]),
                c("bbox_ymin", vec![19.0, 3.0]),
                c("bbox_xmax", vec![13.0, 42.0]),
                c("bbox_ymax", vec![23.0, 7.0]),
            ],
        );
        let names = ["star", "galaxy", "cosmic_ray"].map(String::from).to_vec();
        let t = read_truth(&truth, "CATALOG", &names).unwrap();
        assert_eq!(
            (t[0].x, t[0].class, t[0].artefact, t[0].match_box),
            (10.5, 0, false, false)
        );
        assert_eq!((t[1].class, t[1].artefact, t[1].match_box), (2, true, true));
        assert_eq!(t[1].bbox, BBox::new(37.0, 2.0, 42.0, 7.0));
        let err = read_truth(&truth, "CATALOG", &names[..2]).unwrap_err();
        assert!(
            err.to_string().contains("`cosmic_ray` is not one of"),
            "{err}"
        );
        let err = read_truth(&sex, "", &names).unwrap_err();
        assert!(err.to_string().contains("no column `x`"), "{err}");
    }
}
