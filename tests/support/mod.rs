//! Helpers shared by the end-to-end tests: run the CLI, check its failures, cross-check files
//! with astropy/h5py and fitsverify.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the working directory the bundled configs expect).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// Run `deepsky` from the repository root.
pub fn deepsky(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("deepsky runs")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert success, showing stderr otherwise.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "deepsky failed ({:?}): {}",
        o.status.code(),
        stderr(o)
    );
}

/// A failure is one line on stderr, contains each of `needles`, exits with `code`, no panic.
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// The Python with astropy and h5py (.venv, or DEEPSKY_PYTHON).
pub fn python() -> PathBuf {
    std::env::var("DEEPSKY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"))
}

/// Run a Python snippet with `args` in sys.argv[1:]; returns stdout, panics with stderr.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python runs (run `make setup` for .venv)");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// fitsverify reports no errors and no warnings.
pub fn fitsverify_ok(path: &Path) {
    let out = Command::new("fitsverify")
        .arg("-q")
        .arg(path)
        .output()
        .expect("fitsverify installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verification OK"),
        "fitsverify on {}: {text}",
        path.display()
    );
}

/// Parse a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
