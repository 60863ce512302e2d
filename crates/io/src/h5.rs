//! HDF5 files through the `hdf5` crate (hdf5-metno, with a bundled static HDF5): list groups,
//! datasets and attributes; read numeric datasets of any rank and byte order into
//! [`NdData`]; compound datasets into polars; fixed and variable-length strings; slices of
//! large chunked datasets; and write datasets with chunking, gzip and shuffle.

use std::os::raw::c_void;
use std::path::{Path, PathBuf};

use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Datatype, File, Hyperslab, Location, Selection, SliceOrIndex};
use ndarray::{ArrayD, IxDyn};
use polars::prelude::*;
use serde::Serialize;

use crate::atomic::AtomicPath;
use crate::data::NdData;
use crate::error::{ErrorKind, IoError, Result};

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// An integer scalar.
    Int(i64),
    /// A real scalar.
    Float(f64),
    /// A string.
    Str(String),
    /// A numeric array (converted to f64).
    Array(Vec<f64>),
    /// Something deepsky does not decode; its HDF5 type.
    Other(String),
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.into())
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v)
    }
}
impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Float(v)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

/// Group or dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum H5Kind {
    /// A group.
    Group,
    /// A dataset.
    Dataset,
}

/// One field of a compound dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldInfo {
    /// Field name.
    pub name: String,
    /// deepsky dtype name (`i32`, `str`, `list[i16]`, …).
    pub dtype: String,
    /// Shape of one element of the field (empty for scalars).
    pub shape: Vec<usize>,
}

/// A summary of one group or dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct H5Item {
    /// Full path, e.g. `/agroup/anarray1`.
    pub path: String,
    /// Group or dataset.
    pub kind: H5Kind,
    /// Dataset shape, slowest axis first.
    pub shape: Vec<usize>,
    /// deepsky dtype name, or `compound` for compound datasets.
    pub dtype: Option<String>,
    /// Fields of a compound dataset.
    pub fields: Vec<FieldInfo>,
    /// Chunk shape, if chunked.
    pub chunks: Option<Vec<usize>>,
    /// Attributes, by name.
    pub attrs: Vec<(String, AttrValue)>,
    /// Shape of one element of a dataset whose element type is an HDF5 array (`[f64; 3]`):
    /// reading it appends these axes to `shape`, as h5py does. Empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cell_shape: Vec<usize>,
    /// The dataset's filter pipeline in order (`shuffle`, `gzip`, `szip`, `Blosc`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
}

fn h5err(path: &Path, context: &str, e: hdf5::Error) -> IoError {
    IoError::new(path, ErrorKind::Corrupt, format!("{context}: {e}"))
}

/// The deepsky name of a scalar HDF5 type, or None if it is not a plain scalar.
fn scalar_name(t: &TypeDescriptor) -> Option<&'static str> {
    Some(match t {
        TypeDescriptor::Integer(IntSize::U1) => "i8",
        TypeDescriptor::Integer(IntSize::U2) => "i16",
        TypeDescriptor::Integer(IntSize::U4) => "i32",
        TypeDescriptor::Integer(IntSize::U8) => "i64",
        TypeDescriptor::Unsigned(IntSize::U1) => "u8",
        TypeDescriptor::Unsigned(IntSize::U2) => "u16",
        TypeDescriptor::Unsigned(IntSize::U4) => "u32",
        TypeDescriptor::Unsigned(IntSize::U8) => "u64",
        TypeDescriptor::Float(FloatSize::U4) => "f32",
        TypeDescriptor::Float(FloatSize::U8) => "f64",
        TypeDescriptor::Boolean => "bool",
        TypeDescriptor::Enum(e) => return scalar_name(&e.base_type()),
        TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_)
        | TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode => "str",
        _ => return None,
    })
}

/// Element type and cell shape of nested fixed arrays.
fn unwrap_arrays(t: &TypeDescriptor) -> (&TypeDescriptor, Vec<usize>) {
    let mut shape = vec![];
    let mut t = t;
    while let TypeDescriptor::FixedArray(inner, n) = t {
        shape.push(*n);
        t = inner;
    }
    (t, shape)
}

fn type_name(t: &TypeDescriptor) -> String {
    let (leaf, shape) = unwrap_arrays(t);
    match (scalar_name(leaf), shape.is_empty(), leaf) {
        (Some(n), true, _) => n.to_string(),
        (Some(n), false, _) => format!("list[{n}]"),
        (None, _, TypeDescriptor::VarLenArray(inner)) => format!("list[{}]", type_name(inner)),
        (None, _, TypeDescriptor::Compound(_)) => "compound".into(),
        _ => t.to_string(),
    }
}

/// An HDF5 file open for reading.
///
/// ```no_run
/// use deepsky_io::h5::H5Reader;
/// let f = H5Reader::open("showers.h5")?;
/// for item in f.items()? {
///     println!("{} {:?} {:?}", item.path, item.kind, item.shape);
/// }
/// let energy = f.read("/energy")?;
/// # Ok::<(), deepsky_io::IoError>(())
/// ```
pub struct H5Reader {
    file: File,
    path: PathBuf,
}

impl H5Reader {
    /// Open a file read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<H5Reader> {
        let path = path.as_ref().to_path_buf();
        std::fs::metadata(&path).map_err(|e| IoError::from_std(&path, e))?;
        // HDF5 prints its error stack to stderr by default; our errors carry the message.
        hdf5::silence_errors(true);
        let file = File::open(&path).map_err(|e| h5err(&path, "cannot open as HDF5", e))?;
        Ok(H5Reader { file, path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn not_found(&self, what: &str) -> IoError {
        IoError::new(
            &self.path,
            ErrorKind::NotFound,
            format!("no dataset `{what}`"),
        )
    }

    /// Open a dataset by path.
    pub fn dataset(&self, name: &str) -> Result<Dataset> {
        let rel = name.trim_start_matches('/');
        if rel.is_empty() || !self.exists(rel) {
            return Err(self.not_found(name));
        }
        self.file.dataset(rel).map_err(|_| {
            IoError::new(
                &self.path,
                ErrorKind::NotFound,
                format!("`{name}` is not a dataset"),
            )
        })
    }

    fn exists(&self, rel: &str) -> bool {
        // link_exists fails on paths whose parents are missing; check each level.
        let mut so_far = String::new();
        for part in rel.split('/') {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if !self.file.link_exists(&so_far) {
                return false;
            }
        }
        true
    }

    /// Every group and dataset below the root, depth first in name order (as h5py's visit).
    pub fn items(&self) -> Result<Vec<H5Item>> {
        let mut out = Vec::new();
        self.walk(
            &self
                .file
                .as_group()
                .map_err(|e| h5err(&self.path, "cannot read root group", e))?,
            "",
            &mut out,
        )?;
        Ok(out)
    }

    /// Attributes of the root group.
    pub fn root_attrs(&self) -> Result<Vec<(String, AttrValue)>> {
        read_attrs(&self.file, &self.path)
    }

    fn walk(&self, group: &hdf5::Group, prefix: &str, out: &mut Vec<H5Item>) -> Result<()> {
        let mut links = group
            .links(hdf5::IndexType::Name, hdf5::IterationOrder::Native)
            .map_err(|e| {
                h5err(
                    &self.path,
                    &format!("cannot list the group `{}/`", prefix),
                    e,
                )
            })?;
        links.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, link) in links {
            let full = format!("{prefix}/{name}");
            // A hard link's object must open: an object header that cannot be read is a
            // damaged file, never a group with one member fewer. Soft and external links may
            // dangle in a healthy file (h5py's visit skips them too).
            let kind = match link.link_type {
                hdf5::LinkType::Hard => match group.loc_type_by_name(&name) {
                    Ok(t) => Some(t),
                    Err(e) => return Err(self.damaged(&full, e)),
                },
                _ => None,
            };
            match kind {
                Some(hdf5::LocationType::Group) => {
                    let g = group.group(&name).map_err(|e| self.damaged(&full, e))?;
                    self.push_group(g, &full, out)?;
                }
                Some(hdf5::LocationType::Dataset) => {
                    let ds = group.dataset(&name).map_err(|e| self.damaged(&full, e))?;
                    out.push(self.describe(&ds, &full)?);
                }
                // Committed (named) datatypes hold no data.
                Some(_) => {}
                None => {
                    if let Ok(g) = group.group(&name) {
                        self.push_group(g, &full, out)?;
                    } else if let Ok(ds) = group.dataset(&name) {
                        out.push(self.describe(&ds, &full)?);
                    } else {
                        tracing::debug!("{}: link `{full}` leads nowhere", self.path.display());
                    }
                }
            }
        }
        Ok(())
    }

    fn push_group(&self, g: hdf5::Group, full: &str, out: &mut Vec<H5Item>) -> Result<()> {
        out.push(H5Item {
            path: full.to_string(),
            kind: H5Kind::Group,
            shape: vec![],
            dtype: None,
            fields: vec![],
            chunks: None,
            attrs: read_attrs(&g, &self.path)?,
            cell_shape: vec![],
            filters: vec![],
        });
        self.walk(&g, full, out)
    }

    fn damaged(&self, full: &str, e: hdf5::Error) -> IoError {
        h5err(
            &self.path,
            &format!("`{full}` cannot be opened (damaged object header?)"),
            e,
        )
    }

    fn describe(&self, ds: &Dataset, full: &str) -> Result<H5Item> {
        let filters: Vec<String> = dataset_filters(ds).into_iter().map(|f| f.1).collect();
        match CompoundLayout::of(ds) {
            Some(Ok(layout)) if !layout.compound => {
                let f = &layout.fields[0];
                return Ok(H5Item {
                    path: full.to_string(),
                    kind: H5Kind::Dataset,
                    shape: ds.shape(),
                    dtype: Some(f.dtype_name()),
                    fields: vec![],
                    chunks: ds.chunk(),
                    attrs: read_attrs(ds, &self.path)?,
                    cell_shape: f.dims.clone(),
                    filters,
                });
            }
            // An element type deepsky cannot read: listed all the same, refused on reading.
            Some(Err(_)) if !is_compound(ds) => {}
            Some(layout) => {
                let layout = layout.map_err(|m| {
                    IoError::new(&self.path, ErrorKind::Unsupported, format!("`{full}`: {m}"))
                })?;
                let fields = layout
                    .fields
                    .iter()
                    .map(|f| FieldInfo {
                        name: f.name.clone(),
                        dtype: f.dtype_name(),
                        shape: f.dims.clone(),
                    })
                    .collect();
                return Ok(H5Item {
                    path: full.to_string(),
                    kind: H5Kind::Dataset,
                    shape: ds.shape(),
                    dtype: Some("compound".into()),
                    fields,
                    chunks: ds.chunk(),
                    attrs: read_attrs(ds, &self.path)?,
                    cell_shape: vec![],
                    filters,
                });
            }
            None => {}
        }
        let desc = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| h5err(&self.path, &format!("cannot read the type of `{full}`"), e))?;
        let fields = match &desc {
            TypeDescriptor::Compound(c) => c
                .fields
                .iter()
                .map(|f| {
                    let (_, shape) = unwrap_arrays(&f.ty);
                    FieldInfo {
                        name: f.name.clone(),
                        dtype: type_name(&f.ty),
                        shape,
                    }
                })
                .collect(),
            _ => vec![],
        };
        Ok(H5Item {
            path: full.to_string(),
            kind: H5Kind::Dataset,
            shape: ds.shape(),
            dtype: Some(type_name(&desc)),
            fields,
            chunks: ds.chunk(),
            attrs: read_attrs(ds, &self.path)?,
            cell_shape: vec![],
            filters,
        })
    }

    /// Summary of one dataset.
    pub fn item(&self, name: &str) -> Result<H5Item> {
        let ds = self.dataset(name)?;
        self.describe(&ds, &format!("/{}", name.trim_start_matches('/')))
    }

    /// Read a whole non-compound dataset (any numeric type and byte order, booleans, strings).
    pub fn read(&self, name: &str) -> Result<NdData> {
        let ds = self.dataset(name)?;
        self.read_selection(&ds, name, Selection::All)
    }

    /// Read a hyperslab: `start` and `count` per axis. Only the selected chunks are read.
    pub fn read_slice(&self, name: &str, start: &[usize], count: &[usize]) -> Result<NdData> {
        let ds = self.dataset(name)?;
        let shape = ds.shape();
        if start.len() != shape.len() || count.len() != shape.len() {
            return Err(IoError::new(
                &self.path,
                ErrorKind::InvalidInput,
                format!(
                    "`{name}` has {} axes, the slice gives {}",
                    shape.len(),
                    start.len()
                ),
            ));
        }
        for (ax, ((&s, &c), &n)) in start.iter().zip(count).zip(&shape).enumerate() {
            if s + c > n {
                return Err(IoError::new(
                    &self.path,
                    ErrorKind::InvalidInput,
                    format!(
                        "slice {s}..{} is out of range for axis {ax} of `{name}` (length {n})",
                        s + c
                    ),
                ));
            }
        }
        let slab: Vec<SliceOrIndex> = start
            .iter()
            .zip(count)
            .map(|(&s, &c)| SliceOrIndex::SliceCount {
                start: s,
                step: 1,
                count: c,
                block: 1,
            })
            .collect();
        self.read_selection(&ds, name, Selection::new(Hyperslab::from(slab)))
    }

    fn read_selection(&self, ds: &Dataset, name: &str, sel: Selection) -> Result<NdData> {
        if has_null_space(ds) {
            return Err(IoError::new(
                &self.path,
                ErrorKind::InvalidInput,
                format!("`{name}` holds no values (an empty dataset, h5py's `Empty`)"),
            ));
        }
        if !is_compound(ds) {
            if let Some(layout) = CompoundLayout::of(ds) {
                let layout = layout.map_err(|m| {
                    IoError::new(&self.path, ErrorKind::Unsupported, format!("`{name}`: {m}"))
                })?;
                return self.read_cells(ds, name, &layout, sel);
            }
        }
        let desc = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| h5err(&self.path, &format!("cannot read the type of `{name}`"), e))?;
        if uses_global_heap(&desc) {
            check_global_heaps(&self.path)?;
        }
        let ctx = |e| self.read_error(ds, name, format!("cannot read `{name}`: {e}"));
        macro_rules! rd {
            ($t:ty, $v:ident) => {
                NdData::$v(ds.read_slice::<$t, _, IxDyn>(sel).map_err(ctx)?)
            };
        }
        let base = match &desc {
            TypeDescriptor::Enum(e) if !matches!(desc, TypeDescriptor::Boolean) => e.base_type(),
            other => other.clone(),
        };
        Ok(match base {
            TypeDescriptor::Integer(IntSize::U1) => rd!(i8, I8),
            TypeDescriptor::Integer(IntSize::U2) => rd!(i16, I16),
            TypeDescriptor::Integer(IntSize::U4) => rd!(i32, I32),
            TypeDescriptor::Integer(IntSize::U8) => rd!(i64, I64),
            TypeDescriptor::Unsigned(IntSize::U1) => rd!(u8, U8),
            TypeDescriptor::Unsigned(IntSize::U2) => rd!(u16, U16),
            TypeDescriptor::Unsigned(IntSize::U4) => rd!(u32, U32),
            TypeDescriptor::Unsigned(IntSize::U8) => rd!(u64, U64),
            TypeDescriptor::Float(FloatSize::U4) => rd!(f32, F32),
            TypeDescriptor::Float(FloatSize::U8) => rd!(f64, F64),
            TypeDescriptor::Boolean => rd!(bool, Bool),
            TypeDescriptor::VarLenUnicode => NdData::Str(
                ds.read_slice::<VarLenUnicode, _, IxDyn>(sel)
                    .map_err(ctx)?
                    .mapv(|s| s.as_str().to_string()),
            ),
            TypeDescriptor::VarLenAscii => NdData::Str(
                ds.read_slice::<VarLenAscii, _, IxDyn>(sel)
                    .map_err(ctx)?
                    .mapv(|s| s.as_str().to_string()),
            ),
            TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
                if !matches!(sel, Selection::All) {
                    return Err(IoError::new(
                        &self.path,
                        ErrorKind::Unsupported,
                        format!("slices of fixed-length string dataset `{name}` are not supported"),
                    ));
                }
                let raw = read_raw_bytes(ds, &desc).map_err(ctx)?;
                let strings: Vec<String> = raw.chunks(n.max(1)).map(fixed_str).collect();
                NdData::Str(
                    ArrayD::from_shape_vec(IxDyn(&ds.shape()), strings).expect("shape matches"),
                )
            }
            TypeDescriptor::Compound(_) => {
                return Err(IoError::new(
                    &self.path,
                    ErrorKind::InvalidInput,
                    format!("`{name}` is a compound dataset: read it as a table"),
                ))
            }
            other => {
                return Err(IoError::new(
                    &self.path,
                    ErrorKind::Unsupported,
                    format!("`{name}` has unsupported type {other}"),
                ))
            }
        })
    }

    /// Read a dataset whose element type went through a [`CompoundLayout`] (array types, half
    /// floats): array axes are appended to the dataset's shape, as h5py does.
    fn read_cells(
        &self,
        ds: &Dataset,
        name: &str,
        layout: &CompoundLayout,
        sel: Selection,
    ) -> Result<NdData> {
        let f = &layout.fields[0];
        if f.vlen {
            return Err(IoError::new(
                &self.path,
                ErrorKind::InvalidInput,
                format!(
                    "`{name}` holds variable-length sequences ({}): read it as a table",
                    f.dtype_name()
                ),
            ));
        }
        if !matches!(sel, Selection::All) {
            return Err(IoError::new(
                &self.path,
                ErrorKind::Unsupported,
                format!(
                    "slices of `{name}` (elements of type {}) are not supported",
                    f.dtype_name()
                ),
            ));
        }
        let rec = layout
            .read(ds)
            .map_err(|m| self.read_error(ds, name, format!("cannot read `{name}`: {m}")))?;
        let mut shape = ds.shape();
        shape.extend(&f.dims);
        let es = f.leaf.size();
        let cells = rec.raw.chunks_exact(es);
        macro_rules! nd {
            ($t:ty, $v:ident) => {
                NdData::$v(
                    ArrayD::from_shape_vec(
                        IxDyn(&shape),
                        cells
                            .map(|b| <$t>::from_ne_bytes(b.try_into().unwrap()))
                            .collect(),
                    )
                    .expect("shape matches"),
                )
            };
        }
        Ok(match f.leaf {
            Leaf::Int(1) => nd!(i8, I8),
            Leaf::Int(2) => nd!(i16, I16),
            Leaf::Int(4) => nd!(i32, I32),
            Leaf::Int(_) => nd!(i64, I64),
            Leaf::UInt(1) => nd!(u8, U8),
            Leaf::UInt(2) => nd!(u16, U16),
            Leaf::UInt(4) => nd!(u32, U32),
            Leaf::UInt(_) => nd!(u64, U64),
            Leaf::Float(4) => nd!(f32, F32),
            Leaf::Float(_) => nd!(f64, F64),
            Leaf::Str(_) | Leaf::VarStr => NdData::Str(
                ArrayD::from_shape_vec(IxDyn(&shape), cells.map(fixed_str).collect())
                    .expect("shape matches"),
            ),
        })
    }

    /// The error for a failed read: a filter this build lacks, named, if the dataset uses
    /// one (HDF5 fails on the first chunk it cannot decode); else `detail`.
    fn read_error(&self, ds: &Dataset, name: &str, detail: String) -> IoError {
        let full = format!("/{}", name.trim_start_matches('/'));
        for (id, fname) in dataset_filters(ds) {
            // SAFETY: a plain query, under the hdf5 lock.
            let avail = hdf5::sync::sync(|| unsafe { hdf5_sys::h5z::H5Zfilter_avail(id) });
            if avail <= 0 {
                return IoError::new(
                    &self.path,
                    ErrorKind::Unsupported,
                    format!(
                        "`{full}` is compressed with {fname} (HDF5 filter {id}), which this build of deepsky cannot decompress"
                    ),
                );
            }
        }
        IoError::new(&self.path, ErrorKind::Corrupt, detail)
    }

    /// Statistics over every value of a dataset (`deepsky inspect --stats`): variable-length
    /// sequences over all their elements; None for strings.
    pub fn dataset_stats(&self, name: &str) -> Result<Option<crate::data::Stats>> {
        let ds = self.dataset(name)?;
        if has_null_space(&ds) {
            return Ok(None);
        }
        let vlen =
            !is_compound(&ds) && matches!(CompoundLayout::of(&ds), Some(Ok(l)) if l.fields[0].vlen);
        if vlen {
            let df = self.read_table(name)?;
            return Ok(df
                .columns()
                .first()
                .and_then(|c| crate::data::column_stats(c.as_materialized_series())));
        }
        Ok(self.read(name)?.stats())
    }

    /// Read a dataset converted to f32 (the type the learning code works in).
    pub fn read_f32(&self, name: &str) -> Result<ArrayD<f32>> {
        match self.read(name)? {
            NdData::F32(a) => Ok(a),
            NdData::Str(_) => Err(IoError::new(
                &self.path,
                ErrorKind::InvalidInput,
                format!("`{name}` holds strings, not numbers"),
            )),
            other => Ok(other.to_f64().expect("numeric").mapv(|v| v as f32)),
        }
    }

    /// Read a compound dataset (1-D) into a DataFrame, one column per field; array fields become
    /// fixed-size array columns, fixed strings become strings.
    pub fn read_table(&self, name: &str) -> Result<DataFrame> {
        let ds = self.dataset(name)?;
        let Some(layout) = CompoundLayout::of(&ds) else {
            // A plain 1-D dataset becomes a one-column table.
            let data = self.read(name)?;
            let series = nd_to_series(name.rsplit('/').next().unwrap_or(name), &data);
            return DataFrame::new_infer_height(vec![series.into_column()])
                .map_err(|e| IoError::new(&self.path, ErrorKind::InvalidInput, e.to_string()));
        };
        let layout = layout.map_err(|m| {
            IoError::new(&self.path, ErrorKind::Unsupported, format!("`{name}`: {m}"))
        })?;
        let n = ds.size();
        if ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_or(true, |d| uses_global_heap(&d))
        {
            check_global_heaps(&self.path)?;
        }
        let rec = layout
            .read(&ds)
            .map_err(|m| self.read_error(&ds, name, format!("cannot read `{name}`: {m}")))?;
        let mut cols = Vec::with_capacity(layout.fields.len());
        for i in 0..layout.fields.len() {
            let s = layout
                .column(i, &rec, n)
                .map_err(|e| IoError::new(&self.path, ErrorKind::Corrupt, e.to_string()))?;
            cols.push(s.into_column());
        }
        DataFrame::new(n, cols)
            .map_err(|e| IoError::new(&self.path, ErrorKind::Corrupt, e.to_string()))
    }
}

/// The element type of a compound field, in native byte order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf {
    Int(usize),
    UInt(usize),
    Float(usize),
    Str(usize),
    /// A variable-length string (a `char *` in memory).
    VarStr,
}

impl Leaf {
    fn size(self) -> usize {
        match self {
            Leaf::Int(n) | Leaf::UInt(n) | Leaf::Float(n) | Leaf::Str(n) => n,
            Leaf::VarStr => std::mem::size_of::<*const std::os::raw::c_char>(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Leaf::Int(1) => "i8",
            Leaf::Int(2) => "i16",
            Leaf::Int(4) => "i32",
            Leaf::Int(_) => "i64",
            Leaf::UInt(1) => "u8",
            Leaf::UInt(2) => "u16",
            Leaf::UInt(4) => "u32",
            Leaf::UInt(_) => "u64",
            Leaf::Float(4) => "f32",
            Leaf::Float(_) => "f64",
            Leaf::Str(_) | Leaf::VarStr => "str",
        }
    }
}

#[derive(Debug, Clone)]
struct CompoundField {
    /// Name; fields of nested compounds are `outer.inner`.
    name: String,
    /// Byte offset in the packed in-memory record.
    offset: usize,
    leaf: Leaf,
    /// Shape of an array field, slowest axis first (empty for scalars).
    dims: Vec<usize>,
    /// A variable-length sequence of `leaf` values (an `hvl_t` in memory).
    vlen: bool,
}

impl CompoundField {
    fn dtype_name(&self) -> String {
        let base = self.leaf.name();
        if self.dims.is_empty() && !self.vlen {
            base.to_string()
        } else {
            format!("list[{base}]")
        }
    }
}

/// The fields of a compound dataset (nested compounds flattened to `outer.inner`), or the one
/// field of a dataset whose element type needs the C API (array types, variable-length
/// sequences, half floats), and the packed native type HDF5 converts it into.
///
/// Built on the C API because the `hdf5` crate's type descriptors cover neither multi-
/// dimensional array fields (PyTables writes them) nor 2-byte floats, while HDF5 itself
/// converts any of them.
struct CompoundLayout {
    fields: Vec<CompoundField>,
    size: usize,
    mem_type: hdf5_sys::h5i::hid_t,
    /// The dataset's type is a compound (else `fields` holds its single element type).
    compound: bool,
}

impl Drop for CompoundLayout {
    fn drop(&mut self) {
        // SAFETY: we own mem_type; closed under the hdf5 crate's lock like every raw call.
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tclose(self.mem_type) });
    }
}

/// The values of one variable-length field, one entry per record.
enum VarCells {
    /// Native-order bytes of each record's sequence.
    Seq(Vec<Vec<u8>>),
    Str(Vec<String>),
}

/// Records read through a [`CompoundLayout`]: the packed bytes (variable-length slots hold
/// pointers already freed) and, per field, the variable-length values copied out.
struct Records {
    raw: Vec<u8>,
    var: Vec<Option<VarCells>>,
}

/// Raw HDF5 type id; closed when dropped.
struct TypeId(hdf5_sys::h5i::hid_t);

impl TypeId {
    fn into_raw(self) -> hdf5_sys::h5i::hid_t {
        let id = self.0;
        std::mem::forget(self);
        id
    }
}

impl Drop for TypeId {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: we own the id; callers hold the hdf5 lock.
            unsafe { hdf5_sys::h5t::H5Tclose(self.0) };
        }
    }
}

impl CompoundLayout {
    /// None if the dataset's type is read by the `hdf5` crate's own paths (plain scalars and
    /// strings); Err names an unsupported field.
    fn of(ds: &Dataset) -> Option<std::result::Result<CompoundLayout, String>> {
        use hdf5_sys::h5t::*;
        // SAFETY: plain HDF5 C calls on ids we own and close below. The HDF5 library is
        // not thread-safe: every raw call holds the hdf5 crate's global (reentrant) lock,
        // as the crate's own calls do, or concurrent readers corrupt its id table.
        hdf5::sync::sync(|| unsafe {
            let ftype = TypeId(hdf5_sys::h5d::H5Dget_type(ds.id()));
            if ftype.0 < 0 {
                return None;
            }
            let class = H5Tget_class(ftype.0);
            let compound = class == H5T_class_t::H5T_COMPOUND;
            let special = match class {
                H5T_class_t::H5T_ARRAY | H5T_class_t::H5T_VLEN => true,
                H5T_class_t::H5T_FLOAT => !matches!(H5Tget_size(ftype.0), 4 | 8),
                _ => false,
            };
            if !compound && !special {
                return None;
            }
            let name = ds.name();
            let leaf_name = if compound {
                ""
            } else {
                name.rsplit('/').next().unwrap_or("")
            };
            let mut fields = Vec::new();
            Some(
                Self::member(leaf_name, ftype.0, 0, &mut fields).map(|mem| CompoundLayout {
                    fields,
                    size: H5Tget_size(mem.0),
                    mem_type: mem.into_raw(),
                    compound,
                }),
            )
        })
    }

    /// The native memory type for the file type `mtype` of the field `name`, its leaf fields
    /// appended to `fields` at `offset`.
    unsafe fn member(
        name: &str,
        mtype: hdf5_sys::h5i::hid_t,
        offset: usize,
        fields: &mut Vec<CompoundField>,
    ) -> std::result::Result<TypeId, String> {
        use hdf5_sys::h5t::*;
        let class = unsafe { H5Tget_class(mtype) };
        let unsupported = |what: String| {
            if name.is_empty() {
                Err(format!("{what}, which deepsky cannot read"))
            } else {
                Err(format!("field `{name}` {what}, which deepsky cannot read"))
            }
        };
        match class {
            H5T_class_t::H5T_COMPOUND => {
                let n = unsafe { H5Tget_nmembers(mtype) }.max(0) as u32;
                let mut members = Vec::new();
                let mut size = 0usize;
                for i in 0..n {
                    let (sub, st) = unsafe {
                        let p = H5Tget_member_name(mtype, i);
                        let sub = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
                        hdf5_sys::h5::H5free_memory(p as *mut c_void);
                        (sub, TypeId(H5Tget_member_type(mtype, i)))
                    };
                    let full = if name.is_empty() {
                        sub.clone()
                    } else {
                        format!("{name}.{sub}")
                    };
                    let mem = unsafe { Self::member(&full, st.0, offset + size, fields) }?;
                    let msize = unsafe { H5Tget_size(mem.0) };
                    members.push((sub, mem, size));
                    size += msize;
                }
                let t = TypeId(unsafe { H5Tcreate(H5T_class_t::H5T_COMPOUND, size.max(1)) });
                for (sub, mem, off) in &members {
                    let c = std::ffi::CString::new(sub.as_str()).unwrap_or_default();
                    unsafe { H5Tinsert(t.0, c.as_ptr(), *off, mem.0) };
                }
                Ok(t)
            }
            H5T_class_t::H5T_ARRAY => {
                let nd = unsafe { H5Tget_array_ndims(mtype) }.max(0) as usize;
                let mut d = vec![0 as hdf5_sys::h5::hsize_t; nd];
                unsafe { H5Tget_array_dims2(mtype, d.as_mut_ptr()) };
                let base = TypeId(unsafe { H5Tget_super(mtype) });
                let scalar = unsafe { Self::scalar(base.0) }.filter(|(l, _)| *l != Leaf::VarStr);
                let Some((leaf, native)) = scalar else {
                    let bc = unsafe { H5Tget_class(base.0) };
                    return unsupported(format!("is an array of {}", class_name(bc)));
                };
                fields.push(CompoundField {
                    name: name.to_string(),
                    offset,
                    leaf,
                    dims: d.iter().map(|&x| x as usize).collect(),
                    vlen: false,
                });
                Ok(TypeId(unsafe {
                    H5Tarray_create2(native.0, d.len() as u32, d.as_ptr())
                }))
            }
            H5T_class_t::H5T_VLEN => {
                let base = TypeId(unsafe { H5Tget_super(mtype) });
                let bc = unsafe { H5Tget_class(base.0) };
                let scalar = match bc {
                    H5T_class_t::H5T_STRING => None,
                    _ => unsafe { Self::scalar(base.0) },
                };
                let Some((leaf, native)) = scalar else {
                    return unsupported(format!(
                        "is a variable-length sequence of {}",
                        class_name(bc)
                    ));
                };
                fields.push(CompoundField {
                    name: name.to_string(),
                    offset,
                    leaf,
                    dims: vec![],
                    vlen: true,
                });
                Ok(TypeId(unsafe { H5Tvlen_create(native.0) }))
            }
            _ => match unsafe { Self::scalar(mtype) } {
                Some((leaf, native)) => {
                    fields.push(CompoundField {
                        name: name.to_string(),
                        offset,
                        leaf,
                        dims: vec![],
                        vlen: false,
                    });
                    Ok(native)
                }
                None => unsupported(format!("has type class {}", class_name(class))),
            },
        }
    }

    /// A scalar's leaf and native memory type: integers and enums, floats (half floats as
    /// f32), fixed and variable-length strings.
    unsafe fn scalar(base: hdf5_sys::h5i::hid_t) -> Option<(Leaf, TypeId)> {
        use hdf5_sys::h5t::*;
        let class = unsafe { H5Tget_class(base) };
        let size = unsafe { H5Tget_size(base) };
        Some(match class {
            H5T_class_t::H5T_INTEGER | H5T_class_t::H5T_ENUM => {
                let native =
                    TypeId(unsafe { H5Tget_native_type(base, H5T_direction_t::H5T_DIR_ASCEND) });
                let nsize = unsafe { H5Tget_size(native.0) };
                if !matches!(nsize, 1 | 2 | 4 | 8) {
                    return None;
                }
                let signed = unsafe { H5Tget_sign(native.0) } != H5T_sign_t::H5T_SGN_NONE;
                let leaf = if signed {
                    Leaf::Int(nsize)
                } else {
                    Leaf::UInt(nsize)
                };
                (leaf, native)
            }
            H5T_class_t::H5T_FLOAT => {
                unsafe { hdf5_sys::h5::H5open() };
                if size <= 4 {
                    let t = unsafe { H5Tcopy(*hdf5_sys::h5t::H5T_NATIVE_FLOAT) };
                    (Leaf::Float(4), TypeId(t))
                } else {
                    let t = unsafe { H5Tcopy(*hdf5_sys::h5t::H5T_NATIVE_DOUBLE) };
                    (Leaf::Float(8), TypeId(t))
                }
            }
            H5T_class_t::H5T_STRING if unsafe { H5Tis_variable_str(base) } > 0 => {
                unsafe { hdf5_sys::h5::H5open() };
                let t = TypeId(unsafe { H5Tcopy(*hdf5_sys::h5t::H5T_C_S1) });
                unsafe {
                    H5Tset_size(t.0, H5T_VARIABLE);
                    H5Tset_cset(t.0, H5Tget_cset(base));
                }
                (Leaf::VarStr, t)
            }
            H5T_class_t::H5T_STRING => (Leaf::Str(size), TypeId(unsafe { H5Tcopy(base) })),
            _ => return None,
        })
    }

    fn has_var(&self) -> bool {
        self.fields.iter().any(|f| f.vlen || f.leaf == Leaf::VarStr)
    }

    /// All records, converted by HDF5 into the packed native layout; variable-length values
    /// copied out and their memory returned to HDF5.
    fn read(&self, ds: &Dataset) -> std::result::Result<Records, String> {
        let n = ds.size();
        let mut raw = vec![0u8; n * self.size];
        let mut var: Vec<Option<VarCells>> = self.fields.iter().map(|_| None).collect();
        if raw.is_empty() {
            for (f, v) in self.fields.iter().zip(var.iter_mut()) {
                if f.vlen {
                    *v = Some(VarCells::Seq(vec![]));
                } else if f.leaf == Leaf::VarStr {
                    *v = Some(VarCells::Str(vec![]));
                }
            }
            return Ok(Records { raw, var });
        }
        // SAFETY: raw holds n × record bytes of mem_type, which H5Dread fills; the
        // variable-length slots it fills are read (unaligned) before H5Treclaim frees them.
        hdf5::sync::sync(|| unsafe {
            let st = hdf5_sys::h5d::H5Dread(
                ds.id(),
                self.mem_type,
                hdf5_sys::h5s::H5S_ALL,
                hdf5_sys::h5s::H5S_ALL,
                hdf5_sys::h5p::H5P_DEFAULT,
                raw.as_mut_ptr() as *mut c_void,
            );
            if st < 0 {
                return Err("H5Dread failed".to_string());
            }
            if !self.has_var() {
                return Ok(());
            }
            for (f, v) in self.fields.iter().zip(var.iter_mut()) {
                if f.vlen {
                    let cells = (0..n)
                        .map(|r| {
                            let p = raw.as_ptr().add(r * self.size + f.offset);
                            let h = std::ptr::read_unaligned(p as *const hdf5_sys::h5t::hvl_t);
                            let len = h.len * f.leaf.size();
                            if h.p.is_null() || len == 0 {
                                vec![]
                            } else {
                                std::slice::from_raw_parts(h.p as *const u8, len).to_vec()
                            }
                        })
                        .collect();
                    *v = Some(VarCells::Seq(cells));
                } else if f.leaf == Leaf::VarStr {
                    let cells = (0..n)
                        .map(|r| {
                            let p = raw.as_ptr().add(r * self.size + f.offset);
                            let s =
                                std::ptr::read_unaligned(p as *const *const std::os::raw::c_char);
                            if s.is_null() {
                                String::new()
                            } else {
                                std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned()
                            }
                        })
                        .collect();
                    *v = Some(VarCells::Str(cells));
                }
            }
            let space = hdf5_sys::h5d::H5Dget_space(ds.id());
            if space >= 0 {
                hdf5_sys::h5t::H5Treclaim(
                    self.mem_type,
                    space,
                    hdf5_sys::h5p::H5P_DEFAULT,
                    raw.as_mut_ptr() as *mut c_void,
                );
                hdf5_sys::h5s::H5Sclose(space);
            }
            Ok(())
        })?;
        Ok(Records { raw, var })
    }

    /// One field of `n` records as a polars column: array fields become fixed-size array
    /// columns, variable-length sequences list columns, strings strings.
    fn column(
        &self,
        fi: usize,
        rec: &Records,
        n: usize,
    ) -> std::result::Result<Series, PolarsError> {
        let f = &self.fields[fi];
        let name: PlSmallStr = f.name.as_str().into();
        let esize = f.leaf.size();
        let item = self.size;
        if let Some(cells) = &rec.var[fi] {
            return Ok(match cells {
                VarCells::Str(v) => Series::new(name, v.clone()),
                VarCells::Seq(rows) => {
                    let series: Vec<Series> = rows
                        .iter()
                        .map(|b| leaf_series(f.leaf, "".into(), b.chunks_exact(esize)))
                        .collect();
                    if series.is_empty() {
                        let inner = leaf_series(f.leaf, "".into(), [].chunks_exact(1));
                        Series::new_empty(name, &DataType::List(Box::new(inner.dtype().clone())))
                    } else {
                        Series::new(name, series)
                    }
                }
            });
        }
        let per: usize = f.dims.iter().product::<usize>().max(1);
        let raw = &rec.raw;
        let cells = (0..n)
            .flat_map(|r| (0..per).map(move |k| (r, k)))
            .map(|(r, k)| {
                &raw[r * item + f.offset + k * esize..r * item + f.offset + (k + 1) * esize]
            });
        let flat = leaf_series(f.leaf, name.clone(), cells);
        if f.dims.is_empty() {
            Ok(flat)
        } else if n == 0 {
            let dt = f.dims.iter().rev().fold(flat.dtype().clone(), |inner, &d| {
                DataType::Array(Box::new(inner), d)
            });
            Ok(Series::new_empty(name, &dt))
        } else {
            let mut dims = vec![ReshapeDimension::Infer];
            dims.extend(
                f.dims
                    .iter()
                    .map(|&d| ReshapeDimension::new_dimension(d as u64)),
            );
            flat.reshape_array(&dims)
        }
    }
}

/// Native-order element bytes as a Series of the leaf type.
fn leaf_series<'a>(leaf: Leaf, name: PlSmallStr, cells: impl Iterator<Item = &'a [u8]>) -> Series {
    macro_rules! col {
        ($t:ty) => {{
            let v: Vec<$t> = cells
                .map(|b| <$t>::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            Series::from_vec(name, v)
        }};
    }
    match leaf {
        Leaf::Int(1) => col!(i8),
        Leaf::Int(2) => col!(i16),
        Leaf::Int(4) => col!(i32),
        Leaf::Int(_) => col!(i64),
        Leaf::UInt(1) => col!(u8),
        Leaf::UInt(2) => col!(u16),
        Leaf::UInt(4) => col!(u32),
        Leaf::UInt(_) => col!(u64),
        Leaf::Float(4) => col!(f32),
        Leaf::Float(_) => col!(f64),
        Leaf::Str(_) | Leaf::VarStr => {
            let v: Vec<String> = cells.map(fixed_str).collect();
            Series::new(name, v)
        }
    }
}

/// An HDF5 type class as people know it.
fn class_name(c: hdf5_sys::h5t::H5T_class_t) -> &'static str {
    use hdf5_sys::h5t::H5T_class_t::*;
    match c {
        H5T_INTEGER => "integers",
        H5T_FLOAT => "floats",
        H5T_TIME => "time values",
        H5T_STRING => "strings",
        H5T_BITFIELD => "bitfields",
        H5T_OPAQUE => "opaque values",
        H5T_COMPOUND => "compounds",
        H5T_REFERENCE => "references",
        H5T_ENUM => "enums",
        H5T_VLEN => "variable-length sequences",
        H5T_ARRAY => "arrays",
        _ => "an unknown type class",
    }
}

/// Whether a dataset has a null dataspace (no values at all; h5py's `Empty`).
fn has_null_space(ds: &Dataset) -> bool {
    // SAFETY: plain HDF5 C calls on an id we own and close, under the hdf5 lock.
    hdf5::sync::sync(|| unsafe {
        let space = hdf5_sys::h5d::H5Dget_space(ds.id());
        if space < 0 {
            return false;
        }
        let t = hdf5_sys::h5s::H5Sget_simple_extent_type(space);
        hdf5_sys::h5s::H5Sclose(space);
        t == hdf5_sys::h5s::H5S_class_t::H5S_NULL
    })
}

/// Whether a dataset's element type is a compound.
fn is_compound(ds: &Dataset) -> bool {
    // SAFETY: plain HDF5 C calls on an id we own and close, under the hdf5 lock.
    hdf5::sync::sync(|| unsafe {
        let t = TypeId(hdf5_sys::h5d::H5Dget_type(ds.id()));
        t.0 >= 0 && hdf5_sys::h5t::H5Tget_class(t.0) == hdf5_sys::h5t::H5T_class_t::H5T_COMPOUND
    })
}

/// A dataset's filter pipeline: (HDF5 filter id, name) in order.
fn dataset_filters(ds: &Dataset) -> Vec<(hdf5_sys::h5z::H5Z_filter_t, String)> {
    use hdf5_sys::h5p::*;
    // SAFETY: plain HDF5 C calls on a property list we own and close, under the hdf5 lock;
    // the name buffer is NUL-terminated by HDF5 within its given length.
    hdf5::sync::sync(|| unsafe {
        let dcpl = hdf5_sys::h5d::H5Dget_create_plist(ds.id());
        if dcpl < 0 {
            return vec![];
        }
        let n = H5Pget_nfilters(dcpl).max(0) as u32;
        let mut out = Vec::new();
        for i in 0..n {
            let mut flags = 0u32;
            let mut nelm: libc::size_t = 0;
            let mut cfg = 0u32;
            let mut buf = [0 as std::os::raw::c_char; 256];
            let id = H5Pget_filter2(
                dcpl,
                i,
                &mut flags,
                &mut nelm,
                std::ptr::null_mut(),
                buf.len(),
                buf.as_mut_ptr(),
                &mut cfg,
            );
            if id < 0 {
                continue;
            }
            buf[255] = 0;
            let stored = std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy();
            out.push((id, filter_name(id, &stored)));
        }
        hdf5_sys::h5p::H5Pclose(dcpl);
        out
    })
}

/// The usual name of an HDF5 filter (registered ids), else the name stored in the file.
fn filter_name(id: hdf5_sys::h5z::H5Z_filter_t, stored: &str) -> String {
    let known = match id {
        1 => "gzip",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        5 => "nbit",
        6 => "scaleoffset",
        305 => "LZO",
        307 => "bzip2",
        32000 => "LZF",
        32001 => "Blosc",
        32004 => "LZ4",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "Zstandard",
        32017 => "SZ",
        32026 => "Blosc2",
        _ => "",
    };
    if !known.is_empty() {
        known.to_string()
    } else if !stored.trim().is_empty() {
        stored.trim().to_string()
    } else {
        format!("filter {id}")
    }
}

/// A fixed-length string field: up to the first NUL, trailing blanks dropped.
fn fixed_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

/// Read the whole dataset converted by HDF5 into the in-memory type `mem` (native byte order).
fn read_raw_bytes(ds: &Dataset, mem: &TypeDescriptor) -> hdf5::Result<Vec<u8>> {
    let mem_type = Datatype::from_descriptor(mem)?;
    let mut buf = vec![0u8; ds.size() * mem.size()];
    if buf.is_empty() {
        return Ok(buf);
    }
    // SAFETY: buf holds size × element bytes of the memory type, which H5Dread fills.
    let status = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread(
            ds.id(),
            mem_type.id(),
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5p::H5P_DEFAULT,
            buf.as_mut_ptr() as *mut c_void,
        )
    });
    if status < 0 {
        return Err(hdf5::Error::Internal("H5Dread failed".into()));
    }
    Ok(buf)
}

/// Whether reading values of this type goes through the file's global heap
/// (variable-length strings and sequences, at any depth).
fn uses_global_heap(t: &TypeDescriptor) -> bool {
    match t {
        TypeDescriptor::VarLenArray(_)
        | TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode => true,
        TypeDescriptor::FixedArray(inner, _) => uses_global_heap(inner),
        TypeDescriptor::Compound(c) => c.fields.iter().any(|f| uses_global_heap(&f.ty)),
        _ => false,
    }
}

/// Files up to this size have their global heap collections checked before the first
/// variable-length read ([`check_global_heaps`]).
pub const GLOBAL_HEAP_CHECK_MAX_BYTES: u64 = 256 << 20;

/// Check the file's global heap collections (where variable-length values live) for the one
/// damage libhdf5 cannot survive: an object of index 0 and size 0 stops its parser from
/// advancing, and it loops forever (seen in HDF5 2.2.0's `H5HG__cache_heap_deserialize`).
/// Every other inconsistency libhdf5 reports as an error. Run once per file, and only
/// before reading a variable-length value.
///
/// The collections can be anywhere in the file, so this reads the whole file: files larger
/// than [`GLOBAL_HEAP_CHECK_MAX_BYTES`] are not checked (a debug log says so), because reading
/// gigabytes before a string attribute would cost more than the rare damage it guards against.
fn check_global_heaps(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    static CHECKED: std::sync::Mutex<Vec<(PathBuf, u64)>> = std::sync::Mutex::new(Vec::new());
    let io = |e| IoError::from_std(path, e);
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let key = (path.to_path_buf(), len);
    if CHECKED.lock().map(|c| c.contains(&key)).unwrap_or(false) {
        return Ok(());
    }
    if len > GLOBAL_HEAP_CHECK_MAX_BYTES {
        tracing::debug!(
            "{}: global heap check skipped ({len} bytes, above {GLOBAL_HEAP_CHECK_MAX_BYTES})",
            path.display()
        );
        return Ok(());
    }
    const CHUNK: u64 = 8 << 20;
    let mut buf = vec![0u8; CHUNK as usize + 3];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at).min(CHUNK + 3)) as usize;
        f.read_exact_at(&mut buf[..n], at).map_err(io)?;
        // memmem: the search runs at memory speed, so the check costs about one read of the file.
        for i in memchr::memmem::find_iter(&buf[..n], b"GCOL") {
            let start = at + i as u64;
            // Version 1, three reserved zero bytes, the collection size (8-byte lengths).
            let mut head = [0u8; 16];
            if f.read_exact_at(&mut head, start).is_err() || head[4..8] != [1, 0, 0, 0] {
                continue;
            }
            let size = u64::from_le_bytes(head[8..16].try_into().unwrap());
            if !(4096..=len - start).contains(&size) {
                continue; // not a collection, or one libhdf5 refuses by itself
            }
            let mut coll = vec![0u8; size as usize];
            f.read_exact_at(&mut coll, start).map_err(io)?;
            let mut p = 16usize;
            while p + 16 <= coll.len() {
                let idx = u16::from_le_bytes([coll[p], coll[p + 1]]);
                let obj = u64::from_le_bytes(coll[p + 8..p + 16].try_into().unwrap());
                let need = if idx > 0 {
                    16u64.saturating_add(obj.div_ceil(8) * 8)
                } else {
                    obj
                };
                if need == 0 {
                    return Err(IoError::new(
                        path,
                        ErrorKind::Corrupt,
                        format!("damaged global heap (variable-length data) at byte {start}: an object of size 0 at offset {p}"),
                    ));
                }
                p = p.saturating_add(need.min(usize::MAX as u64) as usize);
            }
        }
        at += CHUNK;
    }
    if let Ok(mut c) = CHECKED.lock() {
        c.push(key);
    }
    Ok(())
}

fn read_attrs(loc: &Location, path: &Path) -> Result<Vec<(String, AttrValue)>> {
    let names = loc
        .attr_names()
        .map_err(|e| h5err(path, "cannot list attributes", e))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        // An attribute listed but not openable is a damaged object header, not one fewer.
        let a = loc.attr(&name).map_err(|e| {
            h5err(
                path,
                &format!("cannot open attribute `{name}` (damaged file?)"),
                e,
            )
        })?;
        let desc = match a.dtype().and_then(|t| t.to_descriptor()) {
            Ok(d) => d,
            Err(_) => {
                let v = half_float_attr(&a).unwrap_or_else(|| AttrValue::Other("unknown".into()));
                out.push((name, v));
                continue;
            }
        };
        if uses_global_heap(&desc) {
            check_global_heaps(path)?;
        }
        let scalar = a.is_scalar() || a.size() == 1;
        let v = match &desc {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Boolean
                if scalar =>
            {
                a.read_raw::<i64>()
                    .ok()
                    .and_then(|v| v.first().copied())
                    .map(AttrValue::Int)
            }
            TypeDescriptor::Float(_) if scalar => a
                .read_raw::<f64>()
                .ok()
                .and_then(|v| v.first().copied())
                .map(AttrValue::Float),
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
                a.read_raw::<f64>().ok().map(AttrValue::Array)
            }
            TypeDescriptor::VarLenUnicode => a
                .read_raw::<VarLenUnicode>()
                .ok()
                .and_then(|v| v.first().map(|s| AttrValue::Str(s.to_string()))),
            TypeDescriptor::VarLenAscii => a
                .read_raw::<VarLenAscii>()
                .ok()
                .and_then(|v| v.first().map(|s| AttrValue::Str(s.to_string()))),
            TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
                let mem_type = Datatype::from_descriptor(&desc).ok();
                mem_type.and_then(|t| {
                    let mut buf = vec![0u8; n * a.size().max(1)];
                    // SAFETY: buf holds n bytes per element of the fixed string type.
                    let st = hdf5::sync::sync(|| unsafe {
                        hdf5_sys::h5a::H5Aread(a.id(), t.id(), buf.as_mut_ptr() as *mut c_void)
                    });
                    (st >= 0).then(|| AttrValue::Str(fixed_str(&buf[..*n])))
                })
            }
            _ => None,
        };
        out.push((
            name,
            v.unwrap_or_else(|| AttrValue::Other(desc.to_string())),
        ));
    }
    Ok(out)
}

/// A float attribute of a size the `hdf5` crate does not describe (half floats), converted
/// by HDF5 to f64.
fn half_float_attr(a: &hdf5::Attribute) -> Option<AttrValue> {
    use hdf5_sys::h5t::*;
    let n = a.size();
    let mut v = vec![0f64; n.max(1)];
    // SAFETY: v holds n doubles, the memory type H5Aread converts into; ids are owned.
    let ok = hdf5::sync::sync(|| unsafe {
        let t = TypeId(hdf5_sys::h5a::H5Aget_type(a.id()));
        if t.0 < 0 || H5Tget_class(t.0) != H5T_class_t::H5T_FLOAT || n == 0 {
            return false;
        }
        hdf5_sys::h5::H5open();
        hdf5_sys::h5a::H5Aread(a.id(), *H5T_NATIVE_DOUBLE, v.as_mut_ptr() as *mut c_void) >= 0
    });
    if !ok {
        return None;
    }
    Some(if a.is_scalar() || n == 1 {
        AttrValue::Float(v[0])
    } else {
        AttrValue::Array(v)
    })
}

/// A 1-D array as a polars Series.
pub fn nd_to_series(name: &str, data: &NdData) -> Series {
    let name: PlSmallStr = name.into();
    match data {
        NdData::U8(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::I8(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::U16(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::I16(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::U32(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::I32(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::U64(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::I64(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::F32(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::F64(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::Bool(a) => Series::new(name, a.iter().copied().collect::<Vec<_>>()),
        NdData::Str(a) => Series::new(name, a.iter().cloned().collect::<Vec<_>>()),
    }
}

/// How a dataset is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Chunk shape; None picks about 1 MiB chunks along the first axis.
    pub chunks: Option<Vec<usize>>,
    /// gzip level (0 = no compression).
    pub gzip: u8,
    /// Byte shuffle before compression (helps floats compress).
    pub shuffle: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            chunks: None,
            gzip: 4,
            shuffle: true,
        }
    }
}

/// A new HDF5 file being written; it appears under its final name on [`H5Writer::finish`].
///
/// ```no_run
/// use deepsky_io::h5::{H5Writer, WriteOptions};
/// use deepsky_io::NdData;
/// let w = H5Writer::create("out.h5")?;
/// let energy = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[100, 1]));
/// w.write("/energy", &NdData::F32(energy), &WriteOptions::default())?;
/// w.set_attr("/", "units", "GeV".into())?;
/// w.finish()?;
/// # Ok::<(), deepsky_io::IoError>(())
/// ```
pub struct H5Writer {
    file: Option<File>,
    out: Option<AtomicPath>,
    target: PathBuf,
}

impl H5Writer {
    /// Start writing `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<H5Writer> {
        let out = AtomicPath::new(path.as_ref())?;
        let target = out.target().to_path_buf();
        // No HDF5 file lock: the file has a temporary name nobody else knows until it is
        // closed and renamed, so the lock protects nothing, while HDF5 opens it without
        // close-on-exec: a child process started by any thread (a test's Python, sbatch)
        // inherits the descriptor and with it the exclusive lock, and then every reader of
        // the finished file, ours or h5py, fails with "unable to lock file" until that child
        // exits.
        let file = File::with_options()
            .with_fapl(|fapl| fapl.file_locking(false))
            .create(out.temp_path())
            .map_err(|e| h5err(&target, "cannot create HDF5 file", e))?;
        Ok(H5Writer {
            file: Some(file),
            out: Some(out),
            target,
        })
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("open until finish")
    }

    fn err(&self, e: hdf5::Error, what: &str) -> IoError {
        IoError::new(&self.target, ErrorKind::Io, format!("{what}: {e}"))
    }

    /// The group holding `path`'s last component, created if missing; and that component.
    fn parent_of<'a>(&self, path: &'a str) -> Result<(hdf5::Group, &'a str)> {
        let rel = path.trim_start_matches('/');
        let (parent, leaf) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        };
        let mut g = self
            .file()
            .as_group()
            .map_err(|e| self.err(e, "cannot open root"))?;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            g = match g.group(part) {
                Ok(x) => x,
                Err(_) => g
                    .create_group(part)
                    .map_err(|e| self.err(e, &format!("cannot create group `{part}`")))?,
            };
        }
        Ok((g, leaf))
    }

    /// Create a group (and its parents).
    pub fn create_group(&self, path: &str) -> Result<()> {
        let (g, leaf) = self.parent_of(path)?;
        if !leaf.is_empty() && g.group(leaf).is_err() {
            g.create_group(leaf)
                .map_err(|e| self.err(e, &format!("cannot create group `{path}`")))?;
        }
        Ok(())
    }

    /// Write a dataset (creating parent groups).
    pub fn write(&self, path: &str, data: &NdData, opts: &WriteOptions) -> Result<()> {
        let (g, leaf) = self.parent_of(path)?;
        let shape = data.shape();
        macro_rules! w {
            ($a:expr) => {{
                let mut b = g.new_dataset_builder();
                let n: usize = shape.iter().product();
                if n > 0 && !shape.is_empty() {
                    let chunks = opts.chunks.clone().unwrap_or_else(|| {
                        default_chunks(
                            &shape,
                            std::mem::size_of_val(&$a.iter().next().cloned().unwrap_or_default()),
                        )
                    });
                    b = b.chunk(chunks);
                    if opts.shuffle {
                        b = b.shuffle();
                    }
                    if opts.gzip > 0 {
                        b = b.deflate(opts.gzip);
                    }
                }
                let standard = $a.as_standard_layout();
                b.with_data(&standard).create(leaf).map(|_| ())
            }};
        }
        let r = match data {
            NdData::U8(a) => w!(a),
            NdData::I8(a) => w!(a),
            NdData::U16(a) => w!(a),
            NdData::I16(a) => w!(a),
            NdData::U32(a) => w!(a),
            NdData::I32(a) => w!(a),
            NdData::U64(a) => w!(a),
            NdData::I64(a) => w!(a),
            NdData::F32(a) => w!(a),
            NdData::F64(a) => w!(a),
            NdData::Bool(a) => w!(a),
            NdData::Str(a) => {
                let v: Vec<VarLenUnicode> =
                    a.iter().map(|s| s.parse().unwrap_or_default()).collect();
                let arr = ArrayD::from_shape_vec(IxDyn(&shape), v).expect("same shape");
                g.new_dataset_builder()
                    .with_data(&arr)
                    .create(leaf)
                    .map(|_| ())
            }
        };
        r.map_err(|e| self.err(e, &format!("cannot write dataset `{path}`")))
    }

    /// Set an attribute on a group or dataset (`/` is the root).
    pub fn set_attr(&self, object: &str, name: &str, value: AttrValue) -> Result<()> {
        let rel = object.trim_start_matches('/');
        let loc: Location = if rel.is_empty() {
            (***self.file()).clone()
        } else if let Ok(d) = self.file().dataset(rel) {
            (**d).clone()
        } else {
            let g = self
                .file()
                .group(rel)
                .map_err(|e| self.err(e, &format!("no object `{object}`")))?;
            (*g).clone()
        };
        if loc.attr(name).is_ok() {
            loc.delete_attr(name)
                .map_err(|e| self.err(e, "cannot replace attribute"))?;
        }
        let r = match &value {
            AttrValue::Int(i) => loc
                .new_attr::<i64>()
                .create(name)
                .and_then(|a| a.write_scalar(i)),
            AttrValue::Float(f) => loc
                .new_attr::<f64>()
                .create(name)
                .and_then(|a| a.write_scalar(f)),
            AttrValue::Str(s) | AttrValue::Other(s) => {
                let v: VarLenUnicode = s.parse().unwrap_or_default();
                loc.new_attr::<VarLenUnicode>()
                    .create(name)
                    .and_then(|a| a.write_scalar(&v))
            }
            AttrValue::Array(v) => loc
                .new_attr::<f64>()
                .shape(v.len())
                .create(name)
                .and_then(|a| a.write_raw(v)),
        };
        r.map_err(|e| self.err(e, &format!("cannot write attribute `{name}` on `{object}`")))
    }

    /// Close the file and move it to its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        if let Some(f) = self.file.take() {
            f.close().map_err(|e| {
                IoError::new(
                    &self.target,
                    ErrorKind::Io,
                    format!("cannot close HDF5 file: {e}"),
                )
            })?;
        }
        self.out.take().expect("finish runs once").commit()
    }
}

impl Drop for H5Writer {
    fn drop(&mut self) {
        self.file.take();
    }
}

/// About 1 MiB chunks: whole rows of the trailing axes, as many leading rows as fit.
fn default_chunks(shape: &[usize], elem: usize) -> Vec<usize> {
    let row: usize = shape[1..].iter().product::<usize>().max(1) * elem.max(1);
    let rows = ((1 << 20) / row).clamp(1, shape[0].max(1));
    let mut c = vec![rows];
    c.extend(shape[1..].iter().map(|&d| d.max(1)));
    c
}

#[cfg(test)]
#[path = "h5_damaged_tests.rs"]
mod damaged_tests;
