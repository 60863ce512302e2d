//! What every learning pipeline's command line shares: `-c/--config` (repeatable), `--set`,
//! `-o/--out`, `--dump-config`, `--resume`, `--device`, `--shard` — and the run's frame:
//! resolve the config, create the output directory, record provenance, write
//! `provenance.json` whatever the outcome.

use std::path::PathBuf;

use clap::Args;
use deepsky_runtime::{
    config, OutDir, PipelineConfig, Provenance, Resolved, RunError, Shard, ShardRecord,
};

/// Options of every pipeline.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// TOML config file; repeat to layer (later files win).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Override one setting, e.g. `--set train.epochs=5` (wins over files; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory (created if missing).
    #[arg(short, long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Print the fully resolved config as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Continue an interrupted training run from the last checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Compute device: `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run shard K of N (0-based, `--shard 0/4` … `--shard 3/4`) over the inputs.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

/// Resolve the config; with `--dump-config` print it and return None.
pub fn resolve<C: PipelineConfig>(args: &PipelineArgs) -> Result<Option<Resolved<C>>, RunError> {
    dump_or_run(
        config::load::<C>(&args.configs, &args.sets)?,
        args.dump_config,
    )
}

/// With `--dump-config`, print the resolved config with each key's doc comment and return
/// None (the command stops there); otherwise hand it on.
pub fn dump_or_run<C: PipelineConfig>(
    resolved: Resolved<C>,
    dump_config: bool,
) -> Result<Option<Resolved<C>>, RunError> {
    if dump_config {
        print!("{}", resolved.to_toml());
        return Ok(None);
    }
    Ok(Some(resolved))
}

/// A started run: its output directory and provenance record.
pub struct RunFrame {
    /// Where outputs go.
    pub out: OutDir,
    /// How they are made.
    pub provenance: Provenance,
}

impl RunFrame {
    /// Create the output directory and start the provenance record.
    pub fn start<C: serde::Serialize>(
        pipeline: &str,
        args: &PipelineArgs,
        cfg: &Resolved<C>,
    ) -> Result<RunFrame, RunError> {
        deepsky_runtime::interrupt::install_handler();
        let out = OutDir::create_for(&args.out, args.resume)?;
        let features: Vec<&str> = deepsky_nn::device::enabled_features();
        let mut provenance = Provenance::start(pipeline, env!("CARGO_PKG_VERSION"), &features, cfg);
        provenance.device = args.device.clone();
        if let Some(s) = args.shard {
            provenance.shards.push(ShardRecord::running(s));
        }
        Ok(RunFrame { out, provenance })
    }

    /// Close the record with `result`: a successful run's products are published together
    /// (moved out of the staging folder) with its `provenance.json`. A failed or interrupted
    /// run's record goes into the staging folder beside its partial products, and into the
    /// output folder only when that holds no complete run's record — a complete run's
    /// products and provenance are never mixed with a later failed run's.
    pub fn finish<T>(mut self, result: Result<T, RunError>) -> Result<T, RunError> {
        let result = match result {
            Ok(v) => self.out.publish().map(|()| v),
            Err(e) => Err(e),
        };
        self.provenance.finish(result.as_ref().map(|_| ()));
        let published = self.out.published_root().to_path_buf();
        let written = if result.is_ok() {
            self.provenance.write(&published)
        } else {
            let previous = published.join("provenance.json");
            let complete = deepsky_runtime::outdir::read_json::<serde_json::Value>(&previous)
                .is_ok_and(|p| p["status"] == "success");
            let staged = self.provenance.write(self.out.root());
            // One line per error stays the rule; after a Ctrl-C, say where the partial run is.
            if complete && matches!(result, Err(RunError::Interrupted)) {
                eprintln!(
                    "deepsky: {} keeps the previous complete run; this run's partial outputs and record are in {}",
                    published.display(),
                    self.out.root().display()
                );
            }
            if complete {
                staged
            } else {
                staged.and_then(|_| self.provenance.write(&published))
            }
        };
        if let Err(e) = written {
            tracing::warn!("could not write provenance.json: {e}");
        }
        result
    }
}

/// Map a training-machinery error to the runtime's kinds.
pub fn nn_error(e: deepsky_nn::NnError) -> RunError {
    use deepsky_nn::NnError;
    match e {
        NnError::Interrupted => RunError::Interrupted,
        NnError::Config(m) => RunError::Input(m),
        NnError::Invalid(e) => RunError::from(e),
        e @ NnError::Checkpoint { .. } => RunError::Input(e.to_string()),
        e => RunError::Failed(e.to_string()),
    }
}

/// Hooks that drive a progress bar and honour Ctrl-C.
pub struct TrainProgress {
    bar: deepsky_runtime::Progress,
}

impl TrainProgress {
    /// A bar over `epochs × steps_per_epoch` steps.
    pub fn new(label: &str, epochs: usize, steps_per_epoch: usize) -> TrainProgress {
        TrainProgress {
            bar: deepsky_runtime::Progress::new(label, (epochs * steps_per_epoch) as u64, "steps"),
        }
    }
}

impl deepsky_nn::train::Hooks for TrainProgress {
    fn on_step(&mut self, step: usize, _loss: f64) {
        // After a resume the bar starts where the run stands.
        self.bar.advance_to(step as u64);
    }
    fn on_epoch(&mut self, r: &deepsky_nn::train::EpochRecord) {
        let val = r
            .val_loss
            .map(|v| format!(" val {v:.4}"))
            .unwrap_or_default();
        self.bar
            .message(&format!("epoch {} loss {:.4}{val}", r.epoch, r.train_loss));
        tracing::info!(
            "epoch {}: train loss {:.5}{val}, lr {:.2e}",
            r.epoch,
            r.train_loss,
            r.lr
        );
    }
    fn should_stop(&self) -> bool {
        deepsky_runtime::interrupt::interrupted()
    }
}

/// Formats of plots from a config list like `["png", "pdf"]`.
pub fn plot_formats(names: &[String]) -> Result<Vec<deepsky_plot::Format>, RunError> {
    names
        .iter()
        .map(|n| {
            deepsky_plot::Format::parse(n).ok_or_else(|| {
                RunError::input(format!(
                    "config: `output.plots`: unknown format `{n}` (png, svg, pdf)"
                ))
            })
        })
        .collect()
}

/// Training (and, when every epoch has one, validation) loss against epoch, log scale: the
/// loss plot every training pipeline writes.
pub fn loss_curves(history: &[deepsky_nn::train::EpochRecord]) -> deepsky_plot::Curves {
    use deepsky_plot::{Curves, Dash, Series};
    let mut series = vec![Series::epochs(
        "training",
        history.iter().map(|r| r.train_loss).collect(),
    )];
    if history.iter().all(|r| r.val_loss.is_some()) {
        series.push(
            Series::epochs(
                "validation",
                history
                    .iter()
                    .map(|r| r.val_loss.unwrap_or(f64::NAN))
                    .collect(),
            )
            .with_dash(Dash::Dashed),
        );
    }
    Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        series,
        log_y: true,
        ..Default::default()
    }
}

/// A folder of plots being written in the configured formats.
pub struct Plots {
    dir: PathBuf,
    root: PathBuf,
    formats: Vec<deepsky_plot::Format>,
    /// The files written, relative to the output folder (as report.json lists them).
    pub written: Vec<String>,
}

impl Plots {
    /// The folder `name` of the output folder, created.
    pub fn new(
        frame: &RunFrame,
        name: &str,
        formats: &[deepsky_plot::Format],
    ) -> Result<Plots, RunError> {
        let dir = frame.out.path(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RunError::failed(format!("{}: {e}", dir.display())))?;
        let root = frame.out.root().to_path_buf();
        let formats = formats.to_vec();
        Ok(Plots {
            dir,
            root,
            formats,
            written: Vec::new(),
        })
    }

    /// Save `plot` as `stem.<format>` in each format; returns the files written, relative to
    /// the output folder.
    pub fn save<P: deepsky_plot::Plot>(
        &mut self,
        plot: &P,
        stem: &str,
    ) -> Result<Vec<String>, RunError> {
        let paths = deepsky_plot::save_formats(plot, self.dir.join(stem), &self.formats)
            .map_err(|e| RunError::failed(format!("plot {stem}: {e}")))?;
        let relative: Vec<String> = paths
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|r| r.display().to_string())
            .collect();
        self.written.extend(relative.iter().cloned());
        Ok(relative)
    }
}

/// Fail unless `dir` is the output folder of a shard run that finished successfully (its
/// provenance.json says so), naming the folder and, for a failed shard, its status and exit
/// code; `merge` steps call it before reading a shard's products.
pub fn check_shard_finished(dir: &std::path::Path) -> Result<(), RunError> {
    let prov_path = dir.join("provenance.json");
    if !prov_path.is_file() {
        return Err(RunError::input(format!(
            "{}: no provenance.json: this shard has not run (or was killed before it ended)",
            dir.display()
        )));
    }
    let provenance: serde_json::Value = deepsky_runtime::outdir::read_json(&prov_path)?;
    if provenance["status"] != "success" {
        return Err(RunError::input(format!(
            "{}: this shard ended with status `{}` (exit code {}); rerun it",
            dir.display(),
            provenance["status"].as_str().unwrap_or("?"),
            provenance["exit_code"]
        )));
    }
    Ok(())
}
