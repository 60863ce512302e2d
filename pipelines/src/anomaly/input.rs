//! Reading the objects to learn from: stamps from HDF5, stamps cut from a FITS image around a
//! catalogue's positions, or numeric table columns (FITS, HDF5, Parquet).

use std::path::Path;

use deepsky_io::fits::{FitsReader, HduSelector};
use deepsky_io::h5::H5Reader;
use deepsky_runtime::{Provenance, RunError};
use ndarray::{Array2, Axis};
use polars::prelude::*;

use super::config::{InputConfig, InputKind};

/// The objects of one run, one per row.
#[derive(Debug, Clone)]
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
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.rows.nrows()
    }

    /// The objects in `range` (a shard).
    pub fn select(&self, range: std::ops::Range<usize>) -> Objects {
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

    /// A label's name.
    pub fn label_name(&self, label: i64) -> String {
        usize::try_from(label)
            .ok()
            .and_then(|i| self.label_names.get(i).cloned())
            .unwrap_or_else(|| format!("label {label}"))
    }
}

/// Read the configured input, recording each file read in the provenance.
pub fn load(cfg: &InputConfig, prov: &mut Provenance) -> Result<Objects, RunError> {
    prov.input(&cfg.path, "objects")?;
    match cfg.kind {
        InputKind::Hdf5Stamps => hdf5_stamps(cfg),
        InputKind::FitsStamps => {
            prov.input(&cfg.catalog, "catalogue")?;
            fits_stamps(cfg)
        }
        InputKind::Table => table(cfg),
    }
}

fn ints(path: &Path, name: &str, data: &deepsky_io::NdData) -> Result<Vec<i64>, RunError> {
    let v = data
        .to_f64()
        .ok_or_else(|| RunError::input(format!("{}: `{name}` is not numeric", path.display())))?;
    Ok(v.iter().map(|&x| x as i64).collect())
}

fn hdf5_stamps(cfg: &InputConfig) -> Result<Objects, RunError> {
    let path = &cfg.path;
    let h5 = H5Reader::open(path)?;
    let images = h5.read_f32(&cfg.dataset)?;
    let shape: Vec<usize> = match images.ndim() {
        3 => vec![1, images.shape()[1], images.shape()[2]],
        4 => images.shape()[1..].to_vec(),
        d => {
            return Err(RunError::input(format!(
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
        .map_err(|e| RunError::failed(format!("{}: {e}", path.display())))?;
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
            return Err(RunError::input(format!(
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

fn column_f64(path: &Path, df: &DataFrame, name: &str) -> Result<Vec<f64>, RunError> {
    let col = df.column(name).map_err(|_| {
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        RunError::input(format!(
            "{}: no column `{name}` (columns: {})",
            path.display(),
            names.join(", ")
        ))
    })?;
    let cast = col.cast(&DataType::Float64).map_err(|_| {
        RunError::input(format!(
            "{}: column `{name}` is not numeric",
            path.display()
        ))
    })?;
    let ca = cast.f64().map_err(|_| {
        RunError::input(format!(
            "{}: column `{name}` is not numeric",
            path.display()
        ))
    })?;
    Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn read_table_any(path: &Path, hdu: &str, dataset: &str) -> Result<DataFrame, RunError> {
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

fn table(cfg: &InputConfig) -> Result<Objects, RunError> {
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
        return Err(RunError::input(format!(
            "{}: no numeric columns to learn from",
            path.display()
        )));
    }
    let mut rows = Array2::<f32>::zeros((n, columns.len()));
    for (j, name) in columns.iter().enumerate() {
        for (i, v) in column_f64(path, &df, name)?.into_iter().enumerate() {
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

fn fits_stamps(cfg: &InputConfig) -> Result<Objects, RunError> {
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
        return Err(RunError::input(format!(
            "{}: the image has {} dimensions, stamps need 2",
            path.display(),
            image.ndim()
        )));
    }
    let image = image.into_dimensionality::<ndarray::Ix2>().expect("2-D");
    let cat = read_table_any(&cfg.catalog, &cfg.catalog_hdu, "")?;
    let xs = column_f64(&cfg.catalog, &cat, &cfg.x_column)?;
    let ys = column_f64(&cfg.catalog, &cat, &cfg.y_column)?;
    let n = xs.len();
    let s = cfg.stamp_size;
    let (h, w) = image.dim();
    let mut rows = Array2::<f32>::from_elem((n, s * s), f32::NAN);
    for (k, (x, y)) in xs.iter().zip(&ys).enumerate() {
        // FITS pixel (x, y) is 1-based with integer values at pixel centres: array column x-1.
        let c0 = (x - 1.0).round() as i64 - (s as i64) / 2;
        let r0 = (y - 1.0).round() as i64 - (s as i64) / 2;
        let mut row = rows.index_axis_mut(Axis(0), k);
        for i in 0..s as i64 {
            for j in 0..s as i64 {
                let (r, c) = (r0 + i, c0 + j);
                if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                    row[(i as usize) * s + j as usize] = image[[r as usize, c as usize]];
                }
            }
        }
    }
    let (ids, labels) = ids_and_labels(cfg, &cfg.catalog, &cat, n)?;
    Ok(Objects {
        rows,
        shape: vec![1, s, s],
        ids,
        labels,
        label_names: cfg.label_names.clone(),
        feature_names: vec![],
    })
}

/// Object ids (a column, or row numbers from 1) and truth labels (a column, or none).
fn ids_and_labels(
    cfg: &InputConfig,
    path: &Path,
    df: &DataFrame,
    n: usize,
) -> Result<(Vec<i64>, Option<Vec<i64>>), RunError> {
    let ints = |name: &str| -> Result<Vec<i64>, RunError> {
        Ok(column_f64(path, df, name)?
            .into_iter()
            .map(|v| v as i64)
            .collect())
    };
    let ids = if cfg.id_column.is_empty() {
        (1..=n as i64).collect()
    } else {
        ints(&cfg.id_column)?
    };
    let labels = if cfg.labels.is_empty() {
        None
    } else {
        Some(ints(&cfg.labels)?)
    };
    Ok((ids, labels))
}
