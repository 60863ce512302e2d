//! How an output was made: tool version, git commit, rustc, features, device, the resolved
//! config and its hash, every input with size and SHA-256, seeds, start and end time, status.
//!
//! Written as `<out>/provenance.json` ([`Provenance::write`]) and embedded in the data files
//! themselves: FITS outputs get `DS*` keywords and HISTORY cards ([`Provenance::fits_cards`]),
//! HDF5 outputs root attributes ([`Provenance::hdf5_attrs`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use deepsky_io::fits::{Card, CardValue};
use deepsky_io::h5::AttrValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{hex, Resolved};
use crate::error::{Result, RunError};
use crate::shard::ShardRecord;

/// Version of the provenance record's layout; bump when a field changes meaning.
pub const PROVENANCE_VERSION: u32 = 1;

/// One input file as it was when the run read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputRecord {
    /// Path as given on the command line or in the config.
    pub path: String,
    /// What the pipeline used it for (`images`, `checkpoint`, …).
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// One output the run committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputRecord {
    /// Path relative to the output directory when inside it.
    pub path: String,
    /// What it holds.
    pub role: String,
}

/// The provenance of one run (one activity in the ctapipe sense).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// Layout version of this record ([`PROVENANCE_VERSION`]).
    pub provenance_version: u32,
    /// `deepsky`.
    pub tool: String,
    /// The pipeline and step, e.g. `anomaly` or `detect predict`.
    pub pipeline: String,
    /// Crate version of the tool.
    pub version: String,
    /// Git commit the binary was built from (`-dirty` when the tree had changes).
    pub git_commit: String,
    /// `rustc --version` of the compiler that built it.
    pub rustc: String,
    /// Cargo features enabled in the binary (e.g. `cuda`).
    pub features: Vec<String>,
    /// Device the run computed on (`cpu`, `cuda:0`).
    pub device: String,
    /// The command line, as typed.
    pub command_line: Vec<String>,
    /// Host name and operating system, for finding the machine again.
    pub host: String,
    /// Config sources in order of application.
    pub config_sources: Vec<String>,
    /// The resolved configuration.
    pub config: serde_json::Value,
    /// SHA-256 of the resolved configuration.
    pub config_hash: String,
    /// Named seeds the run used.
    pub seeds: serde_json::Map<String, serde_json::Value>,
    /// Inputs with sizes and content hashes.
    pub inputs: Vec<InputRecord>,
    /// Outputs the run committed.
    pub outputs: Vec<OutputRecord>,
    /// Shard of a larger run (`K/N`), when sharded; merged records list their shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRecord>,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// End time, RFC 3339 UTC (empty while running).
    pub finished: String,
    /// `running`, `success`, `failed`, `bad-input` or `interrupted`.
    pub status: String,
    /// The process exit code (None while running).
    pub exit_code: Option<u8>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Build-time facts about this binary: (git commit, rustc version).
pub fn build_info() -> (&'static str, &'static str) {
    (env!("DEEPSKY_GIT_COMMIT"), env!("DEEPSKY_RUSTC_VERSION"))
}

fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{name} ({} {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

impl Provenance {
    /// Start a record for `pipeline` with its resolved config. `version` is the tool's crate
    /// version (`env!("CARGO_PKG_VERSION")` of the binary), `features` what it was built with.
    pub fn start<C: Serialize>(
        pipeline: &str,
        version: &str,
        features: &[&str],
        config: &Resolved<C>,
    ) -> Provenance {
        let (git, rustc) = build_info();
        Provenance {
            provenance_version: PROVENANCE_VERSION,
            tool: "deepsky".into(),
            pipeline: pipeline.into(),
            version: version.into(),
            git_commit: git.into(),
            rustc: rustc.into(),
            features: features.iter().map(|s| s.to_string()).collect(),
            device: "cpu".into(),
            command_line: std::env::args().collect(),
            host: host(),
            config_sources: config.sources.clone(),
            config: config.to_json(),
            config_hash: config.hash.clone(),
            seeds: Default::default(),
            inputs: vec![],
            outputs: vec![],
            shards: vec![],
            started: now(),
            finished: String::new(),
            status: "running".into(),
            exit_code: None,
        }
    }

    /// Record a seed.
    pub fn seed(&mut self, name: &str, seed: u64) {
        self.seeds.insert(name.into(), seed.into());
    }

    /// Record an input file: its size and SHA-256 (read in 1 MiB blocks, so large event lists
    /// cost I/O but no memory). A missing file is a bad-input error naming it.
    pub fn input(&mut self, path: &Path, role: &str) -> Result<()> {
        let record = hash_file(path, role)?;
        if !self.inputs.contains(&record) {
            self.inputs.push(record);
        }
        Ok(())
    }

    /// Record a committed output.
    pub fn output(&mut self, path: &str, role: &str) {
        self.outputs.push(OutputRecord {
            path: path.into(),
            role: role.into(),
        });
    }

    /// Close the record with the run's outcome.
    pub fn finish(&mut self, outcome: std::result::Result<(), &RunError>) {
        self.finished = now();
        match outcome {
            Ok(()) => {
                self.status = "success".into();
                self.exit_code = Some(0);
            }
            Err(e) => {
                self.status = e.status().into();
                self.exit_code = Some(e.exit_code());
            }
        }
    }

    /// Read a provenance.json (of a shard, of an earlier run); errors name the file.
    pub fn read(path: &Path) -> Result<Provenance> {
        crate::outdir::read_json(path)
    }

    /// The record as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("provenance serialises")
    }

    /// Write `<dir>/provenance.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        Ok(deepsky_io::atomic::write_atomic(
            dir.join("provenance.json"),
            self.to_json().as_bytes(),
        )?)
    }

    /// Header cards for a FITS output: `DS*` keywords for the essentials, and HISTORY cards
    /// with the command line, config hash and each input's hash. fitsverify-clean (keywords of
    /// at most 8 characters, string values split to fit 80-column cards).
    pub fn fits_cards(&self) -> Vec<Card> {
        let mut cards = vec![
            Card::new(
                "DSTOOL",
                CardValue::Str(format!("deepsky {}", self.version)),
                "software that wrote this file",
            ),
            Card::new(
                "DSPIPE",
                CardValue::Str(self.pipeline.clone()),
                "deepsky pipeline and step",
            ),
            Card::new(
                "DSGIT",
                CardValue::Str(self.git_commit.clone()),
                "git commit of the build",
            ),
            Card::new(
                "DSDEVICE",
                CardValue::Str(self.device.clone()),
                "compute device",
            ),
            Card::new(
                "DSCFGSHA",
                CardValue::Str(self.config_hash[..16.min(self.config_hash.len())].to_string()),
                "SHA-256 of resolved config (prefix)",
            ),
            Card::new(
                "DSSTART",
                CardValue::Str(self.started.clone()),
                "run start time (UTC)",
            ),
        ];
        for (name, seed) in &self.seeds {
            if let Some(s) = seed.as_u64() {
                let key = format!(
                    "DSSEED{}",
                    cards.iter().filter(|c| c.key.starts_with("DSSEED")).count()
                );
                if key.len() <= 8 {
                    cards.push(Card::new(
                        &key,
                        CardValue::Int(s as i64),
                        &format!("seed: {name}"),
                    ));
                }
            }
        }
        let mut history = vec![format!("deepsky {} ({})", self.version, self.pipeline)];
        history.push(format!("command: {}", self.command_line.join(" ")));
        history.push(format!("config sha256: {}", self.config_hash));
        for i in &self.inputs {
            history.push(format!(
                "input {} ({}): {} bytes, sha256 {}",
                i.path, i.role, i.size, i.sha256
            ));
        }
        history.push(format!("built by {} at {}", self.rustc, self.git_commit));
        for line in history {
            for chunk in split_chars(&line, 70) {
                cards.push(Card {
                    key: "HISTORY".into(),
                    value: None,
                    comment: chunk,
                });
            }
        }
        cards
    }

    /// Root attributes for an HDF5 output: the whole record as JSON under `provenance`, and the
    /// essentials as separate attributes for quick `h5ls -v` reading.
    pub fn hdf5_attrs(&self) -> Vec<(String, AttrValue)> {
        vec![
            (
                "provenance".into(),
                AttrValue::Str(serde_json::to_string(self).expect("serialises")),
            ),
            (
                "deepsky_version".into(),
                AttrValue::Str(self.version.clone()),
            ),
            (
                "deepsky_pipeline".into(),
                AttrValue::Str(self.pipeline.clone()),
            ),
            (
                "deepsky_git_commit".into(),
                AttrValue::Str(self.git_commit.clone()),
            ),
            (
                "config_sha256".into(),
                AttrValue::Str(self.config_hash.clone()),
            ),
        ]
    }
}

fn split_chars(s: &str, width: usize) -> Vec<String> {
    // FITS headers are ASCII; anything else is replaced so that fitsverify stays clean.
    let ascii: Vec<char> = s
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    ascii.chunks(width).map(|c| c.iter().collect()).collect()
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path, role: &str) -> Result<InputRecord> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| RunError::input(format!("{}: cannot open: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| RunError::failed(format!("{}: cannot read: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(InputRecord {
        path: path.display().to_string(),
        role: role.into(),
        size,
        sha256: hex(&hasher.finalize()),
    })
}
