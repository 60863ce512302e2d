//! The bundled samples in data/ are exactly what data/regenerate.sh makes from the committed
//! configs and seeds: FITS files byte for byte, HDF5 files dataset by dataset and attribute by
//! attribute (HDF5 files carry object timestamps, so their bytes differ between runs).

use std::path::{Path, PathBuf};
use std::process::Command;

use deepsky_io::h5::H5Reader;
use deepsky_io::NdData;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn same_hdf5(a: &Path, b: &Path) {
    let (ra, rb) = (H5Reader::open(a).unwrap(), H5Reader::open(b).unwrap());
    let (ia, ib) = (ra.items().unwrap(), rb.items().unwrap());
    assert_eq!(
        ia,
        ib,
        "{} and {} list different objects or attributes",
        a.display(),
        b.display()
    );
    // All root attributes but the command line, whose paths depend on the checkout.
    let attrs = |r: &H5Reader| {
        let all = r.root_attrs().unwrap();
        all.into_iter()
            .filter(|(k, _)| k != "command")
            .collect::<Vec<_>>()
    };
    assert_eq!(attrs(&ra), attrs(&rb), "root attributes of {}", a.display());
    for it in ia
        .iter()
        .filter(|i| i.kind == deepsky_io::h5::H5Kind::Dataset)
    {
        let (da, db) = (ra.read(&it.path).unwrap(), rb.read(&it.path).unwrap());
        // Bit-identical, NaN included (NaN marks "not applicable" in parameter columns).
        let same = match (&da, &db) {
            (NdData::F32(x), NdData::F32(y)) => {
                x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (NdData::F64(x), NdData::F64(y)) => {
                x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            _ => da == db,
        };
        assert!(
            same,
            "{} in {} differs from its regeneration",
            it.path,
            a.display()
        );
    }
}

/// A FITS file's bytes with the parts that record *when and where* it was written masked:
/// cfitsio timestamps the CHECKSUM/DATASUM comments (and CHECKSUM covers its own comment), and
/// the HISTORY cards hold the command line, whose paths depend on the checkout. DATASUM's value
/// (the data's checksum) and every other card are kept, so data and keywords are still
/// compared bit for bit.
fn fits_without_timestamps(path: &Path) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    for card in b.chunks_mut(80) {
        if card.starts_with(b"CHECKSUM=") || card.starts_with(b"HISTORY ") {
            card.fill(b' ');
        } else if card.starts_with(b"DATASUM =") {
            card[30..].fill(b' ');
        }
    }
    b
}

#[test]
fn regeneration_reproduces_the_committed_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(root().join("data/regenerate.sh"))
        .arg(tmp.path())
        .arg(env!("CARGO_BIN_EXE_deepsky"))
        .status()
        .expect("bash runs");
    assert!(status.success(), "data/regenerate.sh failed");
    let mut compared = 0;
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let made = entry.unwrap().path();
        let name = made.file_name().unwrap().to_string_lossy().into_owned();
        let committed = root().join("data").join(&name);
        assert!(
            committed.exists(),
            "data/{name} is made by regenerate.sh but not committed"
        );
        if name.ends_with(".h5") {
            same_hdf5(&committed, &made);
        } else {
            let (c, m) = (
                fits_without_timestamps(&committed),
                fits_without_timestamps(&made),
            );
            let first_diff = c.chunks(80).zip(m.chunks(80)).position(|(x, y)| x != y);
            assert!(
                c.len() == m.len() && first_diff.is_none(),
                "data/{name} differs from its regeneration at card {first_diff:?}: {:?}",
                first_diff.map(|i| (
                    String::from_utf8_lossy(&c[i * 80..i * 80 + 80]).into_owned(),
                    String::from_utf8_lossy(&m[i * 80..i * 80 + 80]).into_owned()
                ))
            );
        }
        compared += 1;
    }
    assert_eq!(
        compared, 7,
        "sky field + truth, cutouts, events + truth + features, showers"
    );
}
