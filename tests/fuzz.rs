//! The damaged-input criteria on a fixed sample of the fuzzing corpus (`deepsky-fuzz`): every
//! damaged copy of the bundled files and of the files astropy, PyTables and h5py wrote is
//! either read completely or refused with one line naming it, with exit 2 — no signal, no
//! panic, no hang, no allocation past 4 GiB, no silent partial read. The full corpus runs in
//! `benchmarks/fuzz.sh` (RELIABILITY.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use deepsky_fuzz::{check_corpus, corpus_of, Limits, MutationKind, Verdict};

fn sources() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let external = std::env::var("DEEPSKY_EXTERNAL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../shared/testdata/external"));
    let mut files = Vec::new();
    for dir in [
        root.join("data"),
        external.join("fits"),
        external.join("hdf5"),
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

#[test]
fn a_fixed_sample_of_damaged_files_is_read_completely_or_refused_by_name() {
    // Seed 1, six damaged copies per source: about 190 files, each read twice (with --stats,
    // which reads every pixel and cell, and with --header).
    let cases = corpus_of(&sources(), 1, 6).unwrap();
    assert!(cases.len() > 150, "{} cases", cases.len());
    for kind in MutationKind::ALL {
        assert!(
            cases.iter().any(|c| c.kind == kind),
            "no {kind:?} case in the sample"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let readers = vec![
        ["inspect", "--json", "--stats", "{}"]
            .map(String::from)
            .to_vec(),
        ["inspect", "--json", "--header", "{}"]
            .map(String::from)
            .to_vec(),
    ];
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory_bytes: 4 << 30,
    };
    let report = check_corpus(
        Path::new(env!("CARGO_BIN_EXE_deepsky")),
        &readers,
        &cases,
        dir.path(),
        limits,
        2,
    )
    .unwrap();
    let table = report.to_markdown();
    assert_eq!(report.failures().count(), 0, "\n{table}");
    let counts = report.counts();
    // The originals read completely, and damage is refused often: the sample tests both sides.
    let originals = report
        .outcomes
        .iter()
        .filter(|o| o.kind == MutationKind::Original);
    assert!(originals.clone().count() >= 2 * 24, "\n{table}");
    assert!(
        originals.clone().all(|o| o.verdict == Verdict::Complete),
        "\n{table}"
    );
    assert!(
        counts.get(&Verdict::Refused).copied().unwrap_or(0) > 100,
        "\n{table}"
    );
}
