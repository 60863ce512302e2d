//! Independent shards of a run over many inputs (`--shard K/N`): shard K of N takes the K-th of
//! N contiguous blocks of the sorted inputs, so concatenating the shards' rows in shard order
//! gives exactly the rows of one unsharded run, in the same order.
//!
//! A shard's outcome is read from its own output folder ([`ShardState::of`]), and a merge
//! records each shard it read ([`ShardRecord`]). [`ShardedPipeline`] is what `deepsky submit`
//! needs to know of a pipeline to run it as a cluster job array with a merge job.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::RunError;
use crate::provenance::{InputRecord, Provenance};

/// Shard `index` of `count`, 0-based (`--shard 0/4` … `--shard 3/4`; Slurm's
/// `$SLURM_ARRAY_TASK_ID` with `--array=0-3`). Serialised as its text, `"K/N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: usize,
    /// How many shards the run is split into.
    pub count: usize,
}

impl Shard {
    /// The whole run as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The block of `n` items this shard owns. Blocks differ in size by at most one and
    /// together cover `0..n` in order.
    pub fn range(&self, n: usize) -> Range<usize> {
        let start = self.index * n / self.count;
        let end = (self.index + 1) * n / self.count;
        start..end
    }

    /// The items this shard owns, in order.
    pub fn select<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.range(items.len())]
    }

    /// Is this the whole run?
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Check that `shards` (sorted by index, all of one count) are each shard of their run
    /// exactly once, as a merge needs; the error lists the missing ones and those present.
    pub fn check_complete(shards: &[Shard]) -> Result<(), String> {
        let Some(count) = shards.first().map(|s| s.count) else {
            return Err("cannot merge: no shards given".into());
        };
        let present: Vec<usize> = shards.iter().map(|s| s.index).collect();
        let missing: Vec<String> = (0..count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        if missing.is_empty() && present.len() == count {
            return Ok(());
        }
        Err(format!(
            "cannot merge: shards {} missing or given twice (have {})",
            if missing.is_empty() {
                "are".to_string()
            } else {
                missing.join(", ")
            },
            present
                .iter()
                .map(|k| format!("{k}/{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl From<Shard> for String {
    fn from(s: Shard) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Shard {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard `{s}`: expected K/N, e.g. 0/4"))?;
        let index: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("shard `{s}`: K is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("shard `{s}`: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard `{s}`: need 0 <= K < N (shards are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// One shard in a provenance record. A shard's own run records only which shard it is
/// ([`ShardRecord::running`]); a merge records each shard it read, with the outcome of the run
/// that made it ([`ShardRecord::read`]).
///
/// The fields are in alphabetical order, so that provenance.json lists these records' keys
/// sorted, as report.json lists all of its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard's command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<Vec<String>>,
    /// SHA-256 of the shard's resolved configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The shard's output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// When the shard's run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Where it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The files it read (each record's keys sorted too).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_keys"
    )]
    pub inputs: Option<Vec<InputRecord>>,
    /// Which shard.
    pub shard: Shard,
    /// When the shard's run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// How the shard's run ended (`success`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Serialise `value` with the keys of its objects in alphabetical order.
fn sorted_keys<T: Serialize, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

impl ShardRecord {
    /// The record of a run that is itself `shard`.
    pub fn running(shard: Shard) -> ShardRecord {
        ShardRecord {
            command_line: None,
            config_hash: None,
            dir: None,
            finished: None,
            host: None,
            inputs: None,
            shard,
            started: None,
            status: None,
        }
    }

    /// The record of shard `shard` whose output folder is `dir`, from its provenance.json.
    pub fn read(shard: Shard, dir: &Path) -> Result<ShardRecord, RunError> {
        let p = Provenance::read(&dir.join("provenance.json"))?;
        Ok(ShardRecord {
            command_line: Some(p.command_line),
            config_hash: Some(p.config_hash),
            dir: Some(dir.display().to_string()),
            finished: Some(p.finished),
            host: Some(p.host),
            inputs: Some(p.inputs),
            shard,
            started: Some(p.started),
            status: Some(p.status),
        })
    }
}

/// Where a shard's run stands, read from its output folder alone (so that any scheduler, or
/// none, can have run it).
#[derive(Debug, Clone, PartialEq)]
pub enum ShardState {
    /// Finished: a report.json and a provenance.json with status `success`. Holds the report.
    Done(serde_json::Value),
    /// Ended otherwise: a provenance.json whose status is not `success` (or no report.json).
    Failed {
        /// The recorded status (`failed`, `bad-input`, `interrupted`, `running` when killed).
        status: String,
        /// The recorded exit code.
        exit_code: Option<u8>,
    },
    /// No readable provenance.json: not started, or killed before its record was written.
    NotRun,
}

impl ShardState {
    /// Read the state of the run whose output folder is `dir`.
    pub fn of(dir: &Path) -> ShardState {
        let Ok(p) = Provenance::read(&dir.join("provenance.json")) else {
            return ShardState::NotRun;
        };
        let report = crate::outdir::read_json(&dir.join("report.json"));
        match report {
            Ok(r) if p.status == "success" => ShardState::Done(r),
            _ => ShardState::Failed {
                status: p.status,
                exit_code: p.exit_code,
            },
        }
    }

    /// Finished successfully?
    pub fn is_done(&self) -> bool {
        matches!(self, ShardState::Done(_))
    }
}

/// What `deepsky submit` needs to know of a pipeline step to run it in shards as a job array
/// (each task `deepsky WORDS... --shard K/N -o OUT/shards/K`) followed by a merge job
/// (`deepsky MERGE_WORDS... -o OUT [MERGE_OPTION] OUT/shards/0 ...`).
pub trait ShardedPipeline {
    /// The step's words after `deepsky`, e.g. `["detect", "predict"]`.
    fn words(&self) -> &'static [&'static str];

    /// The option through which the step takes input files, when its shards split a list of
    /// files: submit expands its own `--input` values once into `inputs.txt` and passes
    /// `OPTION @inputs.txt` to every task. `None` (the default) when the shards split the rows
    /// of an input that the config names.
    fn input_option(&self) -> Option<&'static str> {
        None
    }

    /// Options of the step that do not apply to a shard, refused in the step's words (besides
    /// `-o/--out`, `--shard`, `--dump-config`, `--resume` and the input option, which submit
    /// refuses for every step).
    fn refused(&self) -> &'static [&'static str] {
        &[]
    }

    /// Refuse, among the step's options in `words`, those that submit supplies (`-o/--out`,
    /// `--shard`, the input option) and those that do not apply to a shard (`--dump-config`,
    /// `--resume`, [`ShardedPipeline::refused`]); the error says which and why.
    fn check_options(&self, words: &[String]) -> Result<(), RunError> {
        let input = self.input_option();
        for w in &words[self.words().len()..] {
            let own = w == "-o"
                || (w.starts_with("-o") && !w.starts_with("--"))
                || ["--out", "--shard", "--dump-config", "--resume"]
                    .iter()
                    .chain(input.iter())
                    .chain(self.refused())
                    .any(|f| w == f || w.starts_with(&format!("{f}=")));
            if own {
                let given = match input {
                    Some(i) => format!("{i} and -o"),
                    None => "-o".into(),
                };
                let mut inapplicable: Vec<&str> = self.refused().to_vec();
                inapplicable.push("--dump-config");
                let last = "--resume";
                return Err(RunError::input(format!(
                "submit: `{w}` in the pipeline arguments: give {given} to `deepsky submit` itself (it adds --shard per task; {} and {last} do not apply)",
                inapplicable.join(", ")
            )));
            }
        }
        Ok(())
    }

    /// Check the step's words (parsed as the step parses them, its config resolved) before
    /// anything is submitted. Returns the config options (`-c FILE`, `--set K=V`, in order)
    /// that the merge step is given too.
    fn check(&self, words: &[String], shards: usize) -> Result<Vec<String>, RunError>;

    /// The merge step's words after `deepsky`, e.g. `["detect", "merge"]`.
    fn merge_words(&self) -> &'static [&'static str];

    /// The option that precedes the shard folders in the merge command (`anomaly --merge
    /// DIR...`); `None` (the default) when they are positional arguments.
    fn merge_option(&self) -> Option<&'static str> {
        None
    }

    /// A finished shard's (or merged result's) headline from its report.json, e.g. `154
    /// detections in 1 images`.
    fn summary(&self, report: &serde_json::Value) -> String;

    /// The merged result's main file inside the output folder, e.g. `catalog.fits`.
    fn product(&self) -> &'static str;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn shards_partition_in_order() {
        for n in [0usize, 1, 5, 7, 100] {
            for count in 1..=6 {
                let mut all = vec![];
                for index in 0..count {
                    let r = Shard { index, count }.range(n);
                    assert!(r.len() <= n / count + 1);
                    all.extend(r);
                }
                assert_eq!(all, (0..n).collect::<Vec<_>>());
            }
        }
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    /// A step over input files, as submit sees it.
    pub(crate) struct Demo;

    impl ShardedPipeline for Demo {
        fn words(&self) -> &'static [&'static str] {
            &["demo", "step"]
        }
        fn input_option(&self) -> Option<&'static str> {
            Some("--files")
        }
        fn refused(&self) -> &'static [&'static str] {
            &["--plot"]
        }
        fn check(&self, _: &[String], _: usize) -> Result<Vec<String>, RunError> {
            Ok(vec![])
        }
        fn merge_words(&self) -> &'static [&'static str] {
            &["demo", "join"]
        }
        fn summary(&self, r: &serde_json::Value) -> String {
            format!("{} items", r["n"])
        }
        fn product(&self) -> &'static str {
            "items.fits"
        }
    }

    #[test]
    fn options_submit_gives_are_refused_in_the_step() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Demo
            .check_options(&words(&["demo", "step", "-c", "a.toml", "--set", "x=1"]))
            .is_ok());
        for bad in [
            "-o", "-oout", "--out=x", "--files", "--shard", "--plot", "--resume",
        ] {
            let e = Demo
                .check_options(&words(&["demo", "step", bad]))
                .unwrap_err();
            assert!(
                matches!(&e, RunError::Input(m) if m.contains(&format!("`{bad}`"))),
                "{e}"
            );
        }
        let e = Demo
            .check_options(&words(&["demo", "step", "--dump-config"]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "submit: `--dump-config` in the pipeline arguments: give --files and -o to \
             `deepsky submit` itself (it adds --shard per task; --plot, --dump-config and \
             --resume do not apply)"
        );
    }

    #[test]
    fn shards_serialise_as_their_text() {
        let s = Shard { index: 1, count: 3 };
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"1/3\"");
        assert_eq!(serde_json::from_str::<Shard>("\"1/3\"").unwrap(), s);
        assert!(serde_json::from_str::<Shard>("\"3/3\"").is_err());
        let running = serde_json::to_string(&ShardRecord::running(s)).unwrap();
        assert_eq!(running, r#"{"shard":"1/3"}"#);
    }

    #[test]
    fn state_and_record_are_read_from_the_shard_folder() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        assert_eq!(ShardState::of(dir), ShardState::NotRun);
        let cfg = crate::Resolved {
            config: (),
            sources: vec!["defaults".into()],
            hash: "abc".into(),
        };
        let mut p = Provenance::start("demo", "0.0.0", &[], &cfg);
        p.shards.push(ShardRecord::running("0/2".parse().unwrap()));
        p.write(dir).unwrap();
        assert_eq!(
            ShardState::of(dir),
            ShardState::Failed {
                status: "running".into(),
                exit_code: None
            }
        );
        p.finish(Ok(()));
        p.write(dir).unwrap();
        std::fs::write(dir.join("report.json"), "{\"n\": 3}").unwrap();
        assert_eq!(
            ShardState::of(dir),
            ShardState::Done(serde_json::json!({"n": 3}))
        );
        p.input(&dir.join("report.json"), "report").unwrap();
        p.write(dir).unwrap();
        let r = ShardRecord::read("0/2".parse().unwrap(), dir).unwrap();
        assert_eq!(r.inputs.as_ref().map(|i| i[0].size), Some(8));
        assert_eq!(r.status.as_deref(), Some("success"));
        assert_eq!(r.config_hash.as_deref(), Some(cfg.hash.as_str()));
        assert_eq!(r.dir, Some(dir.display().to_string()));
        let keys: Vec<String> = match serde_json::to_value(&r).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""role":"report","sha256":"#), "{text}");
        let order: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "keys in alphabetical order: {text}"
        );
    }
}
