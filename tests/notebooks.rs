//! The Jupyter notebooks in notebooks/ (issue 8) run headless against the freshly built binary,
//! so they never rot: every `notebooks/*.ipynb` is executed cell by cell with the venv's Python
//! (`DEEPSKY_PYTHON`, else `.venv/bin/python`; `make setup` installs notebooks/requirements.txt)
//! through `notebooks/run_notebook.py` (nbclient), with `DEEPSKY_BIN` pointing at this build. A
//! failing cell fails the test with the cell and its error. A new notebook needs no change here:
//! dropping the file into notebooks/ is enough. `DEEPSKY_NOTEBOOK=02_anomaly cargo test ...` runs
//! only the notebooks whose file name contains the given text.
//!
//! Committed notebooks carry no outputs (`python notebooks/run_notebook.py --strip` clears them).

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use support::*;

/// Every notebooks/*.ipynb, sorted by name.
fn notebooks() -> Vec<PathBuf> {
    let dir = root().join("notebooks");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no notebooks in {}", dir.display());
    found
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_notebook_runs_headless() {
    let only = std::env::var("DEEPSKY_NOTEBOOK").unwrap_or_default();
    // Executed copies (with outputs) are kept here for a look after a failure.
    let saved = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("notebooks");
    let mut failures = Vec::new();
    let mut ran = 0;
    for nb in notebooks() {
        let name = file_name(&nb);
        if !name.contains(&only) {
            continue;
        }
        ran += 1;
        // Each notebook writes its products under DEEPSKY_NB_OUT (else notebooks/out/).
        let out = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let o = Command::new(python())
            .arg(root().join("notebooks").join("run_notebook.py"))
            .arg("--save")
            .arg(&saved)
            .arg(&nb)
            .env("DEEPSKY_BIN", env!("CARGO_BIN_EXE_deepsky"))
            .env("DEEPSKY_NB_OUT", out.path())
            .current_dir(root())
            .output()
            .expect("python runs (run `make setup` for .venv with notebooks/requirements.txt)");
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "notebook {name}: {} in {secs:.1} s",
            if o.status.success() { "ok" } else { "FAILED" }
        );
        if !o.status.success() {
            failures.push(format!(
                "{name} (exit {:?}; executed copy in {}):\n{}{}",
                o.status.code(),
                saved.join(&name).display(),
                stdout(&o),
                stderr(&o)
            ));
        }
    }
    assert!(
        ran > 0,
        "no notebook name contains DEEPSKY_NOTEBOOK={only:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} notebooks failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Outputs are stripped in git: no outputs and no execution counts in any code cell, and a
/// Python kernel.
#[test]
fn committed_notebooks_are_stripped() {
    let mut problems = Vec::new();
    for nb in notebooks() {
        let name = file_name(&nb);
        let doc = json(&nb);
        assert_eq!(doc["nbformat"], 4, "{name}: nbformat 4");
        if doc["metadata"]["kernelspec"]["language"] != "python" {
            problems.push(format!("{name}: kernelspec is not a Python kernel"));
        }
        let cells = doc["cells"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no cells"));
        for (i, cell) in cells.iter().enumerate() {
            if cell["cell_type"] != "code" {
                continue;
            }
            let has_outputs = cell["outputs"].as_array().is_none_or(|o| !o.is_empty());
            if has_outputs || !cell["execution_count"].is_null() {
                problems.push(format!(
                    "{name}: cell {i} has outputs or an execution count"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "run `python notebooks/run_notebook.py --strip notebooks/*.ipynb`:\n{}",
        problems.join("\n")
    );
}
