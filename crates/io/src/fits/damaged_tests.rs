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

/// `data/sky_field.fits` with `NAXIS1` raised to 2^31 - 1 in the header.
fn absurd_naxis() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sky_field.fits");
    let mut bytes = std::fs::read(p).unwrap();
    let card = (0..2880)
        .step_by(80)
        .find(|&o| bytes[o..].starts_with(b"NAXIS1  ="))
        .unwrap();
    let value = format!("{:>20}", 2_147_483_647u64);
    bytes[card + 10..card + 30].copy_from_slice(value.as_bytes());
    bytes
}

#[test]
fn a_header_claiming_more_pixels_than_the_data_holds_is_an_error_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "absurd.fits", &absurd_naxis());
    let gz = dir.path().join("absurd.fits.gz");
    let out = std::process::Command::new("gzip")
        .args(["-c", plain.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::write(&gz, out.stdout).unwrap();
    for path in [plain, gz] {
        let mut f = FitsReader::open(&path).unwrap();
        let err = f.read_image(&HduSelector::Index(0)).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("absurd.fits") && msg.contains("truncated"),
            "{msg}"
        );
    }
}

#[test]
fn a_zero_tile_size_is_an_error_not_a_division_by_zero_in_cfitsio() {
    let external = std::env::var("DEEPSKY_EXTERNAL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/external")
        });
    let mut bytes = std::fs::read(external.join("fits/m13_rice.fits")).unwrap();
    let card = (0..bytes.len())
        .step_by(80)
        .find(|&o| bytes[o..].starts_with(b"ZTILE1  ="))
        .unwrap();
    bytes[card + 10..card + 30].copy_from_slice(format!("{:>20}", 0).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ztile0.fits", &bytes);
    let mut f = FitsReader::open(&path).unwrap();
    let err = f.hdus().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
    assert!(err.to_string().contains("ZTILE1 = 0"), "{err}");
    // The undamaged file still reads.
    let mut f = FitsReader::open(external.join("fits/m13_rice.fits")).unwrap();
    assert_eq!(f.hdus().unwrap().len(), 2);
}
