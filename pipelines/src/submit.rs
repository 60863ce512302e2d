//! `deepsky submit`: run a sharded pipeline step as a Slurm job array, and merge.
//!
//! ```text
//! deepsky submit -n 4 -o OUT --input 'fields/*.fits' -- detect predict -c detect.toml
//! deepsky submit -n 4 -o OUT -- anomaly -c anomaly.toml --model MODEL_DIR
//! deepsky submit --status OUT
//! ```
//!
//! Submit expands the inputs once and freezes them in `OUT/inputs.txt`, so every array task
//! sees the same sorted list; task K runs the ordinary pipeline with `--shard K/N -o
//! OUT/shards/K` (the same code path as a single run), and a job that depends on the array
//! (`afterok`) merges the shards into OUT. Slurm here is only a launcher: whether a shard is
//! finished is read from its own files ([`ShardState`]), so the same command submitted again
//! runs only the shards that are missing or failed and keeps the others' outputs. What a step
//! tells submit is a [`ShardedPipeline`]; [`PIPELINES`] lists the steps that shard.

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args, CommandFactory};
use deepsky_runtime::slurm::{
    self, array_spec, SbatchOptions, ShardedRun, SubmitManifest, INPUT_LIST, MANIFEST,
};
use deepsky_runtime::{config, PipelineConfig, RunError, ShardState, ShardedPipeline};

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
    /// The inputs of a step that takes input files (`detect predict --input`): files,
    /// folders, globs, @list.
    #[arg(long, value_name = "IMAGE.fits|DIR|GLOB|@LIST", num_args = 1..)]
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
    /// The pipeline step, after `--`: `detect predict` or `anomaly --model DIR` and its options
    /// (configs, `--set`), without `--input`, `-o` or `--shard`, which submit supplies.
    #[arg(last = true, value_name = "PIPELINE")]
    pipeline: Vec<String>,
}

/// `detect predict` over many images: shards split the sorted image list.
struct DetectPredict;

impl ShardedPipeline for DetectPredict {
    fn words(&self) -> &'static [&'static str] {
        &["detect", "predict"]
    }
    fn input_option(&self) -> Option<&'static str> {
        Some("--input")
    }
    fn refused(&self) -> &'static [&'static str] {
        &["--truth"]
    }
    fn check(&self, words: &[String], shards: usize) -> Result<Vec<String>, RunError> {
        config_options::<crate::detect::DetectConfig>(&parse(self, words, shards)?)
    }
    fn merge_words(&self) -> &'static [&'static str] {
        &["detect", "merge"]
    }
    fn summary(&self, r: &serde_json::Value) -> String {
        format!(
            "{} detections in {} images",
            r["n_detections"], r["n_images"]
        )
    }
    fn product(&self) -> &'static str {
        "catalog.fits"
    }
}

/// `segment predict` over many images: shards split the sorted image list.
struct SegmentPredict;

impl ShardedPipeline for SegmentPredict {
    fn words(&self) -> &'static [&'static str] {
        &["segment", "predict"]
    }
    fn input_option(&self) -> Option<&'static str> {
        Some("--input")
    }
    fn refused(&self) -> &'static [&'static str] {
        &["--truth"]
    }
    fn check(&self, words: &[String], shards: usize) -> Result<Vec<String>, RunError> {
        config_options::<crate::segment::SegmentConfig>(&parse(self, words, shards)?)
    }
    fn merge_words(&self) -> &'static [&'static str] {
        &["segment", "merge"]
    }
    fn summary(&self, r: &serde_json::Value) -> String {
        format!("{} images masked", r["summary"]["n_images"])
    }
    fn product(&self) -> &'static str {
        "report.json"
    }
}

/// `anomaly --model DIR`, a trained model applied to many objects: shards split the objects.
struct AnomalyApply;

impl ShardedPipeline for AnomalyApply {
    fn words(&self) -> &'static [&'static str] {
        &["anomaly"]
    }
    fn refused(&self) -> &'static [&'static str] {
        &["--merge"]
    }
    fn check(&self, words: &[String], shards: usize) -> Result<Vec<String>, RunError> {
        let m = parse(self, words, shards)?;
        if m.get_one::<PathBuf>("model").is_none() {
            return Err(RunError::input(
                "submit: `anomaly` runs in shards to apply a trained model: give --model DIR (training is one job)",
            ));
        }
        config_options::<crate::anomaly::AnomalyConfig>(&m)
    }
    fn merge_words(&self) -> &'static [&'static str] {
        &["anomaly"]
    }
    fn merge_option(&self) -> Option<&'static str> {
        Some("--merge")
    }
    fn summary(&self, r: &serde_json::Value) -> String {
        format!("{} objects", r["n_objects"])
    }
    fn product(&self) -> &'static str {
        "anomalies.fits"
    }
}

/// The pipeline steps that run in shards.
pub static PIPELINES: [&(dyn ShardedPipeline + Sync); 3] =
    [&DetectPredict, &SegmentPredict, &AnomalyApply];

/// The sharded step that `words` (the pipeline after `--`) name.
fn pipeline_of(words: &[String]) -> Result<&'static dyn ShardedPipeline, RunError> {
    PIPELINES
        .iter()
        .find(|p| {
            words.len() >= p.words().len()
                && p.words().iter().zip(words).all(|(a, b)| *a == b.as_str())
        })
        .map(|p| *p as &dyn ShardedPipeline)
        .ok_or_else(|| {
            let names: Vec<String> = PIPELINES.iter().map(|p| p.words().join(" ")).collect();
            RunError::input(format!(
                "submit: give the pipeline after `--`, e.g. `-- detect predict -c detect.toml`; `{}` cannot be sharded (supported: {})",
                words.join(" "),
                names.join(", ")
            ))
        })
}

/// The step's words parsed by the real command line (with what submit adds), after refusing
/// the options that submit supplies or that do not apply to a shard.
fn parse(p: &dyn ShardedPipeline, words: &[String], n: usize) -> Result<ArgMatches, RunError> {
    p.check_options(words)?;
    let input = p.input_option();
    let mut full = vec!["deepsky".to_string()];
    full.extend(words.iter().cloned());
    if let Some(i) = input {
        full.extend([i.to_string(), format!("@{INPUT_LIST}")]);
    }
    full.extend([
        "-o".into(),
        "out".into(),
        "--shard".into(),
        format!("0/{n}"),
    ]);
    let mut m = crate::Cli::command()
        .try_get_matches_from(&full)
        .map_err(|e| {
            let text = e.to_string();
            RunError::input(format!(
                "submit: pipeline arguments: {}",
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            ))
        })?;
    for w in p.words() {
        m = m
            .subcommand_matches(w)
            .cloned()
            .expect("the words name a subcommand");
    }
    Ok(m)
}

/// Resolve the step's config now (not in every task) and return its `-c`/`--set` options.
fn config_options<C: PipelineConfig>(m: &ArgMatches) -> Result<Vec<String>, RunError> {
    let configs: Vec<PathBuf> = m
        .get_many::<PathBuf>("configs")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let sets: Vec<String> = m
        .get_many::<String>("sets")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    config::load::<C>(&configs, &sets)?;
    let mut options = Vec::new();
    for c in configs {
        options.extend(["-c".to_string(), c.display().to_string()]);
    }
    for s in sets {
        options.extend(["--set".to_string(), s]);
    }
    Ok(options)
}

/// Run `deepsky submit`.
pub fn run(args: SubmitArgs) -> Result<(), RunError> {
    if let Some(out) = &args.status {
        return status(out);
    }
    let n = args.shards.expect("required by clap");
    let out_arg = args.out.clone().expect("required by clap");
    if n == 0 {
        return Err(RunError::input("submit: -n/--shards must be at least 1"));
    }
    let p = pipeline_of(&args.pipeline)?;
    let merge_options = p.check(&args.pipeline, n)?;
    let inputs = match p.input_option() {
        Some(option) => {
            if args.input.is_empty() {
                return Err(RunError::input(format!(
                    "submit: `{}` needs its inputs: give them to submit as --input (as `{option}` takes them)",
                    p.words().join(" ")
                )));
            }
            let images = deepsky_runtime::inputs::expand(&args.input)?;
            if n > images.len() {
                return Err(RunError::input(format!(
                    "submit: {n} shards for {} images would leave shards empty; use -n {} or fewer",
                    images.len(),
                    images.len()
                )));
            }
            images
        }
        None if !args.input.is_empty() => {
            return Err(RunError::input(format!(
                "submit: `{}` takes its input from its config, not from --input",
                p.words().join(" ")
            )));
        }
        None => vec![],
    };
    let cwd =
        std::env::current_dir().map_err(|e| RunError::failed(format!("working directory: {e}")))?;
    let out = cwd.join(&out_arg);
    let exe = std::env::current_exe()
        .map_err(|e| RunError::failed(format!("cannot find the deepsky executable: {e}")))?;

    // What was submitted before into OUT must be the same run.
    let this = SubmitManifest {
        cwd: cwd.display().to_string(),
        inputs: inputs.iter().map(|p| p.display().to_string()).collect(),
        pipeline: args.pipeline.clone(),
        shards: n,
        submissions: vec![],
    };
    let manifest = SubmitManifest::read(&out)?;
    if let Some(m) = &manifest {
        if let Some((key, value)) = m.differs_from(&this) {
            return Err(RunError::input(format!(
                "{}: submitted before with other {key} ({value}); use another -o, or delete that folder",
                out.join(MANIFEST).display(),
            )));
        }
        let active = slurm::active_jobs(&m.jobs());
        if !active.is_empty() {
            return Err(RunError::input(format!(
                "{}: jobs {} of an earlier submission are still queued or running; wait for them (`deepsky submit --status {}`) or scancel them",
                out.display(),
                active.join(", "),
                out_arg.display()
            )));
        }
    }
    let tasks: Vec<usize> = (0..n)
        .filter(|k| !ShardState::of(&out.join(format!("shards/{k}"))).is_done())
        .collect();
    if tasks.is_empty() && slurm::merged(&out) {
        println!(
            "{}: complete ({n} shards merged); nothing to submit",
            out_arg.display()
        );
        return Ok(());
    }
    let run = ShardedRun {
        pipeline: p,
        words: &args.pipeline,
        merge_options: &merge_options,
        out: &out,
        cwd: &cwd,
        exe: &exe,
        shards: n,
    };
    let sbatch = SbatchOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        mem: args.mem.clone(),
        cpus_per_task: args.cpus_per_task,
        account: args.account.clone(),
        extra: args.sbatch_lines.clone(),
    };
    if args.dry_run {
        print!("{}", run.dry_run(&sbatch, &tasks));
        return Ok(());
    }
    let submission = run.submit(&sbatch, &tasks, &this.inputs)?;
    let (array_job, merge_job) = (submission.array_job.clone(), submission.merge_job.clone());
    let mut m = manifest.unwrap_or(this);
    m.submissions.push(submission);
    m.write(&out)?;
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
        deepsky_runtime::interrupt::install_handler();
        let ids: Vec<String> = array_job.into_iter().chain([merge_job]).collect();
        while !slurm::active_jobs(&ids).is_empty() {
            if deepsky_runtime::interrupt::interrupted() {
                eprintln!("deepsky: the submitted jobs keep running; `deepsky submit --status {}` reports them", out_arg.display());
                return Err(RunError::Interrupted);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        return status(&out_arg);
    }
    Ok(())
}

/// `deepsky submit --status OUT`.
fn status(out: &Path) -> Result<(), RunError> {
    let Some(m) = SubmitManifest::read(out)? else {
        return Err(RunError::input(format!(
            "{}: no {MANIFEST}: nothing was submitted into this folder",
            out.display()
        )));
    };
    let (lines, outcome) = slurm::status(out, pipeline_of(&m.pipeline)?, &m);
    for l in lines {
        println!("{l}");
    }
    outcome
}
