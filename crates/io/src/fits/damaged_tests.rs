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

#[test]
fn a_primary_header_without_end_does_not_swallow_the_next_extension() {
    let mut bytes = original();
    let end = (0..2880)
        .step_by(80)
        .find(|&o| bytes[o..].starts_with(b"END     "))
        .unwrap();
    bytes[end..end + 3].copy_from_slice(b"   ");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "no_primary_end.fits", &bytes);
    let err = FitsReader::open(&path).unwrap().hdus().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
    assert!(
        err.to_string()
            .contains("no END card before the next extension header"),
        "{err}"
    );
}

#[test]
fn a_gzip_file_whose_last_hdu_is_cut_short_is_truncated_not_fewer_hdus() {
    let bytes = original();
    let gti = header_starts(&bytes)[2];
    let dir = tempfile::tempdir().unwrap();
    // EVENTS' data cut in the middle: the walk cannot reach GTI.
    let cut = write(
        dir.path(),
        "cut.fits",
        &bytes[..(starts_mid(&bytes) + gti) / 2],
    );
    let gz = dir.path().join("cut.fits.gz");
    let out = std::process::Command::new("gzip")
        .args(["-c", cut.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::write(&gz, out.stdout).unwrap();
    for path in [cut, gz] {
        let err = FitsReader::open(&path).unwrap().hdus().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    // Only the final padding missing: read, with a warning (as astropy does).
    let unpadded = write(dir.path(), "unpadded.fits", &bytes[..bytes.len() - 1]);
    assert_eq!(
        FitsReader::open(&unpadded).unwrap().hdus().unwrap().len(),
        3
    );
}

fn starts_mid(bytes: &[u8]) -> usize {
    header_starts(bytes)[1] + 2880
}

#[test]
fn gzip_streams_that_are_not_fits_are_refused_before_cfitsio_sizes_them() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB of incompressible bytes: the stream grows, so cfitsio would take ISIZE to have
    // wrapped at 4 GiB and allocate that.
    let mut x = 12345u64;
    let random: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let raw = write(dir.path(), "random.bin", &random);
    let out = std::process::Command::new("gzip")
        .args(["-c", raw.to_str().unwrap()])
        .output()
        .unwrap();
    let gz = write(dir.path(), "random.fits.gz", &out.stdout);
    let err = FitsReader::open(&gz).err().expect("refused");
    assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
    assert!(
        err.to_string()
            .contains("does not decompress to a FITS file"),
        "{err}"
    );
    // A trailer claiming more than deflate can expand to.
    let mut lying = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/events.fits"))
        .output()
        .unwrap()
        .stdout;
    let n = lying.len();
    lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let gz = write(dir.path(), "lying.fits.gz", &lying);
    let err = FitsReader::open(&gz).err().expect("refused");
    assert!(
        err.to_string().contains("trailer claims 4294967295 bytes"),
        "{err}"
    );
}

#[test]
fn a_variable_length_descriptor_outside_the_heap_is_an_error_not_an_allocation() {
    // The bundled truth table's first column relabelled as an array descriptor column: its
    // 8-byte integers become (length, offset) pairs pointing anywhere.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/events_truth.fits");
    let mut bytes = std::fs::read(p).unwrap();
    let card = (2880..bytes.len())
        .step_by(80)
        .find(|&o| bytes[o..].starts_with(b"TFORM1  ="))
        .unwrap();
    let mut c = format!("TFORM1  = {:>20}", "'1PE(2147483647)'").into_bytes();
    c.resize(80, b' ');
    bytes[card..card + 80].copy_from_slice(&c);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "descriptor.fits", &bytes);
    let mut f = FitsReader::open(&path).unwrap();
    let err = f.read_table(&HduSelector::Index(1), None).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
    assert!(err.to_string().contains("points outside the"), "{err}");
}
