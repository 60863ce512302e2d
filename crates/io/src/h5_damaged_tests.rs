//! Damaged HDF5 files: every object the undamaged file lists is listed, or the read fails
//! naming the file — never a file with one dataset fewer, never a hang inside libhdf5.

use std::path::{Path, PathBuf};

use crate::error::ErrorKind;
use crate::h5::H5Reader;

fn bundled(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data")
            .join(name),
    )
    .unwrap()
}

fn external(name: &str) -> PathBuf {
    std::env::var("DEEPSKY_EXTERNAL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/external")
        })
        .join("hdf5")
        .join(name)
}

fn find_all(bytes: &[u8], sig: &[u8]) -> Vec<usize> {
    (0..bytes.len() - sig.len())
        .filter(|&i| &bytes[i..i + sig.len()] == sig)
        .collect()
}

#[test]
fn a_damaged_object_header_is_an_error_not_a_missing_dataset() {
    let bytes = bundled("showers_calogan.h5");
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.h5");
    std::fs::write(&whole, &bytes).unwrap();
    let n = H5Reader::open(&whole).unwrap().items().unwrap().len();
    let headers = find_all(&bytes, b"OHDR");
    assert!(headers.len() > 3, "{headers:?}");
    let mut refused = 0;
    for (k, &at) in headers.iter().enumerate() {
        let mut damaged = bytes.clone();
        damaged[at..at + 64].fill(0);
        let path = dir.path().join(format!("ohdr{k}.h5"));
        std::fs::write(&path, &damaged).unwrap();
        match H5Reader::open(&path).and_then(|r| r.items()) {
            Ok(items) => assert_eq!(
                items.len(),
                n,
                "object header at {at} zeroed: fewer items, no error"
            ),
            Err(e) => {
                assert!(matches!(e.kind(), ErrorKind::Corrupt), "{e}");
                assert!(e.to_string().contains(&format!("ohdr{k}.h5")), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "no zeroed object header was noticed");
}

#[test]
fn a_global_heap_object_of_size_zero_is_an_error_not_an_endless_loop_in_libhdf5() {
    let mut bytes = std::fs::read(external("vlen_string_dset.h5")).unwrap();
    let gcol = find_all(&bytes, b"GCOL")[0];
    // Object 1's length (at +24) 5 → 69: the parser then lands on a zero-length object 0.
    bytes[gcol + 24] ^= 0x40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gcol.h5");
    std::fs::write(&path, &bytes).unwrap();
    let r = H5Reader::open(&path).unwrap();
    let name = r
        .items()
        .unwrap()
        .into_iter()
        .find(|i| i.dtype.as_deref() == Some("str"))
        .unwrap()
        .path;
    let err = r.read(&name).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Corrupt), "{err}");
    assert!(err.to_string().contains("damaged global heap"), "{err}");
    // The undamaged file reads.
    let r = H5Reader::open(external("vlen_string_dset.h5")).unwrap();
    assert!(r.read(&name).is_ok());
}
