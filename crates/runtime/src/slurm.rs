//! Slurm as a launcher for sharded runs: the `#SBATCH` scripts of a job array and its merge
//! job, `sbatch` and `squeue` calls, and `submit.json`, the record of what was submitted into
//! an output folder. Whether a shard finished is never asked of Slurm (many sites restrict its
//! accounting): it is read from the shard's own folder ([`crate::shard::ShardState`]).
//!
//! ```
//! use deepsky_runtime::slurm::{array_spec, sh};
//! assert_eq!(array_spec(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
//! assert_eq!(sh("out/run 1"), "'out/run 1'");
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};
use crate::shard::{ShardState, ShardedPipeline};

/// What was submitted into a run's output folder ([`SubmitManifest`]).
pub const MANIFEST: &str = "submit.json";
/// The input files of a run, one per line, as every task reads them.
pub const INPUT_LIST: &str = "inputs.txt";

/// A sharded run as submitted: which step, with which words, from where, into where.
#[derive(Clone, Copy)]
pub struct ShardedRun<'a> {
    /// The step.
    pub pipeline: &'a dyn ShardedPipeline,
    /// The step's words after `deepsky`, as given.
    pub words: &'a [String],
    /// The config options the merge step gets ([`ShardedPipeline::check`]).
    pub merge_options: &'a [String],
    /// The output folder (absolute): `shards/K`, `logs/`, the merged result.
    pub out: &'a Path,
    /// The working directory the jobs run in.
    pub cwd: &'a Path,
    /// The `deepsky` executable the jobs call.
    pub exe: &'a Path,
    /// Number of shards.
    pub shards: usize,
}

impl ShardedRun<'_> {
    /// The two scripts' paths: `OUT/slurm/shards.sbatch` and `OUT/slurm/merge.sbatch`.
    pub fn script_paths(&self) -> (PathBuf, PathBuf) {
        let dir = self.out.join("slurm");
        (dir.join("shards.sbatch"), dir.join("merge.sbatch"))
    }

    /// What `--dry-run` prints: the scripts and the sbatch commands that would submit them
    /// (only the merge when no shard is left to run).
    pub fn dry_run(&self, sbatch: &SbatchOptions, tasks: &[usize]) -> String {
        let (shards, merge) = self.script_paths();
        let mut s = String::new();
        if !tasks.is_empty() {
            s.push_str(&format!(
                "# {}\n{}\n",
                shards.display(),
                self.array_script(sbatch, tasks)
            ));
        }
        s.push_str(&format!(
            "# {}\n{}\n",
            merge.display(),
            self.merge_script(sbatch)
        ));
        s.push_str("# submitted with:\n");
        if tasks.is_empty() {
            s.push_str(&format!("sbatch --parsable {}\n", merge.display()));
        } else {
            s.push_str(&format!("sbatch --parsable {}\n", shards.display()));
            s.push_str(&format!(
                "sbatch --parsable --dependency=afterok:<array job id> {}\n",
                merge.display()
            ));
        }
        s
    }

    /// Submit shards `tasks` and the merge: write `inputs` to `inputs.txt` (when the step
    /// takes input files) and the scripts, clear the records of the shards to run again and of
    /// the merge (an old record must not read as the new outcome), then `sbatch` the array and
    /// the merge job after it.
    pub fn submit(
        &self,
        sbatch: &SbatchOptions,
        tasks: &[usize],
        inputs: &[String],
    ) -> Result<Submission> {
        for d in ["slurm", "logs", "shards"] {
            let dir = self.out.join(d);
            std::fs::create_dir_all(&dir)
                .map_err(|e| RunError::failed(format!("{}: {e}", dir.display())))?;
        }
        let write = |path: &Path, text: &str| -> Result<()> {
            crate::outdir::write_atomic(path, text.as_bytes())
        };
        if self.pipeline.input_option().is_some() {
            let list: String = inputs.iter().map(|p| format!("{p}\n")).collect();
            write(&self.out.join(INPUT_LIST), &list)?;
        }
        let (shards, merge) = self.script_paths();
        write(&shards, &self.array_script(sbatch, tasks))?;
        write(&merge, &self.merge_script(sbatch))?;
        let dirs = tasks.iter().map(|k| self.out.join(format!("shards/{k}")));
        for dir in dirs.chain([self.out.to_path_buf()]) {
            for f in ["provenance.json", "report.json"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
        let array_job = match tasks.is_empty() {
            true => None,
            false => Some(self::sbatch(&[
                "--parsable".into(),
                shards.display().to_string(),
            ])?),
        };
        let mut merge_args = vec!["--parsable".to_string()];
        if let Some(id) = &array_job {
            merge_args.push(format!("--dependency=afterok:{id}"));
        }
        merge_args.push(merge.display().to_string());
        let merge_job = self::sbatch(&merge_args)?;
        let submitted_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Submission {
            array_job,
            merge_job,
            submitted_unix_s,
            tasks: tasks.to_vec(),
        })
    }

    fn quoted(&self, rel: &str) -> String {
        sh(&self.out.join(rel).display().to_string())
    }

    fn job_name(&self) -> String {
        format!("deepsky-{}", self.pipeline.words()[0])
    }

    /// The job array's script: task K runs shard K/N into `OUT/shards/K`, with as many
    /// numeric threads as Slurm gives it CPUs.
    pub fn array_script(&self, sbatch: &SbatchOptions, tasks: &[usize]) -> String {
        let n = self.shards;
        let log = self.out.join("logs/shard-%a.log");
        let mut s = sbatch.header(&self.job_name(), &log, self.cwd);
        s.push_str(&format!("#SBATCH --array={}\n", array_spec(tasks)));
        let (of, input) = match self.pipeline.input_option() {
            Some(i) => (
                format!(" of the inputs in {INPUT_LIST}"),
                format!("{i} @{} ", self.quoted(INPUT_LIST)),
            ),
            None => (String::new(), String::new()),
        };
        let words: Vec<String> = self.words.iter().map(|w| sh(w)).collect();
        s.push_str(&format!(
            "# deepsky submit: task K of the array runs shard K/{n}{of}.\n\
             set -euo pipefail\n\
             K=$SLURM_ARRAY_TASK_ID\n\
             exec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" {} \\\n    {input}--shard \"$K/{n}\" -o {}/\"$K\"\n",
            sh(&self.exe.display().to_string()),
            words.join(" "),
            self.quoted("shards"),
        ));
        s
    }

    /// The merge job's script: the merge step over `OUT/shards/0 ...` into OUT. It is
    /// submitted to run after the array succeeds, and cancelled if a shard fails.
    pub fn merge_script(&self, sbatch: &SbatchOptions) -> String {
        let n = self.shards;
        let name = format!("{}-merge", self.job_name());
        let mut s = sbatch.header(&name, &self.out.join("logs/merge.log"), self.cwd);
        s.push_str("#SBATCH --kill-on-invalid-dep=yes\n");
        let p = self.pipeline;
        let mut head: Vec<String> = p.merge_words().iter().map(|w| w.to_string()).collect();
        head.extend(self.merge_options.iter().cloned());
        head.extend(["-o".into(), self.out.display().to_string()]);
        head.extend(p.merge_option().map(String::from));
        let head: Vec<String> = head.iter().map(|w| sh(w)).collect();
        let dirs: Vec<String> = (0..n)
            .map(|k| format!("    {}/{k}", self.quoted("shards")))
            .collect();
        s.push_str(&format!(
            "# deepsky submit: merge the {n} shards into one result, as one unsharded run writes it.\n\
             set -euo pipefail\n\
             exec {} {} \\\n{}\n",
            sh(&self.exe.display().to_string()),
            head.join(" "),
            dirs.join(" \\\n"),
        ));
        s
    }
}

/// `submit.json`: what was submitted into an output folder. A later submission into the same
/// folder must be the same run (same `pipeline`, `shards`, `inputs`, `cwd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitManifest {
    /// Working directory of the submission; relative paths in the pipeline words mean this.
    pub cwd: String,
    /// The input files, as frozen in `inputs.txt` (empty when the shards split rows of an
    /// input the config names).
    pub inputs: Vec<String>,
    /// The pipeline words after `deepsky`, as given after `--`.
    pub pipeline: Vec<String>,
    /// Number of shards.
    pub shards: usize,
    /// Each submission into this folder, in order.
    #[serde(default)]
    pub submissions: Vec<Submission>,
}

/// One `deepsky submit` into a folder: the array tasks it submitted and the jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The job array's id (`None` when every shard was already done).
    pub array_job: Option<String>,
    /// The merge job's id.
    pub merge_job: String,
    /// When, in seconds since the Unix epoch.
    pub submitted_unix_s: u64,
    /// The shards submitted (array task ids).
    pub tasks: Vec<usize>,
}

impl SubmitManifest {
    /// Read `OUT/submit.json`; `None` when nothing was submitted into `out`.
    pub fn read(out: &Path) -> Result<Option<SubmitManifest>> {
        let path = out.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        crate::outdir::read_json(&path).map(Some)
    }

    /// Write `OUT/submit.json` (keys in alphabetical order, as every record deepsky writes).
    pub fn write(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialises") + "\n";
        crate::outdir::write_atomic(&out.join(MANIFEST), text.as_bytes())
    }

    /// The job ids of every submission.
    pub fn jobs(&self) -> Vec<String> {
        self.submissions
            .iter()
            .flat_map(|s| s.array_job.iter().chain([&s.merge_job]))
            .cloned()
            .collect()
    }

    /// The first property in which `other` is another run than `self`, with `self`'s value as
    /// JSON; `None` when both describe the same run.
    pub fn differs_from(&self, other: &SubmitManifest) -> Option<(&'static str, String)> {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap_or_default()
        }
        if self.pipeline != other.pipeline {
            Some(("pipeline", json(&self.pipeline)))
        } else if self.shards != other.shards {
            Some(("shards", json(&self.shards)))
        } else if self.inputs != other.inputs {
            Some(("inputs", json(&self.inputs)))
        } else if self.cwd != other.cwd {
            Some(("cwd", json(&self.cwd)))
        } else {
            None
        }
    }
}

/// `#SBATCH` options shared by the array and the merge job.
#[derive(Debug, Clone, Default)]
pub struct SbatchOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`, e.g. `30:00`.
    pub time: Option<String>,
    /// `--mem`, e.g. `4G`.
    pub mem: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<usize>,
    /// `--account`.
    pub account: Option<String>,
    /// Any further options, one `#SBATCH` line each (e.g. `--qos=short`).
    pub extra: Vec<String>,
}

impl SbatchOptions {
    /// The script's first lines: the shebang and the `#SBATCH` lines of a job named `name`
    /// that logs to `log` and runs in `cwd`.
    pub fn header(&self, name: &str, log: &Path, cwd: &Path) -> String {
        let mut s = String::from("#!/bin/bash\n");
        let mut line = |l: String| s.push_str(&format!("#SBATCH {l}\n"));
        line(format!("--job-name={name}"));
        line(format!("--output={}", log.display()));
        line(format!("--chdir={}", cwd.display()));
        if let Some(p) = &self.partition {
            line(format!("--partition={p}"));
        }
        if let Some(t) = &self.time {
            line(format!("--time={t}"));
        }
        if let Some(m) = &self.mem {
            line(format!("--mem={m}"));
        }
        if let Some(c) = self.cpus_per_task {
            line(format!("--cpus-per-task={c}"));
        }
        if let Some(a) = &self.account {
            line(format!("--account={a}"));
        }
        for l in &self.extra {
            line(l.trim().to_string());
        }
        s
    }
}

/// Quote a word for a POSIX shell when it needs it.
pub fn sh(word: &str) -> String {
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

/// Sorted task ids in Slurm's `--array` syntax: `0,1,2,5` → `0-2,5`.
pub fn array_spec(tasks: &[usize]) -> String {
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

/// Run `sbatch ARGS` and return the job id it prints (`--parsable`).
pub fn sbatch(args: &[String]) -> Result<String> {
    let o = Command::new("sbatch").args(args).output().map_err(|e| {
        RunError::failed(format!(
            "sbatch: cannot run it ({e}); submit from a Slurm login node, or use --dry-run to see the scripts"
        ))
    })?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(RunError::failed(format!(
            "sbatch {}: {}",
            args.last().map(String::as_str).unwrap_or(""),
            err.lines().next().unwrap_or("failed").trim()
        )));
    }
    let id = String::from_utf8_lossy(&o.stdout);
    let id = id.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(RunError::failed(format!(
            "sbatch: unexpected answer `{id}` (expected a job id)"
        )));
    }
    Ok(id)
}

/// Which of the jobs `ids` squeue lists as still queued or running (empty when squeue is
/// absent or knows none of them).
pub fn active_jobs(ids: &[String]) -> Vec<String> {
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

/// Is `out` a finished merge (its report counts merged shards)?
pub fn merged(out: &Path) -> bool {
    matches!(ShardState::of(out), ShardState::Done(r) if r.get("merged_shards").is_some())
}

/// The last non-blank line of a log (the pipeline's one-line error).
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

/// The state of a submitted run in `out` (what `deepsky submit --status` prints): one line per
/// shard (done with its headline, FAILED with its status and log, queued, or MISSING) and one
/// for the merge; then `Ok` when the merged result is complete, else an error that says what
/// to do.
pub fn status(
    out: &Path,
    p: &dyn ShardedPipeline,
    m: &SubmitManifest,
) -> (Vec<String>, Result<()>) {
    let mut lines = Vec::new();
    let n = m.shards;
    let active = active_jobs(&m.jobs());
    let queued = !active.is_empty();
    let (mut failed, mut missing, mut done) = (Vec::new(), Vec::new(), 0);
    for k in 0..n {
        let log = out.join(format!("logs/shard-{k}.log"));
        let line = match ShardState::of(&out.join(format!("shards/{k}"))) {
            ShardState::Done(r) => {
                done += 1;
                format!("done: {}", p.summary(&r))
            }
            ShardState::Failed { status, exit_code } => {
                failed.push((k, log.clone()));
                let code = exit_code.map_or("null".into(), |c| c.to_string());
                format!(
                    "FAILED: status {status}, exit code {code}; log {}: {}",
                    log.display(),
                    last_line(&log)
                )
            }
            ShardState::NotRun if queued => {
                missing.push(k);
                "queued or running".to_string()
            }
            ShardState::NotRun => {
                missing.push(k);
                if log.exists() {
                    format!(
                        "MISSING: ended without a result (killed: time limit, memory, cancelled?); log {}: {}",
                        log.display(),
                        last_line(&log)
                    )
                } else {
                    "MISSING: never ran".to_string()
                }
            }
        };
        lines.push(format!("shard {k}/{n}: {line}"));
    }
    let merge_log = out.join("logs/merge.log");
    let merge_state = match ShardState::of(out) {
        ShardState::Done(r) if r.get("merged_shards").is_some() => {
            lines.push(format!(
                "merge: done: {} in {}",
                p.summary(&r),
                out.join(p.product()).display()
            ));
            return (lines, Ok(()));
        }
        _ if queued => "waiting for the shards".to_string(),
        ShardState::Failed { status, .. } => format!(
            "FAILED: status {status}; log {}: {}",
            merge_log.display(),
            last_line(&merge_log)
        ),
        _ => "not run".to_string(),
    };
    lines.push(format!("merge: {merge_state}"));
    let error = if queued {
        format!(
            "{}: {done} of {n} shards done; jobs {} still queued or running",
            out.display(),
            active.join(", ")
        )
    } else if let Some((k, log)) = failed.first() {
        let more = match failed.len() {
            1 => String::new(),
            f => format!(" and {} more", f - 1),
        };
        format!(
            "{}: shard {k}/{n} failed (log {}: {}){more}; submit the same command again to rerun only the failed and missing shards",
            out.display(),
            log.display(),
            last_line(log),
        )
    } else {
        let missing = match missing.is_empty() {
            true => String::new(),
            false => format!(
                ", {} missing",
                missing
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!(
            "{}: {done} of {n} shards done{missing}; the merged result is not there: submit the same command again",
            out.display(),
        )
    };
    (lines, Err(RunError::failed(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_array_specs() {
        assert_eq!(sh("detect.toml"), "detect.toml");
        assert_eq!(sh("train.epochs=5"), "train.epochs=5");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("a*b"), "'a*b'");
        assert_eq!(array_spec(&[]), "");
        assert_eq!(array_spec(&[3]), "3");
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[0, 2, 3]), "0,2-3");
    }

    #[test]
    fn header_lists_the_given_options_in_a_fixed_order() {
        let o = SbatchOptions {
            time: Some("30:00".into()),
            cpus_per_task: Some(2),
            extra: vec![" --qos=short ".into()],
            ..Default::default()
        };
        let h = o.header("job", Path::new("/o/logs/x.log"), Path::new("/w"));
        assert_eq!(
            h,
            "#!/bin/bash\n#SBATCH --job-name=job\n#SBATCH --output=/o/logs/x.log\n\
             #SBATCH --chdir=/w\n#SBATCH --time=30:00\n#SBATCH --cpus-per-task=2\n\
             #SBATCH --qos=short\n"
        );
    }

    #[test]
    fn scripts_run_each_shard_and_then_the_merge() {
        let words: Vec<String> = ["demo", "step", "-c", "my config.toml"]
            .map(String::from)
            .to_vec();
        let merge_options = ["-c".to_string(), "my config.toml".to_string()];
        let run = ShardedRun {
            pipeline: &crate::shard::tests::Demo,
            words: &words,
            merge_options: &merge_options,
            out: Path::new("/o/run"),
            cwd: Path::new("/w"),
            exe: Path::new("/bin/deepsky"),
            shards: 3,
        };
        let sbatch = SbatchOptions::default();
        assert_eq!(
            run.array_script(&sbatch, &[0, 2]),
            "#!/bin/bash\n#SBATCH --job-name=deepsky-demo\n\
             #SBATCH --output=/o/run/logs/shard-%a.log\n#SBATCH --chdir=/w\n\
             #SBATCH --array=0,2\n\
             # deepsky submit: task K of the array runs shard K/3 of the inputs in inputs.txt.\n\
             set -euo pipefail\nK=$SLURM_ARRAY_TASK_ID\n\
             exec /bin/deepsky --threads \"${SLURM_CPUS_PER_TASK:-1}\" demo step -c 'my config.toml' \\\n    \
             --files @/o/run/inputs.txt --shard \"$K/3\" -o /o/run/shards/\"$K\"\n"
        );
        assert_eq!(
            run.merge_script(&sbatch),
            "#!/bin/bash\n#SBATCH --job-name=deepsky-demo-merge\n\
             #SBATCH --output=/o/run/logs/merge.log\n#SBATCH --chdir=/w\n\
             #SBATCH --kill-on-invalid-dep=yes\n\
             # deepsky submit: merge the 3 shards into one result, as one unsharded run writes it.\n\
             set -euo pipefail\n\
             exec /bin/deepsky demo join -c 'my config.toml' -o /o/run \\\n    \
             /o/run/shards/0 \\\n    /o/run/shards/1 \\\n    /o/run/shards/2\n"
        );
    }

    #[test]
    fn status_reads_each_shard_and_the_merge_from_their_folders() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        let m = SubmitManifest {
            cwd: "/w".into(),
            inputs: vec![],
            pipeline: vec!["demo".into(), "step".into()],
            shards: 3,
            submissions: vec![],
        };
        let record = |dir: &Path, outcome: std::result::Result<(), RunError>, report: &str| {
            std::fs::create_dir_all(dir).unwrap();
            let cfg = crate::Resolved {
                config: (),
                sources: vec![],
                hash: "h".into(),
            };
            let mut p = crate::Provenance::start("detect predict", "0", &[], &cfg);
            p.finish(outcome.as_ref().map(|_| ()));
            p.write(dir).unwrap();
            if outcome.is_ok() {
                std::fs::write(dir.join("report.json"), report).unwrap();
            }
        };
        record(&out.join("shards/0"), Ok(()), r#"{"n": 4}"#);
        record(&out.join("shards/1"), Err(RunError::input("bad")), "");
        std::fs::create_dir_all(out.join("logs")).unwrap();
        std::fs::write(
            out.join("logs/shard-1.log"),
            "x\ndeepsky: error: s3.fits: bad\n\n",
        )
        .unwrap();
        let (lines, outcome) = status(out, &crate::shard::tests::Demo, &m);
        let log = out.join("logs/shard-1.log").display().to_string();
        assert_eq!(
            lines,
            [
                "shard 0/3: done: 4 items".to_string(),
                format!("shard 1/3: FAILED: status bad-input, exit code 2; log {log}: deepsky: error: s3.fits: bad"),
                "shard 2/3: MISSING: never ran".to_string(),
                "merge: not run".to_string(),
            ]
        );
        let e = outcome.unwrap_err().to_string();
        assert!(e.contains("shard 1/3 failed") && e.contains(&log), "{e}");
        record(out, Ok(()), r#"{"n": 9, "merged_shards": 3}"#);
        assert!(merged(out));
        let (lines, outcome) = status(out, &crate::shard::tests::Demo, &m);
        assert!(outcome.is_ok());
        assert_eq!(
            lines.last().unwrap(),
            &format!(
                "merge: done: 9 items in {}",
                out.join("items.fits").display()
            )
        );
    }

    #[test]
    fn manifests_compare_runs_and_list_jobs() {
        let m = SubmitManifest {
            cwd: "/w".into(),
            inputs: vec!["a.fits".into()],
            pipeline: vec!["detect".into(), "predict".into()],
            shards: 2,
            submissions: vec![
                Submission {
                    array_job: Some("7".into()),
                    merge_job: "8".into(),
                    submitted_unix_s: 1,
                    tasks: vec![0, 1],
                },
                Submission {
                    array_job: None,
                    merge_job: "9".into(),
                    submitted_unix_s: 2,
                    tasks: vec![],
                },
            ],
        };
        assert_eq!(m.jobs(), ["7", "8", "9"]);
        let mut other = m.clone();
        other.submissions.clear();
        assert_eq!(m.differs_from(&other), None);
        other.shards = 3;
        assert_eq!(m.differs_from(&other), Some(("shards", "2".to_string())));
        other.inputs = vec![];
        assert_eq!(
            m.differs_from(&other),
            Some(("shards", "2".to_string())),
            "the first difference"
        );
        let back: SubmitManifest =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
