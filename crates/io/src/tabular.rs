//! CSV and Parquet for DataFrames (catalogues, latent vectors, scores), written atomically.
//!
//! CSV is what spreadsheets and quick scripts read; Parquet keeps types and is what pandas,
//! polars and TOPCAT-adjacent tools read fastest. FITS tables are in [`crate::fits`].

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars_io::csv::read::CsvReadOptions;
use polars_io::csv::write::CsvWriter;
use polars_io::parquet::read::ParquetReader;
use polars_io::parquet::write::ParquetWriter;
use polars_io::{SerReader, SerWriter};

use crate::atomic::AtomicPath;
use crate::error::{ErrorKind, IoError, Result};

fn polars_err(path: &Path, e: PolarsError) -> IoError {
    IoError::new(path, ErrorKind::Io, e.to_string())
}

/// Write `df` as CSV with a header row. List and array columns are not representable in CSV
/// and are an error naming the column.
pub fn write_csv(path: impl AsRef<Path>, df: &DataFrame) -> Result<PathBuf> {
    let path = path.as_ref();
    for c in df.columns() {
        if matches!(c.dtype(), DataType::List(_) | DataType::Array(..)) {
            return Err(IoError::new(
                path,
                ErrorKind::InvalidInput,
                format!(
                    "column `{}` holds arrays, which CSV cannot; use Parquet or FITS",
                    c.name()
                ),
            ));
        }
    }
    let out = AtomicPath::new(path)?;
    let file = File::create(out.temp_path()).map_err(|e| IoError::from_std(out.temp_path(), e))?;
    let mut df = df.clone();
    CsvWriter::new(file)
        .include_header(true)
        .finish(&mut df)
        .map_err(|e| polars_err(path, e))?;
    out.commit()
}

/// Write `df` as Parquet (zstd-compressed).
pub fn write_parquet(path: impl AsRef<Path>, df: &DataFrame) -> Result<PathBuf> {
    let path = path.as_ref();
    let out = AtomicPath::new(path)?;
    let file = File::create(out.temp_path()).map_err(|e| IoError::from_std(out.temp_path(), e))?;
    let mut df = df.clone();
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(|e| polars_err(path, e))?;
    out.commit()
}

/// Read a Parquet file.
pub fn read_parquet(path: impl AsRef<Path>) -> Result<DataFrame> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| IoError::from_std(path, e))?;
    ParquetReader::new(file).finish().map_err(|e| {
        IoError::new(
            path,
            ErrorKind::Corrupt,
            format!("not a readable Parquet file: {e}"),
        )
    })
}

/// Read a CSV file with a header row (as [`write_csv`] writes it, or a spreadsheet exports
/// it). Lines starting with `#` are comments; column types are inferred from every row, so a
/// column that turns fractional far down is still read as floats.
pub fn read_csv(path: impl AsRef<Path>) -> Result<DataFrame> {
    let path = path.as_ref();
    std::fs::metadata(path).map_err(|e| IoError::from_std(path, e))?;
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .map_parse_options(|o| o.with_comment_prefix(Some("#")))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| {
            IoError::new(
                path,
                ErrorKind::Corrupt,
                format!("not a readable CSV file: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_and_csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let df = df!("id" => [1i64, 2, 3], "score" => [0.5f64, 1.5, f64::NAN], "name" => ["a", "b", "c"]).unwrap();
        let p = write_parquet(dir.path().join("t.parquet"), &df).unwrap();
        let back = read_parquet(&p).unwrap();
        assert_eq!(back.shape(), (3, 3));
        assert_eq!(back.column("id").unwrap().i64().unwrap().get(2), Some(3));
        let c = write_csv(dir.path().join("t.csv"), &df).unwrap();
        let text = std::fs::read_to_string(&c).unwrap();
        assert_eq!(text.lines().next(), Some("id,score,name"));
        assert_eq!(text.lines().count(), 4);
        let back = read_csv(&c).unwrap();
        assert_eq!(back.shape(), (3, 3));
        assert_eq!(back.column("id").unwrap().i64().unwrap().get(1), Some(2));
        assert_eq!(
            back.column("name").unwrap().str().unwrap().get(2),
            Some("c")
        );
        assert!(read_csv(dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string()
            .contains("missing.csv"));
        assert!(read_parquet(dir.path().join("t.csv"))
            .unwrap_err()
            .to_string()
            .contains("t.csv"));
    }
}
