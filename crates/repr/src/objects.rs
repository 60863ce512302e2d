//! The objects to learn from, one per row: image stamps from an HDF5 file, stamps cut from a
//! FITS image around the positions of a catalogue, or the numeric columns of a table (FITS
//! binary table, HDF5 compound dataset, Parquet). [`InputConfig`] is the `[input]` section that
//! says which; [`Objects::read`] reads them; [`cut_stamps`] is the pure cutting step.
//!
//! ```
//! use deepsky_repr::objects::cut_stamps;
//! use ndarray::Array2;
//!
//! // A 6×6 image whose pixel (row, col) holds 10·row + col.
//! let image = Array2::from_shape_fn((6, 6), |(r, c)| (10 * r + c) as f32);
//! // A 2×2 stamp around the centre of pixel (row 3, col 2), at 0-based continuous (2.5, 3.5).
//! let stamps = cut_stamps(image.view(), &[(2.5, 3.5)], 2);
//! assert_eq!(stamps.row(0).to_vec(), vec![21.0, 22.0, 31.0, 32.0]);
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_core::pixel;
use deepsky_io::fits::{FitsReader, HduSelector};
use deepsky_io::h5::H5Reader;
use deepsky_io::NdData;
use ndarray::{Array2, ArrayView2, Axis};
use polars::prelude::{DataFrame, DataType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ReprError, Result};
use crate::normalise::NormaliseKind;

/// Where the objects come from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// An HDF5 dataset of stamps, `(n, h, w)` or `(n, c, h, w)` (e.g. `deepsky simulate cutouts`).
    Hdf5Stamps,
    /// Stamps cut from a FITS image around the positions of a catalogue.
    FitsStamps,
    /// Numeric columns of a table: FITS binary table, HDF5 compound dataset or Parquet.
    Table,
}

/// `[input]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// `hdf5_stamps`, `fits_stamps` or `table`.
    pub kind: InputKind,
    /// The HDF5 file of stamps, the FITS image, or the table file.
    pub path: PathBuf,
    /// hdf5_stamps: dataset of stamps; table in HDF5: the compound dataset.
    pub dataset: String,
    /// hdf5_stamps: dataset of object ids (empty: row numbers from 1).
    pub ids: String,
    /// hdf5_stamps: dataset of integer truth labels; table/fits_stamps: label column (empty: none).
    pub labels: String,
    /// Names of the labels 0, 1, 2, … for plots and catalogues.
    pub label_names: Vec<String>,
    /// The label of ordinary objects; every other label counts as anomalous in the ROC unless
    /// `anomalous_labels` says which do.
    pub normal_label: i64,
    /// Labels that count as anomalous in the ROC (empty: every label but `normal_label`).
    pub anomalous_labels: Vec<i64>,
    /// FITS HDU of the image or table (index or EXTNAME; empty: the first with data).
    pub hdu: String,
    /// fits_stamps: catalogue of positions (FITS table).
    pub catalog: PathBuf,
    /// fits_stamps: catalogue HDU.
    pub catalog_hdu: String,
    /// fits_stamps: column of x (1-based FITS pixels, as SExtractor writes).
    pub x_column: String,
    /// fits_stamps: column of y.
    pub y_column: String,
    /// fits_stamps/table: id column (empty: row numbers from 1).
    pub id_column: String,
    /// fits_stamps: stamp side in pixels.
    pub stamp_size: usize,
    /// fits_stamps: bitmask image of the FITS image (`MP_<PLANE>` cards, as `deepsky segment
    /// predict` writes in mask.fits; HDU `MASK`, else the first image). Pixels in
    /// `mask_planes` become NaN before the stamps are cut, like pixels off the image's edge,
    /// so normalisation fills them (asinh: the stamp's median; none and standardise: 0).
    /// Empty: no mask.
    pub mask: PathBuf,
    /// fits_stamps: the mask planes that hide pixels (default every plane but `DETECTED`,
    /// which marks the sources themselves).
    pub mask_planes: Vec<String>,
    /// table: numeric columns to use (empty: every numeric column except ids and labels).
    pub columns: Vec<String>,
    /// `asinh` (per-stamp, for images), `standardise` (per-column, for tables) or `none`.
    pub normalise: NormaliseKind,
    /// asinh softening in units of each stamp's noise.
    pub softening: f32,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            kind: InputKind::Hdf5Stamps,
            path: PathBuf::from("data/cutouts.h5"),
            dataset: "/images".into(),
            ids: "/ids".into(),
            labels: "/labels".into(),
            label_names: vec![
                "normal".into(),
                "lens".into(),
                "merger".into(),
                "artefact".into(),
            ],
            normal_label: 0,
            anomalous_labels: vec![],
            hdu: String::new(),
            catalog: PathBuf::new(),
            catalog_hdu: String::new(),
            x_column: "X".into(),
            y_column: "Y".into(),
            id_column: String::new(),
            stamp_size: 32,
            mask: PathBuf::new(),
            mask_planes: MaskPlane::ALL
                .iter()
                .filter(|&&p| p != MaskPlane::Detected)
                .map(|p| p.name().to_string())
                .collect(),
            columns: vec![],
            normalise: NormaliseKind::Asinh,
            softening: 3.0,
        }
    }
}

impl InputConfig {
    /// Does a truth label count as anomalous?
    pub fn is_anomalous(&self, label: i64) -> bool {
        if self.anomalous_labels.is_empty() {
            label != self.normal_label
        } else {
            self.anomalous_labels.contains(&label)
        }
    }

    /// The files [`Objects::read`] reads, each with its role (`objects`, `catalogue`), for a
    /// provenance record.
    pub fn files(&self) -> Vec<(&Path, &'static str)> {
        let mut files = vec![(self.path.as_path(), "objects")];
        if self.kind == InputKind::FitsStamps {
            files.push((self.catalog.as_path(), "catalogue"));
            if !self.mask.as_os_str().is_empty() {
                files.push((self.mask.as_path(), "mask"));
            }
        }
        files
    }

    /// The planes of `mask_planes`, checked.
    pub fn mask_planes(&self) -> Result<Vec<MaskPlane>, ConfigError> {
        self.mask_planes
            .iter()
            .map(|name| {
                MaskPlane::from_name(name).ok_or_else(|| {
                    let valid: Vec<&str> = MaskPlane::ALL.iter().map(|p| p.name()).collect();
                    ConfigError::at(
                        "mask_planes",
                        format!("unknown plane `{name}`; valid: {}", valid.join(", ")),
                    )
                })
            })
            .collect()
    }
}

impl Validate for InputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(!self.path.as_os_str().is_empty(), "path", "is required")?;
        ensure(self.stamp_size >= 4, "stamp_size", "must be at least 4")?;
        ensure(self.softening > 0.0, "softening", "must be positive")?;
        if self.kind == InputKind::FitsStamps {
            ensure(
                !self.catalog.as_os_str().is_empty(),
                "catalog",
                "is required for kind = \"fits_stamps\"",
            )?;
        }
        self.mask_planes()?;
        Ok(())
    }
}

/// The objects of one run, one per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    /// Raw values, `(n, features)`; stamps flattened row-major.
    pub rows: Array2<f32>,
    /// Shape of one example: `[c, h, w]` or `[features]`.
    pub shape: Vec<usize>,
    /// Object ids.
    pub ids: Vec<i64>,
    /// Truth labels, when the input has them.
    pub labels: Option<Vec<i64>>,
    /// Names of labels, by label value.
    pub label_names: Vec<String>,
    /// Feature names (tables) for the catalogue; empty for stamps.
    pub feature_names: Vec<String>,
}

impl Objects {
    /// Read the objects `cfg` describes.
    pub fn read(cfg: &InputConfig) -> Result<Objects> {
        match cfg.kind {
            InputKind::Hdf5Stamps => hdf5_stamps(cfg),
            InputKind::FitsStamps => fits_stamps(cfg),
            InputKind::Table => table(cfg),
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.rows.nrows()
    }

    /// True when there are no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects in `range` (a shard).
    pub fn select(&self, range: Range<usize>) -> Objects {
        if range.start == 0 && range.end == self.len() {
            return self.clone();
        }
        Objects {
            rows: self.rows.slice(ndarray::s![range.clone(), ..]).to_owned(),
            shape: self.shape.clone(),
            ids: self.ids[range.clone()].to_vec(),
            labels: self.labels.as_ref().map(|l| l[range].to_vec()),
            label_names: self.label_names.clone(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// A label's name: its entry in `label_names`, or `label N`.
    pub fn label_name(&self, label: i64) -> String {
        usize::try_from(label)
            .ok()
            .and_then(|i| self.label_names.get(i).cloned())
            .unwrap_or_else(|| format!("label {label}"))
    }
}

/// Stamps of `size × size` pixels cut from `image` (rows are y), one row of the result per
/// centre, flattened row-major. Centres are 0-based continuous `(x, y)` coordinates (see
/// [`deepsky_core::pixel`]); each stamp is centred on the pixel whose centre is nearest
/// (halfway between two pixels, the one farther from 0), with `size / 2` pixels before it.
/// Pixels outside the image are NaN.
pub fn cut_stamps(image: ArrayView2<f32>, centres: &[(f64, f64)], size: usize) -> Array2<f32> {
    let s = size as i64;
    let (h, w) = image.dim();
    let mut rows = Array2::<f32>::from_elem((centres.len(), size * size), f32::NAN);
    for (k, &(x, y)) in centres.iter().enumerate() {
        // Pixel i's centre is at i + HALF_PIXEL.
        let c0 = (x - pixel::HALF_PIXEL).round() as i64 - s / 2;
        let r0 = (y - pixel::HALF_PIXEL).round() as i64 - s / 2;
        let mut row = rows.index_axis_mut(Axis(0), k);
        for i in 0..s {
            for j in 0..s {
                let (r, c) = (r0 + i, c0 + j);
                if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                    row[(i as usize) * size + j as usize] = image[[r as usize, c as usize]];
                }
            }
        }
    }
    rows
}

fn ints(path: &Path, name: &str, data: &NdData) -> Result<Vec<i64>> {
    let v = data.to_f64().ok_or_else(|| {
        ReprError::bad_input(format!("{}: `{name}` is not numeric", path.display()))
    })?;
    Ok(v.iter().map(|&x| x as i64).collect())
}

fn hdf5_stamps(cfg: &InputConfig) -> Result<Objects> {
    let path = &cfg.path;
    let h5 = H5Reader::open(path)?;
    let images = h5.read_f32(&cfg.dataset)?;
    let shape: Vec<usize> = match images.ndim() {
        3 => vec![1, images.shape()[1], images.shape()[2]],
        4 => images.shape()[1..].to_vec(),
        d => {
            return Err(ReprError::bad_input(format!(
                "{}: `{}` has {d} dimensions; stamps need (n, h, w) or (n, c, h, w)",
                path.display(),
                cfg.dataset
            )))
        }
    };
    let n = images.shape()[0];
    let features: usize = shape.iter().product();
    let rows = images
        .into_shape_with_order((n, features))
        .map_err(|e| ReprError::failed("reading stamps", format!("{}: {e}", path.display())))?;
    let ids = if cfg.ids.is_empty() {
        (1..=n as i64).collect()
    } else {
        ints(path, &cfg.ids, &h5.read(&cfg.ids)?)?
    };
    let labels = if cfg.labels.is_empty() {
        None
    } else {
        Some(ints(path, &cfg.labels, &h5.read(&cfg.labels)?)?)
    };
    for (what, len) in [
        ("ids", ids.len()),
        ("labels", labels.as_ref().map_or(n, Vec::len)),
    ] {
        if len != n {
            return Err(ReprError::bad_input(format!(
                "{}: {what} has {len} entries for {n} stamps",
                path.display()
            )));
        }
    }
    Ok(Objects {
        rows,
        shape,
        ids,
        labels,
        label_names: cfg.label_names.clone(),
        feature_names: vec![],
    })
}

/// A numeric column as f64, nulls as NaN.
/// `key` is the setting that named the column (`input.labels`), so that a column the user
/// never chose (a default) can be traced to the key to set.
fn column_f64(path: &Path, df: &DataFrame, name: &str, key: &str) -> Result<Vec<f64>> {
    let col = df.column(name).map_err(|_| {
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        ReprError::bad_input(format!(
            "{}: no column `{name}` (set by `{key}`; the columns are: {})",
            path.display(),
            names.join(", ")
        ))
    })?;
    let not_numeric = || {
        ReprError::bad_input(format!(
            "{}: column `{name}` is not numeric",
            path.display()
        ))
    };
    let cast = col.cast(&DataType::Float64).map_err(|_| not_numeric())?;
    let ca = cast.f64().map_err(|_| not_numeric())?;
    Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// A table from Parquet, HDF5 (`dataset`) or FITS (`hdu`; empty: HDU 1), by file extension.
fn read_table_any(path: &Path, hdu: &str, dataset: &str) -> Result<DataFrame> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Ok(deepsky_io::tabular::read_parquet(path)?),
        "h5" | "hdf5" | "he5" => Ok(H5Reader::open(path)?.read_table(dataset)?),
        _ => {
            let mut f = FitsReader::open(path)?;
            let sel: HduSelector = if hdu.is_empty() {
                HduSelector::Index(1)
            } else {
                hdu.parse().expect("infallible")
            };
            Ok(f.read_table(&sel, None)?.data)
        }
    }
}

fn table(cfg: &InputConfig) -> Result<Objects> {
    let path = &cfg.path;
    let df = read_table_any(path, &cfg.hdu, &cfg.dataset)?;
    let n = df.height();
    let skip = [cfg.id_column.as_str(), cfg.labels.as_str()];
    let columns: Vec<String> = if cfg.columns.is_empty() {
        df.columns()
            .iter()
            .filter(|c| c.dtype().is_primitive_numeric() && !skip.contains(&c.name().as_str()))
            .map(|c| c.name().to_string())
            .collect()
    } else {
        cfg.columns.clone()
    };
    if columns.is_empty() {
        return Err(ReprError::bad_input(format!(
            "{}: no numeric columns to learn from",
            path.display()
        )));
    }
    let mut rows = Array2::<f32>::zeros((n, columns.len()));
    for (j, name) in columns.iter().enumerate() {
        for (i, v) in column_f64(path, &df, name, "input.columns")?
            .into_iter()
            .enumerate()
        {
            rows[[i, j]] = v as f32;
        }
    }
    let (ids, labels) = ids_and_labels(cfg, path, &df, n)?;
    Ok(Objects {
        shape: vec![columns.len()],
        rows,
        ids,
        labels,
        label_names: cfg.label_names.clone(),
        feature_names: columns,
    })
}

fn fits_stamps(cfg: &InputConfig) -> Result<Objects> {
    let path = &cfg.path;
    let mut f = FitsReader::open(path)?;
    let image = if cfg.hdu.is_empty() {
        match f.read_image_f32(&HduSelector::Index(0)) {
            Ok(a) if a.ndim() == 2 => a,
            _ => f.read_image_f32(&HduSelector::Index(1))?,
        }
    } else {
        f.read_image_f32(&cfg.hdu.parse().expect("infallible"))?
    };
    if image.ndim() != 2 {
        return Err(ReprError::bad_input(format!(
            "{}: the image has {} dimensions, stamps need 2",
            path.display(),
            image.ndim()
        )));
    }
    let mut image = image.into_dimensionality::<ndarray::Ix2>().expect("2-D");
    let hidden = if cfg.mask.as_os_str().is_empty() {
        None
    } else {
        Some(hide_masked(&mut image, cfg)?)
    };
    let cat = read_table_any(&cfg.catalog, &cfg.catalog_hdu, "")?;
    let xs = column_f64(&cfg.catalog, &cat, &cfg.x_column, "input.x_column")?;
    let ys = column_f64(&cfg.catalog, &cat, &cfg.y_column, "input.y_column")?;
    let centres: Vec<(f64, f64)> = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| (pixel::from_fits(x), pixel::from_fits(y)))
        .collect();
    let s = cfg.stamp_size;
    let rows = cut_stamps(image.view(), &centres, s);
    if let Some(hidden) = hidden {
        let fractions = masked_fractions(hidden.view(), &centres, s);
        let touched = fractions.iter().filter(|&&f| f > 0.0).count();
        let worst = fractions.iter().copied().fold(0.0, f64::max);
        tracing::info!(
            "{}: {touched} of {} stamps have masked pixels (at most {:.1} %)",
            cfg.mask.display(),
            fractions.len(),
            100.0 * worst
        );
    }
    let (ids, labels) = ids_and_labels(cfg, &cfg.catalog, &cat, xs.len())?;
    Ok(Objects {
        rows,
        shape: vec![1, s, s],
        ids,
        labels,
        label_names: cfg.label_names.clone(),
        feature_names: vec![],
    })
}

/// The fraction of each stamp's pixels (cut as [`cut_stamps`] cuts them) that `hidden` marks;
/// pixels off the image count as not masked.
pub fn masked_fractions(hidden: ArrayView2<bool>, centres: &[(f64, f64)], size: usize) -> Vec<f64> {
    let as_values = hidden.mapv(|h| if h { 1.0f32 } else { 0.0 });
    cut_stamps(as_values.view(), centres, size)
        .rows()
        .into_iter()
        .map(|r| r.iter().filter(|&&v| v == 1.0).count() as f64 / (size * size) as f64)
        .collect()
}

/// Make the pixels of `cfg.mask` in `cfg.mask_planes` NaN in `image` (read from `cfg.path`):
/// the stamps then treat them as they treat pixels off the image. Returns the hidden pixels.
fn hide_masked(image: &mut Array2<f32>, cfg: &InputConfig) -> Result<Array2<bool>> {
    let planes = cfg.mask_planes().map_err(|e| e.within("input"))?;
    let mask = deepsky_io::mask::read_mask(&cfg.mask, "")?;
    let hidden = mask.any_of(&planes);
    if hidden.dim() != image.dim() {
        let ((mh, mw), (h, w)) = (hidden.dim(), image.dim());
        return Err(ReprError::bad_input(format!(
            "{}: the mask is {mw}×{mh} pixels but {} is {w}×{h}",
            cfg.mask.display(),
            cfg.path.display()
        )));
    }
    let mut count = 0usize;
    image.zip_mut_with(&hidden, |v, &hide| {
        if hide {
            *v = f32::NAN;
            count += 1;
        }
    });
    tracing::info!(
        "{}: {count} pixels masked ({})",
        cfg.path.display(),
        cfg.mask_planes.join(", ")
    );
    Ok(hidden)
}

/// Object ids (a column, or row numbers from 1) and truth labels (a column, or none).
fn ids_and_labels(
    cfg: &InputConfig,
    path: &Path,
    df: &DataFrame,
    n: usize,
) -> Result<(Vec<i64>, Option<Vec<i64>>)> {
    let ints = |name: &str, key: &str| -> Result<Vec<i64>> {
        Ok(column_f64(path, df, name, key)?
            .into_iter()
            .map(|v| v as i64)
            .collect())
    };
    let ids = if cfg.id_column.is_empty() {
        (1..=n as i64).collect()
    } else {
        ints(&cfg.id_column, "input.id_column")?
    };
    let labels = if cfg.labels.is_empty() {
        None
    } else {
        Some(ints(&cfg.labels, "input.labels")?)
    };
    Ok((ids, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Array2<f32> {
        Array2::from_shape_fn((8, 10), |(r, c)| (100 * r + c) as f32)
    }

    #[test]
    fn stamps_centre_on_the_nearest_pixel_and_pad_with_nan() {
        let img = image();
        // FITS (3, 5) is the centre of array (row 4, col 2); 0-based continuous (2.5, 4.5).
        let centre = (pixel::from_fits(3.0), pixel::from_fits(5.0));
        let s = cut_stamps(img.view(), &[centre, (2.9, 4.1)], 4);
        assert_eq!(s.dim(), (2, 16));
        // size / 2 = 2 pixels before the centre: rows 2..6, cols 0..4.
        assert_eq!(s[[0, 0]], 200.0);
        assert_eq!(s[[0, 5]], 301.0);
        assert_eq!(s[[0, 15]], 503.0);
        // Anywhere inside the same pixel gives the same stamp.
        assert_eq!(s.row(0), s.row(1));
        // A centre near the corner: the stamp hangs over the edge, NaN there.
        let e = cut_stamps(img.view(), &[(0.5, 0.5)], 4);
        assert!(e[[0, 0]].is_nan() && e[[0, 9]].is_nan());
        assert_eq!(e[[0, 10]], 0.0);
        assert_eq!(e[[0, 15]], 101.0);
        // Halfway between two pixels, the one farther from 0: x = 3.0 is between cols 2 and 3.
        let t = cut_stamps(img.view(), &[(3.0, 4.5)], 4);
        assert_eq!(t[[0, 0]], 201.0);
    }

    #[test]
    fn stamps_match_the_fits_arithmetic_they_replace() {
        // The 1-based FITS position x picks array column round(x - 1); FITS y = 4 is array
        // row 3, the third stamp row (index 2).
        let img = image();
        for x in [1.0, 1.49, 1.5, 2.5, 7.25, 9.999] {
            let s = cut_stamps(
                img.view(),
                &[(pixel::from_fits(x), pixel::from_fits(4.0))],
                4,
            );
            let c = (x - 1.0f64).round() as i64 - 2;
            let first = (0..4).find(|j| c + j >= 0).unwrap();
            assert_eq!(
                s[[0, 8 + first as usize]],
                (300 + c + first) as f32,
                "x = {x}"
            );
        }
    }

    /// A cosmic ray under the mask: its pixel becomes NaN in the stamp (as pixels off the
    /// image are) and the normalised stamp holds the stamp's median there, not the spike;
    /// planes not chosen hide nothing; a mask of another shape is refused naming both files.
    #[test]
    fn masked_pixels_in_fits_stamps_are_replaced_like_missing_ones() {
        use crate::normalise::Normaliser;
        use deepsky_io::fits::FitsWriter;
        use polars::prelude::Column;
        let dir = tempfile::tempdir().unwrap();
        let (img_path, cat_path, mask_path) = (
            dir.path().join("img.fits"),
            dir.path().join("cat.fits"),
            dir.path().join("mask.fits"),
        );
        // Sky of 100 with a gentle gradient; a cosmic-ray spike at array (10, 10).
        let mut img = Array2::from_shape_fn((20, 20), |(r, c)| 100.0 + (r + c) as f32 * 0.1);
        img[[10, 10]] = 5000.0;
        let mut w = FitsWriter::create(&img_path).unwrap();
        w.write_image(None, &NdData::F32(img.clone().into_dyn()), &[])
            .unwrap();
        w.finish().unwrap();
        // Two stamps: one centred on the spike (FITS 11, 11), one far from it.
        let cat = DataFrame::new(
            2,
            vec![
                Column::new("X".into(), vec![11.0f64, 4.0]),
                Column::new("Y".into(), vec![11.0f64, 4.0]),
            ],
        )
        .unwrap();
        let mut w = FitsWriter::create(&cat_path).unwrap();
        w.write_table("CAT", &cat, &Default::default(), &[])
            .unwrap();
        w.finish().unwrap();
        let mut bits = Array2::<u32>::zeros((20, 20));
        bits[[10, 10]] = MaskPlane::CosmicRay.bit();
        bits[[3, 3]] = MaskPlane::Detected.bit();
        let mut w = FitsWriter::create(&mask_path).unwrap();
        deepsky_io::mask::write_mask_hdu(&mut w, "MASK", &bits, &[]).unwrap();
        w.finish().unwrap();

        let mut cfg = InputConfig {
            kind: InputKind::FitsStamps,
            path: img_path.clone(),
            catalog: cat_path,
            stamp_size: 8,
            labels: String::new(),
            ..Default::default()
        };
        // The spike's pixel is stamp (4, 4): size / 2 pixels before the centre.
        let at = 4 * 8 + 4;
        let plain = Objects::read(&cfg).unwrap();
        assert_eq!(plain.rows[[0, at]], 5000.0);
        cfg.mask = mask_path.clone();
        let masked = Objects::read(&cfg).unwrap();
        assert!(masked.rows[[0, at]].is_nan());
        // Only that pixel changed; DETECTED (not in the default planes) hid nothing.
        let changed = (0..64)
            .filter(|&k| masked.rows[[0, k]].to_bits() != plain.rows[[0, k]].to_bits())
            .count();
        assert_eq!(changed, 1);
        let bits = |o: &Objects| o.rows.row(1).mapv(f32::to_bits);
        assert_eq!(bits(&masked), bits(&plain));
        // What the network sees: the stamp's median (0 after asinh), not the spike.
        let norm = Normaliser::fit(NormaliseKind::Asinh, 3.0, &masked.rows);
        let seen = norm.apply(&masked.rows);
        assert_eq!(seen[[0, at]], 0.0);
        let seen_plain = Normaliser::fit(NormaliseKind::Asinh, 3.0, &plain.rows).apply(&plain.rows);
        assert!(seen_plain[[0, at]] > 1.0);
        let hidden = deepsky_io::mask::read_mask(&mask_path, "")
            .unwrap()
            .any_of(&[MaskPlane::CosmicRay]);
        let centres = [(10.5, 10.5), (3.5, 3.5)];
        assert_eq!(
            masked_fractions(hidden.view(), &centres, 8),
            [1.0 / 64.0, 0.0]
        );

        // An unknown plane, and a mask of another shape.
        cfg.mask_planes = vec!["COSMIC".into()];
        assert_eq!(cfg.validate().unwrap_err().key, "mask_planes");
        cfg.mask_planes = vec!["COSMIC_RAY".into()];
        let mut w = FitsWriter::create(&mask_path).unwrap();
        deepsky_io::mask::write_mask_hdu(&mut w, "MASK", &Array2::zeros((20, 10)), &[]).unwrap();
        w.finish().unwrap();
        let e = Objects::read(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("mask.fits") && e.contains("img.fits") && e.contains("10×20"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn select_takes_a_contiguous_block() {
        let o = Objects {
            rows: Array2::from_shape_fn((5, 2), |(i, j)| (i * 2 + j) as f32),
            shape: vec![2],
            ids: vec![10, 11, 12, 13, 14],
            labels: Some(vec![0, 1, 0, 2, 0]),
            label_names: vec!["normal".into(), "lens".into()],
            feature_names: vec!["a".into(), "b".into()],
        };
        let s = o.select(1..3);
        assert_eq!(s.ids, vec![11, 12]);
        assert_eq!(s.labels, Some(vec![1, 0]));
        assert_eq!(s.rows.row(0).to_vec(), vec![2.0, 3.0]);
        assert_eq!(o.select(0..5), o);
        assert_eq!(o.label_name(1), "lens");
        assert_eq!(o.label_name(2), "label 2");
        assert_eq!(o.label_name(-1), "label -1");
    }

    #[test]
    fn anomalous_labels_default_to_all_but_normal() {
        let mut cfg = InputConfig::default();
        assert!(!cfg.is_anomalous(0) && cfg.is_anomalous(3));
        cfg.anomalous_labels = vec![2];
        assert!(!cfg.is_anomalous(3) && cfg.is_anomalous(2));
        assert_eq!(cfg.files().len(), 1);
        cfg.kind = InputKind::FitsStamps;
        assert_eq!(cfg.validate().unwrap_err().key, "catalog");
        cfg.catalog = "cat.fits".into();
        assert_eq!(cfg.files()[1], (Path::new("cat.fits"), "catalogue"));
        cfg.stamp_size = 2;
        assert_eq!(cfg.validate().unwrap_err().key, "stamp_size");
    }

    #[test]
    fn tables_read_from_parquet_with_ids_and_labels() {
        use polars::prelude::{Column, DataFrame};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let df = DataFrame::new(
            3,
            vec![
                Column::new("id".into(), vec![7i64, 8, 9]),
                Column::new("flux".into(), vec![1.5f64, 2.5, 3.5]),
                Column::new("label".into(), vec![0i64, 1, 0]),
                Column::new("size".into(), vec![4.0f32, 5.0, 6.0]),
            ],
        )
        .unwrap();
        deepsky_io::tabular::write_parquet(&path, &df).unwrap();
        let cfg = InputConfig {
            kind: InputKind::Table,
            path,
            id_column: "id".into(),
            labels: "label".into(),
            ..Default::default()
        };
        let o = Objects::read(&cfg).unwrap();
        assert_eq!(o.feature_names, vec!["flux", "size"]);
        assert_eq!(o.shape, vec![2]);
        assert_eq!(o.ids, vec![7, 8, 9]);
        assert_eq!(o.labels, Some(vec![0, 1, 0]));
        assert_eq!(o.rows.row(2).to_vec(), vec![3.5, 6.0]);
        let missing = InputConfig {
            columns: vec!["nope".into()],
            ..cfg.clone()
        };
        let e = Objects::read(&missing).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("no column `nope`"),
            "{e}"
        );
        // A default the user never wrote is traced to the setting that names it.
        let no_labels = InputConfig {
            labels: "class".into(),
            ..cfg
        };
        let e = Objects::read(&no_labels).unwrap_err();
        assert!(
            e.to_string()
                .contains("no column `class` (set by `input.labels`"),
            "{e}"
        );
    }
}
