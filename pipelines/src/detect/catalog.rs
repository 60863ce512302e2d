//! What `detect predict` and `detect evaluate` read and write: images, truth catalogues,
//! measured detections, the FITS/CSV catalogue, the DS9 region file and the plots.

use std::path::Path;

use deepsky_detect::background::Background;
use deepsky_detect::boxes::{to_fits, BBox, Scored};
use deepsky_detect::metrics::{DetectedObject, Evaluation, TruthObject};
use deepsky_io::fits::{Card, ColumnMeta, FitsReader, FitsWriter, HduSelector, Header, TableMeta};
use deepsky_plot::{save_formats, Curves, Dash, Format, Overlay, Rgb, Series, SkyImage, OKABE_ITO};
use deepsky_runtime::RunError;
use ndarray::{s, Array2, ArrayView2};
use polars::prelude::*;

use super::config::PhotometryConfig;
use crate::common::RunFrame;

fn fail(what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::failed(format!("{what}: {e}"))
}

/// Read a 2-D image (the configured HDU, else the primary or the first extension with
/// data) and its header.
pub fn read_image(path: &Path, hdu: &str) -> Result<(Array2<f32>, Header), RunError> {
    let mut f = FitsReader::open(path)?;
    let sel = if hdu.is_empty() {
        let info = f.hdu_info(&HduSelector::Index(0))?;
        if info.shape.len() >= 2 {
            HduSelector::Index(0)
        } else {
            HduSelector::Index(1)
        }
    } else {
        hdu.parse().expect("infallible")
    };
    let image = f.read_image_f32(&sel)?;
    // Drop leading axes of length 1 ((1, h, w) cubes are common).
    let shape: Vec<usize> = image
        .shape()
        .iter()
        .copied()
        .skip_while(|&n| n == 1)
        .collect();
    if shape.len() != 2 {
        return Err(RunError::input(format!(
            "{}: the image has shape {:?}; detection needs a 2-D image",
            path.display(),
            image.shape()
        )));
    }
    let image = image
        .into_shape_with_order((shape[0], shape[1]))
        .map_err(|e| fail(&path.display().to_string(), e))?;
    let header = f.header(&sel)?;
    Ok((image, header))
}

/// A column as f64 (NaN for nulls), with an error naming the file and the column.
pub fn column_f64(path: &Path, df: &DataFrame, names: &[&str]) -> Result<Vec<f64>, RunError> {
    let Some(col) = names.iter().find_map(|n| df.column(n).ok()) else {
        let have: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        return Err(RunError::input(format!(
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
    let cast = col.cast(&DataType::Float64).map_err(|_| {
        RunError::input(format!(
            "{}: column `{}` is not numeric",
            path.display(),
            col.name()
        ))
    })?;
    Ok(cast
        .f64()
        .map_err(|_| {
            RunError::input(format!(
                "{}: column `{}` is not numeric",
                path.display(),
                col.name()
            ))
        })?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Read a table: FITS (the given HDU, or the first extension) or Parquet.
pub fn read_table(path: &Path, hdu: &str) -> Result<DataFrame, RunError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "parquet" || ext == "pq" {
        return Ok(deepsky_io::tabular::read_parquet(path)?);
    }
    let mut f = FitsReader::open(path)?;
    let sel = if hdu.is_empty() {
        HduSelector::Index(1)
    } else {
        hdu.parse().expect("infallible")
    };
    Ok(f.read_table(&sel, None)?.data)
}

/// Read a truth catalogue as `deepsky simulate sky` writes it: x, y (FITS pixels), class
/// (name) or class_id, snr, bbox_xmin/ymin/xmax/ymax (1-based inclusive pixels).
pub fn read_truth(
    path: &Path,
    hdu: &str,
    classes: &[String],
) -> Result<Vec<TruthObject>, RunError> {
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
                    RunError::input(format!(
                        "{}: truth class `{n}` is not one of the model's classes ({})",
                        path.display(),
                        classes.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        None => column_f64(path, &df, &["class_id"])?
            .into_iter()
            .map(|v| v.max(0.0) as usize)
            .collect(),
    };
    let artefact = |c: usize| {
        classes
            .get(c)
            .is_some_and(|n| n == "cosmic_ray" || n == "bad_column")
    };
    Ok((0..x.len())
        .filter(|&i| bx0[i] <= bx1[i] && by0[i] <= by1[i])
        .map(|i| {
            let bbox =
                BBox::from_fits_pixels(bx0[i] as i64, by0[i] as i64, bx1[i] as i64, by1[i] as i64);
            TruthObject {
                x: (x[i] - 0.5) as f32,
                y: (y[i] - 0.5) as f32,
                bbox,
                class: class[i],
                snr: snr[i],
                artefact: artefact(class[i]),
                match_box: !classes
                    .get(class[i])
                    .is_some_and(|n| n == "star" || n == "galaxy"),
            }
        })
        .collect())
}

/// One measured detection.
#[derive(Debug, Clone)]
pub struct Row {
    /// Position, continuous 0-based pixels (FITS = this + 0.5).
    pub x: f64,
    /// Position, continuous 0-based pixels.
    pub y: f64,
    /// Sky position, degrees (NaN without a WCS).
    pub ra: f64,
    /// Sky position, degrees.
    pub dec: f64,
    /// Box, continuous 0-based pixels.
    pub bbox: BBox,
    /// Class index.
    pub class: usize,
    /// Score.
    pub score: f64,
    /// Aperture flux, ADU.
    pub flux: f64,
    /// Its error.
    pub flux_err: f64,
}

impl Row {
    /// As a detection for the evaluation.
    pub fn detected(&self) -> DetectedObject {
        DetectedObject {
            x: self.x as f32,
            y: self.y as f32,
            bbox: Some(self.bbox),
            class: Some(self.class),
            score: self.score,
            snr: self.flux / self.flux_err,
        }
    }
}

/// Gaussian-windowed centroid (SExtractor's XWIN_IMAGE iteration) of the background-subtracted
/// image around `(x, y)` (continuous 0-based); None when it does not converge near the start.
pub fn windowed_centroid(
    image: ArrayView2<f32>,
    bkg: &Background,
    x: f64,
    y: f64,
    sigma: f64,
) -> Option<(f64, f64)> {
    let (h, w) = image.dim();
    let r = (4.0 * sigma).ceil() as i64;
    let (mut cx, mut cy) = (x, y);
    for _ in 0..16 {
        let (mut sw, mut sx, mut sy) = (0.0, 0.0, 0.0);
        let (c0, r0) = (cx.floor() as i64, cy.floor() as i64);
        for row in (r0 - r).max(0)..=(r0 + r).min(h as i64 - 1) {
            for col in (c0 - r).max(0)..=(c0 + r).min(w as i64 - 1) {
                let v =
                    image[[row as usize, col as usize]] - bkg.level[[row as usize, col as usize]];
                if !v.is_finite() {
                    continue;
                }
                let (dx, dy) = (col as f64 + 0.5 - cx, row as f64 + 0.5 - cy);
                let wgt = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp() * v as f64;
                sw += wgt;
                sx += wgt * dx;
                sy += wgt * dy;
            }
        }
        if !(sw > 0.0) {
            return None;
        }
        let (nx, ny) = (cx + 2.0 * sx / sw, cy + 2.0 * sy / sw);
        let moved = ((nx - cx).powi(2) + (ny - cy).powi(2)).sqrt();
        cx = nx;
        cy = ny;
        if ((cx - x).powi(2) + (cy - y).powi(2)).sqrt() > 2.0 * sigma.max(1.0) {
            return None;
        }
        if moved < 1e-4 {
            break;
        }
    }
    Some((cx, cy))
}

/// Measure detections: position (windowed centroid for sources, box centre for artefacts),
/// aperture flux and error, sky position.
pub fn measure(
    image: ArrayView2<f32>,
    bkg: &Background,
    dets: &[Scored],
    classes: &[String],
    cfg: &PhotometryConfig,
    gain: Option<f64>,
    wcs: Option<&deepsky_io::wcs::Wcs>,
) -> Vec<Row> {
    dets.iter()
        .map(|d| {
            let (bx, by) = d.bbox.centre();
            let (bx, by) = (bx as f64, by as f64);
            let artefact = classes
                .get(d.class)
                .is_some_and(|n| n == "cosmic_ray" || n == "bad_column");
            let (x, y) = if cfg.centroid_sigma > 0.0 && !artefact {
                windowed_centroid(image, bkg, bx, by, cfg.centroid_sigma).unwrap_or((bx, by))
            } else {
                (bx, by)
            };
            let (flux, flux_err) = match deepsky_detect::photometry::aperture_flux(
                image,
                None,
                bkg,
                x + 0.5,
                y + 0.5,
                cfg.aperture_radius,
                gain,
            ) {
                Ok(p) => (p.flux, p.flux_err),
                Err(_) => (f64::NAN, f64::NAN),
            };
            let (ra, dec) = wcs
                .and_then(|w| w.pixel_to_world(x + 0.5, y + 0.5))
                .unwrap_or((f64::NAN, f64::NAN));
            Row {
                x,
                y,
                ra,
                dec,
                bbox: d.bbox,
                class: d.class,
                score: d.score as f64,
                flux,
                flux_err,
            }
        })
        .collect()
}

/// The catalogue as a DataFrame, rows in the given order, with its column metadata.
pub fn catalog_frame(
    rows: &[Row],
    classes: &[String],
    truth_ids: Option<&[i64]>,
) -> (DataFrame, TableMeta) {
    let f = |g: &dyn Fn(&Row) -> f64| rows.iter().map(g).collect::<Vec<f64>>();
    let mut cols = vec![
        Column::new("id".into(), (1..=rows.len() as i64).collect::<Vec<i64>>()),
        Column::new("x".into(), f(&|r| r.x + 0.5)),
        Column::new("y".into(), f(&|r| r.y + 0.5)),
        Column::new("ra".into(), f(&|r| r.ra)),
        Column::new("dec".into(), f(&|r| r.dec)),
        Column::new("box_xmin".into(), f(&|r| r.bbox.x0 as f64 + 0.5)),
        Column::new("box_ymin".into(), f(&|r| r.bbox.y0 as f64 + 0.5)),
        Column::new("box_xmax".into(), f(&|r| r.bbox.x1 as f64 + 0.5)),
        Column::new("box_ymax".into(), f(&|r| r.bbox.y1 as f64 + 0.5)),
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
        Column::new("snr_aper".into(), f(&|r| r.flux / r.flux_err)),
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
    meta.insert("truth_id".into(), m("", "matched truth row id (-1: none)"));
    (df, meta)
}

/// Add the `image` column (which input each detection was found in) after `id`.
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

/// The `image` column's unit and description.
pub fn add_image_meta(meta: &mut TableMeta) {
    meta.insert(
        "image".into(),
        ColumnMeta::new("", "image the detection was found in, as given to --input"),
    );
}

/// Write catalog.fits (CATALOG extension, provenance cards) and catalog.csv.
pub fn write_catalog(
    frame: &RunFrame,
    stem: &str,
    df: &DataFrame,
    meta: &TableMeta,
    extra_cards: &[Card],
) -> Result<(), RunError> {
    let mut cards = frame.provenance.fits_cards();
    cards.extend_from_slice(extra_cards);
    let mut fits = FitsWriter::create(frame.out.path(&format!("{stem}.fits")))?;
    fits.write_primary_header(&cards)?;
    fits.write_table("CATALOG", df, meta, &[])?;
    fits.finish()?;
    deepsky_io::tabular::write_csv(frame.out.path(&format!("{stem}.csv")), df)?;
    Ok(())
}

/// Colours of the classes in regions and plots.
pub fn class_color(c: usize) -> Rgb {
    // Okabe–Ito without the blue (image colour maps) first.
    OKABE_ITO[(c + 1) % OKABE_ITO.len()]
}

const DS9_COLORS: [&str; 6] = ["green", "cyan", "magenta", "yellow", "red", "blue"];

/// A DS9 region file (image coordinates, 1-based) with one box per detection.
pub fn regions(rows: &[Row], classes: &[String], image: &Path) -> String {
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
            to_fits(cx),
            to_fits(cy),
            r.bbox.width(),
            r.bbox.height(),
            DS9_COLORS[r.class % DS9_COLORS.len()],
            classes.get(r.class).map(String::as_str).unwrap_or("?"),
            r.score
        ));
    }
    s
}

/// Overlay of the detections (and missed truth sources) on the image, central crop of at most
/// `max_side` pixels.
pub fn overlay_plot(
    image: ArrayView2<f32>,
    rows: &[Row],
    classes: &[String],
    missed: &[TruthObject],
    max_side: usize,
) -> SkyImage {
    let (h, w) = image.dim();
    let (ch, cw) = (h.min(max_side), w.min(max_side));
    let (r0, c0) = ((h - ch) / 2, (w - cw) / 2);
    let crop = image.slice(s![r0..r0 + ch, c0..c0 + cw]).to_owned();
    let mut img = SkyImage::new(crop);
    img.title = if (ch, cw) == (h, w) {
        format!("{} detections", rows.len())
    } else {
        format!("{} detections (central {cw}×{ch} pixels shown)", rows.len())
    };
    img.color_label = "ADU".into();
    let (dx, dy) = (c0 as f64, r0 as f64);
    for r in rows {
        let b = r.bbox;
        if (b.x1 as f64) < dx
            || (b.x0 as f64) > dx + cw as f64
            || (b.y1 as f64) < dy
            || (b.y0 as f64) > dy + ch as f64
        {
            continue;
        }
        img.overlays.push(
            Overlay::rect(
                b.x0 as f64 + 0.5 - dx,
                b.y0 as f64 + 0.5 - dy,
                b.x1 as f64 + 0.5 - dx,
                b.y1 as f64 + 0.5 - dy,
            )
            .with_color(class_color(r.class)),
        );
    }
    for t in missed {
        let (x, y) = (t.x as f64 + 0.5 - dx, t.y as f64 + 0.5 - dy);
        if x < 0.0 || y < 0.0 || x > cw as f64 || y > ch as f64 {
            continue;
        }
        img.overlays
            .push(Overlay::circle(x, y, 4.0).with_color(Rgb(255, 40, 40)));
    }
    let _ = classes;
    img
}

/// Completeness and purity against S/N for several detectors.
pub fn snr_plots(
    evals: &[(&str, &Evaluation)],
    dir: &Path,
    formats: &[Format],
) -> Result<Vec<std::path::PathBuf>, RunError> {
    let mut written = Vec::new();
    for (key, label) in [("completeness", "Completeness"), ("purity", "Purity")] {
        let mut series = Vec::new();
        for (k, (name, e)) in evals.iter().enumerate() {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for b in &e.snr_bins {
                let v = if key == "completeness" {
                    b.completeness
                } else {
                    b.purity
                };
                if let Some(v) = v {
                    // Bin centre on a log axis; the open last bin at 1.5× its edge.
                    let x = match b.hi {
                        Some(hi) if b.lo > 0.0 => (b.lo * hi).sqrt(),
                        Some(hi) => hi / 2.0,
                        None => b.lo * 1.5,
                    };
                    xs.push(x);
                    ys.push(v);
                }
            }
            if xs.is_empty() {
                continue;
            }
            let mut s = Series::new(*name, xs, ys)
                .with_markers()
                .with_color(OKABE_ITO[k % OKABE_ITO.len()]);
            if k > 0 {
                s = s.with_dash(Dash::Dashed);
            }
            series.push(s);
        }
        if series.is_empty() {
            // No detection has a measured S/N (a catalogue without flux columns).
            continue;
        }
        let plot = Curves {
            x_label: if key == "completeness" {
                "Truth S/N".into()
            } else {
                "Measured S/N".into()
            },
            y_label: label.into(),
            series,
            log_x: true,
            y_range: Some((0.0, 1.05)),
            ..Default::default()
        };
        written.extend(
            save_formats(&plot, dir.join(format!("{key}_vs_snr")), formats)
                .map_err(|e| fail("plot", e))?,
        );
    }
    Ok(written)
}

/// The gain: the config's, else the header's GAIN card.
pub fn gain_of(cfg: &PhotometryConfig, header: &Header) -> Option<f64> {
    if cfg.gain > 0.0 {
        Some(cfg.gain)
    } else {
        header.get_f64("GAIN").filter(|g| *g > 0.0)
    }
}
