//! The pipeline runtime's contracts, seen from the command line: layered configs, clear config
//! errors, --dump-config, provenance.json, exit codes (2 bad input, 130 interrupted), atomic
//! outputs, and --resume giving the same result as an uninterrupted run.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn dump_config_shows_every_default_and_reloads() {
    let o = deepsky(&["anomaly", "--dump-config"]);
    ok(&o);
    let text = stdout(&o);
    for section in [
        "[input]",
        "[model]",
        "[train]",
        "[train.schedule]",
        "[train.adamw]",
        "[cluster]",
        "[output]",
    ] {
        assert!(text.contains(section), "{section} in\n{text}");
    }
    assert!(text.contains("epochs = 20"), "{text}");
    // The dump is itself a valid config that resolves to the same thing.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("dump.toml");
    std::fs::write(&f, &text).unwrap();
    let again = deepsky(&["anomaly", "-c", f.to_str().unwrap(), "--dump-config"]);
    ok(&again);
    assert_eq!(stdout(&again), text);
}

#[test]
fn layering_later_files_then_set_win() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.toml");
    let run = d.path().join("run.toml");
    std::fs::write(
        &base,
        "[train]\nepochs = 3\nbatch_size = 16\n[model]\nlatent = 4\n",
    )
    .unwrap();
    std::fs::write(&run, "[train]\nepochs = 7\n").unwrap();
    let o = deepsky(&[
        "anomaly",
        "-c",
        base.to_str().unwrap(),
        "-c",
        run.to_str().unwrap(),
        "--set",
        "model.latent=6",
        "--set",
        "cluster.method=gmm",
        "--dump-config",
    ]);
    ok(&o);
    let v: toml::Table = stdout(&o).parse().unwrap();
    assert_eq!(v["train"]["epochs"].as_integer(), Some(7));
    assert_eq!(v["train"]["batch_size"].as_integer(), Some(16));
    assert_eq!(v["model"]["latent"].as_integer(), Some(6));
    assert_eq!(v["cluster"]["method"].as_str(), Some("gmm"));
}

#[test]
fn config_errors_name_key_source_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run.toml");
    std::fs::write(&run, "[train]\nepoch = 7\n").unwrap();
    let o = deepsky(&[
        "anomaly",
        "-c",
        run.to_str().unwrap(),
        "-o",
        d.path().join("o").to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        2,
        &["train.epoch", "run.toml", "did you mean `train.epochs`"],
    );
    assert!(
        !d.path().join("o").exists(),
        "nothing written for a bad config"
    );

    std::fs::write(&run, "[train]\nepochs = \"many\"\n").unwrap();
    let o = deepsky(&["anomaly", "-c", run.to_str().unwrap(), "--dump-config"]);
    assert_fails(&o, 2, &["train.epochs", "run.toml", "invalid type"]);

    let o = deepsky(&["anomaly", "--set", "train.epochs=0", "--dump-config"]);
    assert_fails(&o, 2, &["train.epochs", "at least 1", "--set"]);

    let o = deepsky(&[
        "anomaly",
        "--set",
        "model.kind=transformer",
        "--dump-config",
    ]);
    assert_fails(&o, 2, &["model.kind", "transformer"]);

    let missing = d.path().join("missing.toml");
    let o = deepsky(&["anomaly", "-c", missing.to_str().unwrap()]);
    assert_fails(&o, 2, &["missing.toml", "cannot read"]);

    let o = deepsky(&[
        "anomaly",
        "--device",
        "cuda:0",
        "-o",
        d.path().join("o2").to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["cuda", "--features cuda"]);
}

#[test]
fn bad_input_file_exits_2_and_records_provenance() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let missing = d.path().join("nope.h5");
    let o = deepsky(&[
        "anomaly",
        "--set",
        &format!("input.path=\"{}\"", missing.display()),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["nope.h5"]);
    let p = json(&out.join("provenance.json"));
    assert_eq!(p["status"], "bad-input");
    assert_eq!(p["exit_code"], 2);
    assert_eq!(p["pipeline"], "anomaly");
    assert!(p["config"]["train"]["epochs"].is_u64());
}

/// A small, quick anomaly run (dense autoencoder) for the runtime tests.
fn quick(out: &std::path::Path, epochs: usize) -> Vec<String> {
    [
        "anomaly".to_string(),
        "--set".into(),
        "model.kind=dense".into(),
        "--set".into(),
        "model.widths=[64]".into(),
        "--set".into(),
        format!("train.epochs={epochs}"),
        "--set".into(),
        "train.patience=0".into(),
        "--set".into(),
        "output.plots=[\"png\"]".into(),
        "-o".into(),
        out.display().to_string(),
    ]
    .to_vec()
}

#[test]
fn ctrl_c_exits_130_keeps_outputs_and_resume_matches_uninterrupted() {
    let d = tempfile::tempdir().unwrap();
    let full = d.path().join("full");
    let args = quick(&full, 6);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&deepsky(&a));
    let full_report = json(&full.join("report.json"));

    // Interrupt a second run once its first checkpoint exists.
    let part = d.path().join("part");
    let args = quick(&part, 6);
    let mut child = Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(&args)
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    // Until it completes, a run writes into OUT/.staging (published together at the end).
    while !part.join(".staging/checkpoints/latest.json").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    if o.status.code() == Some(0) {
        eprintln!("run finished before the interrupt arrived; resume check is still made");
    } else {
        assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
        assert!(
            !part.join("report.json").exists() && !part.join("anomalies.fits").exists(),
            "no products published by an interrupted run"
        );
        assert_eq!(json(&part.join("provenance.json"))["status"], "interrupted");
        // No temporary files are left behind.
        for e in std::fs::read_dir(&part).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{name}");
        }
    }

    let mut resume = args.clone();
    resume.push("--resume".into());
    let r: Vec<&str> = resume.iter().map(String::as_str).collect();
    ok(&deepsky(&r));
    let part_report = json(&part.join("report.json"));
    assert_eq!(
        part_report["training"]["history"],
        full_report["training"]["history"]
    );
    assert_eq!(part_report["auc"], full_report["auc"]);
    let a = std::fs::read(full.join("model/model.safetensors")).unwrap();
    let b = std::fs::read(part.join("model/model.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
}

/// Every subcommand with a config: its `--dump-config` output documents every section and key
/// (a `# ` comment line right above it, from the field's doc comment) and, given back with
/// `-c`, resolves to the same config.
#[test]
fn every_dump_config_documents_every_key_and_reloads() {
    let d = tempfile::tempdir().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["anomaly"],
        vec!["anomaly", "-c", "pipelines/configs/anomaly.toml"],
        vec!["detect", "predict", "--input", "x.fits"],
        vec![
            "detect",
            "train",
            "-c",
            "pipelines/configs/detect_train.toml",
        ],
        vec![
            "detect",
            "evaluate",
            "--catalog",
            "c.fits",
            "--truth",
            "t.fits",
        ],
        vec!["detect", "merge", "shard0"],
        vec!["fastsim", "train", "-c", "pipelines/configs/fastsim.toml"],
        vec!["fastsim", "generate"],
        vec!["fastsim", "validate"],
        vec!["fastsim", "images"],
        vec!["simulate", "sky", "-c", "pipelines/configs/sky.toml"],
        vec!["simulate", "cutouts"],
        vec!["simulate", "events", "--seed", "4"],
        vec!["simulate", "showers", "--energy", "20", "-n", "5"],
    ];
    for (i, cmd) in commands.iter().enumerate() {
        let mut args = cmd.clone();
        args.push("--dump-config");
        let o = deepsky(&args);
        ok(&o);
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        let undocumented: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.starts_with('[') || (l.contains(" = ") && !l.starts_with([' ', '#']))
            })
            .filter(|(k, _)| *k == 0 || !lines[k - 1].starts_with("# "))
            .map(|(_, l)| *l)
            .collect();
        assert!(
            undocumented.is_empty(),
            "{cmd:?}: keys without a doc comment: {undocumented:?}"
        );
        let f = d.path().join(format!("dump{i}.toml"));
        std::fs::write(&f, &text).unwrap();
        // The dumped file alone (without the options that stand for settings) gives the same
        // dump.
        let mut again: Vec<&str> = cmd[..2.min(cmd.len())]
            .iter()
            .copied()
            .filter(|w| !w.starts_with('-'))
            .collect();
        again.extend(required_args(cmd));
        again.extend(["-c", f.to_str().unwrap(), "--dump-config"]);
        let o = deepsky(&again);
        ok(&o);
        assert_eq!(stdout(&o), text, "{cmd:?} reloaded from its dump");
    }
}

/// The arguments a command needs besides its config (inputs of a dump-only run).
fn required_args<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cmd.len() {
        match cmd[i] {
            "--input" | "--catalog" | "--truth" => {
                out.extend([cmd[i], cmd[i + 1]]);
                i += 2;
            }
            "shard0" => {
                out.push("shard0");
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// A complete run, then a second run into the same folder that is interrupted: the folder
/// still holds the first run's products and its `provenance.json` (status success), byte for
/// byte; the second run's partial outputs and record are in OUT/.staging. A failed run (bad
/// input) likewise leaves the complete run alone.
#[test]
fn an_interrupted_or_failed_run_leaves_the_previous_complete_run_intact() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let args = quick(&out, 2);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&deepsky(&a));
    let snapshot = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = [
            "report.json",
            "provenance.json",
            "anomalies.fits",
            "latent.h5",
        ]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
        files.sort();
        files
    };
    let before = snapshot(&out);
    assert!(
        !out.join(".staging").exists(),
        "a complete run leaves no staging folder"
    );

    // A long second run, interrupted once it has written a checkpoint.
    let args = quick(&out, 400);
    let child = Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(&args)
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !out.join(".staging/checkpoints/latest.json").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(
        snapshot(&out),
        before,
        "the complete run's products changed"
    );
    assert_eq!(json(&out.join("provenance.json"))["status"], "success");
    assert_eq!(
        json(&out.join(".staging/provenance.json"))["status"],
        "interrupted"
    );

    // A failed run (an input that does not exist) into the same folder.
    let mut bad = quick(&out, 2);
    bad.extend(["--set".to_string(), "input.path=\"nope.h5\"".to_string()]);
    let b: Vec<&str> = bad.iter().map(String::as_str).collect();
    assert_fails(&deepsky(&b), 2, &["nope.h5"]);
    assert_eq!(
        snapshot(&out),
        before,
        "a failed run changed the complete run's products"
    );
}
