//! Reading FITS: HDU summaries, header cards, images into [`NdData`], tables into polars.

use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;

use fitsio::sys;
use ndarray::{ArrayD, IxDyn};
use polars::prelude::*;
use serde::Serialize;

use super::ffi::{self, from_cbuf, Handle};
use super::header::{Card, Header};
use super::table::{self, ColumnLayout, ColumnSpec};
use crate::data::NdData;
use crate::error::{ErrorKind, IoError, Result};

/// Which HDU to use: by 0-based index (0 is the primary HDU) or by EXTNAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HduSelector {
    /// 0-based position in the file.
    Index(usize),
    /// The EXTNAME (or HDUNAME) keyword, compared case-insensitively.
    Name(String),
}

impl std::str::FromStr for HduSelector {
    type Err = std::convert::Infallible;
    /// A number selects by index, anything else by name.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(i) => HduSelector::Index(i),
            Err(_) => HduSelector::Name(s.to_string()),
        })
    }
}

impl From<usize> for HduSelector {
    fn from(i: usize) -> Self {
        HduSelector::Index(i)
    }
}

impl From<&str> for HduSelector {
    fn from(s: &str) -> Self {
        s.parse().expect("infallible")
    }
}

impl std::fmt::Display for HduSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HduSelector::Index(i) => write!(f, "HDU {i}"),
            HduSelector::Name(n) => write!(f, "HDU `{n}`"),
        }
    }
}

/// What an HDU holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HduKind {
    /// An image (including tile-compressed images, which cfitsio presents as images).
    Image,
    /// A binary or ASCII table.
    Table,
    /// A header without data (NAXIS = 0), typical of a primary HDU before extensions.
    Empty,
}

/// One table column as deepsky reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// TTYPEn.
    pub name: String,
    /// TFORMn as written in the file.
    pub tform: String,
    /// deepsky's dtype name after scaling (`i16`, `f64`, `list[f32]`, …).
    pub dtype: String,
    /// TUNITn, if any.
    pub unit: Option<String>,
    /// Shape of one cell, slowest axis first (empty for scalars, `[n]` for a vector column).
    pub cell_shape: Vec<usize>,
    /// True for variable-length array (P/Q) columns.
    pub variable_length: bool,
}

/// A summary of one HDU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HduInfo {
    /// 0-based position.
    pub index: usize,
    /// EXTNAME, `PRIMARY` for the primary HDU, or empty for an unnamed extension.
    pub name: String,
    /// Image, table or empty.
    pub kind: HduKind,
    /// Image shape (slowest axis first); empty for tables and empty HDUs.
    pub shape: Vec<usize>,
    /// Image element type after BSCALE/BZERO (`u16`, `f32`, …); None for tables.
    pub dtype: Option<String>,
    /// Number of rows (tables only).
    pub rows: Option<usize>,
    /// Columns (tables only).
    pub columns: Vec<ColumnInfo>,
    /// The compression algorithm of a tile-compressed image (e.g. `RICE_1`).
    pub compression: Option<String>,
}

/// A table read into polars, with the FITS column metadata beside it.
#[derive(Debug, Clone)]
pub struct FitsTable {
    /// The columns' values. Nulls come from TNULL (integers) or undefined logicals.
    pub data: DataFrame,
    /// Per column, in the order of `data`: name, TFORM, unit, shape.
    pub columns: Vec<ColumnInfo>,
}

impl FitsTable {
    /// The unit (TUNIT) of a column, if it has one.
    pub fn unit(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.name == column)
            .and_then(|c| c.unit.as_deref())
    }
}

/// A FITS file open for reading.
///
/// ```no_run
/// use deepsky_io::fits::FitsReader;
/// let mut f = FitsReader::open("events.fits")?;
/// for hdu in f.hdus()? {
///     println!("{} {} {:?}", hdu.index, hdu.name, hdu.kind);
/// }
/// let events = f.read_table(&"EVENTS".into(), Some(&["TIME", "ENERGY"]))?;
/// println!("{}", events.data.height());
/// # Ok::<(), deepsky_io::IoError>(())
/// ```
pub struct FitsReader {
    handle: Handle,
    file_size: Option<u64>,
    compressed_file: bool,
    /// The number of HDUs, once counted and checked ([`FitsReader::num_hdus`]).
    hdu_count: Option<usize>,
}

/// Deflate expands at most 1032-fold. cfitsio allocates the size a gzip trailer claims
/// (ISIZE, the length mod 2^32) before decompressing; a damaged or random trailer would make
/// it allocate up to 4 GiB for a small file. A real file's ISIZE never exceeds what its
/// compressed length can hold (a file over 4 GiB wraps to a smaller ISIZE), so refuse the rest.
fn check_gzip_size(path: &Path, compressed: u64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| IoError::from_std(path, e);
    if compressed < 18 {
        return Err(IoError::new(
            path,
            ErrorKind::Corrupt,
            "gzip stream is truncated (shorter than its header and trailer)",
        ));
    }
    let mut f = std::fs::File::open(path).map_err(io)?;
    f.seek(SeekFrom::End(-4)).map_err(io)?;
    let mut trailer = [0u8; 4];
    f.read_exact(&mut trailer).map_err(io)?;
    let isize = u32::from_le_bytes(trailer) as u64;
    // What cfitsio would allocate: a stream that did not shrink (and is over 10 000 bytes)
    // is taken for one over 4 GiB that wrapped, and gets ISIZE + 4 GiB. A real FITS file
    // always shrinks, or is that large; random bytes do not start with a SIMPLE card, so look
    // at the first decompressed bytes before cfitsio sizes anything.
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut first = [0u8; 9];
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
    if gz.read_exact(&mut first).is_err() || &first != b"SIMPLE  =" {
        return Err(IoError::new(
            path,
            ErrorKind::Corrupt,
            "gzip stream does not decompress to a FITS file (no SIMPLE card at its start)",
        ));
    }
    if isize > compressed.saturating_mul(1032) + 65536 {
        return Err(IoError::new(
            path,
            ErrorKind::Corrupt,
            format!(
                "damaged gzip stream: its trailer claims {isize} bytes uncompressed, more than {compressed} compressed bytes can hold (truncated or not gzip)"
            ),
        ));
    }
    Ok(())
}

impl FitsReader {
    /// Open a FITS file (plain or gzip-compressed) read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<FitsReader> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| IoError::from_std(path, e))?;
        if meta.is_dir() {
            return Err(IoError::new(
                path,
                ErrorKind::InvalidInput,
                "is a directory, not a FITS file",
            ));
        }
        let mut magic = [0u8; 2];
        let compressed_file = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| IoError::from_std(path, e))?;
            f.read(&mut magic).map_err(|e| IoError::from_std(path, e))? == 2
                && magic == [0x1f, 0x8b]
        };
        if compressed_file {
            check_gzip_size(path, meta.len())?;
        }
        let handle = Handle::open(path)?;
        Ok(FitsReader {
            handle,
            file_size: Some(meta.len()),
            compressed_file,
            hdu_count: None,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.handle.path()
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>) -> IoError {
        IoError::new(self.handle.path(), kind, msg)
    }

    /// Number of HDUs. A file whose HDUs cannot all be read is an error naming the first bad
    /// one, never a shorter file: a damaged extension header, or bytes after the last HDU that
    /// are not one (a truncated or mangled header). Zero bytes after the last HDU are padding,
    /// read past with a warning.
    pub fn num_hdus(&mut self) -> Result<usize> {
        if let Some(n) = self.hdu_count {
            return Ok(n);
        }
        let n = self.handle.num_hdus()?;
        // The walk stops at the end of the file; a last HDU whose data the file does not hold
        // is a truncated file (for `.fits.gz` too, whose length is only known decompressed),
        // and one that lacks only its padding is a file that may have been cut short.
        if n > 0 {
            self.handle.move_to(n - 1)?;
            let (_, start, end) = self.hdu_offsets()?;
            let data_end = self.data_bytes()?;
            // Plain files: the length is known (cfitsio reads whole 2880-byte records, so a
            // probe of the last data byte fails in a file that lacks only its padding).
            let missing = match (self.compressed_file, self.file_size) {
                (false, Some(size)) => data_end > size,
                _ => data_end > start as u64 && !self.handle.byte_readable(data_end as i64 - 1),
            };
            if missing {
                return Err(self.err(
                    ErrorKind::Corrupt,
                    format!(
                        "file is truncated: HDU {} declares data up to byte {data_end}, but the file ends before that",
                        n - 1
                    ),
                ));
            }
            // After the last HDU: a plain file lacking only its padding may have been cut
            // short; zero bytes are padding, read past; anything else is a damaged HDU.
            if let (false, Some(size)) = (self.compressed_file, self.file_size) {
                let end = end as u64;
                if size < end {
                    tracing::warn!(
                        "{}: the file ends {} bytes short of the padding of its last HDU ({}): it may have been cut short after it",
                        self.path().display(),
                        end - size,
                        n - 1
                    );
                } else if size > end {
                    if !self.all_zero(end)? {
                        return Err(self.err(
                            ErrorKind::Corrupt,
                            format!(
                                "HDU {n} is damaged or truncated: the {} bytes after the last readable HDU (from byte {end}) are not a FITS HDU",
                                size - end
                            ),
                        ));
                    }
                    tracing::warn!(
                        "{}: {} zero bytes after the last HDU ignored",
                        self.path().display(),
                        size - end
                    );
                }
            }
        }
        self.hdu_count = Some(n);
        Ok(n)
    }

    /// Whether every byte of the file from `offset` on is zero.
    fn all_zero(&self, offset: u64) -> Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path();
        let io = |e| IoError::from_std(path, e);
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(true);
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
        }
    }

    /// Move to an HDU and return its index and cfitsio type; checks that its data is all there.
    fn select(&mut self, hdu: &HduSelector) -> Result<(usize, c_int)> {
        let index = match hdu {
            HduSelector::Index(i) => {
                let n = self.num_hdus()?;
                if *i >= n {
                    return Err(self.err(
                        ErrorKind::NotFound,
                        format!(
                            "no HDU {i}: the file has {n} HDU{} (0..{})",
                            if n == 1 { "" } else { "s" },
                            n.saturating_sub(1)
                        ),
                    ));
                }
                *i
            }
            HduSelector::Name(name) => {
                // A damaged HDU must not pass for a missing name.
                self.num_hdus()?;
                self.handle.move_to_name(name)?
            }
        };
        let t = self.handle.move_to(index)?;
        if !self.compressed_file {
            if let Some(size) = self.file_size {
                let (_, _, end) = self.hdu_offsets()?;
                // cfitsio pads the last HDU to 2880 bytes; allow files that omit only that padding.
                let needed = end as u64;
                if needed > size && needed - size >= 2880
                    || (needed > size && self.data_bytes()? > size)
                {
                    return Err(self.err(
                        ErrorKind::Corrupt,
                        format!("file is truncated: HDU {index} needs {needed} bytes, the file has {size}"),
                    ));
                }
            }
        }
        Ok((index, t))
    }

    /// (header start, data start, data end) of the current HDU, as cfitsio reports them but
    /// for a binary table with a gap before its heap (THEAP > NAXIS1 × NAXIS2): cfitsio puts
    /// the end at THEAP + PCOUNT, but the standard's PCOUNT already counts the gap (astropy
    /// writes it so), and the data ends at NAXIS1 × NAXIS2 + PCOUNT.
    fn hdu_offsets(&mut self) -> Result<(i64, i64, i64)> {
        let (header, start, end) = self.handle.hdu_offsets()?;
        if let Some(gap) = self.heap_gap()? {
            if gap > 0 {
                let data = self.data_bytes()? as i64 - start;
                let padded = start.saturating_add((data.max(0) + 2879) / 2880 * 2880);
                return Ok((header, start, end.min(padded)));
            }
        }
        Ok((header, start, end))
    }

    /// For a binary table with THEAP, the bytes between the end of the rows and the heap
    /// (THEAP − NAXIS1 × NAXIS2, which PCOUNT includes); None for other HDUs.
    fn heap_gap(&mut self) -> Result<Option<i64>> {
        let mut hdutype = 0;
        let mut status = 0;
        unsafe { sys::ffghdt(self.handle.ptr(), &mut hdutype, &mut status) };
        if status != 0 || hdutype != ffi::BINARY_TBL {
            let _ = ffi::take_error_stack();
            return Ok(None);
        }
        let Some(theap) = self.handle.key_f64("THEAP")? else {
            return Ok(None);
        };
        let naxis1 = self.handle.key_f64("NAXIS1")?.unwrap_or(0.0);
        let naxis2 = self.handle.key_f64("NAXIS2")?.unwrap_or(0.0);
        Ok(Some((theap - naxis1 * naxis2) as i64))
    }

    fn data_bytes(&mut self) -> Result<u64> {
        let (_, start, _) = self.handle.hdu_offsets()?;
        // Unpadded data size = data start + |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1*...*NAXISn).
        let bitpix = self.handle.key_f64("BITPIX")?.unwrap_or(8.0).abs() as u64;
        let naxis = self.handle.key_f64("NAXIS")?.unwrap_or(0.0) as usize;
        let mut n: u64 = if naxis == 0 { 0 } else { 1 };
        for i in 1..=naxis {
            n = n.saturating_mul(self.handle.key_f64(&format!("NAXIS{i}"))?.unwrap_or(0.0) as u64);
        }
        let pcount = self.handle.key_f64("PCOUNT")?.unwrap_or(0.0) as u64;
        let gcount = self.handle.key_f64("GCOUNT")?.unwrap_or(1.0) as u64;
        // Saturating: a damaged header may claim more than u64 holds.
        Ok((start as u64).saturating_add(
            (bitpix / 8)
                .saturating_mul(gcount)
                .saturating_mul(pcount.saturating_add(n)),
        ))
    }

    /// Summaries of all HDUs.
    pub fn hdus(&mut self) -> Result<Vec<HduInfo>> {
        let n = self.num_hdus()?;
        (0..n)
            .map(|i| self.hdu_info(&HduSelector::Index(i)))
            .collect()
    }

    /// Summary of one HDU.
    pub fn hdu_info(&mut self, hdu: &HduSelector) -> Result<HduInfo> {
        let (index, hdutype) = self.select(hdu)?;
        let extname = self.handle.key_str("EXTNAME")?;
        let name = match (extname, index) {
            (Some(n), _) => n,
            (None, 0) => "PRIMARY".to_string(),
            (None, _) => String::new(),
        };
        match hdutype {
            ffi::IMAGE_HDU => {
                let shape = self.image_shape()?;
                let compression = if self.is_compressed_image() {
                    self.handle.key_str("ZCMPTYPE")?
                } else {
                    None
                };
                if shape.is_empty() {
                    return Ok(HduInfo {
                        index,
                        name,
                        kind: HduKind::Empty,
                        shape,
                        dtype: None,
                        rows: None,
                        columns: vec![],
                        compression,
                    });
                }
                let (_, dtype) = self.image_read_type()?;
                Ok(HduInfo {
                    index,
                    name,
                    kind: HduKind::Image,
                    shape,
                    dtype: Some(dtype.to_string()),
                    rows: None,
                    columns: vec![],
                    compression,
                })
            }
            _ => {
                let specs = self.column_specs(hdutype)?;
                let rows = self.num_rows()?;
                let columns = specs.iter().map(|s| s.info()).collect();
                Ok(HduInfo {
                    index,
                    name,
                    kind: HduKind::Table,
                    shape: vec![],
                    dtype: None,
                    rows: Some(rows),
                    columns,
                    compression: None,
                })
            }
        }
    }

    /// All header cards of an HDU, in order.
    pub fn header(&mut self, hdu: &HduSelector) -> Result<Header> {
        self.select(hdu)?;
        let mut nkeys = 0;
        let mut more = 0;
        let mut status = 0;
        unsafe { sys::ffghsp(self.handle.ptr(), &mut nkeys, &mut more, &mut status) };
        self.handle.check(status, || "cannot read header".into())?;
        let mut cards = Vec::with_capacity(nkeys as usize);
        for i in 1..=nkeys {
            let mut rec = [0 as c_char; 81];
            unsafe { sys::ffgrec(self.handle.ptr(), i, rec.as_mut_ptr(), &mut status) };
            self.handle
                .check(status, || format!("cannot read header card {i}"))?;
            let line = from_cbuf(&rec);
            // A card that breaks the standard (a value that does not parse, a lowercase or
            // illegal keyword, bytes outside ASCII) is kept, with a warning, as astropy does:
            // real survey headers (DSS plate solutions, old instruments) carry such cards, and
            // the rest of the header and the data are still good. A card broken in both its
            // keyword and its value is damage, not a convention, and stays an error.
            let (card, issue) = Card::parse_lenient(&line).map_err(|m| {
                self.err(ErrorKind::Corrupt, format!("header card {i} of {hdu}: {m}"))
            })?;
            if let Some(issue) = issue {
                // Control bytes in the card must not reach the terminal raw.
                let why: String = issue
                    .why
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                if issue.text_only {
                    // Only comment text changed (bytes outside ASCII now `?`): no keyword
                    // or value is affected, so this is not worth a warning.
                    tracing::debug!("{}: {hdu}: header card {i}: {why}", self.path().display());
                } else {
                    tracing::warn!(
                        "{}: {hdu}: header card {i} is not standard FITS, kept as written: {why}",
                        self.path().display()
                    );
                }
            }
            cards.push(card);
        }
        Ok(Header::new(cards))
    }

    fn is_compressed_image(&mut self) -> bool {
        let mut status = 0;
        unsafe { sys::fits_is_compressed_image(self.handle.ptr(), &mut status) != 0 }
    }

    fn image_shape(&mut self) -> Result<Vec<usize>> {
        let mut naxis = 0;
        let mut status = 0;
        unsafe { sys::ffgidm(self.handle.ptr(), &mut naxis, &mut status) };
        self.handle.check(status, || "cannot read NAXIS".into())?;
        if naxis == 0 {
            return Ok(vec![]);
        }
        let mut dims = vec![0i64; naxis as usize];
        unsafe { sys::ffgiszll(self.handle.ptr(), naxis, dims.as_mut_ptr(), &mut status) };
        self.handle
            .check(status, || "cannot read image size".into())?;
        // FITS lists the fastest axis first; numpy (and we) list the slowest first.
        Ok(dims.iter().rev().map(|&d| d as usize).collect())
    }

    /// The number of pixels the header declares, once the data is known to hold them all:
    /// the last pixel is read first, so that a header claiming more than the file has (a
    /// damaged NAXIS, a truncated `.fits.gz`, whose size is only known once decompressed) is an
    /// error, not an allocation of what the header claims.
    fn check_image_data(&mut self, shape: &[usize], hdu: &HduSelector) -> Result<usize> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as usize)
            .ok_or_else(|| {
                self.err(
                    ErrorKind::Corrupt,
                    format!("{hdu}: the header declares an image of {shape:?} pixels, too many to be real"),
                )
            })?;
        let (mut last, mut anynul, mut status) = (0f64, 0, 0);
        unsafe {
            sys::ffgpv(
                self.handle.ptr(),
                ffi::TDOUBLE,
                n as i64,
                1,
                std::ptr::null_mut(),
                &mut last as *mut f64 as *mut c_void,
                &mut anynul,
                &mut status,
            )
        };
        if status != 0 {
            let _ = ffi::take_error_stack();
            return Err(self.err(
                ErrorKind::Corrupt,
                format!("{hdu}: the header declares {shape:?} pixels, but the data ends before the last one (truncated or damaged file)"),
            ));
        }
        Ok(n)
    }

    /// Whether the current image is integer (BITPIX > 0), not tile-compressed, has an
    /// integer BLANK and no BSCALE/BZERO scaling.
    fn has_unscaled_blank(&mut self) -> Result<bool> {
        if self.is_compressed_image() {
            return Ok(false);
        }
        let bitpix = self.handle.key_f64("BITPIX")?.unwrap_or(0.0);
        if bitpix <= 0.0 {
            return Ok(false);
        }
        let blank = self.handle.key_f64("BLANK")?;
        let bscale = self.handle.key_f64("BSCALE")?.unwrap_or(1.0);
        let bzero = self.handle.key_f64("BZERO")?.unwrap_or(0.0);
        Ok(blank.is_some_and(|b| b.fract() == 0.0) && bscale == 1.0 && bzero == 0.0)
    }

    /// The cfitsio type to read the current image as, and deepsky's dtype name, after scaling.
    fn image_read_type(&mut self) -> Result<(c_int, &'static str)> {
        let mut eq = 0;
        let mut status = 0;
        unsafe { sys::ffgiet(self.handle.ptr(), &mut eq, &mut status) };
        self.handle
            .check(status, || "cannot read image type".into())?;
        // An integer image with BLANK and no scaling: astropy gives floats with NaN for the
        // BLANK pixels (float32 for BITPIX 8/16, float64 for 32/64), so that undefined pixels
        // never count as values. cfitsio's equivalent type ignores BLANK; follow astropy.
        // (With BSCALE/BZERO, cfitsio already gives floats; tile-compressed images keep
        // cfitsio's reading.)
        if self.has_unscaled_blank()? {
            return Ok(if eq.abs() <= 16 {
                (ffi::TFLOAT, "f32")
            } else {
                (ffi::TDOUBLE, "f64")
            });
        }
        Ok(match eq {
            8 => (ffi::TBYTE, "u8"),
            10 => (ffi::TSBYTE, "i8"),
            16 => (ffi::TSHORT, "i16"),
            20 => (ffi::TUSHORT, "u16"),
            32 => (ffi::TINT, "i32"),
            40 => (ffi::TUINT, "u32"),
            64 => (ffi::TLONGLONG, "i64"),
            80 => (ffi::TULONGLONG, "u64"),
            -32 => (ffi::TFLOAT, "f32"),
            -64 => (ffi::TDOUBLE, "f64"),
            other => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("unsupported image type BITPIX={other}"),
                ))
            }
        })
    }

    /// Read an image with BSCALE/BZERO applied: BZERO 32768 on BITPIX 16 gives u16, 2^31 on 32
    /// gives u32, other scalings give f32 (BITPIX 8/16) or f64 (32/64); undefined pixels (BLANK,
    /// or NaN) are NaN in float results. Tile-compressed images are decompressed transparently.
    pub fn read_image(&mut self, hdu: &HduSelector) -> Result<NdData> {
        let (_, hdutype) = self.select(hdu)?;
        if hdutype != ffi::IMAGE_HDU {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!("{hdu} is a table, not an image"),
            ));
        }
        let shape = self.image_shape()?;
        if shape.is_empty() {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!("{hdu} has no image data (NAXIS = 0)"),
            ));
        }
        let (datatype, _) = self.image_read_type()?;
        let n = self.check_image_data(&shape, hdu)?;
        if datatype == ffi::TFLOAT {
            if let Some(scaled) = self.read_small_int_scaled(n, &shape, hdu)? {
                return Ok(scaled);
            }
        }
        if let Some(direct) = self.read_image_direct(datatype, n, &shape)? {
            return Ok(direct);
        }
        macro_rules! read_as {
            ($t:ty, $variant:ident, $nul:expr) => {{
                let mut buf: Vec<$t> = vec![Default::default(); n];
                let mut nulval: $t = $nul;
                let mut anynul = 0;
                let mut status = 0;
                let nulptr: *mut c_void = if matches!(datatype, ffi::TFLOAT | ffi::TDOUBLE) {
                    &mut nulval as *mut $t as *mut c_void
                } else {
                    std::ptr::null_mut()
                };
                unsafe {
                    sys::ffgpv(
                        self.handle.ptr(),
                        datatype,
                        1,
                        n as i64,
                        nulptr,
                        buf.as_mut_ptr() as *mut c_void,
                        &mut anynul,
                        &mut status,
                    )
                };
                self.handle
                    .check(status, || format!("cannot read image data of {hdu}"))?;
                NdData::$variant(
                    ArrayD::from_shape_vec(IxDyn(&shape), buf).expect("buffer matches shape"),
                )
            }};
        }
        Ok(match datatype {
            ffi::TBYTE => read_as!(u8, U8, 0),
            ffi::TSBYTE => read_as!(i8, I8, 0),
            ffi::TSHORT => read_as!(i16, I16, 0),
            ffi::TUSHORT => read_as!(u16, U16, 0),
            ffi::TINT => read_as!(i32, I32, 0),
            ffi::TUINT => read_as!(u32, U32, 0),
            ffi::TLONGLONG => read_as!(i64, I64, 0),
            ffi::TULONGLONG => read_as!(u64, U64, 0),
            ffi::TFLOAT => read_as!(f32, F32, f32::NAN),
            _ => read_as!(f64, F64, f64::NAN),
        })
    }

    /// Plain images (no gzip, no tile compression, no scaling other than the unsigned-integer
    /// offsets) are read straight from the file and byte-swapped here: this is close to the cost
    /// of reading the bytes once, about three times faster than going through cfitsio's buffers.
    fn read_image_direct(
        &mut self,
        datatype: c_int,
        n: usize,
        shape: &[usize],
    ) -> Result<Option<NdData>> {
        if self.compressed_file || self.is_compressed_image() || self.has_unscaled_blank()? {
            return Ok(None);
        }
        let bitpix = self.handle.key_f64("BITPIX")?.unwrap_or(0.0) as i32;
        let bscale = self.handle.key_f64("BSCALE")?.unwrap_or(1.0);
        let bzero = self.handle.key_f64("BZERO")?.unwrap_or(0.0);
        let plain = bscale == 1.0 && bzero == 0.0;
        let flip = bscale == 1.0
            && matches!(
                (bitpix, bzero),
                (8, -128.0) | (16, 32768.0) | (32, 2147483648.0) | (64, 9223372036854775808.0)
            );
        if !(plain || flip) {
            return Ok(None);
        }
        let (_, start, _) = self.handle.hdu_offsets()?;
        let path = self.handle.path().to_path_buf();
        let f = std::fs::File::open(&path).map_err(|e| IoError::from_std(&path, e))?;
        let start = start as u64;
        // Read straight into the output buffer and swap bytes in place, block by block while
        // the block is still in cache: one allocation and one pass over memory (a byte buffer
        // plus a converted copy cost twice the page faults and memory traffic, which dominated
        // reads of large images).
        macro_rules! conv {
            ($t:ty, $v:ident, $flip:expr) => {{
                let mut v: Vec<$t> = vec![0; n];
                let flip: $t = $flip;
                read_big_endian_into(&f, &path, start, &mut v, |x| *x = <$t>::from_be(*x) ^ flip)?;
                NdData::$v(ArrayD::from_shape_vec(IxDyn(shape), v).expect("buffer matches shape"))
            }};
        }
        macro_rules! conv_float {
            ($t:ty, $bits:ty, $v:ident) => {{
                let mut v: Vec<$t> = vec![0.0; n];
                read_big_endian_into(&f, &path, start, &mut v, |x| {
                    *x = <$t>::from_bits(<$bits>::from_be(x.to_bits()))
                })?;
                NdData::$v(ArrayD::from_shape_vec(IxDyn(shape), v).expect("buffer matches shape"))
            }};
        }
        Ok(Some(match datatype {
            ffi::TBYTE => conv!(u8, U8, 0),
            ffi::TSBYTE => conv!(i8, I8, i8::MIN),
            ffi::TSHORT => conv!(i16, I16, 0),
            ffi::TUSHORT => conv!(u16, U16, 0x8000),
            ffi::TINT => conv!(i32, I32, 0),
            ffi::TUINT => conv!(u32, U32, 0x8000_0000),
            ffi::TLONGLONG => conv!(i64, I64, 0),
            ffi::TULONGLONG => conv!(u64, U64, 0x8000_0000_0000_0000),
            ffi::TFLOAT => conv_float!(f32, u32, F32),
            ffi::TDOUBLE => conv_float!(f64, u64, F64),
            _ => return Ok(None),
        }))
    }

    /// BITPIX 8/16 images with BSCALE/BZERO become f32. astropy scales them in float32
    /// arithmetic (raw × f32(BSCALE) + f32(BZERO)), cfitsio in double and then rounds; the two
    /// differ in the last bit of some pixels. We follow astropy so that both tools give the same
    /// numbers. BLANK becomes NaN. Returns None for images this does not apply to.
    fn read_small_int_scaled(
        &mut self,
        n: usize,
        shape: &[usize],
        hdu: &HduSelector,
    ) -> Result<Option<NdData>> {
        let bitpix = self.handle.key_f64("BITPIX")?.unwrap_or(0.0) as i32;
        if !(bitpix == 8 || bitpix == 16) || self.is_compressed_image() {
            return Ok(None);
        }
        let bscale = self.handle.key_f64("BSCALE")?.unwrap_or(1.0);
        let bzero = self.handle.key_f64("BZERO")?.unwrap_or(0.0);
        let blank = self.handle.key_f64("BLANK")?.map(|b| b as i64);
        let mut status = 0;
        // Turn cfitsio's own scaling off for this read; moving to another HDU restores it.
        unsafe { sys::ffpscl(self.handle.ptr(), 1.0, 0.0, &mut status) };
        self.handle
            .check(status, || "cannot read image scaling".into())?;
        let raw: Vec<i64> = if bitpix == 8 {
            let mut buf = vec![0u8; n];
            let mut anynul = 0;
            unsafe {
                sys::ffgpv(
                    self.handle.ptr(),
                    ffi::TBYTE,
                    1,
                    n as i64,
                    std::ptr::null_mut(),
                    buf.as_mut_ptr() as *mut c_void,
                    &mut anynul,
                    &mut status,
                )
            };
            buf.into_iter().map(i64::from).collect()
        } else {
            let mut buf = vec![0i16; n];
            let mut anynul = 0;
            unsafe {
                sys::ffgpv(
                    self.handle.ptr(),
                    ffi::TSHORT,
                    1,
                    n as i64,
                    std::ptr::null_mut(),
                    buf.as_mut_ptr() as *mut c_void,
                    &mut anynul,
                    &mut status,
                )
            };
            buf.into_iter().map(i64::from).collect()
        };
        let mut reset = 0;
        unsafe { sys::ffpscl(self.handle.ptr(), bscale, bzero, &mut reset) };
        self.handle
            .check(status, || format!("cannot read image data of {hdu}"))?;
        let (s32, z32) = (bscale as f32, bzero as f32);
        let values: Vec<f32> = raw
            .into_iter()
            .map(|r| {
                if Some(r) == blank {
                    f32::NAN
                } else {
                    r as f32 * s32 + z32
                }
            })
            .collect();
        Ok(Some(NdData::F32(
            ArrayD::from_shape_vec(IxDyn(shape), values).expect("buffer matches shape"),
        )))
    }

    /// Read an image converted to f32 (the type the learning code works in).
    pub fn read_image_f32(&mut self, hdu: &HduSelector) -> Result<ArrayD<f32>> {
        Ok(match self.read_image(hdu)? {
            NdData::F32(a) => a,
            other => other
                .to_f64()
                .expect("images are numeric")
                .mapv(|v| v as f32),
        })
    }

    fn num_rows(&mut self) -> Result<usize> {
        let mut n = 0i64;
        let mut status = 0;
        unsafe { sys::ffgnrwll(self.handle.ptr(), &mut n, &mut status) };
        self.handle
            .check(status, || "cannot read the number of rows".into())?;
        Ok(n as usize)
    }

    fn column_specs(&mut self, hdutype: c_int) -> Result<Vec<ColumnSpec>> {
        let mut ncols = 0;
        let mut status = 0;
        unsafe { sys::ffgncl(self.handle.ptr(), &mut ncols, &mut status) };
        self.handle
            .check(status, || "cannot read the number of columns".into())?;
        let mut specs = Vec::with_capacity(ncols as usize);
        let mut offset = 0usize;
        for col in 1..=ncols {
            let spec = table::read_column_spec(&mut self.handle, hdutype, col, offset)?;
            offset += spec.row_bytes;
            specs.push(spec);
        }
        Ok(specs)
    }

    /// The columns to read: all, or those named (case-insensitively, in the order asked).
    fn choose_columns(
        &self,
        specs: Vec<ColumnSpec>,
        columns: Option<&[&str]>,
        hdu: &HduSelector,
    ) -> Result<Vec<ColumnSpec>> {
        let Some(names) = columns else {
            return Ok(specs);
        };
        names
            .iter()
            .map(|want| {
                specs
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(want))
                    .cloned()
                    .ok_or_else(|| {
                        let have: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                        self.err(
                            ErrorKind::NotFound,
                            format!("no column `{want}` in {hdu} (columns: {})", have.join(", ")),
                        )
                    })
            })
            .collect()
    }

    /// Read a whole table (or the named columns only; the others are not read) into polars.
    pub fn read_table(&mut self, hdu: &HduSelector, columns: Option<&[&str]>) -> Result<FitsTable> {
        let mut chunks = self.table_chunks(hdu, columns, usize::MAX)?;
        let rows = chunks.total_rows;
        let mut out = match chunks.next() {
            Some(first) => first?,
            None => chunks.empty_table()?,
        };
        debug_assert_eq!(out.data.height(), rows);
        for more in chunks {
            let more = more?;
            out.data
                .vstack_mut(&more.data)
                .map_err(|e| IoError::new("", ErrorKind::Corrupt, e.to_string()))?;
        }
        Ok(out)
    }

    /// Iterate over a table in chunks of at most `chunk_rows` rows, reading only the named
    /// columns. Memory use is bounded by one chunk, so tables larger than memory can be streamed.
    pub fn table_chunks<'a>(
        &'a mut self,
        hdu: &HduSelector,
        columns: Option<&[&str]>,
        chunk_rows: usize,
    ) -> Result<TableChunks<'a>> {
        let (_, hdutype) = self.select(hdu)?;
        if hdutype == ffi::IMAGE_HDU {
            return Err(self.err(
                ErrorKind::InvalidInput,
                format!("{hdu} is an image, not a table"),
            ));
        }
        let all = self.column_specs(hdutype)?;
        let row_bytes: usize = all.iter().map(|s| s.row_bytes).sum();
        let specs = self.choose_columns(all, columns, hdu)?;
        for s in &specs {
            if let ColumnLayout::Unsupported(why) = &s.layout {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("column `{}` of {hdu}: unsupported type: {why}", s.name),
                ));
            }
        }
        let total_rows = self.num_rows()?;
        Ok(TableChunks {
            reader: self,
            hdu: hdu.clone(),
            hdutype,
            specs,
            row_bytes,
            next_row: 0,
            total_rows,
            chunk_rows: chunk_rows.max(1),
        })
    }

    /// The world coordinate system of an image HDU, built from its WCS keywords.
    pub fn wcs(&mut self, hdu: &HduSelector) -> Result<crate::wcs::Wcs> {
        let header = self.header(hdu)?;
        crate::wcs::Wcs::from_header(&header)
            .map_err(|m| self.err(ErrorKind::InvalidInput, format!("{hdu}: {m}")))
    }
}

/// An iterator over row chunks of a table; see [`FitsReader::table_chunks`].
pub struct TableChunks<'a> {
    reader: &'a mut FitsReader,
    hdu: HduSelector,
    hdutype: c_int,
    specs: Vec<ColumnSpec>,
    row_bytes: usize,
    next_row: usize,
    total_rows: usize,
    chunk_rows: usize,
}

impl TableChunks<'_> {
    /// Rows in the whole table.
    pub fn total_rows(&self) -> usize {
        self.total_rows
    }

    /// The columns this iterator reads.
    pub fn columns(&self) -> Vec<ColumnInfo> {
        self.specs.iter().map(|s| s.info()).collect()
    }

    fn empty_table(&mut self) -> Result<FitsTable> {
        self.read_rows(0, 0)
    }

    fn read_rows(&mut self, first: usize, n: usize) -> Result<FitsTable> {
        let handle = &mut self.reader.handle;
        // Make sure we are still on our HDU (another call may have moved).
        let index = match &self.hdu {
            HduSelector::Index(i) => *i,
            HduSelector::Name(name) => handle.move_to_name(name)?,
        };
        handle.move_to(index)?;
        let columns =
            table::read_columns(handle, self.hdutype, &self.specs, self.row_bytes, first, n)?;
        let data = DataFrame::new(n, columns)
            .map_err(|e| IoError::new(handle.path(), ErrorKind::Corrupt, e.to_string()))?;
        Ok(FitsTable {
            data,
            columns: self.specs.iter().map(|s| s.info()).collect(),
        })
    }
}

impl Iterator for TableChunks<'_> {
    type Item = Result<FitsTable>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next_row >= self.total_rows {
            return None;
        }
        let n = self.chunk_rows.min(self.total_rows - self.next_row);
        let first = self.next_row;
        self.next_row += n;
        Some(self.read_rows(first, n))
    }
}

/// Fill `buf` with the bytes of `f` from `offset` on (the values as they are in the file) and
/// convert each with `swap`. Blocks of 1 MiB are read with positioned reads on all cores, and
/// each is converted right after its read while it is still in cache: the copy out of the page
/// cache, the page faults of the new buffer and the byte swap all share the cores.
fn read_big_endian_into<T: Copy + Send>(
    f: &std::fs::File,
    path: &Path,
    offset: u64,
    buf: &mut [T],
    swap: impl Fn(&mut T) + Sync,
) -> Result<()> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    const BLOCK_BYTES: usize = 1 << 20;
    advise_huge_pages(buf);
    let per_block = (BLOCK_BYTES / std::mem::size_of::<T>()).max(1);
    buf.par_chunks_mut(per_block)
        .enumerate()
        .try_for_each(|(i, block)| {
            let at = offset + (i * per_block * std::mem::size_of::<T>()) as u64;
            // SAFETY: T is a plain integer or float type (u8 … u64, i8 … i64, f32, f64), for
            // which every byte pattern is a valid value, and the byte view covers exactly the
            // initialised block.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    block.as_mut_ptr() as *mut u8,
                    std::mem::size_of_val(block),
                )
            };
            f.read_exact_at(bytes, at).map_err(|_| {
                IoError::new(
                    path,
                    ErrorKind::Corrupt,
                    "file is truncated: image data ends early",
                )
            })?;
            block.iter_mut().for_each(&swap);
            Ok(())
        })
}

/// Ask the kernel for transparent huge pages on a large, not yet touched buffer, as numpy does
/// for big arrays: a 64 MB image then costs 32 page faults instead of 16 384, which measured as
/// the largest part of reading an uncompressed image.
pub(crate) fn advise_huge_pages<T>(buf: &mut [T]) {
    const PAGE: usize = 4096;
    let bytes = std::mem::size_of_val(buf);
    if bytes < (4 << 20) {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let aligned = start.div_ceil(PAGE) * PAGE;
    let len = (start + bytes).saturating_sub(aligned) / PAGE * PAGE;
    if len > 0 {
        // SAFETY: the range lies inside `buf`; MADV_HUGEPAGE only changes how the kernel backs
        // it and is ignored where transparent huge pages are unavailable.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}
