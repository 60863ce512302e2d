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
        if let Some(layout) = CompoundLayout::of(ds) {
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
            });
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
        let desc = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(|e| h5err(&self.path, &format!("cannot read the type of `{name}`"), e))?;
        if uses_global_heap(&desc) {
            check_global_heaps(&self.path)?;
        }
        let ctx = |e| h5err(&self.path, &format!("cannot read `{name}`"), e);
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
        let raw = layout.read(&ds).map_err(|m| {
            IoError::new(
                &self.path,
                ErrorKind::Corrupt,
                format!("cannot read `{name}`: {m}"),
            )
        })?;
        let mut cols = Vec::with_capacity(layout.fields.len());
        for f in &layout.fields {
            let per: usize = f.dims.iter().product::<usize>().max(1);
            let esize = f.leaf.size();
            let item = layout.size;
            let bytes = |r: usize, k: usize| {
                &raw[r * item + f.offset + k * esize..r * item + f.offset + (k + 1) * esize]
            };
            let cells = || (0..n).flat_map(|r| (0..per).map(move |k| (r, k)));
            macro_rules! col {
                ($t:ty) => {{
                    let v: Vec<$t> = cells()
                        .map(|(r, k)| <$t>::from_ne_bytes(bytes(r, k).try_into().unwrap()))
                        .collect();
                    Series::from_vec(f.name.as_str().into(), v)
                }};
            }
            let flat = match f.leaf {
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
                Leaf::Str(_) => {
                    let v: Vec<String> = cells().map(|(r, k)| fixed_str(bytes(r, k))).collect();
                    Series::new(f.name.as_str().into(), v)
                }
            };
            let s = if f.dims.is_empty() {
                flat
            } else if n == 0 {
                let dt = f.dims.iter().rev().fold(flat.dtype().clone(), |inner, &d| {
                    DataType::Array(Box::new(inner), d)
                });
                Series::new_empty(f.name.as_str().into(), &dt)
            } else {
                let mut dims = vec![ReshapeDimension::Infer];
                dims.extend(
                    f.dims
                        .iter()
                        .map(|&d| ReshapeDimension::new_dimension(d as u64)),
                );
                flat.reshape_array(&dims)
                    .map_err(|e| IoError::new(&self.path, ErrorKind::Corrupt, e.to_string()))?
            };
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
}

impl Leaf {
    fn size(self) -> usize {
        match self {
            Leaf::Int(n) | Leaf::UInt(n) | Leaf::Float(n) | Leaf::Str(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
struct CompoundField {
    name: String,
    /// Byte offset in the packed in-memory record.
    offset: usize,
    leaf: Leaf,
    /// Shape of an array field, slowest axis first (empty for scalars).
    dims: Vec<usize>,
}

impl CompoundField {
    fn dtype_name(&self) -> String {
        let base = match self.leaf {
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
            Leaf::Str(_) => "str",
        };
        if self.dims.is_empty() {
            base.to_string()
        } else {
            format!("list[{base}]")
        }
    }
}

/// A compound dataset's fields, and the packed native record type HDF5 converts it into.
///
/// Built on the C API because the `hdf5` crate's type descriptors do not cover multi-
/// dimensional array fields (PyTables writes them), while HDF5 itself converts any of them.
struct CompoundLayout {
    fields: Vec<CompoundField>,
    size: usize,
    mem_type: hdf5_sys::h5i::hid_t,
}

impl Drop for CompoundLayout {
    fn drop(&mut self) {
        // SAFETY: we own mem_type; closed under the hdf5 crate's lock like every raw call.
        hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tclose(self.mem_type) });
    }
}

impl CompoundLayout {
    /// None if the dataset is not compound; Err names an unsupported field.
    fn of(ds: &Dataset) -> Option<std::result::Result<CompoundLayout, String>> {
        use hdf5_sys::h5t::*;
        // SAFETY: plain HDF5 C calls on ids we own and close below. The HDF5 library is
        // not thread-safe: every raw call holds the hdf5 crate's global (reentrant) lock,
        // as the crate's own calls do, or concurrent readers corrupt its id table.
        hdf5::sync::sync(|| unsafe {
            let ftype = hdf5_sys::h5d::H5Dget_type(ds.id());
            if ftype < 0 {
                return None;
            }
            if H5Tget_class(ftype) != H5T_class_t::H5T_COMPOUND {
                H5Tclose(ftype);
                return None;
            }
            let result = Self::build(ftype);
            H5Tclose(ftype);
            Some(result)
        })
    }

    unsafe fn build(ftype: hdf5_sys::h5i::hid_t) -> std::result::Result<CompoundLayout, String> {
        use hdf5_sys::h5t::*;
        let n = unsafe { H5Tget_nmembers(ftype) }.max(0) as u32;
        let mut fields = Vec::new();
        let mut mem_members = Vec::new();
        let mut offset = 0usize;
        for i in 0..n {
            let (name, mtype) = unsafe {
                let p = H5Tget_member_name(ftype, i);
                let name = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
                hdf5_sys::h5::H5free_memory(p as *mut c_void);
                (name, H5Tget_member_type(ftype, i))
            };
            let (base, dims) = if unsafe { H5Tget_class(mtype) } == H5T_class_t::H5T_ARRAY {
                let nd = unsafe { H5Tget_array_ndims(mtype) }.max(0) as usize;
                let mut d = vec![0 as hdf5_sys::h5::hsize_t; nd];
                unsafe { H5Tget_array_dims2(mtype, d.as_mut_ptr()) };
                (
                    unsafe { H5Tget_super(mtype) },
                    d.iter().map(|&x| x as usize).collect::<Vec<_>>(),
                )
            } else {
                (unsafe { H5Tcopy(mtype) }, vec![])
            };
            let class = unsafe { H5Tget_class(base) };
            let size = unsafe { H5Tget_size(base) };
            let (leaf, native) = match class {
                H5T_class_t::H5T_INTEGER | H5T_class_t::H5T_ENUM => {
                    let native =
                        unsafe { H5Tget_native_type(base, H5T_direction_t::H5T_DIR_ASCEND) };
                    let nsize = unsafe { H5Tget_size(native) };
                    let signed = unsafe { H5Tget_sign(native) } != H5T_sign_t::H5T_SGN_NONE;
                    (
                        if signed {
                            Leaf::Int(nsize)
                        } else {
                            Leaf::UInt(nsize)
                        },
                        native,
                    )
                }
                H5T_class_t::H5T_FLOAT => {
                    let native =
                        unsafe { H5Tget_native_type(base, H5T_direction_t::H5T_DIR_ASCEND) };
                    (Leaf::Float(unsafe { H5Tget_size(native) }), native)
                }
                H5T_class_t::H5T_STRING if unsafe { H5Tis_variable_str(base) } <= 0 => {
                    (Leaf::Str(size), unsafe { H5Tcopy(base) })
                }
                _ => {
                    unsafe {
                        H5Tclose(base);
                        H5Tclose(mtype);
                    }
                    for (_, t) in mem_members {
                        unsafe { H5Tclose(t) };
                    }
                    return Err(format!(
                        "field `{name}` has a type deepsky cannot read (class {class:?})"
                    ));
                }
            };
            let member = if dims.is_empty() {
                native
            } else {
                let d: Vec<hdf5_sys::h5::hsize_t> =
                    dims.iter().map(|&x| x as hdf5_sys::h5::hsize_t).collect();
                let a = unsafe { H5Tarray_create2(native, d.len() as u32, d.as_ptr()) };
                unsafe { H5Tclose(native) };
                a
            };
            let msize = unsafe { H5Tget_size(member) };
            fields.push(CompoundField {
                name: name.clone(),
                offset,
                leaf,
                dims,
            });
            mem_members.push((name, member));
            offset += msize;
            unsafe {
                H5Tclose(base);
                H5Tclose(mtype);
            }
        }
        let mem_type = unsafe { H5Tcreate(H5T_class_t::H5T_COMPOUND, offset.max(1)) };
        for (f, (name, t)) in fields.iter().zip(&mem_members) {
            let c = std::ffi::CString::new(name.as_str()).unwrap_or_default();
            unsafe {
                H5Tinsert(mem_type, c.as_ptr(), f.offset, *t);
                H5Tclose(*t);
            }
        }
        Ok(CompoundLayout {
            fields,
            size: offset,
            mem_type,
        })
    }

    /// All records, converted by HDF5 into the packed native layout.
    fn read(&self, ds: &Dataset) -> std::result::Result<Vec<u8>, String> {
        let mut buf = vec![0u8; ds.size() * self.size];
        if buf.is_empty() {
            return Ok(buf);
        }
        // SAFETY: buf holds size × record bytes of mem_type, which H5Dread fills.
        let st = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5d::H5Dread(
                ds.id(),
                self.mem_type,
                hdf5_sys::h5s::H5S_ALL,
                hdf5_sys::h5s::H5S_ALL,
                hdf5_sys::h5p::H5P_DEFAULT,
                buf.as_mut_ptr() as *mut c_void,
            )
        });
        if st < 0 {
            return Err("H5Dread failed".into());
        }
        Ok(buf)
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

/// Check the file's global heap collections (where variable-length values live) for the one
/// damage libhdf5 cannot survive: an object of index 0 and size 0 stops its parser from
/// advancing, and it loops forever (seen in HDF5 2.2.0's `H5HG__cache_heap_deserialize`).
/// Every other inconsistency libhdf5 reports as an error. Run once per file, and only
/// before reading a variable-length value.
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
    const CHUNK: u64 = 8 << 20;
    let mut buf = vec![0u8; CHUNK as usize + 3];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at).min(CHUNK + 3)) as usize;
        f.read_exact_at(&mut buf[..n], at).map_err(io)?;
        for i in 0..n.saturating_sub(3) {
            if &buf[i..i + 4] != b"GCOL" {
                continue;
            }
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
                out.push((name, AttrValue::Other("unknown".into())));
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
