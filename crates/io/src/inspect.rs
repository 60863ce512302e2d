//! What `deepsky inspect` reports about a file: one document per file, the same for FITS and
//! HDF5, serialisable as the JSON contract documented in the README.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::data::{column_stats_accumulator, Stats, StatsAccumulator};
use crate::error::{ErrorKind, IoError, Result};
use crate::fits::{FitsReader, HduKind, HduSelector};
use crate::h5::{H5Kind, H5Reader};

/// A file format deepsky reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// FITS, plain or gzip-compressed.
    Fits,
    /// HDF5.
    Hdf5,
}

const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Tell the format from the file's first bytes (not its name).
pub fn detect_format(path: &Path) -> Result<Format> {
    let mut f = std::fs::File::open(path).map_err(|e| IoError::from_std(path, e))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(IoError::new(
            path,
            ErrorKind::InvalidInput,
            "is a directory, not a file",
        ));
    }
    let mut head = vec![0u8; 4096];
    let mut n = 0;
    while n < head.len() {
        let k = f
            .read(&mut head[n..])
            .map_err(|e| IoError::from_std(path, e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    head.truncate(n);
    if head.starts_with(b"SIMPLE  =") || head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Fits);
    }
    // HDF5 files may carry a user block: the signature sits at 0, 512, 1024, 2048, …
    for off in [0usize, 512, 1024, 2048] {
        if head.len() >= off + 8 && &head[off..off + 8] == HDF5_MAGIC {
            return Ok(Format::Hdf5);
        }
    }
    if head.is_empty() {
        return Err(IoError::new(
            path,
            ErrorKind::UnknownFormat,
            "file is empty: not a FITS or HDF5 file",
        ));
    }
    Err(IoError::new(
        path,
        ErrorKind::UnknownFormat,
        "not a FITS or HDF5 file (no FITS `SIMPLE =` card or HDF5 signature at the start)",
    ))
}

/// What to include in a report.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Per image/dataset and numeric column: sum, min, max, mean, NaN count.
    pub stats: bool,
    /// Header cards (FITS) or attributes (HDF5).
    pub header: bool,
    /// Only this HDU (index or EXTNAME) or dataset/group (path); an error if it is missing.
    pub item: Option<String>,
    /// Only these table columns; an error names any that is missing.
    pub columns: Option<Vec<String>>,
}

/// Rows per chunk when computing table statistics: bounds memory on huge event lists.
const STATS_CHUNK_ROWS: usize = 1 << 20;

fn stats_json(s: &Stats) -> Value {
    let num = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
    json!({"sum": num(s.sum), "min": num(s.min), "max": num(s.max), "mean": num(s.mean), "nan_count": s.nan_count})
}

/// Inspect a file of either format.
pub fn inspect(path: &Path, opts: &InspectOptions) -> Result<Value> {
    match detect_format(path)? {
        Format::Fits => inspect_fits(path, opts),
        Format::Hdf5 => inspect_hdf5(path, opts),
    }
}

fn inspect_fits(path: &Path, opts: &InspectOptions) -> Result<Value> {
    let mut f = FitsReader::open(path)?;
    let mut items = Vec::new();
    let infos = match &opts.item {
        Some(sel) => vec![f.hdu_info(&sel.parse().expect("infallible"))?],
        None => f.hdus()?,
    };
    for mut info in infos {
        if let Some(want) = &opts.columns {
            let names: Vec<&str> = want.iter().map(String::as_str).collect();
            let cols = f
                .table_chunks(&HduSelector::Index(info.index), Some(&names), 1)?
                .columns();
            info.columns = cols;
        }
        let sel = HduSelector::Index(info.index);
        // Reading the header also checks every card: non-standard cards are kept with a
        // warning (as astropy does), so a real survey header does not stop the report.
        let header = f.header(&sel)?;
        let mut item = Map::new();
        item.insert("index".into(), json!(info.index));
        item.insert("name".into(), json!(info.name));
        let kind = match info.kind {
            HduKind::Image => "image",
            HduKind::Table => "table",
            HduKind::Empty => "empty",
        };
        item.insert("kind".into(), json!(kind));
        match info.kind {
            HduKind::Image => {
                item.insert("shape".into(), json!(info.shape));
                item.insert("dtype".into(), json!(info.dtype));
                if let Some(c) = &info.compression {
                    item.insert("compression".into(), json!(c));
                }
                if opts.stats {
                    let data = f.read_image(&sel)?;
                    item.insert(
                        "stats".into(),
                        data.stats().map(|s| stats_json(&s)).unwrap_or(Value::Null),
                    );
                }
            }
            HduKind::Table => {
                item.insert("rows".into(), json!(info.rows));
                let mut accs: Vec<Option<StatsAccumulator>> = vec![None; info.columns.len()];
                if opts.stats {
                    let numeric: Vec<usize> = (0..info.columns.len())
                        .filter(|&i| info.columns[i].dtype != "str")
                        .collect();
                    let names: Vec<&str> = numeric
                        .iter()
                        .map(|&i| info.columns[i].name.as_str())
                        .collect();
                    if !names.is_empty() {
                        for chunk in f.table_chunks(&sel, Some(&names), STATS_CHUNK_ROWS)? {
                            let chunk = chunk?;
                            for (k, &i) in numeric.iter().enumerate() {
                                let s = chunk.data.columns()[k].as_materialized_series();
                                if let Some(a) = column_stats_accumulator(s) {
                                    accs[i]
                                        .get_or_insert_with(StatsAccumulator::default)
                                        .merge(&a);
                                }
                            }
                        }
                    }
                }
                let cols: Vec<Value> = info
                    .columns
                    .iter()
                    .zip(&accs)
                    .map(|(c, acc)| {
                        let mut m = Map::new();
                        m.insert("name".into(), json!(c.name));
                        m.insert("dtype".into(), json!(c.dtype));
                        m.insert("unit".into(), json!(c.unit));
                        m.insert("tform".into(), json!(c.tform));
                        if !c.cell_shape.is_empty() {
                            m.insert("cell_shape".into(), json!(c.cell_shape));
                        }
                        if let Some(a) = acc {
                            m.insert("stats".into(), stats_json(&a.finish()));
                        }
                        Value::Object(m)
                    })
                    .collect();
                item.insert("columns".into(), Value::Array(cols));
            }
            HduKind::Empty => {}
        }
        if opts.header {
            item.insert(
                "header".into(),
                serde_json::to_value(header.cards()).expect("cards serialise"),
            );
        }
        items.push(Value::Object(item));
    }
    Ok(json!({"file": path.display().to_string(), "format": "fits", "items": items}))
}

fn inspect_hdf5(path: &Path, opts: &InspectOptions) -> Result<Value> {
    let f = H5Reader::open(path)?;
    let mut items = Vec::new();
    let mut all = f.items()?;
    if let Some(want) = &opts.item {
        let full = format!("/{}", want.trim_start_matches('/'));
        all.retain(|i| i.path == full);
        if all.is_empty() {
            return Err(IoError::new(
                path,
                ErrorKind::NotFound,
                format!("no dataset or group `{full}`"),
            ));
        }
    }
    if let Some(want) = &opts.columns {
        for it in all.iter_mut() {
            let mut kept = Vec::new();
            for w in want {
                match it.fields.iter().find(|fi| &fi.name == w) {
                    Some(fi) => kept.push(fi.clone()),
                    None => {
                        return Err(IoError::new(
                            path,
                            ErrorKind::NotFound,
                            format!("no column `{w}` in `{}`", it.path),
                        ))
                    }
                }
            }
            it.fields = kept;
        }
    }
    if opts.header && opts.item.is_none() {
        let attrs = f.root_attrs()?;
        let mut root = Map::new();
        root.insert("index".into(), json!(0));
        root.insert("name".into(), json!("/"));
        root.insert("kind".into(), json!("group"));
        root.insert("header".into(), attrs_json(&attrs));
        items.push(Value::Object(root));
    }
    for it in all {
        let mut item = Map::new();
        item.insert("index".into(), json!(items.len()));
        item.insert("name".into(), json!(it.path));
        match it.kind {
            H5Kind::Group => {
                item.insert("kind".into(), json!("group"));
            }
            H5Kind::Dataset if !it.fields.is_empty() => {
                item.insert("kind".into(), json!("table"));
                item.insert("rows".into(), json!(it.shape.iter().product::<usize>()));
                let df = if opts.stats {
                    Some(f.read_table(&it.path)?)
                } else {
                    None
                };
                let cols: Vec<Value> =
                    it.fields
                        .iter()
                        .map(|fi| {
                            let mut m = Map::new();
                            m.insert("name".into(), json!(fi.name));
                            m.insert("dtype".into(), json!(fi.dtype));
                            m.insert("unit".into(), Value::Null);
                            if let Some(df) = &df {
                                if let Some(s) = df.column(&fi.name).ok().and_then(|c| {
                                    crate::data::column_stats(c.as_materialized_series())
                                }) {
                                    m.insert("stats".into(), stats_json(&s));
                                }
                            }
                            Value::Object(m)
                        })
                        .collect();
                item.insert("columns".into(), Value::Array(cols));
            }
            H5Kind::Dataset => {
                let n: usize = it.shape.iter().product();
                item.insert(
                    "kind".into(),
                    json!(if n == 0 && it.shape.is_empty() {
                        "empty"
                    } else {
                        "image"
                    }),
                );
                if it.cell_shape.is_empty() {
                    item.insert("shape".into(), json!(it.shape));
                    item.insert("dtype".into(), json!(it.dtype));
                } else {
                    // An HDF5 array element type: its axes follow the dataset's, as numpy
                    // reports what h5py reads.
                    let mut shape = it.shape.clone();
                    shape.extend(&it.cell_shape);
                    let leaf = it.dtype.as_deref().map(|d| {
                        d.strip_prefix("list[")
                            .and_then(|d| d.strip_suffix(']'))
                            .unwrap_or(d)
                    });
                    item.insert("shape".into(), json!(shape));
                    item.insert("dtype".into(), json!(leaf));
                }
                if let Some(c) = &it.chunks {
                    item.insert("chunks".into(), json!(c));
                }
                if opts.stats {
                    if let Some(s) = f.dataset_stats(&it.path)? {
                        item.insert("stats".into(), stats_json(&s));
                    }
                }
            }
        }
        if opts.header {
            item.insert("header".into(), attrs_json(&it.attrs));
        }
        items.push(Value::Object(item));
    }
    Ok(json!({"file": path.display().to_string(), "format": "hdf5", "items": items}))
}

fn attrs_json(attrs: &[(String, crate::h5::AttrValue)]) -> Value {
    Value::Object(
        attrs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect(),
    )
}

fn fmt_num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.6e}"),
        None => "nan".into(),
    }
}

fn fmt_stats(s: &Value) -> String {
    format!(
        "sum={} min={} max={} mean={} nan={}",
        fmt_num(&s["sum"]),
        fmt_num(&s["min"]),
        fmt_num(&s["max"]),
        fmt_num(&s["mean"]),
        s["nan_count"]
    )
}

/// Write a report as `deepsky inspect` prints it without `--json`: one line per HDU or HDF5
/// object (index, name, kind, type and shape or rows, compression, statistics), its columns
/// indented below it, then its header cards or attributes when the report has them.
pub fn write_text(out: &mut impl Write, r: &Value) -> std::io::Result<()> {
    writeln!(
        out,
        "{} ({})",
        r["file"].as_str().unwrap_or(""),
        r["format"].as_str().unwrap_or("")
    )?;
    for it in r["items"].as_array().into_iter().flatten() {
        let kind = it["kind"].as_str().unwrap_or("");
        let name = it["name"].as_str().unwrap_or("");
        let mut line = format!("  {:>3}  {:<24} {:<6}", it["index"], name, kind);
        match kind {
            "image" => line.push_str(&format!(
                " {} {}",
                it["dtype"].as_str().unwrap_or(""),
                it["shape"]
            )),
            "table" => line.push_str(&format!(" {} rows", it["rows"])),
            _ => {}
        }
        if let Some(c) = it.get("compression") {
            line.push_str(&format!(" [{}]", c.as_str().unwrap_or("")));
        }
        if let Some(s) = it.get("stats") {
            line.push_str(&format!("  {}", fmt_stats(s)));
        }
        writeln!(out, "{line}")?;
        for c in it["columns"].as_array().into_iter().flatten() {
            let unit = c["unit"]
                .as_str()
                .map(|u| format!(" [{u}]"))
                .unwrap_or_default();
            let mut l = format!(
                "         {:<20} {}{}",
                c["name"].as_str().unwrap_or(""),
                c["dtype"].as_str().unwrap_or(""),
                unit
            );
            if let Some(s) = c.get("stats") {
                l.push_str(&format!("  {}", fmt_stats(s)));
            }
            writeln!(out, "{l}")?;
        }
        match it.get("header") {
            Some(Value::Array(cards)) => {
                for c in cards {
                    let key = c["key"].as_str().unwrap_or("");
                    let val = match &c["value"] {
                        Value::Null => String::new(),
                        Value::String(s) => format!("'{s}'"),
                        v => v.to_string(),
                    };
                    writeln!(
                        out,
                        "         {key:<8} {val} {}",
                        c["comment"]
                            .as_str()
                            .map(|s| if s.is_empty() {
                                String::new()
                            } else {
                                format!("/ {s}")
                            })
                            .unwrap_or_default()
                    )?;
                }
            }
            Some(Value::Object(attrs)) => {
                for (k, v) in attrs {
                    writeln!(out, "         @{k} = {v}")?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_items_columns_stats_and_cards() {
        let report = json!({
            "file": "f.fits", "format": "fits",
            "items": [
                {"index": 0, "name": "PRIMARY", "kind": "image", "dtype": "f32", "shape": [2, 3],
                 "stats": {"sum": 6.0, "min": 0.5, "max": 2.0, "mean": 1.0, "nan_count": 1},
                 "header": [{"key": "BUNIT", "value": "adu", "comment": "pixel unit"},
                            {"key": "NAXIS", "value": 2, "comment": ""}]},
                {"index": 1, "name": "EVENTS", "kind": "table", "rows": 10,
                 "columns": [{"name": "TIME", "dtype": "f64", "unit": "s"},
                             {"name": "PI", "dtype": "i16", "unit": null}]},
                {"index": 2, "name": "/g", "kind": "group", "header": {"seed": 4}}
            ]
        });
        let mut out = Vec::new();
        write_text(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = [
            "f.fits (fits)",
            "  0  PRIMARY                  image  f32 [2,3]  sum=6 min=5.000000e-1 max=2 mean=1 nan=1",
            "         BUNIT    'adu' / pixel unit",
            "         NAXIS    2 ",
            "  1  EVENTS                   table  10 rows",
            "         TIME                 f64 [s]",
            "         PI                   i16",
            "  2  /g                       group ",
            "         @seed = 4",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
    }
}
