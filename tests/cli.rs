//! End-to-end tests of the `deepsky` command line: the inspect JSON contract on files other
//! projects wrote, and clean failures (one line, exit code 2, nothing written) on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn deepsky(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(args)
        .output()
        .expect("deepsky runs")
}

fn external() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/external");
    std::env::var("DEEPSKY_EXTERNAL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or(p)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is one line on stderr, names the file, and exits with 2.
fn assert_bad_input(o: &Output, file: &Path, what: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "exit code for {what}; stderr: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line for {what}: {err}"
    );
    assert!(
        err.contains(&file.display().to_string()),
        "names the file for {what}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_and_version() {
    let o = deepsky(&["--version"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("deepsky "));
    for sub in [
        vec!["--help"],
        vec!["inspect", "--help"],
        vec!["simulate", "--help"],
    ] {
        let o = deepsky(&sub);
        assert!(o.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
    assert_eq!(deepsky(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn inspect_json_contract_on_astropy_files() {
    let f = external().join("fits/chandra_time.fits");
    let o = deepsky(&["inspect", "--json", "--stats", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "fits");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "empty");
    assert_eq!(items[0]["name"], "PRIMARY");
    let ev = &items[1];
    assert_eq!(ev["name"], "EVENTS");
    assert_eq!(ev["kind"], "table");
    assert_eq!(ev["rows"], 2);
    let time = ev["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "time")
        .unwrap();
    assert_eq!(time["dtype"], "f64");
    assert_eq!(time["unit"], "s");
    assert!((time["stats"]["sum"].as_f64().unwrap() - 1140438585.7028837).abs() < 1e-3);
    assert_eq!(time["stats"]["nan_count"], 0);
    let status = ev["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "status")
        .unwrap();
    assert_eq!(status["dtype"], "list[bool]");

    let f = external().join("fits/scale.fits");
    let v: Value = serde_json::from_slice(
        &deepsky(&["inspect", "--json", "--stats", f.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let img = &v["items"][0];
    assert_eq!(img["kind"], "image");
    assert_eq!(img["shape"], serde_json::json!([21, 20]));
    assert_eq!(img["dtype"], "f32");
    assert!((img["stats"]["sum"].as_f64().unwrap() - 223202.76544189453).abs() < 1e-6);
    assert!((img["stats"]["min"].as_f64().unwrap() - 491.882080078125).abs() < 1e-9);

    let f = external().join("fits/m13_rice.fits");
    let v: Value = serde_json::from_slice(
        &deepsky(&["inspect", "--json", "--stats", f.to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert_eq!(v["items"][1]["dtype"], "i16");
    assert_eq!(v["items"][1]["compression"], "RICE_1");
    assert_eq!(v["items"][1]["stats"]["sum"].as_f64().unwrap(), 13293397.0);

    let f = external().join("fits/variable_length_table.fits");
    let v: Value = serde_json::from_slice(
        &deepsky(&["inspect", "--json", "--stats", f.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let var = &v["items"][1]["columns"][0];
    assert_eq!(var["dtype"], "list[i16]");
    assert_eq!(var["stats"]["sum"].as_f64().unwrap(), 137.0);
}

#[test]
fn inspect_hdf5_names_are_full_paths_and_compound_fields_are_columns() {
    let f = external().join("hdf5/python3.h5");
    let o = deepsky(&[
        "inspect",
        "--json",
        "--stats",
        "--header",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "hdf5");
    let items = v["items"].as_array().unwrap();
    let arr = items
        .iter()
        .find(|i| i["name"] == "/agroup/anarray1")
        .unwrap();
    assert_eq!(arr["dtype"], "i64");
    assert_eq!(arr["shape"], serde_json::json!([7]));
    assert_eq!(arr["stats"]["sum"].as_f64().unwrap(), 28.0);
    assert_eq!(arr["header"]["TITLE"], "Array title 1");
    let grp = items.iter().find(|i| i["name"] == "/agroup").unwrap();
    assert_eq!(grp["kind"], "group");
    assert_eq!(grp["header"]["testattr"], 42);

    let f = external().join("hdf5/smpl_compound_chunked.h5");
    let v: Value = serde_json::from_slice(
        &deepsky(&["inspect", "--json", "--stats", f.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let t = &v["items"][0];
    assert_eq!(t["kind"], "table");
    assert_eq!(t["rows"], 6);
    let d = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "d_name")
        .unwrap();
    assert_eq!(d["dtype"], "list[i16]");
    assert_eq!(d["stats"]["sum"].as_f64().unwrap(), 2700.0);
}

#[test]
fn bad_input_gives_one_line_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(external().join("fits/m13.fits")).unwrap();

    let truncated = dir.path().join("truncated.fits");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    assert_bad_input(
        &deepsky(&["inspect", "--stats", truncated.to_str().unwrap()]),
        &truncated,
        "truncated FITS",
    );
    let o = deepsky(&["inspect", truncated.to_str().unwrap()]);
    assert_bad_input(&o, &truncated, "truncated FITS without --stats");
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));

    let text = dir.path().join("notes.fits");
    std::fs::write(&text, "this is a text file, not FITS\n").unwrap();
    let o = deepsky(&["inspect", text.to_str().unwrap()]);
    assert_bad_input(&o, &text, "not FITS or HDF5");
    assert!(stderr(&o).contains("not a FITS or HDF5 file"));

    let corrupt = dir.path().join("corrupt.fits");
    let mut bytes = good.clone();
    // Card 9 of the primary header: put a lower-case, illegal keyword and a broken value there.
    let card = 8 * 80;
    bytes[card..card + 30].copy_from_slice(b"b@d key = 12x4  / broken card ");
    std::fs::write(&corrupt, &bytes).unwrap();
    let o = deepsky(&["inspect", corrupt.to_str().unwrap()]);
    assert_bad_input(&o, &corrupt, "corrupt header card");

    let missing = dir.path().join("missing.fits");
    assert_bad_input(
        &deepsky(&["inspect", missing.to_str().unwrap()]),
        &missing,
        "missing file",
    );

    let m13 = external().join("fits/m13.fits");
    let o = deepsky(&["inspect", m13.to_str().unwrap(), "--hdu", "EVENTS"]);
    assert_bad_input(&o, &m13, "missing HDU");
    assert!(
        stderr(&o).contains("no HDU named `EVENTS`"),
        "{}",
        stderr(&o)
    );
    let o = deepsky(&["inspect", m13.to_str().unwrap(), "--hdu", "5"]);
    assert_bad_input(&o, &m13, "missing HDU index");
    let ev = external().join("fits/chandra_time.fits");
    let o = deepsky(&[
        "inspect",
        ev.to_str().unwrap(),
        "--hdu",
        "EVENTS",
        "--columns",
        "time,nosuch",
    ]);
    assert_bad_input(&o, &ev, "missing column");
    assert!(stderr(&o).contains("no column `nosuch`"), "{}", stderr(&o));
    let h5 = external().join("hdf5/python3.h5");
    let o = deepsky(&["inspect", h5.to_str().unwrap(), "--hdu", "/agroup/nothere"]);
    assert_bad_input(&o, &h5, "missing dataset");

    // Nothing was written beside the inputs.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["corrupt.fits", "notes.fits", "truncated.fits"]);
}

#[test]
fn a_damaged_extension_is_an_error_not_a_shorter_file() {
    // The bundled event list (primary, EVENTS, GTI) with the GTI header block zeroed: the
    // file must not pass for a two-HDU file.
    let events = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/events.fits");
    let mut bytes = std::fs::read(&events).unwrap();
    let gti = (0..bytes.len())
        .step_by(2880)
        .filter(|&o| bytes[o..].starts_with(b"XTENSION="))
        .nth(1)
        .unwrap();
    bytes[gti..gti + 2880].fill(0);
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.fits");
    std::fs::write(&damaged, &bytes).unwrap();
    for args in [vec!["inspect"], vec!["inspect", "--json", "--stats"]] {
        let mut a = args.clone();
        a.push(damaged.to_str().unwrap());
        let o = deepsky(&a);
        assert_bad_input(&o, &damaged, "damaged extension header");
        assert!(stderr(&o).contains("HDU 2"), "{}", stderr(&o));
    }
}

#[test]
fn usage_errors_are_one_line_naming_the_option() {
    let o = deepsky(&["simulate", "sky", "--sed", "3"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("deepsky: error: ") && err.contains("--sed"),
        "{err}"
    );
    assert!(
        err.contains("--seed"),
        "the tip names the right option: {err}"
    );
}

#[test]
fn paths_that_cannot_be_files_are_bad_input_and_echoed_bytes_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A symbolic-link loop.
    let (a, b) = (dir.path().join("a.fits"), dir.path().join("b.fits"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    assert_bad_input(
        &deepsky(&["inspect", a.to_str().unwrap()]),
        &a,
        "symlink loop",
    );

    // An output that is an existing folder.
    let out = dir.path().join("folder");
    std::fs::create_dir(&out).unwrap();
    let o = deepsky(&[
        "-q",
        "simulate",
        "sky",
        "--set",
        "width=32",
        "--set",
        "height=32",
        "--set",
        "n_stars=1",
        "--set",
        "n_galaxies=1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_bad_input(&o, &out, "output folder");
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));

    // A header card whose comment carries a terminal escape sequence.
    let mut bytes = std::fs::read(external().join("fits/m13.fits")).unwrap();
    let card = (0..2880)
        .step_by(80)
        .find(|&o| bytes[o..].starts_with(b"NAXIS1  ="))
        .unwrap();
    bytes[card + 33..card + 43].copy_from_slice(b"\x1b[31mRED!!");
    let crafted = dir.path().join("crafted.fits");
    std::fs::write(&crafted, &bytes).unwrap();
    let o = deepsky(&["inspect", "--header", crafted.to_str().unwrap()]);
    assert!(
        !o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b),
        "raw ESC echoed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// `deepsky` run from the repository root, where the bundled configs are.
fn deepsky_at_root(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("deepsky runs")
}

#[test]
fn submit_dry_run_shards_anomaly_scoring_with_a_model_and_merges_with_anomaly_merge() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let model = dir.path().join("model");
    let (out_s, model_s) = (out.to_str().unwrap(), model.to_str().unwrap());
    let submit = |pipeline: &[&str], extra: &[&str]| {
        let mut args = vec!["submit", "-n", "3", "-o", out_s, "--time", "5:00"];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(pipeline);
        deepsky_at_root(&args)
    };
    let cfg = "pipelines/configs/anomaly.toml";
    let o = submit(
        &[
            "anomaly",
            "-c",
            cfg,
            "--model",
            model_s,
            "--set",
            "output.top_k=5",
        ],
        &["--dry-run"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "#SBATCH --job-name=deepsky-anomaly\n",
        "#SBATCH --array=0-2\n",
        "#SBATCH --time=5:00\n",
        "# deepsky submit: task K of the array runs shard K/3.\n",
        &format!(
            " anomaly -c {cfg} --model {model_s} --set output.top_k=5 \\\n    --shard \"$K/3\" -o {out_s}/shards/\"$K\"\n"
        ),
        "#SBATCH --job-name=deepsky-anomaly-merge\n",
        &format!(
            " anomaly -c {cfg} --set output.top_k=5 -o {out_s} --merge \\\n    {out_s}/shards/0 \\\n    {out_s}/shards/1 \\\n    {out_s}/shards/2\n"
        ),
        "sbatch --parsable --dependency=afterok:<array job id> ",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
    assert!(!text.contains("--input"), "{text}");
    assert!(!out.exists(), "--dry-run wrote {}", out.display());

    // What cannot be sharded, or is submit's to give, is refused before anything is written.
    for (pipeline, extra, needle) in [
        (vec!["anomaly", "-c", cfg], vec![], "give --model DIR"),
        (
            vec!["anomaly", "--model", model_s, "--merge", "a"],
            vec![],
            "`--merge` in the pipeline arguments",
        ),
        (
            vec!["anomaly", "--model", model_s, "-o", "x"],
            vec![],
            "give -o to `deepsky submit`",
        ),
        (
            vec!["anomaly", "--model", model_s],
            vec!["--input", "data/cutouts.h5"],
            "not from --input",
        ),
        (
            vec!["anomaly", "--model", model_s, "--set", "train.epochs=0"],
            vec![],
            "train.epochs",
        ),
        (
            vec!["fastsim", "train"],
            vec![],
            "supported: detect predict, segment predict, anomaly",
        ),
        (vec!["detect", "predict"], vec![], "needs its inputs"),
    ] {
        let o = submit(&pipeline, &extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{pipeline:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{pipeline:?}: {err}");
        assert!(err.contains(needle), "{pipeline:?}: `{needle}` in {err}");
        assert!(!out.exists());
    }
}

/// A FIFO (what `<(zcat x.fits.gz)` gives) is read once, whole: before, the format sniffing and
/// the reader each opened it, and the second open blocked forever.
#[test]
fn a_fifo_input_is_read_not_waited_on() {
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("events.fits");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/events.fits");
    let target = fifo.clone();
    let writer = std::thread::spawn(move || {
        let bytes = std::fs::read(source).unwrap();
        // Opening a FIFO for writing waits for the reader.
        let _ = std::fs::write(target, bytes);
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_deepsky"))
        .args(["inspect", "--json", fifo.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["file"], fifo.to_str().unwrap());
    assert_eq!(doc["items"][1]["name"], "EVENTS");
    assert_eq!(doc["items"][1]["rows"], 17944);
}

/// Negative values of numeric flags reach the range checks, which name the flag — not clap's
/// "unexpected argument '-1' found", which reads as if the flag did not exist.
#[test]
fn negative_numbers_are_refused_by_the_flag_they_were_given_to() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x");
    let out = out.to_str().unwrap();
    for (args, flag) in [
        (
            vec!["fastsim", "generate", "-n", "-3", "-o", out],
            "-n/--showers",
        ),
        (
            vec!["fastsim", "generate", "--energy", "-1", "-o", out],
            "--energy -1",
        ),
        (
            vec!["fastsim", "generate", "--energy-range", "-1,5", "-o", out],
            "--energy-range",
        ),
        (
            vec!["simulate", "showers", "--energy-range", "-1,5", "-o", out],
            "--energy-range -1,5",
        ),
        (
            vec!["simulate", "showers", "-n", "-2", "-o", out],
            "--showers",
        ),
    ] {
        // From the repository root, where the bundled config finds the bundled model.
        let o = Command::new(env!("CARGO_BIN_EXE_deepsky"))
            .args(&args)
            .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(flag) && !err.contains("unexpected argument"),
            "{args:?}: {err}"
        );
    }
}
