//! Every library reader (`deepsky-fuzz-read`: images as f32 with WCS, tables streamed in
//! chunks, HDF5 datasets and compound tables, the shower reader) over the fixed sample of the
//! damaged corpus that `tests/fuzz.rs` gives the CLI: read completely or refused with one line
//! naming the file — no signal, panic, hang or silent partial read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use deepsky_fuzz::{check_corpus, corpus_of, Limits, MutationKind, Verdict};

fn sources() -> Vec<PathBuf> {
    deepsky_fuzz::standard_sources(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .unwrap()
}

#[test]
fn every_library_reader_reads_the_damaged_sample_completely_or_refuses_it() {
    let cases = corpus_of(&sources(), 1, 6).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory_bytes: 4 << 30,
    };
    let report = check_corpus(
        Path::new(env!("CARGO_BIN_EXE_deepsky-fuzz-read")),
        &[vec!["{}".to_string()]],
        &cases,
        dir.path(),
        limits,
        2,
    )
    .unwrap();
    let table = report.to_markdown();
    assert_eq!(report.failures().count(), 0, "\n{table}");
    let originals: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.kind == MutationKind::Original)
        .collect();
    assert!(originals.len() >= 24, "\n{table}");
    assert!(
        originals.iter().all(|o| o.verdict == Verdict::Complete),
        "\n{table}"
    );
    // The shower reader ran: the bundled CaloGAN file lists its showers.
    let showers = report
        .outcomes
        .iter()
        .find(|o| o.case == "showers_calogan.original.h5")
        .expect("the bundled showers are a source");
    assert!(showers
        .run
        .items
        .as_ref()
        .unwrap()
        .iter()
        .any(|(k, n)| k == "showers" && *n == 1000));
}
