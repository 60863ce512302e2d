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
use deepsky_runtime::slurm::{self, array_spec, sh, SbatchOptions, Submission, SubmitManifest};
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
pub static PIPELINES: [&(dyn ShardedPipeline + Sync); 2] = [&DetectPredict, &AnomalyApply];

const MANIFEST: &str = "submit.json";
const INPUT_LIST: &str = "inputs.txt";

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
    let input = p.input_option();
    for w in &words[p.words().len()..] {
        let own = w == "-o"
            || (w.starts_with("-o") && !w.starts_with("--"))
            || ["--out", "--shard", "--dump-config", "--resume"]
                .iter()
                .chain(input.iter())
                .chain(p.refused())
                .any(|f| w == f || w.starts_with(&format!("{f}=")));
        if own {
            let given = match input {
                Some(i) => format!("{i} and -o"),
                None => "-o".into(),
            };
            let mut inapplicable: Vec<&str> = p.refused().to_vec();
            inapplicable.push("--dump-config");
            let last = "--resume";
            return Err(RunError::input(format!(
                "submit: `{w}` in the pipeline arguments: give {given} to `deepsky submit` itself (it adds --shard per task; {} and {last} do not apply)",
                inapplicable.join(", ")
            )));
        }
    }
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

/// The array job's and the merge job's scripts.
fn scripts(
    args: &SubmitArgs,
    p: &dyn ShardedPipeline,
    words: &[String],
    merge_options: &[String],
    (out, cwd, exe): (&Path, &Path, &Path),
    n: usize,
    tasks: &[usize],
) -> (String, String) {
    let sbatch = SbatchOptions {
        partition: args.partition.clone(),
        time: args.time.clone(),
        mem: args.mem.clone(),
        cpus_per_task: args.cpus_per_task,
        account: args.account.clone(),
        extra: args.sbatch_lines.clone(),
    };
    let d = |p: &str| sh(&out.join(p).display().to_string());
    let join = |w: &[String]| w.iter().map(|w| sh(w)).collect::<Vec<_>>().join(" ");
    let exe = sh(&exe.display().to_string());
    let name = format!("deepsky-{}", p.words()[0]);
    let mut shards = sbatch.header(&name, &out.join("logs/shard-%a.log"), cwd);
    shards.push_str(&format!("#SBATCH --array={}\n", array_spec(tasks)));
    let (of, input) = match p.input_option() {
        Some(i) => (
            format!(" of the inputs in {INPUT_LIST}"),
            format!("{i} @{} ", d(INPUT_LIST)),
        ),
        None => (String::new(), String::new()),
    };
    shards.push_str(&format!(
        "# deepsky submit: task K of the array runs shard K/{n}{of}.\n\
         set -euo pipefail\n\
         K=$SLURM_ARRAY_TASK_ID\n\
         exec {exe} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" {} \\\n    {input}--shard \"$K/{n}\" -o {}/\"$K\"\n",
        join(words),
        d("shards"),
    ));
    let mut merge = sbatch.header(&format!("{name}-merge"), &out.join("logs/merge.log"), cwd);
    merge.push_str("#SBATCH --kill-on-invalid-dep=yes\n");
    let mut head: Vec<String> = p.merge_words().iter().map(|w| w.to_string()).collect();
    head.extend(merge_options.iter().cloned());
    head.extend(["-o".into(), out.display().to_string()]);
    head.extend(p.merge_option().map(String::from));
    let dirs: Vec<String> = (0..n).map(|k| format!("    {}/{k}", d("shards"))).collect();
    merge.push_str(&format!(
        "# deepsky submit: merge the {n} shards into one result, as one unsharded run writes it.\n\
         set -euo pipefail\n\
         exec {exe} {} \\\n{}\n",
        join(&head),
        dirs.join(" \\\n"),
    ));
    (shards, merge)
}

fn read_manifest(out: &Path) -> Result<Option<SubmitManifest>, RunError> {
    let path = out.join(MANIFEST);
    if !path.exists() {
        return Ok(None);
    }
    deepsky_runtime::outdir::read_json(&path).map(Some)
}

fn write(path: &Path, text: &str) -> Result<(), RunError> {
    deepsky_io::atomic::write_atomic(path, text.as_bytes())?;
    Ok(())
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
    let manifest = read_manifest(&out)?;
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
    if tasks.is_empty() && merged(&out) {
        println!(
            "{}: complete ({n} shards merged); nothing to submit",
            out_arg.display()
        );
        return Ok(());
    }
    let (shards, merge) = scripts(
        &args,
        p,
        &args.pipeline,
        &merge_options,
        (&out, &cwd, &exe),
        n,
        &tasks,
    );
    let shards_script = out.join("slurm/shards.sbatch");
    let merge_script = out.join("slurm/merge.sbatch");
    if args.dry_run {
        if !tasks.is_empty() {
            println!("# {}\n{shards}", shards_script.display());
        }
        println!("# {}\n{merge}", merge_script.display());
        println!("# submitted with:");
        if !tasks.is_empty() {
            println!("sbatch --parsable {}", shards_script.display());
            println!(
                "sbatch --parsable --dependency=afterok:<array job id> {}",
                merge_script.display()
            );
        } else {
            println!("sbatch --parsable {}", merge_script.display());
        }
        return Ok(());
    }

    for d in ["slurm", "logs", "shards"] {
        std::fs::create_dir_all(out.join(d))
            .map_err(|e| RunError::failed(format!("{}: {e}", out.join(d).display())))?;
    }
    let list: String = this.inputs.iter().map(|p| format!("{p}\n")).collect();
    if p.input_option().is_some() {
        write(&out.join(INPUT_LIST), &list)?;
    }
    write(&shards_script, &shards)?;
    write(&merge_script, &merge)?;
    // A shard to run again starts clean: its old record must not read as its new outcome.
    for dir in tasks
        .iter()
        .map(|k| out.join(format!("shards/{k}")))
        .chain([out.clone()])
    {
        for f in ["provenance.json", "report.json"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }

    let array_job = if tasks.is_empty() {
        None
    } else {
        Some(slurm::sbatch(&[
            "--parsable".into(),
            shards_script.display().to_string(),
        ])?)
    };
    let mut merge_args = vec!["--parsable".to_string()];
    if let Some(id) = &array_job {
        merge_args.push(format!("--dependency=afterok:{id}"));
    }
    merge_args.push(merge_script.display().to_string());
    let merge_job = slurm::sbatch(&merge_args)?;
    let mut m = manifest.unwrap_or(this);
    m.submissions.push(Submission {
        array_job: array_job.clone(),
        merge_job: merge_job.clone(),
        submitted_unix_s: unix_now(),
        tasks: tasks.clone(),
    });
    let text = serde_json::to_string_pretty(&m).expect("serialises") + "\n";
    write(&out.join(MANIFEST), &text)?;
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Is OUT a finished merge (its report counts merged shards)?
fn merged(out: &Path) -> bool {
    matches!(ShardState::of(out), ShardState::Done(r) if r.get("merged_shards").is_some())
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
fn status(out: &Path) -> Result<(), RunError> {
    let Some(m) = read_manifest(out)? else {
        return Err(RunError::input(format!(
            "{}: no {MANIFEST}: nothing was submitted into this folder",
            out.display()
        )));
    };
    let p = pipeline_of(&m.pipeline)?;
    let n = m.shards;
    let active = slurm::active_jobs(&m.jobs());
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
        println!("shard {k}/{n}: {line}");
    }
    let merge_log = out.join("logs/merge.log");
    let merge_state = match ShardState::of(out) {
        ShardState::Done(r) if r.get("merged_shards").is_some() => {
            println!(
                "merge: done: {} in {}",
                p.summary(&r),
                out.join(p.product()).display()
            );
            return Ok(());
        }
        _ if queued => "waiting for the shards".to_string(),
        ShardState::Failed { status, .. } => format!(
            "FAILED: status {status}; log {}: {}",
            merge_log.display(),
            last_line(&merge_log)
        ),
        _ => "not run".to_string(),
    };
    println!("merge: {merge_state}");
    if queued {
        return Err(RunError::failed(format!(
            "{}: {done} of {n} shards done; jobs {} still queued or running",
            out.display(),
            active.join(", ")
        )));
    }
    if let Some((k, log)) = failed.first() {
        let more = match failed.len() {
            1 => String::new(),
            f => format!(" and {} more", f - 1),
        };
        return Err(RunError::failed(format!(
            "{}: shard {k}/{n} failed (log {}: {}){more}; submit the same command again to rerun only the failed and missing shards",
            out.display(),
            log.display(),
            last_line(log),
        )));
    }
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
    Err(RunError::failed(format!(
        "{}: {done} of {n} shards done{missing}; the merged result is not there: submit the same command again",
        out.display(),
    )))
}
