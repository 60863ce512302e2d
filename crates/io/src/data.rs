//! In-memory arrays of any element type, and the summary statistics `deepsky inspect` prints.

use ndarray::ArrayD;
use polars::prelude::*;
use serde::Serialize;

/// An N-dimensional array whose element type is known only at run time (FITS images, HDF5
/// datasets). Shapes are slowest axis first, as numpy reports them.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum NdData {
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
    U16(ArrayD<u16>),
    I16(ArrayD<i16>),
    U32(ArrayD<u32>),
    I32(ArrayD<i32>),
    U64(ArrayD<u64>),
    I64(ArrayD<i64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    Bool(ArrayD<bool>),
    Str(ArrayD<String>),
}

/// Apply `$body` to the array inside any numeric variant.
macro_rules! with_numeric {
    ($data:expr, $a:ident => $body:expr, $other:ident => $fallback:expr) => {
        match $data {
            NdData::U8($a) => $body,
            NdData::I8($a) => $body,
            NdData::U16($a) => $body,
            NdData::I16($a) => $body,
            NdData::U32($a) => $body,
            NdData::I32($a) => $body,
            NdData::U64($a) => $body,
            NdData::I64($a) => $body,
            NdData::F32($a) => $body,
            NdData::F64($a) => $body,
            $other => $fallback,
        }
    };
}

impl NdData {
    /// The shape, slowest axis first.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            NdData::Bool(a) => a.shape().to_vec(),
            NdData::Str(a) => a.shape().to_vec(),
            other => with_numeric!(other, a => a.shape().to_vec(), _x => unreachable!()),
        }
    }

    /// The element type's name as deepsky prints it (`u8`, `f32`, `str`, …).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NdData::U8(_) => "u8",
            NdData::I8(_) => "i8",
            NdData::U16(_) => "u16",
            NdData::I16(_) => "i16",
            NdData::U32(_) => "u32",
            NdData::I32(_) => "i32",
            NdData::U64(_) => "u64",
            NdData::I64(_) => "i64",
            NdData::F32(_) => "f32",
            NdData::F64(_) => "f64",
            NdData::Bool(_) => "bool",
            NdData::Str(_) => "str",
        }
    }

    /// The values converted to f64 (booleans as 0/1), or `None` for strings.
    pub fn to_f64(&self) -> Option<ArrayD<f64>> {
        match self {
            NdData::Bool(a) => Some(a.mapv(|v| v as u8 as f64)),
            NdData::Str(_) => None,
            other => with_numeric!(other, a => Some(a.mapv(|v| v as f64)), _x => None),
        }
    }

    /// Summary statistics over all elements, or `None` for strings.
    pub fn stats(&self) -> Option<Stats> {
        match self {
            NdData::Str(_) => None,
            NdData::Bool(a) => Some(Stats::from_iter(a.iter().map(|&v| v as u8 as f64))),
            other => {
                with_numeric!(other, a => Some(Stats::from_iter(a.iter().map(|&v| v as f64))), _x => None)
            }
        }
    }
}

/// Sum, min, max, mean and NaN count of a set of numbers; NaN values are counted and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Sum of the non-NaN values (0 for none).
    pub sum: f64,
    /// Smallest non-NaN value (NaN when there is none).
    pub min: f64,
    /// Largest non-NaN value (NaN when there is none).
    pub max: f64,
    /// Mean of the non-NaN values (NaN when there is none).
    pub mean: f64,
    /// How many values are NaN (nulls in tables count here too).
    pub nan_count: u64,
}

/// Running accumulator behind [`Stats`], so that chunked reads can be summarised without
/// holding all values.
#[derive(Debug, Clone, Copy)]
pub struct StatsAccumulator {
    sum: f64,
    // Kahan compensation: sums over 10^7 float32 values otherwise lose digits.
    compensation: f64,
    min: f64,
    max: f64,
    count: u64,
    nan_count: u64,
}

impl Default for StatsAccumulator {
    fn default() -> Self {
        StatsAccumulator {
            sum: 0.0,
            compensation: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count: 0,
            nan_count: 0,
        }
    }
}

impl StatsAccumulator {
    /// Add one value.
    #[inline]
    pub fn push(&mut self, v: f64) {
        if v.is_nan() {
            self.nan_count += 1;
            return;
        }
        let y = v - self.compensation;
        let t = self.sum + y;
        self.compensation = (t - self.sum) - y;
        self.sum = t;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.count += 1;
    }

    /// Count `n` missing values (table nulls) as NaN.
    pub fn push_missing(&mut self, n: u64) {
        self.nan_count += n;
    }

    /// Merge another accumulator into this one.
    pub fn merge(&mut self, other: &StatsAccumulator) {
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.nan_count += other.nan_count;
    }

    /// The statistics so far.
    pub fn finish(&self) -> Stats {
        let (min, max, mean) = if self.count == 0 {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (self.min, self.max, self.sum / self.count as f64)
        };
        Stats {
            sum: self.sum,
            min,
            max,
            mean,
            nan_count: self.nan_count,
        }
    }
}

impl Stats {
    /// Statistics of a sequence of values.
    pub fn from_iter(values: impl IntoIterator<Item = f64>) -> Stats {
        let mut acc = StatsAccumulator::default();
        values.into_iter().for_each(|v| acc.push(v));
        acc.finish()
    }
}

/// deepsky's name for a polars data type: `u8` … `f64`, `bool`, `str`, `list[<inner>]`
/// (fixed-size arrays and variable-length lists alike), or the polars name for anything else.
pub fn polars_dtype_name(dtype: &DataType) -> String {
    match dtype {
        DataType::UInt8 => "u8".into(),
        DataType::Int8 => "i8".into(),
        DataType::UInt16 => "u16".into(),
        DataType::Int16 => "i16".into(),
        DataType::UInt32 => "u32".into(),
        DataType::Int32 => "i32".into(),
        DataType::UInt64 => "u64".into(),
        DataType::Int64 => "i64".into(),
        DataType::Float32 => "f32".into(),
        DataType::Float64 => "f64".into(),
        DataType::Boolean => "bool".into(),
        DataType::String => "str".into(),
        DataType::List(inner) => format!("list[{}]", polars_dtype_name(leaf_dtype(inner))),
        DataType::Array(inner, _) => format!("list[{}]", polars_dtype_name(leaf_dtype(inner))),
        other => other.to_string(),
    }
}

/// The element type under any nesting of lists and arrays.
pub fn leaf_dtype(dtype: &DataType) -> &DataType {
    match dtype {
        DataType::List(inner) | DataType::Array(inner, _) => leaf_dtype(inner),
        other => other,
    }
}

/// Statistics over all elements of a numeric (or boolean) column, lists and arrays flattened.
/// Nulls count as NaN. `None` for string columns.
pub fn column_stats(series: &Series) -> Option<Stats> {
    column_stats_accumulator(series).map(|a| a.finish())
}

/// Like [`column_stats`], as an accumulator that chunked reads can merge.
pub fn column_stats_accumulator(series: &Series) -> Option<StatsAccumulator> {
    let mut flat = series.clone();
    while matches!(flat.dtype(), DataType::List(_) | DataType::Array(_, _)) {
        flat = match flat.dtype() {
            DataType::List(_) => flat
                .explode(ExplodeOptions {
                    empty_as_null: false,
                    keep_nulls: false,
                })
                .ok()?,
            _ => flat.array().ok()?.get_inner(),
        };
    }
    let leaf = flat.dtype().clone();
    if !(leaf.is_primitive_numeric() || leaf == DataType::Boolean) {
        return None;
    }
    let as_f64 = flat.cast(&DataType::Float64).ok()?;
    let ca = as_f64.f64().ok()?;
    let mut acc = StatsAccumulator::default();
    for v in ca.iter() {
        match v {
            Some(v) => acc.push(v),
            None => acc.push_missing(1),
        }
    }
    Some(acc)
}
