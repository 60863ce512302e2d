//! Table columns: what each column is (from its TFORM/TSCAL/TZERO/TNULL/TDIM keywords) and
//! how its values become a polars column.
//!
//! Fixed-width binary-table columns are decoded here from the raw big-endian row bytes, which
//! cfitsio hands over in large blocks: one pass over the rows serves every selected column,
//! and it is several times faster than cfitsio's per-column conversion. Variable-length arrays
//! and ASCII tables go through cfitsio's column readers, which know the heap and the text
//! formats.

use std::os::raw::{c_char, c_int, c_void};

use fitsio::sys;
use polars::prelude::*;
use rayon::prelude::*;

use super::ffi::{self, Handle};
use super::read::ColumnInfo;
use crate::data::polars_dtype_name;
use crate::error::{ErrorKind, IoError, Result};

/// How stored integers map to physical values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Conv {
    /// Values as stored.
    Plain,
    /// The FITS convention for the other signedness: TZERO = -128 on B gives i8, 32768 on I
    /// gives u16, 2^31 on J gives u32, 2^63 on K gives u64.
    FlipSign,
    /// physical = stored × scale + zero, as f64.
    Scaled { scale: f64, zero: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnLayout {
    /// A fixed-width binary-table column, decoded from raw row bytes.
    Fixed {
        code: char,
        repeat: usize,
        conv: Conv,
        tnull: Option<i64>,
    },
    /// A variable-length array (P or Q descriptor), read through cfitsio.
    VarLen { code: char, conv: Conv },
    /// An ASCII-table column, read through cfitsio.
    Ascii { code: char, width: usize },
    /// A column polars cannot hold; the reason.
    Unsupported(String),
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnSpec {
    pub colnum: c_int,
    pub name: String,
    pub tform: String,
    pub unit: Option<String>,
    /// Byte offset of the column in a binary-table row.
    pub offset: usize,
    /// Bytes the column takes in a binary-table row (0 for ASCII tables).
    pub row_bytes: usize,
    pub layout: ColumnLayout,
    /// Cell shape, slowest axis first.
    pub cell_shape: Vec<usize>,
    pub dtype: DataType,
}

impl ColumnSpec {
    pub fn info(&self) -> ColumnInfo {
        ColumnInfo {
            name: self.name.clone(),
            tform: self.tform.clone(),
            dtype: polars_dtype_name(&self.dtype),
            unit: self.unit.clone(),
            cell_shape: self.cell_shape.clone(),
            variable_length: matches!(self.layout, ColumnLayout::VarLen { .. }),
        }
    }
}

/// Parse a binary TFORM: (repeat, type letter, the rest — e.g. `I(3)` after P/Q).
fn parse_tform(tform: &str) -> Option<(usize, char, String)> {
    let t = tform.trim();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let repeat = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    let mut rest = t[digits.len()..].chars();
    let code = rest.next()?.to_ascii_uppercase();
    Some((repeat, code, rest.collect()))
}

/// Parse TDIM `(a,b,c)` into numpy order (slowest first).
fn parse_tdim(tdim: &str) -> Option<Vec<usize>> {
    let inner = tdim.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut dims: Vec<usize> = inner
        .split(',')
        .map(|d| d.trim().parse().ok())
        .collect::<Option<_>>()?;
    dims.reverse();
    Some(dims)
}

fn conv_for(code: char, scale: f64, zero: f64) -> Conv {
    let flip = scale == 1.0
        && match code {
            'B' => zero == -128.0,
            'I' => zero == 32768.0,
            'J' => zero == 2147483648.0,
            'K' => zero == 9223372036854775808.0,
            _ => false,
        };
    if flip {
        Conv::FlipSign
    } else if scale != 1.0 || zero != 0.0 {
        Conv::Scaled { scale, zero }
    } else {
        Conv::Plain
    }
}

/// The polars type of one element of a column with this code and conversion.
fn element_dtype(code: char, conv: Conv) -> DataType {
    if let Conv::Scaled { .. } = conv {
        if matches!(code, 'B' | 'I' | 'J' | 'K' | 'E' | 'D') {
            return DataType::Float64;
        }
    }
    let flip = conv == Conv::FlipSign;
    match code {
        'L' | 'X' => DataType::Boolean,
        'B' if flip => DataType::Int8,
        'B' => DataType::UInt8,
        'I' if flip => DataType::UInt16,
        'I' => DataType::Int16,
        'J' if flip => DataType::UInt32,
        'J' => DataType::Int32,
        'K' if flip => DataType::UInt64,
        'K' => DataType::Int64,
        'E' => DataType::Float32,
        'D' => DataType::Float64,
        _ => DataType::String,
    }
}

fn nest(dtype: DataType, cell_shape: &[usize]) -> DataType {
    cell_shape
        .iter()
        .rev()
        .fold(dtype, |inner, &n| DataType::Array(Box::new(inner), n))
}

/// Describe column `colnum` (1-based) of the current HDU.
pub(crate) fn read_column_spec(
    h: &mut Handle,
    hdutype: c_int,
    colnum: c_int,
    offset: usize,
) -> Result<ColumnSpec> {
    let key = |k: &str| format!("{k}{colnum}");
    let name = h
        .key_str(&key("TTYPE"))?
        .unwrap_or_else(|| format!("col{colnum}"));
    let tform = h.key_str(&key("TFORM"))?.ok_or_else(|| {
        IoError::new(
            h.path(),
            ErrorKind::Corrupt,
            format!("column {colnum} has no TFORM{colnum} keyword"),
        )
    })?;
    let unit = h.key_str(&key("TUNIT"))?.filter(|u| !u.is_empty());
    let scale = h.key_f64(&key("TSCAL"))?.unwrap_or(1.0);
    let zero = h.key_f64(&key("TZERO"))?.unwrap_or(0.0);
    let path = h.path().to_path_buf();
    let bad_tform = || {
        IoError::new(
            &path,
            ErrorKind::Corrupt,
            format!("column `{name}` has an invalid TFORM `{tform}`"),
        )
    };

    if hdutype == ffi::ASCII_TBL {
        let code = tform
            .trim()
            .chars()
            .next()
            .map(|c| c.to_ascii_uppercase())
            .ok_or_else(bad_tform)?;
        let width: usize = tform.trim()[1..]
            .split('.')
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(bad_tform)?;
        let scaled = scale != 1.0 || zero != 0.0;
        let dtype = match code {
            'A' => DataType::String,
            'I' if width <= 9 => DataType::Int32,
            // 19 digits and more may exceed i64 (e.g. 12345678901234567890): such a column
            // is read as f64 when any of its values does not fit, as i64 otherwise.
            'I' if width >= 19 && !scaled => {
                let tbcol = ascii_tbcol(h, colnum, width)?;
                let tnull = h.key_str(&key("TNULL"))?;
                let rows = h.key_f64("NAXIS2")?.unwrap_or(0.0).max(0.0) as usize;
                let fields = read_ascii_fields(h, tbcol, width, 0, rows)?;
                let all_fit = fields.iter().all(|f| {
                    !matches!(
                        parse_ascii_int(f, tnull.as_deref()),
                        AsciiInt::Float(_) | AsciiInt::Bad
                    )
                });
                if all_fit {
                    DataType::Int64
                } else {
                    DataType::Float64
                }
            }
            'I' => DataType::Int64,
            'E' => DataType::Float32,
            'F' | 'D' => DataType::Float64,
            _ => return Err(bad_tform()),
        };
        let dtype = if code == 'I' && scaled {
            DataType::Float64
        } else {
            dtype
        };
        return Ok(ColumnSpec {
            colnum,
            name,
            tform,
            unit,
            offset: 0,
            row_bytes: 0,
            layout: ColumnLayout::Ascii { code, width },
            cell_shape: vec![],
            dtype,
        });
    }

    let (repeat, code, rest) = parse_tform(&tform).ok_or_else(bad_tform)?;
    let tnull = h.key_f64(&key("TNULL"))?.map(|v| v as i64);
    let tdim = h.key_str(&key("TDIM"))?.and_then(|d| parse_tdim(&d));
    let elem_bytes = |c: char| -> Option<usize> {
        Some(match c {
            'L' | 'B' | 'A' => 1,
            'I' => 2,
            'J' | 'E' => 4,
            'K' | 'D' | 'C' => 8,
            'M' => 16,
            'P' => 8,
            'Q' => 16,
            _ => return None,
        })
    };
    let row_bytes = if code == 'X' {
        repeat.div_ceil(8)
    } else {
        repeat * elem_bytes(code).ok_or_else(bad_tform)?
    };

    let (layout, cell_shape, dtype) = match code {
        'C' | 'M' => (
            ColumnLayout::Unsupported(format!(
                "TFORM `{tform}` is complex, which polars cannot hold"
            )),
            vec![],
            DataType::Null,
        ),
        'P' | 'Q' => {
            let (_, elem, _) = parse_tform(&rest).ok_or_else(bad_tform)?;
            let conv = conv_for(elem, scale, zero);
            match elem {
                'C' | 'M' | 'X' => (
                    ColumnLayout::Unsupported(format!(
                        "variable-length TFORM `{tform}` is not supported"
                    )),
                    vec![],
                    DataType::Null,
                ),
                'A' => (
                    ColumnLayout::VarLen { code: elem, conv },
                    vec![],
                    DataType::String,
                ),
                _ => {
                    let inner = element_dtype(elem, conv);
                    (
                        ColumnLayout::VarLen { code: elem, conv },
                        vec![],
                        DataType::List(Box::new(inner)),
                    )
                }
            }
        }
        'A' => {
            // A string column; TDIM (w, n, …) makes it an array of strings of width w.
            let shape = match &tdim {
                Some(d) if d.len() >= 2 && d.iter().product::<usize>() == repeat => {
                    d[..d.len() - 1].to_vec()
                }
                _ => vec![],
            };
            let dtype = nest(DataType::String, &shape);
            (
                ColumnLayout::Fixed {
                    code,
                    repeat,
                    conv: Conv::Plain,
                    tnull: None,
                },
                shape,
                dtype,
            )
        }
        'L' | 'X' | 'B' | 'I' | 'J' | 'K' | 'E' | 'D' => {
            let conv = if matches!(code, 'L' | 'X') {
                Conv::Plain
            } else {
                conv_for(code, scale, zero)
            };
            let shape = match &tdim {
                Some(d)
                    if d.iter().product::<usize>() == repeat && !(d.len() == 1 && repeat == 1) =>
                {
                    d.clone()
                }
                _ if repeat == 1 => vec![],
                _ => vec![repeat],
            };
            let dtype = if repeat == 0 {
                // A zero-width column: an empty list per row (see `zero_width_column`).
                DataType::List(Box::new(element_dtype(code, conv)))
            } else {
                nest(element_dtype(code, conv), &shape)
            };
            (
                ColumnLayout::Fixed {
                    code,
                    repeat,
                    conv,
                    tnull,
                },
                shape,
                dtype,
            )
        }
        _ => return Err(bad_tform()),
    };
    Ok(ColumnSpec {
        colnum,
        name,
        tform,
        unit,
        offset,
        row_bytes,
        layout,
        cell_shape,
        dtype,
    })
}

/// Read rows `first .. first + n` (0-based) of the given columns.
pub(crate) fn read_columns(
    h: &mut Handle,
    hdutype: c_int,
    specs: &[ColumnSpec],
    row_bytes: usize,
    first: usize,
    n: usize,
) -> Result<Vec<Column>> {
    if hdutype == ffi::BINARY_TBL {
        let naxis1 = h.key_f64("NAXIS1")?.unwrap_or(0.0) as usize;
        if naxis1 != row_bytes {
            return Err(IoError::new(
                h.path(),
                ErrorKind::Corrupt,
                format!("the column widths (TFORMn) add up to {row_bytes} bytes per row but NAXIS1 is {naxis1}"),
            ));
        }
    }
    // Decode every fixed column in one pass over blocks of raw rows.
    let fixed: Vec<&ColumnSpec> = specs
        .iter()
        .filter(|s| matches!(s.layout, ColumnLayout::Fixed { repeat, .. } if repeat > 0))
        .collect();
    let mut decoders: Vec<Decoder> = fixed.iter().map(|s| Decoder::new(s, n)).collect();
    if !fixed.is_empty() && n > 0 {
        // Blocks of about 8 MiB keep the raw copy small next to the decoded columns.
        read_row_blocks(h, first, n, row_bytes, 8 << 20, |block, rows| {
            // Columns decode independently: spread them over the cores.
            decoders
                .par_iter_mut()
                .for_each(|d| d.decode(block, rows, row_bytes));
        })?;
    }
    let mut decoded = fixed
        .iter()
        .zip(decoders)
        .map(|(s, d)| (s.colnum, d.finish(s)))
        .collect::<Vec<_>>();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let col = match &spec.layout {
            ColumnLayout::Fixed {
                repeat: 0,
                code,
                conv,
                ..
            } => Ok(zero_width_column(spec, *code, *conv, n)),
            ColumnLayout::Fixed { .. } => {
                let i = decoded
                    .iter()
                    .position(|(c, _)| *c == spec.colnum)
                    .expect("decoded above");
                decoded.swap_remove(i).1
            }
            ColumnLayout::VarLen { code, conv } => read_varlen(h, spec, *code, *conv, first, n)?,
            ColumnLayout::Ascii { code, width } => read_ascii(h, spec, *code, *width, first, n)?,
            ColumnLayout::Unsupported(why) => {
                return Err(IoError::new(
                    h.path(),
                    ErrorKind::Unsupported,
                    format!("column `{}`: unsupported type: {why}", spec.name),
                ))
            }
        };
        let col = col.map_err(|e| {
            IoError::new(
                h.path(),
                ErrorKind::Corrupt,
                format!("column `{}`: {e}", spec.name),
            )
        })?;
        out.push(col.into_column());
    }
    Ok(out)
}

/// One block of raw rows, and where one column's elements sit in each row.
struct Gather<'a> {
    buf: &'a [u8],
    rows: usize,
    row_bytes: usize,
    off: usize,
    rep: usize,
}

impl Gather<'_> {
    /// Append the column's `rows × rep` elements of `N` bytes each to `out`, converting each
    /// with `conv`. Returns false (and appends nothing) when the block is shorter than the
    /// column's cells claim, so the caller's general path reports it the usual way.
    fn run<T, const N: usize>(&self, out: &mut Vec<T>, conv: impl Fn([u8; N]) -> T) -> bool {
        let (rows, rep) = (self.rows, self.rep);
        let cell_bytes = rep * N;
        if rep == 0 {
            return true;
        }
        if rows == 0
            || self.off + cell_bytes > self.row_bytes
            || self.buf.len() < rows * self.row_bytes
        {
            return rows == 0;
        }
        let start = out.len();
        out.reserve(rows * rep);
        if start == 0 {
            // The first block: the column's whole (untouched) allocation gets huge pages.
            super::read::advise_huge_pages(out.spare_capacity_mut());
        }
        let spare = &mut out.spare_capacity_mut()[..rows * rep];
        for (cells, row) in spare
            .chunks_exact_mut(rep)
            .zip(self.buf.chunks_exact(self.row_bytes))
        {
            let raw = &row[self.off..self.off + cell_bytes];
            for (slot, b) in cells.iter_mut().zip(raw.chunks_exact(N)) {
                slot.write(conv(b.try_into().expect("chunks of N bytes")));
            }
        }
        // SAFETY: the loop above wrote all `rows × rep` slots after `start` (the zip ends with
        // the shorter side, and both sides have exactly rows × rep elements by the checks above).
        unsafe { out.set_len(start + rows * rep) };
        true
    }
}

/// Accumulates the decoded values of one fixed column across row blocks.
enum Values {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<Option<bool>>),
    Str(Vec<String>),
}

struct Decoder {
    offset: usize,
    code: char,
    repeat: usize,
    conv: Conv,
    tnull: Option<i64>,
    /// Characters per string element (A columns).
    str_width: usize,
    values: Values,
    /// For integer columns with TNULL: whether each element is defined.
    valid: Vec<bool>,
}

impl Decoder {
    fn new(spec: &ColumnSpec, rows: usize) -> Decoder {
        let ColumnLayout::Fixed {
            code,
            repeat,
            conv,
            tnull,
        } = spec.layout.clone()
        else {
            unreachable!()
        };
        let per_row = if code == 'A' {
            spec.cell_shape.iter().product::<usize>().max(1)
        } else {
            repeat
        };
        let cap = rows * per_row;
        let values = match (code, conv) {
            ('L' | 'X', _) => Values::Bool(Vec::with_capacity(cap)),
            ('A', _) => Values::Str(Vec::with_capacity(cap)),
            (_, Conv::Scaled { .. }) => Values::F64(Vec::with_capacity(cap)),
            ('B', Conv::FlipSign) => Values::I8(Vec::with_capacity(cap)),
            ('B', _) => Values::U8(Vec::with_capacity(cap)),
            ('I', Conv::FlipSign) => Values::U16(Vec::with_capacity(cap)),
            ('I', _) => Values::I16(Vec::with_capacity(cap)),
            ('J', Conv::FlipSign) => Values::U32(Vec::with_capacity(cap)),
            ('J', _) => Values::I32(Vec::with_capacity(cap)),
            ('K', Conv::FlipSign) => Values::U64(Vec::with_capacity(cap)),
            ('K', _) => Values::I64(Vec::with_capacity(cap)),
            ('E', _) => Values::F32(Vec::with_capacity(cap)),
            _ => Values::F64(Vec::with_capacity(cap)),
        };
        let str_width = if code == 'A' { repeat / per_row } else { 0 };
        Decoder {
            offset: spec.offset,
            code,
            repeat,
            conv,
            tnull,
            str_width,
            values,
            valid: Vec::new(),
        }
    }

    fn decode(&mut self, buf: &[u8], rows: usize, row_bytes: usize) {
        let (off, rep, tnull) = (self.offset, self.repeat, self.tnull);
        // Plain numeric columns (no TNULL, no scaling to f64): a strided gather straight into
        // the column's memory. This is most columns of an event list, and it runs at memory
        // speed where the general path below spends its time growing vectors element by element.
        if tnull.is_none() {
            let g = Gather {
                buf,
                rows,
                row_bytes,
                off,
                rep,
            };
            let fast = match (&mut self.values, self.code) {
                (Values::F64(v), 'D') if !matches!(self.conv, Conv::Scaled { .. }) => {
                    g.run(v, f64::from_be_bytes)
                }
                (Values::F32(v), 'E') => g.run(v, f32::from_be_bytes),
                (Values::U8(v), 'B') => g.run(v, |b: [u8; 1]| b[0]),
                (Values::I8(v), 'B') => g.run(v, |b: [u8; 1]| (b[0] ^ 0x80) as i8),
                (Values::I16(v), 'I') => g.run(v, i16::from_be_bytes),
                (Values::U16(v), 'I') => g.run(v, |b| u16::from_be_bytes(b) ^ 0x8000),
                (Values::I32(v), 'J') => g.run(v, i32::from_be_bytes),
                (Values::U32(v), 'J') => g.run(v, |b| u32::from_be_bytes(b) ^ 0x8000_0000),
                (Values::I64(v), 'K') => g.run(v, i64::from_be_bytes),
                (Values::U64(v), 'K') => {
                    g.run(v, |b| u64::from_be_bytes(b) ^ 0x8000_0000_0000_0000)
                }
                _ => false,
            };
            if fast {
                return;
            }
        }
        let cells = (0..rows).map(|r| &buf[r * row_bytes + off..]);
        let valid = &mut self.valid;
        // The hot loop of table reading: one big-endian conversion per element, and the null
        // check only for columns that declare TNULL.
        macro_rules! ints {
            ($v:expr, $raw:ty, $n:expr, $map:expr) => {
                for cell in cells {
                    for b in cell[..rep * $n].chunks_exact($n) {
                        let raw = <$raw>::from_be_bytes(b.try_into().unwrap());
                        if let Some(t) = tnull {
                            valid.push(raw as i64 != t);
                        }
                        $v.push($map(raw));
                    }
                }
            };
        }
        match (&mut self.values, self.code) {
            (Values::Bool(v), 'L') => {
                for cell in cells {
                    v.extend(cell[..rep].iter().map(|&b| match b {
                        b'T' => Some(true),
                        b'F' => Some(false),
                        _ => None,
                    }));
                }
            }
            (Values::Bool(v), _) => {
                // X: bits, most significant first.
                for cell in cells {
                    v.extend((0..rep).map(|k| Some(cell[k / 8] & (0x80 >> (k % 8)) != 0)));
                }
            }
            (Values::Str(v), _) => {
                let w = self.str_width.max(1);
                for cell in cells {
                    for chunk in cell[..rep].chunks(w) {
                        // A FITS string ends at its first NUL. Trailing blanks are kept, as
                        // astropy keeps them, so both tools give the same values.
                        let end = chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len());
                        v.push(String::from_utf8_lossy(&chunk[..end]).into_owned());
                    }
                }
            }
            (Values::F64(v), 'D') if !matches!(self.conv, Conv::Scaled { .. }) => {
                for cell in cells {
                    v.extend(
                        cell[..rep * 8]
                            .chunks_exact(8)
                            .map(|b| f64::from_be_bytes(b.try_into().unwrap())),
                    );
                }
            }
            (Values::F64(v), code) => {
                let (scale, zero) = match self.conv {
                    Conv::Scaled { scale, zero } => (scale, zero),
                    _ => (1.0, 0.0),
                };
                let n = match code {
                    'B' => 1,
                    'I' => 2,
                    'J' | 'E' => 4,
                    _ => 8,
                };
                for cell in cells {
                    for k in 0..rep {
                        let b = &cell[k * n..k * n + n];
                        let (raw, is_null) = match code {
                            'B' => (b[0] as f64, tnull == Some(b[0] as i64)),
                            'I' => {
                                let x = i16::from_be_bytes(b.try_into().unwrap());
                                (x as f64, tnull == Some(x as i64))
                            }
                            'J' => {
                                let x = i32::from_be_bytes(b.try_into().unwrap());
                                (x as f64, tnull == Some(x as i64))
                            }
                            'K' => {
                                let x = i64::from_be_bytes(b.try_into().unwrap());
                                (x as f64, tnull == Some(x))
                            }
                            'E' => (f32::from_be_bytes(b.try_into().unwrap()) as f64, false),
                            _ => (f64::from_be_bytes(b.try_into().unwrap()), false),
                        };
                        v.push(if is_null {
                            f64::NAN
                        } else {
                            raw * scale + zero
                        });
                    }
                }
            }
            (Values::F32(v), _) => {
                for cell in cells {
                    v.extend(
                        (0..rep).map(|k| {
                            f32::from_be_bytes(cell[k * 4..k * 4 + 4].try_into().unwrap())
                        }),
                    );
                }
            }
            (Values::U8(v), _) => ints!(v, u8, 1, |x: u8| x),
            (Values::I8(v), _) => ints!(v, u8, 1, |x: u8| (x ^ 0x80) as i8),
            (Values::I16(v), _) => ints!(v, i16, 2, |x: i16| x),
            (Values::U16(v), _) => ints!(v, i16, 2, |x: i16| (x as u16) ^ 0x8000),
            (Values::I32(v), _) => ints!(v, i32, 4, |x: i32| x),
            (Values::U32(v), _) => ints!(v, i32, 4, |x: i32| (x as u32) ^ 0x8000_0000),
            (Values::I64(v), _) => ints!(v, i64, 8, |x: i64| x),
            (Values::U64(v), _) => ints!(v, i64, 8, |x: i64| (x as u64) ^ 0x8000_0000_0000_0000),
        }
    }

    fn finish(self, spec: &ColumnSpec) -> PolarsResult<Series> {
        let name: PlSmallStr = spec.name.as_str().into();
        // Integer columns without TNULL have no nulls: build them without validity masks.
        let valid = self.valid;
        macro_rules! int_series {
            ($v:expr) => {{
                if self.tnull.is_some() {
                    let opt: Vec<_> = $v
                        .into_iter()
                        .zip(&valid)
                        .map(|(x, &ok)| ok.then_some(x))
                        .collect();
                    Series::new(name.clone(), opt)
                } else {
                    Series::from_vec(name.clone(), $v)
                }
            }};
        }
        let flat = match self.values {
            Values::U8(v) => int_series!(v),
            Values::I8(v) => int_series!(v),
            Values::I16(v) => int_series!(v),
            Values::U16(v) => int_series!(v),
            Values::I32(v) => int_series!(v),
            Values::U32(v) => int_series!(v),
            Values::I64(v) => int_series!(v),
            Values::U64(v) => int_series!(v),
            // `from_vec` hands the buffer over; `Series::new` on a Vec would copy it.
            Values::F32(v) => Series::from_vec(name.clone(), v),
            Values::F64(v) => Series::from_vec(name.clone(), v),
            Values::Bool(v) => Series::new(name.clone(), v),
            Values::Str(v) => Series::new(name.clone(), v),
        };
        reshape_cells(flat, &spec.cell_shape)
    }
}

/// Turn a flat series of all cells' elements into fixed-size (nested) array cells.
fn reshape_cells(flat: Series, cell_shape: &[usize]) -> PolarsResult<Series> {
    if cell_shape.is_empty() {
        return Ok(flat);
    }
    let mut dims = vec![ReshapeDimension::Infer];
    for &d in cell_shape {
        dims.push(ReshapeDimension::new_dimension(d as u64));
    }
    if flat.is_empty() {
        let dtype = nest(flat.dtype().clone(), cell_shape);
        return Ok(Series::new_empty(flat.name().clone(), &dtype));
    }
    flat.reshape_array(&dims)
}

/// Read a variable-length array column row by row through cfitsio (which follows the heap,
/// THEAP and any gap before the heap).
fn read_varlen(
    h: &mut Handle,
    spec: &ColumnSpec,
    code: char,
    conv: Conv,
    first: usize,
    n: usize,
) -> Result<PolarsResult<Series>> {
    let name: PlSmallStr = spec.name.as_str().into();
    // PCOUNT counts any gap between the rows and the heap (THEAP > NAXIS1 × NAXIS2); the
    // heap itself is what follows THEAP.
    let pcount = h.key_f64("PCOUNT")?.unwrap_or(0.0).max(0.0) as i64;
    let rows_bytes = h.key_f64("NAXIS1")?.unwrap_or(0.0) * h.key_f64("NAXIS2")?.unwrap_or(0.0);
    let gap = match h.key_f64("THEAP")? {
        Some(theap) if theap > rows_bytes => (theap - rows_bytes) as i64,
        _ => 0,
    };
    let heap = pcount.saturating_sub(gap).max(0);
    let mut lengths = Vec::with_capacity(n);
    for r in 0..n {
        let (mut len, mut addr) = (0i64, 0i64);
        let mut status = 0;
        unsafe {
            sys::ffgdesll(
                h.ptr(),
                spec.colnum,
                (first + r + 1) as i64,
                &mut len,
                &mut addr,
                &mut status,
            )
        };
        h.check(status, || {
            format!(
                "cannot read the array descriptor of column `{}` row {}",
                spec.name,
                first + r + 1
            )
        })?;
        // The descriptor must point inside the heap (PCOUNT bytes): a damaged descriptor or
        // a fixed-width column mislabelled `P` would otherwise size the row's buffer.
        let bytes = if code == 'X' {
            (len + 7) / 8
        } else {
            len.saturating_mul(heap_element_bytes(code))
        };
        if len < 0 || addr < 0 || addr.saturating_add(bytes) > heap {
            return Err(IoError::new(
                h.path(),
                ErrorKind::Corrupt,
                format!(
                    "column `{}` row {}: its array descriptor ({len} elements at heap byte {addr}) points outside the {heap}-byte heap (damaged table)",
                    spec.name,
                    first + r + 1
                ),
            ));
        }
        lengths.push(len as usize);
    }
    if code == 'A' {
        let mut out = Vec::with_capacity(n);
        for (r, &len) in lengths.iter().enumerate() {
            let mut buf = vec![0 as c_char; len + 1];
            let mut p = buf.as_mut_ptr();
            let mut anynul = 0;
            let mut status = 0;
            unsafe {
                sys::ffgcvs(
                    h.ptr(),
                    spec.colnum,
                    (first + r + 1) as i64,
                    1,
                    1,
                    c"".as_ptr() as *mut c_char,
                    &mut p,
                    &mut anynul,
                    &mut status,
                )
            };
            h.check(status, || {
                format!("cannot read column `{}` row {}", spec.name, first + r + 1)
            })?;
            out.push(ffi::from_cbuf(&buf).trim_end().to_string());
        }
        return Ok(Ok(Series::new(name, out)));
    }
    let elem = element_dtype(code, conv);
    let (datatype, size) = cfitsio_type(&elem);
    let mut rows: Vec<Series> = Vec::with_capacity(n);
    let mut raw: Vec<u8> = Vec::new();
    for (r, &len) in lengths.iter().enumerate() {
        raw.resize(len * size + 8, 0);
        let mut anynul = 0;
        let mut status = 0;
        let mut nan = f64::NAN;
        let mut nanf = f32::NAN;
        let nulptr: *mut c_void = match elem {
            DataType::Float64 => &mut nan as *mut f64 as *mut c_void,
            DataType::Float32 => &mut nanf as *mut f32 as *mut c_void,
            _ => std::ptr::null_mut(),
        };
        if len > 0 {
            unsafe {
                sys::ffgcv(
                    h.ptr(),
                    datatype,
                    spec.colnum,
                    (first + r + 1) as i64,
                    1,
                    len as i64,
                    nulptr,
                    raw.as_mut_ptr() as *mut c_void,
                    &mut anynul,
                    &mut status,
                )
            };
            h.check(status, || {
                format!("cannot read column `{}` row {}", spec.name, first + r + 1)
            })?;
        }
        rows.push(native_series(&elem, &raw[..len * size], len));
    }
    let mut s = Series::new(name, rows);
    if s.is_empty() {
        s = Series::new_empty(s.name().clone(), &DataType::List(Box::new(elem)));
    }
    Ok(Ok(s))
}

/// Bytes per element of a variable-length array in the heap, by TFORM code.
fn heap_element_bytes(code: char) -> i64 {
    match code {
        'L' | 'B' | 'A' => 1,
        'I' => 2,
        'J' | 'E' => 4,
        'K' | 'D' | 'C' => 8,
        'M' => 16,
        _ => 1,
    }
}

/// The cfitsio type code and element size for reading into a native buffer of `dtype`.
fn cfitsio_type(dtype: &DataType) -> (c_int, usize) {
    match dtype {
        DataType::UInt8 => (ffi::TBYTE, 1),
        DataType::Int8 => (ffi::TSBYTE, 1),
        DataType::Boolean => (ffi::TLOGICAL, 1),
        DataType::Int16 => (ffi::TSHORT, 2),
        DataType::UInt16 => (ffi::TUSHORT, 2),
        DataType::Int32 => (ffi::TINT, 4),
        DataType::UInt32 => (ffi::TUINT, 4),
        DataType::Int64 => (ffi::TLONGLONG, 8),
        DataType::UInt64 => (ffi::TULONGLONG, 8),
        DataType::Float32 => (ffi::TFLOAT, 4),
        _ => (ffi::TDOUBLE, 8),
    }
}

/// A series of `len` values of `dtype` from a native-endian buffer.
fn native_series(dtype: &DataType, raw: &[u8], len: usize) -> Series {
    macro_rules! from_ne {
        ($t:ty) => {{
            let n = std::mem::size_of::<$t>();
            let v: Vec<$t> = (0..len)
                .map(|i| <$t>::from_ne_bytes(raw[i * n..i * n + n].try_into().unwrap()))
                .collect();
            Series::from_vec("".into(), v)
        }};
    }
    match dtype {
        DataType::UInt8 => from_ne!(u8),
        DataType::Int8 => from_ne!(i8),
        DataType::Boolean => Series::new(
            "".into(),
            raw[..len].iter().map(|&b| b != 0).collect::<Vec<_>>(),
        ),
        DataType::Int16 => from_ne!(i16),
        DataType::UInt16 => from_ne!(u16),
        DataType::Int32 => from_ne!(i32),
        DataType::UInt32 => from_ne!(u32),
        DataType::Int64 => from_ne!(i64),
        DataType::UInt64 => from_ne!(u64),
        DataType::Float32 => from_ne!(f32),
        _ => from_ne!(f64),
    }
}

/// Read an ASCII-table column through cfitsio, which parses the text fields.
fn read_ascii(
    h: &mut Handle,
    spec: &ColumnSpec,
    code: char,
    width: usize,
    first: usize,
    n: usize,
) -> Result<PolarsResult<Series>> {
    let name: PlSmallStr = spec.name.as_str().into();
    let mut anynul = 0;
    let mut status = 0;
    if code == 'A' {
        let mut bufs: Vec<Vec<c_char>> = (0..n).map(|_| vec![0 as c_char; width + 1]).collect();
        let mut ptrs: Vec<*mut c_char> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        if n > 0 {
            unsafe {
                sys::ffgcvs(
                    h.ptr(),
                    spec.colnum,
                    first as i64 + 1,
                    1,
                    n as i64,
                    c"".as_ptr() as *mut c_char,
                    ptrs.as_mut_ptr(),
                    &mut anynul,
                    &mut status,
                )
            };
        }
        h.check(status, || format!("cannot read column `{}`", spec.name))?;
        let v: Vec<String> = bufs
            .iter()
            .map(|b| ffi::from_cbuf(b).trim_end().to_string())
            .collect();
        return Ok(Ok(Series::new(name, v)));
    }
    if code == 'I' && width >= 16 && matches!(spec.dtype, DataType::Int64 | DataType::Float64) {
        // Integers of 16 digits and more: cfitsio parses the text through a double, which
        // loses the last digits past 2^53 and overflows at ±9.2e18; parse them exactly, as
        // astropy does. Scaled columns (TSCAL/TZERO) keep cfitsio's reading below.
        let scaled = h.key_f64(&format!("TSCAL{}", spec.colnum))?.unwrap_or(1.0) != 1.0
            || h.key_f64(&format!("TZERO{}", spec.colnum))?.unwrap_or(0.0) != 0.0;
        if !scaled {
            let tbcol = ascii_tbcol(h, spec.colnum, width)?;
            let tnull = h.key_str(&format!("TNULL{}", spec.colnum))?;
            let fields = read_ascii_fields(h, tbcol, width, first, n)?;
            let mut ints: Vec<Option<i64>> = Vec::with_capacity(n);
            let mut floats: Vec<Option<f64>> = Vec::with_capacity(n);
            for (r, f) in fields.iter().enumerate() {
                let (i, x) = match parse_ascii_int(f, tnull.as_deref()) {
                    AsciiInt::Null => (None, None),
                    AsciiInt::Int(v) => (Some(v), Some(v as f64)),
                    // Not an integer (`1.5`, `1E3` in an I field): cfitsio's truncation
                    // when the column is i64 (every value of an i64 column fits).
                    AsciiInt::Float(v) => ((v.abs() < 9.2e18).then_some(v as i64), Some(v)),
                    AsciiInt::Bad => {
                        return Err(IoError::new(
                            h.path(),
                            ErrorKind::Corrupt,
                            format!(
                                "column `{}` row {}: cannot read a number from the ASCII table field `{}`",
                                spec.name,
                                first + r + 1,
                                String::from_utf8_lossy(f)
                                    .chars()
                                    .map(|c| if c.is_control() { '?' } else { c })
                                    .collect::<String>()
                                    .trim()
                            ),
                        ))
                    }
                };
                ints.push(i);
                floats.push(x);
            }
            return Ok(Ok(if spec.dtype == DataType::Int64 {
                Series::new(name, ints)
            } else {
                Series::new(name, floats)
            }));
        }
    }
    if matches!(spec.dtype, DataType::Int32 | DataType::Int64) {
        // Integers: undefined fields (TNULL) become nulls.
        let mut v = vec![0i64; n];
        let mut flags = vec![0 as c_char; n];
        if n > 0 {
            unsafe {
                sys::ffgcf(
                    h.ptr(),
                    ffi::TLONGLONG,
                    spec.colnum,
                    first as i64 + 1,
                    1,
                    n as i64,
                    v.as_mut_ptr() as *mut c_void,
                    flags.as_mut_ptr(),
                    &mut anynul,
                    &mut status,
                )
            };
        }
        h.check(status, || format!("cannot read column `{}`", spec.name))?;
        let opt: Vec<Option<i64>> = v
            .iter()
            .zip(&flags)
            .map(|(&x, &f)| (f == 0).then_some(x))
            .collect();
        let s = Series::new(name, opt);
        return Ok(s.cast(&spec.dtype));
    }
    let mut v = vec![0f64; n];
    let mut nan = f64::NAN;
    if n > 0 {
        unsafe {
            sys::ffgcv(
                h.ptr(),
                ffi::TDOUBLE,
                spec.colnum,
                first as i64 + 1,
                1,
                n as i64,
                &mut nan as *mut f64 as *mut c_void,
                v.as_mut_ptr() as *mut c_void,
                &mut anynul,
                &mut status,
            )
        };
    }
    h.check(status, || format!("cannot read column `{}`", spec.name))?;
    Ok(Series::from_vec(name, v).cast(&spec.dtype))
}

/// The 0-based byte offset of an ASCII-table column in its row (TBCOLn − 1), checked against
/// the row length.
fn ascii_tbcol(h: &mut Handle, colnum: c_int, width: usize) -> Result<usize> {
    let tbcol = h.key_f64(&format!("TBCOL{colnum}"))?.unwrap_or(0.0);
    let naxis1 = h.key_f64("NAXIS1")?.unwrap_or(0.0);
    if tbcol < 1.0 || tbcol - 1.0 + width as f64 > naxis1 {
        return Err(IoError::new(
            h.path(),
            ErrorKind::Corrupt,
            format!("column {colnum}: TBCOL{colnum} = {tbcol} with a width of {width} does not fit in rows of NAXIS1 = {naxis1} characters"),
        ));
    }
    Ok(tbcol as usize - 1)
}

/// The raw text of one ASCII-table column for rows `first .. first + n`, read in blocks.
fn read_ascii_fields(
    h: &mut Handle,
    tbcol: usize,
    width: usize,
    first: usize,
    n: usize,
) -> Result<Vec<Vec<u8>>> {
    let naxis1 = h.key_f64("NAXIS1")?.unwrap_or(0.0).max(1.0) as usize;
    let mut out = Vec::with_capacity(n);
    read_row_blocks(h, first, n, naxis1, 4 << 20, |block, _| {
        out.extend(
            block
                .chunks_exact(naxis1)
                .map(|row| row[tbcol..tbcol + width].to_vec()),
        );
    })?;
    Ok(out)
}

/// Read raw rows `first .. first + n` (0-based) of `row_bytes` each in blocks of about
/// `block_bytes`, handing each block and its row count to `on_block`.
fn read_row_blocks(
    h: &mut Handle,
    first: usize,
    n: usize,
    row_bytes: usize,
    block_bytes: usize,
    mut on_block: impl FnMut(&[u8], usize),
) -> Result<()> {
    let block_rows = (block_bytes / row_bytes.max(1)).max(1);
    let mut buf = vec![0u8; block_rows.min(n) * row_bytes];
    let mut done = 0;
    while done < n {
        let rows = block_rows.min(n - done);
        let bytes = rows * row_bytes;
        let mut status = 0;
        unsafe {
            sys::ffgtbb(
                h.ptr(),
                (first + done + 1) as i64,
                1,
                bytes as i64,
                buf.as_mut_ptr(),
                &mut status,
            )
        };
        h.check(status, || {
            format!(
                "cannot read table rows {}..{}",
                first + done + 1,
                first + done + rows
            )
        })?;
        on_block(&buf[..bytes], rows);
        done += rows;
    }
    Ok(())
}

/// One field of an ASCII-table integer column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AsciiInt {
    /// The TNULL string.
    Null,
    /// An integer that fits i64 (a blank field is 0, as cfitsio and astropy read it).
    Int(i64),
    /// A number that does not fit i64, or is not an integer.
    Float(f64),
    /// Not a number.
    Bad,
}

/// Parse an ASCII-table integer field as cfitsio does (blanks anywhere are ignored; TNULL
/// matches the start of the field), but exactly: i64 when the value fits.
fn parse_ascii_int(field: &[u8], tnull: Option<&str>) -> AsciiInt {
    if let Some(t) = tnull {
        if !t.is_empty() && field.starts_with(t.as_bytes()) {
            return AsciiInt::Null;
        }
    }
    let text: String = field
        .iter()
        .filter(|&&b| b != b' ')
        .map(|&b| b as char)
        .collect();
    if text.is_empty() {
        return AsciiInt::Int(0);
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse::<i64>() {
            return AsciiInt::Int(v);
        }
    }
    match text.replace(['D', 'd'], "E").parse::<f64>() {
        Ok(v) if v.is_finite() => AsciiInt::Float(v),
        _ => AsciiInt::Bad,
    }
}

/// A column of `n` rows for a zero-width binary-table column (`0A`, `0E`, … — astropy
/// writes them, e.g. for an empty string column, and shows each cell as empty): an empty
/// string per row for `A`, an empty list per row otherwise. The column is kept rather than
/// dropped so that every column of the header is in the table, with the table's height.
fn zero_width_column(spec: &ColumnSpec, code: char, conv: Conv, n: usize) -> Series {
    let name: PlSmallStr = spec.name.as_str().into();
    if code == 'A' {
        return Series::new(name, vec![""; n]);
    }
    let inner = element_dtype(code, conv);
    if n == 0 {
        return Series::new_empty(name, &DataType::List(Box::new(inner)));
    }
    let empty = Series::new_empty("".into(), &inner);
    Series::new(name, vec![empty; n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tform_and_tdim() {
        assert_eq!(parse_tform("1J"), Some((1, 'J', String::new())));
        assert_eq!(parse_tform("32X"), Some((32, 'X', String::new())));
        assert_eq!(parse_tform("PI(3)"), Some((1, 'P', "I(3)".into())));
        assert_eq!(parse_tdim("(5,10)"), Some(vec![10, 5]));
        assert_eq!(conv_for('I', 1.0, 32768.0), Conv::FlipSign);
        assert_eq!(
            conv_for('E', 3.0, 0.4),
            Conv::Scaled {
                scale: 3.0,
                zero: 0.4
            }
        );
    }
}
