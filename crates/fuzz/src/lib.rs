//! Damaged-input testing for deepsky's readers.
//!
//! A reader that returns part of a file without saying so is the worst failure a data tool
//! can have; close behind are crashes, hangs and allocations sized by a lying header. This
//! crate makes those failures countable:
//!
//! * [`corpus`]: a seeded, reproducible corpus of damaged copies of real files — truncated,
//!   bit-flipped, zeroed, header cards mangled, gzip streams of all of these — aimed at the
//!   bytes that steer a reader.
//! * [`check`]: run a reader (any command; `deepsky inspect --json --stats {}` by default)
//!   over one file under a timeout and an address-space limit, and give a [`Verdict`]: exit 0
//!   with everything the original had, or exit 2 with one line naming the file — anything
//!   else (signal, panic, hang, silent partial read, unclear error) is a failure.
//!
//! The fast test (`tests/fuzz.rs`) runs a fixed sample on every CI run; the `deepsky-fuzz`
//! binary runs the full corpus (`benchmarks/fuzz.sh`, counts in RELIABILITY.md).
//!
//! ```no_run
//! use deepsky_fuzz::{corpus, check_corpus, Limits};
//! use std::path::Path;
//! let bytes = std::fs::read("data/events.fits")?;
//! let cases = corpus::damaged_copies("events.fits", &bytes, 1, 20);
//! let readers = vec![vec!["inspect".into(), "--json".into(), "--stats".into(), "{}".into()]];
//! let report = check_corpus(Path::new("target/debug/deepsky"), &readers, &cases,
//!                           Path::new("/tmp/corpus"), Limits::default(), 2)?;
//! assert_eq!(report.failures().count(), 0, "{}", report.to_markdown());
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

pub mod check;
pub mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

pub use check::{Limits, Verdict};
pub use corpus::{Case, Format, MutationKind};

/// One case run by one reader.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The case's file name.
    pub case: String,
    /// Its source, format, kind and what was done.
    pub source: String,
    /// FITS or HDF5.
    pub format: Format,
    /// The kind of damage.
    pub kind: MutationKind,
    /// Exactly what was done.
    pub detail: String,
    /// The reader's arguments.
    pub reader: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Exit code / signal / time / error output of the run.
    pub run: check::Run,
}

/// Every outcome of a corpus run, with counts.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One per (case, reader).
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// The outcomes that break the criteria.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.verdict.is_acceptable())
    }

    /// Count per verdict.
    pub fn counts(&self) -> BTreeMap<Verdict, usize> {
        let mut c = BTreeMap::new();
        for o in &self.outcomes {
            *c.entry(o.verdict).or_insert(0) += 1;
        }
        c
    }

    /// A markdown table: rows are (format, kind of damage), columns the verdicts; then the
    /// failures with their error output.
    pub fn to_markdown(&self) -> String {
        let mut rows: BTreeMap<(String, MutationKind), BTreeMap<Verdict, usize>> = BTreeMap::new();
        for o in &self.outcomes {
            let fmt = match o.format {
                Format::Fits => "FITS",
                Format::Hdf5 => "HDF5",
            };
            *rows
                .entry((fmt.to_string(), o.kind))
                .or_default()
                .entry(o.verdict)
                .or_insert(0) += 1;
        }
        let mut s = String::from("| format | damage | runs |");
        for v in Verdict::ALL {
            s += &format!(" {} |", v.name());
        }
        s += "\n|---|---|---:|";
        s += &"---:|".repeat(Verdict::ALL.len());
        s += "\n";
        let mut totals: HashMap<Verdict, usize> = HashMap::new();
        for ((fmt, kind), counts) in &rows {
            let n: usize = counts.values().sum();
            s += &format!("| {fmt} | {} | {n} |", kind.name());
            for v in Verdict::ALL {
                let c = counts.get(&v).copied().unwrap_or(0);
                *totals.entry(v).or_insert(0) += c;
                s += &format!(" {c} |");
            }
            s += "\n";
        }
        s += &format!("| **all** | | **{}** |", self.outcomes.len());
        for v in Verdict::ALL {
            s += &format!(" **{}** |", totals.get(&v).copied().unwrap_or(0));
        }
        s += "\n";
        let failures: Vec<&Outcome> = self.failures().collect();
        if !failures.is_empty() {
            s += &format!("\n{} failures:\n\n", failures.len());
            for o in failures {
                let last = o
                    .run
                    .stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                s += &format!(
                    "- `{}` ({}; `{}`): {} (exit {:?}, signal {:?}) {}\n",
                    o.case,
                    o.detail,
                    o.reader,
                    o.verdict.name(),
                    o.run.code,
                    o.run.signal,
                    last.chars().take(300).collect::<String>()
                );
            }
        }
        s
    }
}

/// Write every case into `dir` and run each reader over it, `jobs` at a time. Each damaged
/// case is judged against the same reader's run of its undamaged source.
///
/// `readers` are argument lists for `program` with `{}` standing for the file.
pub fn check_corpus(
    program: &Path,
    readers: &[Vec<String>],
    cases: &[Case],
    dir: &Path,
    limits: Limits,
    jobs: usize,
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::with_capacity(cases.len());
    for c in cases {
        let p = dir.join(&c.name);
        std::fs::write(&p, &c.bytes).with_context(|| format!("writing {}", p.display()))?;
        paths.push(p);
    }
    // The originals first: they are the reference for their damaged copies.
    let mut reference: HashMap<(String, usize), Option<Vec<check::Item>>> = HashMap::new();
    for (c, p) in cases.iter().zip(&paths) {
        if c.kind == MutationKind::Original && !c.name.ends_with(".gz") {
            for (r, args) in readers.iter().enumerate() {
                let run = check::run_reader(program, args, p, limits)?;
                reference.insert((c.source.clone(), r), run.items);
            }
        }
    }
    let work: Vec<(usize, usize)> = (0..cases.len())
        .flat_map(|c| (0..readers.len()).map(move |r| (c, r)))
        .collect();
    let next = Mutex::new(0usize);
    let outcomes = Mutex::new(Vec::with_capacity(work.len()));
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(&(c, r)) = work.get(i) else { break };
                let case = &cases[c];
                let path: &PathBuf = &paths[c];
                match check::run_reader(program, &readers[r], path, limits) {
                    Ok(run) => {
                        let orig = reference
                            .get(&(case.source.clone(), r))
                            .and_then(|o| o.as_deref());
                        let verdict = check::judge(&run, path, orig, case.valid_shorter_file);
                        outcomes.lock().unwrap().push((
                            i,
                            Outcome {
                                case: case.name.clone(),
                                source: case.source.clone(),
                                format: case.format,
                                kind: case.kind,
                                detail: case.detail.clone(),
                                reader: readers[r].join(" "),
                                verdict,
                                run,
                            },
                        ));
                    }
                    Err(e) => {
                        *error.lock().unwrap() =
                            Some(anyhow::Error::new(e).context("starting the reader"));
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(Report {
        outcomes: outcomes.into_iter().map(|(_, o)| o).collect(),
    })
}

/// The corpus for a set of source files: `per_source` damaged copies of each (sources that
/// are neither FITS nor HDF5 are skipped), plus the broken gzip streams.
pub fn corpus_of(sources: &[PathBuf], seed: u64, per_source: usize) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for src in sources {
        let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        cases.extend(corpus::damaged_copies(&name, &bytes, seed, per_source));
    }
    cases.extend(corpus::broken_gzip_streams(seed));
    Ok(cases)
}

/// `paths` with each folder replaced by its files (sorted; subfolders skipped): the sources
/// given on the command line or by a test.
pub fn expand_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The standard corpus sources of a checkout at `root`: `data/` and the external test files
/// (`../shared/testdata/external/{fits,hdf5}` beside it, or `$DEEPSKY_EXTERNAL_TESTDATA`).
pub fn standard_sources(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let external = std::env::var("DEEPSKY_EXTERNAL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("../shared/testdata/external"));
    expand_sources(&[
        root.join("data"),
        external.join("fits"),
        external.join("hdf5"),
    ])
}

/// The CLI readers every corpus run uses by default: `inspect --json --stats` (every pixel,
/// cell and column) and `inspect --json --header` (every card and attribute).
pub fn inspect_readers() -> Vec<Vec<String>> {
    [
        ["inspect", "--json", "--stats", "{}"],
        ["inspect", "--json", "--header", "{}"],
    ]
    .iter()
    .map(|r| r.map(String::from).to_vec())
    .collect()
}
