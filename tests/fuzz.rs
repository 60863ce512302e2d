//! The damaged-input criteria on a fixed sample of the fuzzing corpus (`deepsky-fuzz`): every
//! damaged copy of the bundled files and of the files astropy, PyTables and h5py wrote is
//! either read completely or refused with one line naming it, with exit 2 — no signal, no
//! panic, no hang, no allocation past 4 GiB, no silent partial read. The full corpus runs in
//! `benchmarks/fuzz.sh` (RELIABILITY.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use deepsky_fuzz::{check_corpus, corpus_of, Limits, MutationKind, Verdict};

fn sources() -> Vec<PathBuf> {
    deepsky_fuzz::standard_sources(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap()
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
    let readers = deepsky_fuzz::inspect_readers();
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
