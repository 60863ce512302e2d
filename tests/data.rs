//! The bundled samples in data/ are exactly what data/regenerate.sh makes from the committed
//! configs and seeds: FITS files data unit by data unit, byte for byte, and header card by
//! card; HDF5 files dataset by dataset and attribute by attribute (HDF5 files carry object
//! timestamps, so their bytes differ between runs). What records the run that made a file —
//! its provenance cards and attributes — is left out.

use std::path::{Path, PathBuf};
use std::process::Command;

use deepsky_io::h5::H5Reader;
use deepsky_io::NdData;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Root attributes that record how, when, where and by which build a file was made.
const PROVENANCE_ATTRS: [&str; 6] = [
    "command",
    "provenance",
    "deepsky_version",
    "deepsky_pipeline",
    "deepsky_git_commit",
    "config_sha256",
];

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
    // All root attributes but the run's provenance: the command line (with the checkout's
    // paths) and the runtime's record (start time, host, build).
    let attrs = |r: &H5Reader| {
        let all = r.root_attrs().unwrap();
        all.into_iter()
            .filter(|(k, _)| !PROVENANCE_ATTRS.contains(&k.as_str()))
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

/// The header cards that record how, when, where and by which build a file was made, not what
/// was simulated: the runtime's provenance keywords (`DS*`), the HISTORY cards (the command
/// line, with the checkout's paths) and CHECKSUM (which covers them).
fn is_provenance_card(card: &str) -> bool {
    let key = card.get(..8).unwrap_or(card).trim_end();
    [
        "DSTOOL", "DSPIPE", "DSGIT", "DSDEVICE", "DSCFGSHA", "DSSTART", "HISTORY", "CHECKSUM",
    ]
    .contains(&key)
        || key.starts_with("DSSEED")
}

/// A FITS file as its HDUs: each header's cards (provenance cards left out, DATASUM without
/// its comment, which cfitsio timestamps) and each data unit's bytes.
fn fits_hdus(path: &Path) -> Vec<(Vec<String>, Vec<u8>)> {
    let b = std::fs::read(path).unwrap();
    let mut hdus = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let mut cards = Vec::new();
        'header: loop {
            let block = &b[at..at + 2880];
            at += 2880;
            for card in block.chunks(80) {
                let card = String::from_utf8_lossy(card).into_owned();
                if card.trim_end() == "END" {
                    break 'header;
                }
                cards.push(card);
            }
        }
        let int = |key: &str| {
            cards
                .iter()
                .find(|c| c.starts_with(&format!("{key:<8}=")))
                .map(|c| {
                    c[10..]
                        .split('/')
                        .next()
                        .unwrap()
                        .trim()
                        .parse::<usize>()
                        .unwrap()
                })
        };
        let bitpix: i64 = cards.iter().find(|c| c.starts_with("BITPIX  =")).unwrap()[10..30]
            .trim()
            .parse()
            .unwrap();
        let naxis = int("NAXIS").unwrap_or(0);
        let size = if naxis == 0 {
            0
        } else {
            let cells: usize = (1..=naxis)
                .map(|k| int(&format!("NAXIS{k}")).unwrap())
                .product();
            bitpix.unsigned_abs() as usize / 8
                * int("GCOUNT").unwrap_or(1)
                * (int("PCOUNT").unwrap_or(0) + cells)
        };
        let data = b[at..at + size].to_vec();
        at += size.div_ceil(2880) * 2880;
        let kept = cards
            .into_iter()
            .filter(|c| !is_provenance_card(c))
            .map(|c| {
                if c.starts_with("DATASUM =") {
                    c[..30].to_string()
                } else {
                    c
                }
            })
            .collect();
        hdus.push((kept, data));
    }
    hdus
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
            let (c, m) = (fits_hdus(&committed), fits_hdus(&made));
            assert_eq!(c.len(), m.len(), "data/{name}: number of HDUs");
            for (k, ((cc, cd), (mc, md))) in c.iter().zip(&m).enumerate() {
                assert_eq!(cc, mc, "data/{name}: header of HDU {k}");
                assert!(cd == md, "data/{name}: the data of HDU {k} differ");
            }
        }
        compared += 1;
    }
    assert_eq!(
        compared, 8,
        "sky field + truth + masks, cutouts, events + truth + features, showers"
    );
}
