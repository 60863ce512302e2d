//! `deepsky submit`: run a pipeline over many inputs as a Slurm job array, and merge.
//!
//! ```text
//! deepsky submit -n 4 -o OUT --input 'fields/*.fits' -- detect predict -c detect.toml
//! deepsky submit --status OUT
//! ```
//!
//! Submit expands the inputs once and freezes them in `OUT/inputs.txt`, so every array task
//! sees the same sorted list; task K runs the ordinary pipeline with `--shard K/N -o
//! OUT/shards/K` (the same code path as a single run), and a job that depends on the array
//! (`afterok`) merges the shards into OUT. Slurm here is only a launcher: whether a shard is
//! finished is read from its own files (report.json and a provenance.json with status
//! `success`), not from Slurm's accounting, so the same command submitted again runs only
//! the shards that are missing or failed and keeps the others' outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Parser};
use serde_json::{json, Value};

use crate::detect::{self, DetectCommand};
use crate::Failure;

/// Arguments of `deepsky submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Number of shards: array tasks `0..N-1`, each over a contiguous block of the inputs.
    #[arg(
        short = 'n',
        long = "shards",
        value_name = "N",
        required_unless_present = "status"
    )]
    shards: Option<usize>,
    /// Output folder: the merged result, with `shards/K/`, `logs/`, `slurm/` (the scripts),
    /// `inputs.txt` and `submit.json` (what was submitted) inside.
    #[arg(short, long, value_name = "OUT", required_unless_present = "status")]
    out: Option<PathBuf>,
    /// The inputs, as `detect predict --input` takes them (files, folders, globs, @list).
    #[arg(long, value_name = "IMAGE.fits|DIR|GLOB|@LIST", num_args = 1.., required_unless_present = "status")]
    input: Vec<String>,
    /// Slurm partition (`#SBATCH --partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Time limit per task, e.g. `30:00` or `2-00:00:00` (`#SBATCH --time`).
    #[arg(long)]
    time: Option<String>,
    /// Memory per task, e.g. `4G` (`#SBATCH --mem`).
    #[arg(long)]
    mem: Option<String>,
    /// CPUs per task (`#SBATCH --cpus-per-task`); each task uses that many numeric threads.
    #[arg(long, value_name = "N")]
    cpus_per_task: Option<usize>,
    /// Account to charge (`#SBATCH --account`).
    #[arg(long)]
    account: Option<String>,
    /// An extra `#SBATCH` line for both scripts, e.g. `--sbatch-line='--qos=short'`
    /// (repeatable).
    #[arg(
        long = "sbatch-line",
        value_name = "OPTION",
        allow_hyphen_values = true
    )]
    sbatch_lines: Vec<String>,
    /// Print the scripts and the sbatch commands; submit nothing, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// After submitting, wait until the jobs have ended, then report as `--status` does.
    #[arg(long)]
    wait: bool,
    /// Report the state of a submitted run in OUT: each shard done, failed (with its log),
    /// queued or missing, and the merge. Exit code 0 only when the merged result is complete.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["shards", "out", "input", "dry_run", "wait"])]
    status: Option<PathBuf>,
    /// The pipeline command, after `--`: `detect predict` and its options (configs, `--set`,
    /// `--model`), without `--input`, `-o` or `--shard`, which submit supplies.
    #[arg(last = true, value_name = "PIPELINE")]
    pipeline: Vec<String>,
}

const MANIFEST: &str = "submit.json";
const INPUT_LIST: &str = "inputs.txt";

fn io_err(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::other(format!("{}: {e}", path.display()))
}

/// Quote a word for a POSIX shell when it needs it.
fn sh(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:@%+,-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `0,1,2,5` → `0-2,5` (Slurm's `--array` syntax).
fn array_spec(tasks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            tasks[i].to_string()
        } else {
            format!("{}-{}", tasks[i], tasks[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// What the pipeline words say, checked by the real command-line parser.
struct Pipeline {
    words: Vec<String>,
    configs: Vec<PathBuf>,
    sets: Vec<String>,
}

fn parse_pipeline(words: &[String], n: usize) -> Result<Pipeline, Failure> {
    if words.len() < 2 || words[0] != "detect" || words[1] != "predict" {
        return Err(Failure::input(format!(
            "submit: give the pipeline after `--`, e.g. `-- detect predict -c detect.toml`; `{}` cannot be sharded (supported: detect predict)",
            words.join(" ")
        )));
    }
    for w in &words[2..] {
        let own = w == "-o"
            || (w.starts_with("-o") && !w.starts_with("--"))
            || [
                "--out",
                "--input",
                "--shard",
                "--truth",
                "--dump-config",
                "--resume",
            ]
            .iter()
            .any(|f| w == f || w.starts_with(&format!("{f}=")));
        if own {
            return Err(Failure::input(format!(
                "submit: `{w}` in the pipeline arguments: give --input and -o to `deepsky submit` itself (it adds --shard per task; --truth, --dump-config and --resume do not apply)"
            )));
        }
    }
    let mut full = vec!["deepsky".to_string()];
    full.extend(words.iter().cloned());
    full.extend(
        ["--input", "@inputs.txt", "-o", "out", "--shard"]
            .map(String::from)
            .into_iter()
            .chain([format!("0/{n}")]),
    );
    let cli = crate::Cli::try_parse_from(&full).map_err(|e| {
        let text = e.to_string();
        Failure::input(format!(
            "submit: pipeline arguments: {}",
            text.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
        ))
    })?;
    let crate::Command::Detect(DetectCommand::Predict(p)) = cli.command else {
        unreachable!("checked above: detect predict");
    };
    // The config must resolve now, not in every task.
    deepsky_runtime::config::load::<detect::DetectConfig>(&p.common.configs, &p.common.sets)
        .map_err(|e| Failure::from(deepsky_runtime::RunError::from(e)))?;
    Ok(Pipeline {
        words: words.to_vec(),
        configs: p.common.configs.clone(),
        sets: p.common.sets.clone(),
    })
}

fn sbatch_header(args: &SubmitArgs, name: &str, log: &Path, cwd: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut line = |l: String| s.push_str(&format!("#SBATCH {l}\n"));
    line(format!("--job-name={name}"));
    line(format!("--output={}", log.display()));
    line(format!("--chdir={}", cwd.display()));
    if let Some(p) = &args.partition {
        line(format!("--partition={p}"));
    }
    if let Some(t) = &args.time {
        line(format!("--time={t}"));
    }
    if let Some(m) = &args.mem {
        line(format!("--mem={m}"));
    }
    if let Some(c) = args.cpus_per_task {
        line(format!("--cpus-per-task={c}"));
    }
    if let Some(a) = &args.account {
        line(format!("--account={a}"));
    }
    for l in &args.sbatch_lines {
        line(l.trim().to_string());
    }
    s
}

struct Scripts {
    shards: String,
    merge: String,
}

fn scripts(
    args: &SubmitArgs,
    pipe: &Pipeline,
    out: &Path,
    cwd: &Path,
    exe: &Path,
    n: usize,
    tasks: &[usize],
) -> Scripts {
    let d = |p: &str| sh(&out.join(p).display().to_string());
    let mut shards = sbatch_header(args, "deepsky-detect", &out.join("logs/shard-%a.log"), cwd);
    shards.push_str(&format!("#SBATCH --array={}\n", array_spec(tasks)));
    shards.push_str(&format!(
        "# deepsky submit: task K of the array runs shard K/{n} of the inputs in {INPUT_LIST}.\n\
         set -euo pipefail\n\
         K=$SLURM_ARRAY_TASK_ID\n\
         exec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" {} \\\n    --input @{} --shard \"$K/{n}\" -o {}/\"$K\"\n",
        sh(&exe.display().to_string()),
        pipe.words.iter().map(|w| sh(w)).collect::<Vec<_>>().join(" "),
        d(INPUT_LIST),
        d("shards"),
    ));
    let mut merge = sbatch_header(
        args,
        "deepsky-detect-merge",
        &out.join("logs/merge.log"),
        cwd,
    );
    merge.push_str("#SBATCH --kill-on-invalid-dep=yes\n");
    let mut opts = String::new();
    for c in &pipe.configs {
        opts.push_str(&format!(" -c {}", sh(&c.display().to_string())));
    }
    for s in &pipe.sets {
        opts.push_str(&format!(" --set {}", sh(s)));
    }
    let dirs: Vec<String> = (0..n).map(|k| format!("    {}/{k}", d("shards"))).collect();
    merge.push_str(&format!(
        "# deepsky submit: merge the {n} shards into one result, as one unsharded run writes it.\n\
         set -euo pipefail\n\
         exec {} detect merge{opts} -o {} \\\n{}\n",
        sh(&exe.display().to_string()),
        sh(&out.display().to_string()),
        dirs.join(" \\\n"),
    ));
    Scripts { shards, merge }
}

/// Jobs of ours still queued or running, as squeue lists them (empty when squeue is absent
/// or knows none of them).
fn active_jobs(ids: &[String]) -> Vec<String> {
    if ids.is_empty() {
        return vec![];
    }
    let Ok(o) = Command::new("squeue")
        .args(["-h", "-o", "%i %T", "-j", &ids.join(",")])
        .output()
    else {
        return vec![];
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            let active = [
                "PENDING",
                "RUNNING",
                "CONFIGURING",
                "COMPLETING",
                "SUSPENDED",
                "REQUEUED",
                "RESIZING",
            ]
            .contains(&state.trim());
            active.then(|| id.to_string())
        })
        .collect()
}

fn manifest_jobs(manifest: &Value) -> Vec<String> {
    manifest["submissions"]
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|s| [s["array_job"].clone(), s["merge_job"].clone()])
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn read_manifest(out: &Path) -> Result<Option<Value>, Failure> {
    let path = out.join(MANIFEST);
    if !path.exists() {
        return Ok(None);
    }
    detect::merge_read_json(&path)
        .map(Some)
        .map_err(Failure::from)
}

fn sbatch(args: &[String]) -> Result<String, Failure> {
    let o = Command::new("sbatch").args(args).output().map_err(|e| {
        Failure::other(format!(
            "sbatch: cannot run it ({e}); submit from a Slurm login node, or use --dry-run to see the scripts"
        ))
    })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(Failure::other(format!(
            "sbatch {}: {}",
            args.last().map(String::as_str).unwrap_or(""),
            err.lines().next().unwrap_or("failed").trim()
        )));
    }
    let id = String::from_utf8_lossy(&o.stdout);
    let id = id.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Failure::other(format!(
            "sbatch: unexpected answer `{}` (expected a job id)",
            id
        )));
    }
    Ok(id)
}

/// Run `deepsky submit`.
pub fn run(args: SubmitArgs) -> Result<(), Failure> {
    if let Some(out) = &args.status {
        return status(out);
    }
    let n = args.shards.expect("required by clap");
    let out_arg = args.out.clone().expect("required by clap");
    if n == 0 {
        return Err(Failure::input("submit: -n/--shards must be at least 1"));
    }
    let pipe = parse_pipeline(&args.pipeline, n)?;
    let images = detect::inputs::expand(&args.input).map_err(Failure::from)?;
    if n > images.len() {
        return Err(Failure::input(format!(
            "submit: {n} shards for {} images would leave shards empty; use -n {} or fewer",
            images.len(),
            images.len()
        )));
    }
    let cwd =
        std::env::current_dir().map_err(|e| Failure::other(format!("working directory: {e}")))?;
    let out = if out_arg.is_absolute() {
        out_arg.clone()
    } else {
        cwd.join(&out_arg)
    };
    let exe = std::env::current_exe()
        .map_err(|e| Failure::other(format!("cannot find the deepsky executable: {e}")))?;
    let input_list: String = images
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();

    // What was submitted before into OUT must be the same run.
    let manifest = read_manifest(&out)?;
    let this = json!({
        "pipeline": pipe.words,
        "shards": n,
        "inputs": images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "cwd": cwd.display().to_string(),
    });
    if let Some(m) = &manifest {
        for key in ["pipeline", "shards", "inputs", "cwd"] {
            if m[key] != this[key] {
                return Err(Failure::input(format!(
                    "{}: submitted before with other {key} ({}); use another -o, or delete that folder",
                    out.join(MANIFEST).display(),
                    m[key]
                )));
            }
        }
        let active = active_jobs(&manifest_jobs(m));
        if !active.is_empty() {
            return Err(Failure::input(format!(
                "{}: jobs {} of an earlier submission are still queued or running; wait for them (`deepsky submit --status {}`) or scancel them",
                out.display(),
                active.join(", "),
                out_arg.display()
            )));
        }
    }
    let tasks: Vec<usize> = (0..n)
        .filter(|k| !detect::shard_done(&out.join(format!("shards/{k}"))))
        .collect();
    if tasks.is_empty() && merged(&out) {
        println!(
            "{}: complete ({n} shards merged); nothing to submit",
            out_arg.display()
        );
        return Ok(());
    }
    let s = scripts(&args, &pipe, &out, &cwd, &exe, n, &tasks);
    let shards_script = out.join("slurm/shards.sbatch");
    let merge_script = out.join("slurm/merge.sbatch");
    let dep = "--dependency=afterok:<array job id>";
    if args.dry_run {
        if !tasks.is_empty() {
            println!("# {}\n{}", shards_script.display(), s.shards);
        }
        println!("# {}\n{}", merge_script.display(), s.merge);
        println!("# submitted with:");
        if !tasks.is_empty() {
            println!("sbatch --parsable {}", shards_script.display());
            println!("sbatch --parsable {dep} {}", merge_script.display());
        } else {
            println!("sbatch --parsable {}", merge_script.display());
        }
        return Ok(());
    }

    for d in ["slurm", "logs", "shards"] {
        std::fs::create_dir_all(out.join(d)).map_err(|e| io_err(&out.join(d), e))?;
    }
    deepsky_io::atomic::write_atomic(out.join(INPUT_LIST), input_list.as_bytes())?;
    deepsky_io::atomic::write_atomic(&shards_script, s.shards.as_bytes())?;
    deepsky_io::atomic::write_atomic(&merge_script, s.merge.as_bytes())?;
    // A shard to run again starts clean: its old record must not read as its new outcome.
    for k in &tasks {
        let dir = out.join(format!("shards/{k}"));
        for f in ["provenance.json", "report.json"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
    for f in ["provenance.json", "report.json"] {
        let _ = std::fs::remove_file(out.join(f));
    }

    let mut submission = json!({
        "submitted_unix_s": unix_now(),
        "tasks": tasks,
    });
    let array_job = if tasks.is_empty() {
        None
    } else {
        Some(sbatch(&[
            "--parsable".into(),
            shards_script.display().to_string(),
        ])?)
    };
    let mut merge_args = vec!["--parsable".to_string()];
    if let Some(id) = &array_job {
        merge_args.push(format!("--dependency=afterok:{id}"));
    }
    merge_args.push(merge_script.display().to_string());
    let merge_job = sbatch(&merge_args)?;
    submission["array_job"] = json!(array_job);
    submission["merge_job"] = json!(merge_job);
    let mut m = manifest.unwrap_or_else(|| this.clone());
    match m["submissions"].as_array_mut() {
        Some(a) => a.push(submission),
        None => m["submissions"] = json!([submission]),
    }
    let text = serde_json::to_string_pretty(&m).expect("serialises") + "\n";
    deepsky_io::atomic::write_atomic(out.join(MANIFEST), text.as_bytes())?;
    match &array_job {
        Some(id) => println!(
            "submitted shards {} of {n} as job {id}, and the merge as job {merge_job} (after they succeed); logs in {}",
            array_spec(&tasks),
            out.join("logs").display()
        ),
        None => println!(
            "all {n} shards are done; submitted the merge as job {merge_job}; log in {}",
            out.join("logs/merge.log").display()
        ),
    }
    if args.wait {
        let ids: Vec<String> = array_job.into_iter().chain([merge_job]).collect();
        while !active_jobs(&ids).is_empty() {
            if deepsky_runtime::interrupt::interrupted() {
                return Err(Failure {
                    code: 130,
                    message: "interrupted (the jobs keep running)".into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        return status(&out_arg);
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn merged(out: &Path) -> bool {
    detect::shard_done(out)
        && detect::merge_read_json(&out.join("provenance.json"))
            .map(|p| p["pipeline"] == "detect merge")
            .unwrap_or(false)
}

fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default()
}

/// `deepsky submit --status OUT`.
fn status(out: &Path) -> Result<(), Failure> {
    let Some(m) = read_manifest(out)? else {
        return Err(Failure::input(format!(
            "{}: no {MANIFEST}: nothing was submitted into this folder",
            out.display()
        )));
    };
    let n = m["shards"].as_u64().unwrap_or(0) as usize;
    let active = active_jobs(&manifest_jobs(&m));
    let queued = !active.is_empty();
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    let mut done = 0;
    for k in 0..n {
        let dir = out.join(format!("shards/{k}"));
        let log = out.join(format!("logs/shard-{k}.log"));
        let prov = detect::merge_read_json(&dir.join("provenance.json")).ok();
        let line = if detect::shard_done(&dir) {
            done += 1;
            let r = detect::merge_read_json(&dir.join("report.json")).unwrap_or(Value::Null);
            format!(
                "done: {} detections in {} images",
                r["n_detections"], r["n_images"]
            )
        } else if let Some(p) = prov {
            failed.push((k, log.clone()));
            format!(
                "FAILED: status {}, exit code {}; log {}: {}",
                p["status"].as_str().unwrap_or("?"),
                p["exit_code"],
                log.display(),
                last_line(&log)
            )
        } else if queued {
            missing.push(k);
            "queued or running".to_string()
        } else {
            missing.push(k);
            let last = last_line(&log);
            if log.exists() {
                format!(
                    "MISSING: ended without a result (killed: time limit, memory, cancelled?); log {}: {last}",
                    log.display()
                )
            } else {
                "MISSING: never ran".to_string()
            }
        };
        println!("shard {k}/{n}: {line}");
    }
    let merge_log = out.join("logs/merge.log");
    let is_merged = merged(out);
    if is_merged {
        let r = detect::merge_read_json(&out.join("report.json")).unwrap_or(Value::Null);
        println!(
            "merge: done: {} detections in {} images in {}",
            r["n_detections"],
            r["n_images"],
            out.join("catalog.fits").display()
        );
        return Ok(());
    }
    let merge_state = if queued {
        "waiting for the shards".to_string()
    } else if let Ok(p) = detect::merge_read_json(&out.join("provenance.json")) {
        format!(
            "FAILED: status {}; log {}: {}",
            p["status"].as_str().unwrap_or("?"),
            merge_log.display(),
            last_line(&merge_log)
        )
    } else {
        "not run".to_string()
    };
    println!("merge: {merge_state}");
    if queued {
        return Err(Failure::other(format!(
            "{}: {done} of {n} shards done; jobs {} still queued or running",
            out.display(),
            active.join(", ")
        )));
    }
    if let Some((k, log)) = failed.first() {
        return Err(Failure::other(format!(
            "{}: shard {k}/{n} failed (log {}: {}){}; submit the same command again to rerun only the failed and missing shards",
            out.display(),
            log.display(),
            last_line(log),
            if failed.len() > 1 {
                format!(" and {} more", failed.len() - 1)
            } else {
                String::new()
            }
        )));
    }
    Err(Failure::other(format!(
        "{}: {done} of {n} shards done{}; the merged result is not there: submit the same command again",
        out.display(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                ", {} missing",
                missing
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )))
}
