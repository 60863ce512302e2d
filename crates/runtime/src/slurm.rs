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

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

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
