//! The thin unsafe layer over cfitsio (through the `fitsio` crate): one owned handle, status
//! codes turned into [`IoError`]s that name the file, and small typed helpers.
//!
//! Everything unsafe in the FITS code lives here or is a single call into `fitsio::sys` with
//! buffers whose sizes this module checks.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};

use fitsio::sys;
use fitsio::{FileOpenMode, FitsFile};

use crate::error::{ErrorKind, IoError, Result};

// cfitsio status codes we react to (fitsio.h).
pub(crate) const END_OF_FILE: c_int = 107;
const FILE_NOT_OPENED: c_int = 104;
const READ_ERROR: c_int = 108;
const KEY_NO_EXIST: c_int = 202;
const COL_NOT_FOUND: c_int = 219;
const BAD_HDU_NUM: c_int = 301;

// HDU types.
pub(crate) const IMAGE_HDU: c_int = 0;
pub(crate) const ASCII_TBL: c_int = 1;
pub(crate) const BINARY_TBL: c_int = 2;

// Data type codes.
pub(crate) const TBYTE: c_int = 11;
pub(crate) const TSBYTE: c_int = 12;
pub(crate) const TLOGICAL: c_int = 14;
pub(crate) const TUSHORT: c_int = 20;
pub(crate) const TSHORT: c_int = 21;
pub(crate) const TUINT: c_int = 30;
pub(crate) const TINT: c_int = 31;
pub(crate) const TFLOAT: c_int = 42;
pub(crate) const TULONGLONG: c_int = 80;
pub(crate) const TLONGLONG: c_int = 81;
pub(crate) const TDOUBLE: c_int = 82;

/// An open FITS file: the `fitsio` handle (closed on drop) plus the path for error messages.
pub(crate) struct Handle {
    file: FitsFile,
    path: PathBuf,
}

extern "C" {
    // cfitsio's raw byte reader (buffers.c; not in fitsio-sys's bindings): `nbytes` from the
    // current position of the file, after `ffmbyt`.
    fn ffgbyt(
        fptr: *mut sys::fitsfile,
        nbytes: i64,
        buffer: *mut c_void,
        status: *mut c_int,
    ) -> c_int;
}

/// The tile-compression keywords of a header (raw cards) that cfitsio would divide by:
/// `ZTILEn` must be at least 1 and `ZNAXISn` positive. cfitsio does not check them and dies of
/// a division by zero (SIGFPE) on `ZTILE1 = 0`.
pub(crate) fn check_tile_compression(cards: &[String]) -> std::result::Result<(), String> {
    let value = |key: &str| {
        cards.iter().find_map(|c| {
            let (k, rest) = c.split_at(8.min(c.len()));
            (k.trim_end() == key && rest.starts_with("= "))
                .then(|| rest[2..].split('/').next().unwrap_or("").trim().to_string())
        })
    };
    if value("ZIMAGE").as_deref() != Some("T") {
        return Ok(());
    }
    let znaxis: i64 = match value("ZNAXIS").and_then(|v| v.parse().ok()) {
        Some(n) if (0..=999).contains(&n) => n,
        other => return Err(format!("tile-compressed image with ZNAXIS = {other:?}")),
    };
    for i in 1..=znaxis {
        for key in [format!("ZNAXIS{i}"), format!("ZTILE{i}")] {
            if let Some(v) = value(&key) {
                match v.parse::<i64>() {
                    Ok(x) if x >= 1 => {}
                    _ => {
                        return Err(format!(
                            "tile-compressed image with {key} = {v}: must be a positive integer"
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// Read and clear cfitsio's error-message stack, keeping the most specific lines.
pub(crate) fn take_error_stack() -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0 as c_char; 81];
    loop {
        // SAFETY: ffgmsg writes at most 80 chars plus NUL into the buffer.
        let n = unsafe { sys::ffgmsg(buf.as_mut_ptr()) };
        if n == 0 {
            break;
        }
        let line = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .trim()
            .to_string();
        if !line.is_empty() && out.len() < 8 {
            out.push(line);
        }
    }
    out
}

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 31];
    // SAFETY: ffgerr writes at most 30 chars plus NUL.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Turn a cfitsio status into an error about `path`, with `context` saying what we were doing.
pub(crate) fn status_error(path: &Path, status: c_int, context: &str) -> IoError {
    let stack = take_error_stack();
    let kind = match status {
        KEY_NO_EXIST | COL_NOT_FOUND | BAD_HDU_NUM => ErrorKind::NotFound,
        FILE_NOT_OPENED => ErrorKind::Io,
        _ => ErrorKind::Corrupt,
    };
    let mut msg = format!("{context}: {}", status_text(status));
    if matches!(status, END_OF_FILE | READ_ERROR) {
        msg.push_str(" (the file is truncated or damaged)");
    }
    // The first stack line usually names the failing card or HDU; add it when it says more.
    if let Some(detail) = stack
        .iter()
        .find(|l| !l.starts_with("ffopen") || stack.len() == 1)
    {
        msg.push_str(&format!(" [cfitsio: {detail}]"));
    }
    IoError::new(path, kind, msg)
}

fn cpath(path: &Path) -> Result<CString> {
    let s = path.to_str().ok_or_else(|| {
        IoError::new(
            path,
            ErrorKind::InvalidInput,
            "file name is not valid UTF-8",
        )
    })?;
    CString::new(s)
        .map_err(|_| IoError::new(path, ErrorKind::InvalidInput, "file name contains NUL"))
}

pub(crate) fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NUL bytes were replaced")
}

pub(crate) fn from_cbuf(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Handle {
    /// Open an existing file read-only. cfitsio also opens `.fits.gz` (decompressing in memory).
    pub(crate) fn open(path: &Path) -> Result<Handle> {
        Self::open_mode(path, FileOpenMode::READONLY)
    }

    fn open_mode(path: &Path, mode: FileOpenMode) -> Result<Handle> {
        let c = cpath(path)?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        // ffdkopn opens the disk file by its literal name: no cfitsio "extended filename" parsing
        // of brackets, so a user's odd file name cannot select an HDU or filter rows by accident.
        let iomode: c_int = if mode == FileOpenMode::READONLY { 0 } else { 1 };
        unsafe { sys::ffdkopn(&mut fptr, c.as_ptr(), iomode, &mut status) };
        if status != 0 || fptr.is_null() {
            return Err(status_error(path, status, "cannot open as FITS"));
        }
        // SAFETY: fptr is a valid handle cfitsio just opened; FitsFile takes ownership and closes it.
        let file = unsafe { FitsFile::from_raw(fptr, mode) }
            .map_err(|e| IoError::new(path, ErrorKind::Io, e.to_string()))?;
        Ok(Handle {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Create a new, empty file (no HDU yet); `path` must not exist.
    pub(crate) fn create(path: &Path) -> Result<Handle> {
        let c = cpath(path)?;
        let mut fptr = std::ptr::null_mut();
        let mut status = 0;
        unsafe { sys::ffdkinit(&mut fptr, c.as_ptr(), &mut status) };
        if status != 0 || fptr.is_null() {
            return Err(status_error(path, status, "cannot create FITS file"));
        }
        let file = unsafe { FitsFile::from_raw(fptr, FileOpenMode::READWRITE) }
            .map_err(|e| IoError::new(path, ErrorKind::Io, e.to_string()))?;
        Ok(Handle {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The raw pointer for a cfitsio call.
    pub(crate) fn ptr(&mut self) -> *mut sys::fitsfile {
        // SAFETY: the pointer stays valid as long as `self.file` lives, and we never close it
        // ourselves.
        unsafe { self.file.as_raw() }
    }

    /// Check a status after a call.
    pub(crate) fn check(&self, status: c_int, context: impl FnOnce() -> String) -> Result<()> {
        if status == 0 {
            Ok(())
        } else {
            Err(status_error(&self.path, status, &context()))
        }
    }

    /// Close the file, flushing buffers, and report any error (Drop would ignore it).
    pub(crate) fn close(mut self) -> Result<()> {
        let mut status = 0;
        let ptr = self.ptr();
        unsafe { sys::ffclos(ptr, &mut status) };
        // The handle is closed; make sure FitsFile's Drop does not close it again.
        std::mem::forget(self.file);
        if status != 0 {
            return Err(status_error(&self.path, status, "cannot close FITS file"));
        }
        Ok(())
    }

    pub(crate) fn num_hdus(&mut self) -> Result<usize> {
        // Walk the HDUs one by one rather than asking cfitsio to count them (ffthdu): its count
        // stops quietly at the first header it cannot parse, which would make a file with a
        // damaged extension look complete, and it would parse each header before we could
        // check it. Only the end of the file may stop the walk.
        let mut n: c_int = 1;
        loop {
            self.move_to(n as usize - 1)?;
            let (header_start, _, end) = self.hdu_offsets()?;
            // A header whose END was lost runs on into the next extension's header, which
            // cfitsio then reads as part of it: one HDU fewer, silently.
            if let Some(cards) = self.raw_header_at(header_start) {
                if let Some(block) = (1..cards.len().div_ceil(36)).find(|b| {
                    cards
                        .get(b * 36)
                        .is_some_and(|c| c.starts_with("XTENSION="))
                }) {
                    return Err(IoError::new(
                        &self.path,
                        ErrorKind::Corrupt,
                        format!(
                            "HDU {} has a damaged header: no END card before the next extension header (at byte {})",
                            n - 1,
                            header_start + block as i64 * 2880
                        ),
                    ));
                }
            }
            if let Some(cards) = self.raw_header_at(end) {
                if let Err(m) = check_tile_compression(&cards) {
                    return Err(IoError::new(
                        &self.path,
                        ErrorKind::Corrupt,
                        format!("HDU {n}: {m}"),
                    ));
                }
            }
            let (mut hdutype, mut status) = (0, 0);
            unsafe { sys::ffmahd(self.ptr(), n + 1, &mut hdutype, &mut status) };
            match status {
                0 => n += 1,
                END_OF_FILE => {
                    let _ = take_error_stack();
                    return Ok(n as usize);
                }
                s => {
                    let context = format!(
                        "HDU {n} has a damaged header (after {n} readable HDU{})",
                        if n == 1 { "" } else { "s" }
                    );
                    return Err(status_error(&self.path, s, &context));
                }
            }
        }
    }

    /// Whether the byte at `offset` can be read (the file, or the decompressed `.fits.gz`,
    /// reaches that far). Reads up to 8640 bytes ending there.
    pub(crate) fn byte_readable(&mut self, offset: i64) -> bool {
        // cfitsio reads small requests through whole 2880-byte records, which fail in a file
        // that lacks only its final padding; requests of 3 records or more are read directly.
        const DIRECT: i64 = 3 * 2880;
        let start = (offset + 1 - DIRECT).max(0);
        let mut buf = vec![0u8; (offset + 1 - start) as usize];
        let mut status = 0;
        unsafe {
            sys::ffmbyt(self.ptr(), start, 0, &mut status);
            ffgbyt(
                self.ptr(),
                buf.len() as i64,
                buf.as_mut_ptr() as *mut c_void,
                &mut status,
            );
        }
        if status != 0 {
            let _ = take_error_stack();
        }
        status == 0
    }

    /// The cards of the header that starts at byte `start`, read as raw bytes (cfitsio does
    /// not parse them), up to END or 100 blocks; None when there is no whole block there.
    fn raw_header_at(&mut self, start: i64) -> Option<Vec<String>> {
        let mut cards = Vec::new();
        let mut block = [0u8; 2880];
        for b in 0..100 {
            let mut status = 0;
            unsafe {
                sys::ffmbyt(self.ptr(), start + b * 2880, 0, &mut status);
                ffgbyt(
                    self.ptr(),
                    2880,
                    block.as_mut_ptr() as *mut c_void,
                    &mut status,
                );
            }
            if status != 0 {
                let _ = take_error_stack();
                return (!cards.is_empty()).then_some(cards);
            }
            for card in block.chunks(80) {
                // One char per byte (cards are ASCII; anything else, as in a damaged header
                // or data read as one, stays one char wide).
                let card: String = card
                    .iter()
                    .map(|&b| if b.is_ascii() { b as char } else { '?' })
                    .collect();
                if card.starts_with("END") && card[3..].trim().is_empty() {
                    cards.push(card);
                    return Some(cards);
                }
                cards.push(card);
            }
        }
        Some(cards)
    }

    /// Move to HDU `index` (0-based). Returns its type.
    pub(crate) fn move_to(&mut self, index: usize) -> Result<c_int> {
        let mut hdutype = 0;
        let mut status = 0;
        unsafe { sys::ffmahd(self.ptr(), index as c_int + 1, &mut hdutype, &mut status) };
        self.check(status, || format!("cannot read HDU {index}"))?;
        Ok(hdutype)
    }

    /// Move to the HDU whose EXTNAME (or HDUNAME) is `name`, case-insensitively.
    pub(crate) fn move_to_name(&mut self, name: &str) -> Result<usize> {
        let mut status = 0;
        let c = cstr(name);
        // ANY_HDU = -1; extver 0 = any version.
        unsafe { sys::ffmnhd(self.ptr(), -1, c.as_ptr() as *mut c_char, 0, &mut status) };
        if status != 0 {
            let _ = take_error_stack();
            return Err(IoError::new(
                &self.path,
                ErrorKind::NotFound,
                format!("no HDU named `{name}`"),
            ));
        }
        let mut num = 0;
        unsafe { sys::ffghdn(self.ptr(), &mut num) };
        Ok(num as usize - 1)
    }

    /// Keyword value as a raw string (quotes kept), or None when absent.
    pub(crate) fn key_raw(&mut self, key: &str) -> Result<Option<String>> {
        let mut value = [0 as c_char; 81];
        let mut status = 0;
        let c = cstr(key);
        unsafe {
            sys::ffgkey(
                self.ptr(),
                c.as_ptr(),
                value.as_mut_ptr(),
                std::ptr::null_mut(),
                &mut status,
            )
        };
        if status == KEY_NO_EXIST {
            let _ = take_error_stack();
            return Ok(None);
        }
        self.check(status, || format!("cannot read keyword {key}"))?;
        Ok(Some(from_cbuf(&value)))
    }

    /// Keyword value as a string with FITS quotes removed.
    pub(crate) fn key_str(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.key_raw(key)?.map(|v| unquote(&v)))
    }

    /// Keyword value as a number.
    pub(crate) fn key_f64(&mut self, key: &str) -> Result<Option<f64>> {
        match self.key_raw(key)? {
            None => Ok(None),
            Some(v) => Ok(parse_number(&v)),
        }
    }

    /// (header start, data start, data end) of the current HDU in bytes.
    pub(crate) fn hdu_offsets(&mut self) -> Result<(i64, i64, i64)> {
        let (mut h, mut d, mut e) = (0, 0, 0);
        let mut status = 0;
        unsafe { sys::ffghadll(self.ptr(), &mut h, &mut d, &mut e, &mut status) };
        self.check(status, || "cannot locate HDU".into())?;
        Ok((h, d, e))
    }
}

/// Remove the quotes of a FITS string value and its trailing blanks.
pub(crate) fn unquote(raw: &str) -> String {
    let t = raw.trim();
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        t[1..t.len() - 1].replace("''", "'").trim_end().to_string()
    } else {
        t.to_string()
    }
}

/// Parse a FITS numeric value (accepts Fortran `D` exponents).
pub(crate) fn parse_number(raw: &str) -> Option<f64> {
    let t = raw.trim().replace(['D', 'd'], "E");
    t.parse::<f64>().ok()
}
