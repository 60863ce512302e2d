//! Damaged copies of a real multi-extension file (the bundled event list: primary, EVENTS,
//! GTI): every reader call either sees all three HDUs or fails naming the file — never a
//! shorter file that looks complete.

use std::path::{Path, PathBuf};

use crate::error::ErrorKind;
use crate::fits::{FitsReader, HduSelector};

fn original() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/events.fits");
    std::fs::read(p).unwrap()
}

/// Byte offsets of the headers: the primary at 0 and each `XTENSION` block.
fn header_starts(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len())
        .step_by(2880)
        .filter(|&o| o == 0 || bytes[o..].starts_with(b"XTENSION="))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn damaged_extension_headers_are_errors_naming_the_file_not_fewer_hdus() {
    let bytes = original();
    let starts = header_starts(&bytes);
    assert_eq!(starts.len(), 3, "primary, EVENTS, GTI");
    let gti = starts[2];
    let dir = tempfile::tempdir().unwrap();

    let mut zeroed = bytes.clone();
    zeroed[gti..gti + 2880].fill(0);
    let mut mangled = bytes.clone();
    mangled[gti..gti + 9].copy_from_slice(b"X#TENS@N=");
    let truncated = bytes[..gti + 1000].to_vec();
    let mut no_end = bytes.clone();
    let header = &bytes[starts[1]..gti];
    let end = (0..header.len())
        .step_by(80)
        .find(|&o| header[o..].starts_with(b"END     "))
        .unwrap();
    no_end[starts[1] + end..starts[1] + end + 3].copy_from_slice(b"   ");

    for (name, damaged) in [
        ("zeroed.fits", zeroed),
        ("mangled.fits", mangled),
        ("truncated.fits", truncated),
        ("no_end.fits", no_end),
    ] {
        let path = write(dir.path(), name, &damaged);
        let mut f = FitsReader::open(&path).unwrap();
        let err = f.hdus().unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Corrupt)
                || matches!(err.kind(), ErrorKind::InvalidInput),
            "{name}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("HDU"), "{msg}");
        // Asking for a later HDU by name fails the same way, not as "no HDU named GTI".
        let mut f = FitsReader::open(&path).unwrap();
        let err = f.hdu_info(&HduSelector::Name("GTI".into())).unwrap_err();
        assert!(!matches!(err.kind(), ErrorKind::NotFound), "{name}: {err}");
    }
}

#[test]
fn zero_padding_after_the_last_hdu_is_read_past() {
    let mut bytes = original();
    bytes.extend(std::iter::repeat_n(0u8, 2 * 2880));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "padded.fits", &bytes);
    let mut f = FitsReader::open(&path).unwrap();
    let hdus = f.hdus().unwrap();
    assert_eq!(hdus.len(), 3);
    let gti = f
        .read_table(&HduSelector::Name("GTI".into()), None)
        .unwrap();
    assert!(gti.data.height() >= 1);
}
