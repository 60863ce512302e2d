//! Helpers shared by deepsky-io's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `../shared/testdata/external` beside the checkout (or $DEEPSKY_EXTERNAL_TESTDATA).
pub fn external() -> PathBuf {
    if let Ok(p) = std::env::var("DEEPSKY_EXTERNAL_TESTDATA") {
        return PathBuf::from(p);
    }
    let p = workspace().join("../shared/testdata/external");
    assert!(
        p.is_dir(),
        "external test data not found at {} (set DEEPSKY_EXTERNAL_TESTDATA)",
        p.display()
    );
    p
}

/// The Python of the test venv made by `.ci/setup` (or $DEEPSKY_PYTHON).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DEEPSKY_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `make test` (it runs .ci/setup) or set DEEPSKY_PYTHON",
        p.display()
    );
    p
}

/// Run a Python snippet with arguments; returns stdout; panics with stderr on failure.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run Debian's fitsverify on a file; returns (errors, warnings, full report).
pub fn fitsverify(path: &std::path::Path) -> (u32, u32, String) {
    let out = Command::new("fitsverify")
        .arg("-q")
        .arg(path)
        .output()
        .expect("fitsverify is installed (apt-get install fitsverify; .ci/setup does it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // -q prints e.g. "verification OK: x.fits" or "verification FAILED: x.fits, 1 warnings and 2 errors".
    if text.contains("verification OK") {
        return (0, 0, text);
    }
    let num_before = |word: &str| -> u32 {
        text.split(',')
            .flat_map(|p| p.split(" and "))
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    (
        num_before("error").max(if text.contains("FAILED") { 1 } else { 0 }),
        num_before("warning"),
        text,
    )
}
