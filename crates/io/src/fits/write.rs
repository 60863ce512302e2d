//! Writing FITS: images of any element type with header cards, and binary tables from polars
//! DataFrames, with DATASUM/CHECKSUM on every HDU. Files appear under their final name only
//! when complete.

use std::collections::BTreeMap;
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};

use fitsio::sys;
use polars::prelude::*;

use super::ffi::{self, cstr, Handle};
use super::header::{Card, CardValue};
use crate::atomic::AtomicPath;
use crate::data::NdData;
use crate::error::{ErrorKind, IoError, Result};

/// Metadata of one table column for writing: unit, description, legal range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMeta {
    /// TUNITn (e.g. `s`, `keV`, `pixel`, `deg`).
    pub unit: Option<String>,
    /// A one-line description, written as the comment of the TTYPEn card.
    pub description: Option<String>,
    /// TLMINn, the smallest legal value (OGIP).
    pub tlmin: Option<f64>,
    /// TLMAXn, the largest legal value (OGIP).
    pub tlmax: Option<f64>,
}

impl ColumnMeta {
    /// Metadata with a unit and a description.
    pub fn new(unit: &str, description: &str) -> ColumnMeta {
        ColumnMeta {
            unit: (!unit.is_empty()).then(|| unit.to_string()),
            description: (!description.is_empty()).then(|| description.to_string()),
            ..Default::default()
        }
    }

    /// Add a legal range (TLMIN/TLMAX).
    pub fn with_range(mut self, min: f64, max: f64) -> ColumnMeta {
        self.tlmin = Some(min);
        self.tlmax = Some(max);
        self
    }
}

/// Column metadata by column name.
pub type TableMeta = BTreeMap<String, ColumnMeta>;

/// Keywords that the writer itself sets from the data; cards given for them are ignored.
const STRUCTURAL: &[&str] = &[
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "TFIELDS", "CHECKSUM",
    "DATASUM", "BSCALE", "BZERO", "END", "THEAP",
];

fn is_structural(key: &str) -> bool {
    STRUCTURAL.contains(&key)
        || [
            "NAXIS", "TTYPE", "TFORM", "TUNIT", "TNULL", "TDIM", "TSCAL", "TZERO",
        ]
        .iter()
        .any(|p| {
            key.starts_with(p)
                && key[p.len()..].chars().all(|c| c.is_ascii_digit())
                && key.len() > p.len()
        })
}

/// A new FITS file being written. Nothing appears under the final name until
/// [`FitsWriter::finish`]; if the writer is dropped unfinished, the partial file is removed.
///
/// ```no_run
/// use deepsky_io::fits::{FitsWriter, Card};
/// use deepsky_io::NdData;
/// let image = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[64, 64]));
/// let mut w = FitsWriter::create("sky.fits")?;
/// w.write_image(None, &NdData::F32(image), &[Card::new("EXPTIME", 100.0, "[s] exposure")])?;
/// w.finish()?;
/// # Ok::<(), deepsky_io::IoError>(())
/// ```
pub struct FitsWriter {
    handle: Option<Handle>,
    out: Option<AtomicPath>,
    target: PathBuf,
    hdus: usize,
}

impl FitsWriter {
    /// Start writing `path` (replacing it when finished, if it exists).
    pub fn create(path: impl AsRef<Path>) -> Result<FitsWriter> {
        let out = AtomicPath::new(path.as_ref())?;
        let handle = Handle::create(out.temp_path())?;
        let target = out.target().to_path_buf();
        Ok(FitsWriter {
            handle: Some(handle),
            out: Some(out),
            target,
            hdus: 0,
        })
    }

    fn h(&mut self) -> &mut Handle {
        self.handle.as_mut().expect("handle lives until finish")
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> IoError {
        IoError::new(&self.target, kind, msg)
    }

    fn check(&mut self, status: c_int, what: impl FnOnce() -> String) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        Err(ffi::status_error(&self.target, status, &what()))
    }

    /// Write an image HDU. The first HDU becomes the primary; `extname` names it (optional for
    /// the primary). Unsigned and signed-byte types are stored with the standard BZERO offsets.
    pub fn write_image(
        &mut self,
        extname: Option<&str>,
        data: &NdData,
        cards: &[Card],
    ) -> Result<()> {
        let (bitpix, datatype) = match data {
            NdData::U8(_) | NdData::Bool(_) => (8, ffi::TBYTE),
            NdData::I8(_) => (10, ffi::TSBYTE),
            NdData::I16(_) => (16, ffi::TSHORT),
            NdData::U16(_) => (20, ffi::TUSHORT),
            NdData::I32(_) => (32, ffi::TINT),
            NdData::U32(_) => (40, ffi::TUINT),
            NdData::I64(_) => (64, ffi::TLONGLONG),
            NdData::U64(_) => (80, ffi::TULONGLONG),
            NdData::F32(_) => (-32, ffi::TFLOAT),
            NdData::F64(_) => (-64, ffi::TDOUBLE),
            NdData::Str(_) => {
                return Err(self.err(
                    ErrorKind::InvalidInput,
                    "cannot write a string array as a FITS image",
                ))
            }
        };
        let shape = data.shape();
        let mut naxes: Vec<i64> = shape.iter().rev().map(|&d| d as i64).collect();
        let mut status = 0;
        let ptr = self.h().ptr();
        unsafe {
            sys::ffcrimll(
                ptr,
                bitpix,
                naxes.len() as c_int,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        self.check(status, || "cannot create image HDU".into())?;
        self.hdus += 1;
        if let Some(name) = extname {
            self.write_card(&Card::new("EXTNAME", name, "name of this HDU"))?;
        }
        self.write_cards(cards)?;
        let n: usize = shape.iter().product();
        if n > 0 {
            macro_rules! put {
                ($a:expr) => {{
                    let contiguous = $a.as_standard_layout();
                    let slice = contiguous.as_slice().expect("standard layout");
                    unsafe {
                        sys::ffppr(
                            ptr,
                            datatype,
                            1,
                            n as i64,
                            slice.as_ptr() as *mut c_void,
                            &mut status,
                        )
                    };
                }};
            }
            match data {
                NdData::U8(a) => put!(a),
                NdData::Bool(a) => {
                    let bytes = a.mapv(|b| b as u8);
                    put!(bytes)
                }
                NdData::I8(a) => put!(a),
                NdData::I16(a) => put!(a),
                NdData::U16(a) => put!(a),
                NdData::I32(a) => put!(a),
                NdData::U32(a) => put!(a),
                NdData::I64(a) => put!(a),
                NdData::U64(a) => put!(a),
                NdData::F32(a) => put!(a),
                NdData::F64(a) => put!(a),
                NdData::Str(_) => unreachable!(),
            }
            self.check(status, || "cannot write image data".into())?;
        }
        Ok(())
    }

    /// Write header cards into the current HDU (structural keywords are set by the writer and
    /// skipped here). Long strings use the CONTINUE convention.
    pub fn write_cards(&mut self, cards: &[Card]) -> Result<()> {
        for card in cards {
            if is_structural(&card.key) {
                tracing::debug!("skipping structural keyword {} given as a card", card.key);
                continue;
            }
            self.write_card(card)?;
        }
        Ok(())
    }

    fn write_card(&mut self, card: &Card) -> Result<()> {
        let key = card.key.to_ascii_uppercase();
        let key = key.strip_prefix("HIERARCH ").unwrap_or(&key).to_string();
        // Longer keywords (e.g. the `MP_COSMIC_RAY` mask-plane cards) are written with the
        // HIERARCH convention, as cfitsio does, which astropy and fitsverify read.
        if key.len() > 8 && key.len() <= 60 && card.value.is_some() {
            return self.write_hierarch(&key, card);
        }
        if key.len() > 8
            || key
                .chars()
                .any(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_'))
        {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!(
                    "invalid FITS keyword `{}`: up to 8 of A-Z 0-9 - _",
                    card.key
                ),
            ));
        }
        let comment = ascii(&card.comment);
        let mut status = 0;
        let ptr = self.h().ptr();
        match &card.value {
            None => {
                let text = cstr(&comment);
                match key.as_str() {
                    "HISTORY" => unsafe { sys::ffphis(ptr, text.as_ptr(), &mut status) },
                    _ => unsafe { sys::ffpcom(ptr, text.as_ptr(), &mut status) },
                };
            }
            Some(CardValue::Str(s)) if s.len() > 68 => {
                let (k, v, c) = (cstr(&key), cstr(&ascii(s)), cstr(&comment));
                unsafe { sys::ffukls(ptr, k.as_ptr(), v.as_ptr(), c.as_ptr(), &mut status) };
            }
            Some(value) => {
                let image = format_card(&key, value, &comment);
                let (k, c) = (cstr(&key), cstr(&image));
                unsafe { sys::ffucrd(ptr, k.as_ptr(), c.as_ptr(), &mut status) };
            }
        }
        self.check(status, || format!("cannot write keyword {key}"))
    }

    /// A `HIERARCH KEY = value / comment` card for a keyword longer than 8 characters.
    fn write_hierarch(&mut self, key: &str, card: &Card) -> Result<()> {
        if key
            .chars()
            .any(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_'))
        {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!("invalid FITS keyword `{}`: A-Z 0-9 - _ only", card.key),
            ));
        }
        let value = card.value.as_ref().expect("checked by the caller");
        // `format_card` pads the keyword field to 8 characters before `= ` and right-aligns
        // numbers in 20: only the value's own text is kept here.
        let value_text = format_card("", value, "")[10..].trim().to_string();
        let mut image = format!("HIERARCH {key} = {value_text}");
        if image.len() > 80 {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!("HIERARCH card for `{key}` longer than 80 characters"),
            ));
        }
        let comment = ascii(&card.comment);
        if !comment.is_empty() && image.len() + 3 < 80 {
            image.push_str(" / ");
            image.push_str(&comment);
            // The comment is what gives way to the 80-column limit.
            image.truncate(80);
        }
        let mut status = 0;
        let ptr = self.h().ptr();
        let c = cstr(&image);
        unsafe { sys::ffprec(ptr, c.as_ptr(), &mut status) };
        self.check(status, || format!("cannot write keyword {key}"))
    }

    fn ensure_primary(&mut self) -> Result<()> {
        if self.hdus == 0 {
            let mut status = 0;
            let ptr = self.h().ptr();
            unsafe { sys::ffcrimll(ptr, 8, 0, std::ptr::null_mut(), &mut status) };
            self.check(status, || "cannot create primary HDU".into())?;
            self.hdus += 1;
        }
        Ok(())
    }

    /// Write an empty primary HDU carrying only header cards (e.g. provenance), so that the
    /// extensions that follow start at HDU 1.
    pub fn write_primary_header(&mut self, cards: &[Card]) -> Result<()> {
        if self.hdus != 0 {
            return Err(self.err(
                ErrorKind::InvalidInput,
                "the primary HDU has already been written",
            ));
        }
        self.ensure_primary()?;
        self.write_cards(cards)
    }

    /// Write a binary-table extension from a DataFrame.
    ///
    /// Column types: bool → L, u8 → B, i8/u16/u32/u64 → B/I/J/K with the standard TZERO,
    /// i16/i32/i64 → I/J/K, f32/f64 → E/D, str → nA, fixed-size arrays → repeat counts (nested
    /// arrays add TDIM), lists → variable-length arrays (P, or Q for heaps past 2 GiB).
    /// Nulls: NaN in float columns, TNULL (a value the column does not use) in integer columns,
    /// undefined logicals in boolean columns, empty strings and empty arrays otherwise.
    pub fn write_table(
        &mut self,
        extname: &str,
        df: &DataFrame,
        meta: &TableMeta,
        cards: &[Card],
    ) -> Result<()> {
        self.ensure_primary()?;
        let nrows = df.height();
        let mut plans = Vec::with_capacity(df.width());
        for col in df.columns() {
            let s = col.as_materialized_series();
            plans.push(plan_column(s).map_err(|m| {
                self.err(
                    ErrorKind::InvalidInput,
                    format!("column `{}`: {m}", s.name()),
                )
            })?);
        }
        let names: Vec<_> = df
            .get_column_names()
            .iter()
            .map(|n| cstr(n.as_str()))
            .collect();
        let forms: Vec<_> = plans.iter().map(|p| cstr(&p.tform)).collect();
        let units: Vec<_> = df
            .get_column_names()
            .iter()
            .map(|n| {
                cstr(
                    &meta
                        .get(n.as_str())
                        .and_then(|m| m.unit.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let mut name_ptrs: Vec<*mut c_char> =
            names.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let mut form_ptrs: Vec<*mut c_char> =
            forms.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let mut unit_ptrs: Vec<*mut c_char> =
            units.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let ext = cstr(extname);
        let mut status = 0;
        let ptr = self.h().ptr();
        unsafe {
            sys::ffcrtb(
                ptr,
                ffi::BINARY_TBL,
                nrows as i64,
                plans.len() as c_int,
                name_ptrs.as_mut_ptr(),
                form_ptrs.as_mut_ptr(),
                unit_ptrs.as_mut_ptr(),
                ext.as_ptr(),
                &mut status,
            )
        };
        self.check(status, || format!("cannot create table `{extname}`"))?;
        self.hdus += 1;
        for (i, (col, plan)) in df.columns().iter().zip(&plans).enumerate() {
            let colnum = i as c_int + 1;
            let s = col.as_materialized_series();
            let m = meta.get(s.name().as_str()).cloned().unwrap_or_default();
            if let Some(desc) = &m.description {
                let (k, c) = (cstr(&format!("TTYPE{colnum}")), cstr(&ascii(desc)));
                unsafe { sys::ffmcom(ptr, k.as_ptr(), c.as_ptr(), &mut status) };
            }
            if let Some(tdim) = &plan.tdim {
                self.write_card(&Card::new(
                    &format!("TDIM{colnum}"),
                    tdim.as_str(),
                    "cell shape",
                ))?;
            }
            if let Some(tnull) = plan.tnull {
                self.write_card(&Card::new(
                    &format!("TNULL{colnum}"),
                    tnull,
                    "value of undefined cells",
                ))?;
            }
            for (key, v) in [("TLMIN", m.tlmin), ("TLMAX", m.tlmax)] {
                if let Some(v) = v {
                    let value = if v.fract() == 0.0 && v.abs() < 9e15 {
                        CardValue::Int(v as i64)
                    } else {
                        CardValue::Float(v)
                    };
                    let comment = if key == "TLMIN" {
                        "minimum legal value"
                    } else {
                        "maximum legal value"
                    };
                    self.write_card(&Card {
                        key: format!("{key}{colnum}"),
                        value: Some(value),
                        comment: comment.into(),
                    })?;
                }
            }
            // cfitsio must learn about TNULL/TDIM before data is written.
            unsafe { sys::ffrdef(ptr, &mut status) };
            self.check(status, || format!("cannot define column `{}`", s.name()))?;
            write_column(ptr, colnum, s, plan, &mut status);
            self.check(status, || format!("cannot write column `{}`", s.name()))?;
        }
        self.write_cards(cards)
    }

    /// Write checksums into every HDU, close the file and move it to its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.ensure_primary()?;
        let n = self.hdus;
        for i in 0..n {
            let h = self.h();
            h.move_to(i)?;
            let mut status = 0;
            unsafe { sys::ffpcks(h.ptr(), &mut status) };
            self.check(status, || format!("cannot write the checksum of HDU {i}"))?;
        }
        let handle = self.handle.take().expect("handle lives until finish");
        handle.close()?;
        // Drop-in replacement of an older file happens only now.
        self.out.take().expect("finish runs once").commit()
    }
}

impl Drop for FitsWriter {
    fn drop(&mut self) {
        // Close before AtomicPath removes the temporary file.
        self.handle.take();
    }
}

/// Printable ASCII only (FITS headers allow nothing else).
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// An 80-character card image in the FITS fixed format.
fn format_card(key: &str, value: &CardValue, comment: &str) -> String {
    let v = match value {
        CardValue::Str(s) => {
            let q = format!("'{:<8}'", ascii(s).replace('\'', "''"));
            format!("{q:<20}")
        }
        CardValue::Int(i) => format!("{i:>20}"),
        CardValue::Float(f) => format!("{:>20}", format_float(*f)),
        CardValue::Bool(b) => format!("{:>20}", if *b { "T" } else { "F" }),
        CardValue::Undefined => " ".repeat(20),
        CardValue::Raw(r) => format!("{r:>20}"),
    };
    let mut card = format!("{key:<8}= {v}");
    if !comment.is_empty() {
        card.push_str(" / ");
        card.push_str(comment);
    }
    card.truncate(80);
    card
}

/// A float that reads back bit-identical and is valid FITS (upper-case exponent, a dot).
fn format_float(f: f64) -> String {
    if !f.is_finite() {
        // FITS has no NaN literal for header values; an undefined value is the closest.
        return String::new();
    }
    let s = format!("{f:?}");
    let s = s.replace('e', "E");
    if s.contains('.') || s.contains('E') {
        s
    } else {
        format!("{s}.0")
    }
}

/// How one column is written.
struct ColumnPlan {
    tform: String,
    tdim: Option<String>,
    tnull: Option<i64>,
}

fn type_code(dtype: &DataType) -> std::result::Result<char, String> {
    Ok(match dtype {
        DataType::Boolean => 'L',
        DataType::UInt8 => 'B',
        DataType::Int8 => 'S',
        DataType::Int16 => 'I',
        DataType::UInt16 => 'U',
        DataType::Int32 => 'J',
        DataType::UInt32 => 'V',
        DataType::Int64 => 'K',
        DataType::UInt64 => 'W',
        DataType::Float32 => 'E',
        DataType::Float64 => 'D',
        DataType::String => 'A',
        other => return Err(format!("cannot write type {other} to FITS")),
    })
}

fn plan_column(s: &Series) -> std::result::Result<ColumnPlan, String> {
    match s.dtype() {
        DataType::String => {
            let width = s
                .str()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|v| v.map_or(0, |x| x.len()))
                .max()
                .unwrap_or(0)
                .max(1);
            Ok(ColumnPlan {
                tform: format!("{width}A"),
                tdim: None,
                tnull: None,
            })
        }
        DataType::Array(_, _) => {
            let mut shape = vec![];
            let mut dt = s.dtype().clone();
            while let DataType::Array(inner, n) = dt {
                shape.push(n);
                dt = *inner;
            }
            let code = type_code(&dt)?;
            if code == 'A' {
                return Err("arrays of strings are not supported".into());
            }
            let repeat: usize = shape.iter().product();
            let tdim = (shape.len() > 1).then(|| {
                format!(
                    "({})",
                    shape
                        .iter()
                        .rev()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            });
            let flat = flatten(s);
            let tnull = null_sentinel(&flat)?;
            Ok(ColumnPlan {
                tform: format!("{repeat}{code}"),
                tdim,
                tnull,
            })
        }
        DataType::List(inner) => {
            let code = type_code(inner)?;
            if code == 'A' || matches!(**inner, DataType::List(_) | DataType::Array(_, _)) {
                return Err("lists of strings or nested lists are not supported".into());
            }
            let lens = s.list().map_err(|e| e.to_string())?;
            let (mut maxlen, mut total) = (0usize, 0usize);
            for v in lens.amortized_iter().flatten() {
                maxlen = maxlen.max(v.as_ref().len());
                total += v.as_ref().len();
            }
            let elem = byte_size(inner).unwrap_or(8);
            // P descriptors hold 32-bit heap offsets; Q holds 64-bit ones.
            let desc = if total * elem < (1usize << 31) {
                'P'
            } else {
                'Q'
            };
            Ok(ColumnPlan {
                tform: format!("1{desc}{code}({maxlen})"),
                tdim: None,
                tnull: None,
            })
        }
        other => {
            let code = type_code(other)?;
            let tnull = null_sentinel(s)?;
            Ok(ColumnPlan {
                tform: format!("1{code}"),
                tdim: None,
                tnull,
            })
        }
    }
}

/// Bytes per element of a fixed-width type.
fn byte_size(dtype: &DataType) -> Option<usize> {
    Some(match dtype {
        DataType::Boolean | DataType::UInt8 | DataType::Int8 => 1,
        DataType::Int16 | DataType::UInt16 => 2,
        DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
        DataType::Int64 | DataType::UInt64 | DataType::Float64 => 8,
        _ => return None,
    })
}

/// All elements of a (possibly nested) array column, flattened.
fn flatten(s: &Series) -> Series {
    let mut flat = s.clone();
    while let DataType::Array(_, _) = flat.dtype() {
        flat = flat.array().expect("array dtype").get_inner();
    }
    flat
}

/// For an integer column with nulls: the stored TNULL value, chosen among values the column
/// does not use. Returns the raw (stored) value, after the TZERO offset of unsigned types.
fn null_sentinel(s: &Series) -> std::result::Result<Option<i64>, String> {
    if s.null_count() == 0 || !s.dtype().is_integer() {
        return Ok(None);
    }
    let as_i128 = |v: AnyValue| -> Option<i128> {
        match v {
            AnyValue::Null => None,
            other => other
                .extract::<i64>()
                .map(|x| x as i128)
                .or_else(|| other.extract::<u64>().map(|x| x as i128)),
        }
    };
    let used: std::collections::HashSet<i128> = s.iter().filter_map(as_i128).collect();
    let (lo, hi): (i128, i128) = match s.dtype() {
        DataType::Int8 => (i8::MIN as i128, i8::MAX as i128),
        DataType::UInt8 => (0, u8::MAX as i128),
        DataType::Int16 => (i16::MIN as i128, i16::MAX as i128),
        DataType::UInt16 => (0, u16::MAX as i128),
        DataType::Int32 => (i32::MIN as i128, i32::MAX as i128),
        DataType::UInt32 => (0, u32::MAX as i128),
        DataType::Int64 => (i64::MIN as i128, i64::MAX as i128),
        _ => (0, u64::MAX as i128),
    };
    // Prefer the extreme values that astronomers recognise as "undefined".
    let candidates = (0..1024).flat_map(|k| [lo + k, hi - k]);
    let physical = candidates
        .into_iter()
        .find(|v| !used.contains(v))
        .ok_or("no free value for TNULL")?;
    let raw = match s.dtype() {
        DataType::Int8 => physical + 128,
        DataType::UInt16 => physical - 32768,
        DataType::UInt32 => physical - 2147483648,
        DataType::UInt64 => physical - 9223372036854775808,
        _ => physical,
    };
    Ok(Some(raw as i64))
}

/// Write one column's values into the current table HDU.
fn write_column(
    ptr: *mut sys::fitsfile,
    colnum: c_int,
    s: &Series,
    plan: &ColumnPlan,
    status: &mut c_int,
) {
    let n = s.len();
    match s.dtype() {
        DataType::String => {
            let ca = s.str().expect("string");
            let owned: Vec<std::ffi::CString> =
                ca.iter().map(|v| cstr(&ascii(v.unwrap_or("")))).collect();
            let mut ptrs: Vec<*mut c_char> =
                owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
            if n > 0 {
                unsafe { sys::ffpcls(ptr, colnum, 1, 1, n as i64, ptrs.as_mut_ptr(), status) };
            }
        }
        DataType::List(_) => {
            let ca = s.list().expect("list");
            for row in 0..ca.len() {
                let v = ca
                    .get_as_series(row)
                    .unwrap_or_else(|| Series::new_empty("".into(), s.dtype()));
                if v.is_empty() {
                    unsafe { sys::ffpdes(ptr, colnum, row as i64 + 1, 0, 0, status) };
                } else {
                    write_values(ptr, colnum, row as i64 + 1, &v, None, status);
                }
                if *status != 0 {
                    return;
                }
            }
        }
        DataType::Array(_, _) => write_values(ptr, colnum, 1, &flatten(s), plan.tnull, status),
        _ => write_values(ptr, colnum, 1, s, plan.tnull, status),
    }
}

/// Write a flat series of numbers or booleans starting at `row`, element 1.
fn write_values(
    ptr: *mut sys::fitsfile,
    colnum: c_int,
    row: i64,
    s: &Series,
    tnull: Option<i64>,
    status: &mut c_int,
) {
    let n = s.len() as i64;
    if n == 0 {
        return;
    }
    macro_rules! put {
        ($ca:expr, $t:ty, $code:expr) => {{
            let fill: $t = match tnull {
                // The sentinel's physical value: undo the TZERO offset of the raw TNULL.
                Some(raw) => physical_of::<$t>(raw, s.dtype()),
                None => Default::default(),
            };
            let v: Vec<$t> = $ca.iter().map(|x| x.unwrap_or(fill)).collect();
            unsafe {
                sys::ffpcl(
                    ptr,
                    $code,
                    colnum,
                    row,
                    1,
                    n,
                    v.as_ptr() as *mut c_void,
                    status,
                )
            };
        }};
    }
    match s.dtype() {
        DataType::Boolean => {
            let ca = s.bool().expect("bool");
            let v: Vec<c_char> = ca.iter().map(|x| x.unwrap_or(false) as c_char).collect();
            unsafe {
                sys::ffpcl(
                    ptr,
                    ffi::TLOGICAL,
                    colnum,
                    row,
                    1,
                    n,
                    v.as_ptr() as *mut c_void,
                    status,
                )
            };
            for (i, x) in ca.iter().enumerate() {
                if x.is_none() && *status == 0 {
                    unsafe { sys::ffpclu(ptr, colnum, row + i as i64, 1, 1, status) };
                }
            }
        }
        DataType::UInt8 => put!(s.u8().unwrap(), u8, ffi::TBYTE),
        DataType::Int8 => put!(s.i8().unwrap(), i8, ffi::TSBYTE),
        DataType::Int16 => put!(s.i16().unwrap(), i16, ffi::TSHORT),
        DataType::UInt16 => put!(s.u16().unwrap(), u16, ffi::TUSHORT),
        DataType::Int32 => put!(s.i32().unwrap(), i32, ffi::TINT),
        DataType::UInt32 => put!(s.u32().unwrap(), u32, ffi::TUINT),
        DataType::Int64 => put!(s.i64().unwrap(), i64, ffi::TLONGLONG),
        DataType::UInt64 => put!(s.u64().unwrap(), u64, ffi::TULONGLONG),
        DataType::Float32 => {
            let v: Vec<f32> = s
                .f32()
                .unwrap()
                .iter()
                .map(|x| x.unwrap_or(f32::NAN))
                .collect();
            unsafe {
                sys::ffpcl(
                    ptr,
                    ffi::TFLOAT,
                    colnum,
                    row,
                    1,
                    n,
                    v.as_ptr() as *mut c_void,
                    status,
                )
            };
        }
        _ => {
            let v: Vec<f64> = s
                .cast(&DataType::Float64)
                .unwrap()
                .f64()
                .unwrap()
                .iter()
                .map(|x| x.unwrap_or(f64::NAN))
                .collect();
            unsafe {
                sys::ffpcl(
                    ptr,
                    ffi::TDOUBLE,
                    colnum,
                    row,
                    1,
                    n,
                    v.as_ptr() as *mut c_void,
                    status,
                )
            };
        }
    }
}

/// The physical value whose stored form is `raw` for a column of `dtype`.
fn physical_of<T: TryFrom<i128> + Default>(raw: i64, dtype: &DataType) -> T {
    let raw = raw as i128;
    let physical = match dtype {
        DataType::Int8 => raw - 128,
        DataType::UInt16 => raw + 32768,
        DataType::UInt32 => raw + 2147483648,
        DataType::UInt64 => raw + 9223372036854775808,
        _ => raw,
    };
    T::try_from(physical).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_80_columns_in_fixed_format() {
        let c = format_card("EXPTIME", &CardValue::Float(100.0), "[s] exposure");
        assert_eq!(&c[..30], "EXPTIME =                100.0");
        assert!(c.len() <= 80);
        let c = format_card("OBJECT", &CardValue::Str("M13".into()), "");
        assert_eq!(c.trim_end(), "OBJECT  = 'M13     '");
        assert_eq!(format_float(1e-300), "1E-300");
    }

    #[test]
    fn structural_keywords_are_recognised() {
        assert!(is_structural("NAXIS1"));
        assert!(is_structural("TFORM12"));
        assert!(!is_structural("TFORMAT"));
        assert!(!is_structural("EXPTIME"));
    }
}
