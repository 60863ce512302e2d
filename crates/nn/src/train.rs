//! The training loop every deepsky model shares (autoencoders, detector, GAN critics):
//! AdamW with a warm-up + cosine/step schedule, seeded mini-batches, a validation split,
//! early stopping on the validation loss, gradient clipping, checkpoints every few epochs, and
//! `--resume` that gives the same result as an uninterrupted run.
//!
//! Repeatability: every random choice is derived from `(seed, purpose, epoch/step)`, never from
//! a running RNG, so resuming at an epoch boundary replays exactly what an uninterrupted run
//! would have done.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use deepsky_core::config::{ConfigError, Validate};
use schemars::JsonSchema;

use crate::checkpoint::Checkpointer;
use crate::error::{NnError, Result};
use crate::init::named_rng;
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::Schedule;

/// Settings of the training loop (the `[train]` section of a pipeline config).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Fraction of examples held out for validation (0 disables validation and early stopping).
    pub val_fraction: f64,
    /// Stop after this many epochs without improvement of the validation loss (0: never).
    pub patience: usize,
    /// Improvement smaller than this does not count.
    pub min_delta: f64,
    /// Clip gradients to this global L2 norm (0: no clipping).
    pub grad_clip: f64,
    /// Write a checkpoint every this many epochs (and at the end).
    pub checkpoint_every: usize,
    /// Seed for the split, the shuffling and any noise the model draws.
    pub seed: u64,
    /// Learning-rate schedule (`[train.schedule]`; tables come last for TOML).
    pub schedule: Schedule,
    /// AdamW settings (`[train.adamw]`).
    pub adamw: AdamWConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 64,
            lr: 2e-3,
            val_fraction: 0.1,
            patience: 5,
            min_delta: 1e-5,
            grad_clip: 5.0,
            checkpoint_every: 1,
            seed: 1,
            schedule: Schedule::default(),
            adamw: AdamWConfig::default(),
        }
    }
}

/// The most epochs a run may ask for: far beyond any real training, and small enough that
/// epochs × steps per epoch cannot overflow.
pub const MAX_EPOCHS: usize = 1_000_000;

impl Validate for TrainConfig {
    /// Range checks, keys relative to the `[train]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: &str| Err(ConfigError::at(k, m));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.epochs > crate::train::MAX_EPOCHS {
            return bad("epochs", "must be at most 1000000");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return bad("lr", "must be in (0, 10)");
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad("val_fraction", "must be in [0, 0.9)");
        }
        if self.grad_clip < 0.0 {
            return bad("grad_clip", "must be >= 0 (0 disables clipping)");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.adamw.beta1) || !(0.0..1.0).contains(&self.adamw.beta2) {
            return bad("adamw", "beta1 and beta2 must be in [0, 1)");
        }
        Ok(())
    }
}

/// One mini-batch handed to the model.
pub struct Batch<'a> {
    /// Indices into the dataset.
    pub indices: &'a [usize],
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Global optimiser step, 0-based (for seeding per-step noise).
    pub step: usize,
    /// Training (true) or evaluation.
    pub train: bool,
}

/// What the loop trains: a loss over a batch of dataset indices.
pub trait TrainTask {
    /// Number of examples.
    fn len(&self) -> usize;
    /// Mean loss over the batch (a scalar tensor that depends on the model's variables).
    fn loss(&self, batch: &Batch<'_>) -> candle_core::Result<Tensor>;
}

/// Callbacks for progress, interruption and per-epoch reporting.
pub trait Hooks {
    /// Called after each optimiser step.
    fn on_step(&mut self, _step: usize, _loss: f64) {}
    /// Called after each epoch with its record.
    fn on_epoch(&mut self, _record: &EpochRecord) {}
    /// Polled between steps; returning true stops the run (it then resumes from the last
    /// checkpoint).
    fn should_stop(&self) -> bool {
        false
    }
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// What happened in one epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss (None without a validation split).
    pub val_loss: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Largest gradient norm seen before clipping.
    pub max_grad_norm: f64,
}

/// Everything the loop needs to continue after a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Best validation loss so far.
    pub best_val: Option<f64>,
    /// Epoch (1-based) of the best validation loss.
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
    /// Stopped early?
    pub stopped_early: bool,
    /// History of all completed epochs.
    pub history: Vec<EpochRecord>,
}

/// The train/validation split (deterministic in the seed).
pub fn split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut named_rng(seed, "split"));
    let n_val = ((n as f64) * val_fraction).round() as usize;
    let n_val = if val_fraction > 0.0 {
        n_val.clamp(1.min(n), n.saturating_sub(1))
    } else {
        0
    };
    let val = idx[..n_val].to_vec();
    let mut train = idx[n_val..].to_vec();
    train.sort_unstable();
    (train, val)
}

/// Outcome of [`Trainer::run`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Final state (history, best epoch, early stopping).
    pub state: TrainState,
    /// Indices used for training.
    pub train_indices: Vec<usize>,
    /// Indices held out for validation.
    pub val_indices: Vec<usize>,
    /// Was the run resumed from a checkpoint?
    pub resumed_from: Option<usize>,
}

/// A training loop ready to run: its settings `C`, plus where checkpoints go, whether to
/// continue from them, and who hears about progress (`H`, a hooks trait object). Build it with
/// [`Trainer::new`] or [`GanTrainer::new`](crate::gan::GanTrainer), set what applies, then
/// `run` a task.
///
/// ```
/// # use deepsky_nn::train::{Trainer, TrainConfig, NoHooks};
/// let cfg = TrainConfig { epochs: 3, ..Default::default() };
/// let dir = std::path::Path::new("out/checkpoints");
/// let mut hooks = NoHooks;
/// let trainer = Trainer::new(&cfg).checkpoints(dir).resume(true).hooks(&mut hooks);
/// assert_eq!(trainer.config().epochs, 3);
/// ```
pub struct TrainLoop<'a, C, H: ?Sized> {
    config: &'a C,
    checkpoints: Option<PathBuf>,
    resume: bool,
    hooks: Option<&'a mut H>,
}

/// The supervised training loop of [`TrainTask`]s: see [`TrainLoop`] and [`Trainer::run`].
pub type Trainer<'a> = TrainLoop<'a, TrainConfig, dyn Hooks + 'a>;

impl<'a, C, H: ?Sized> TrainLoop<'a, C, H> {
    /// A loop with these settings, no checkpoints and no hooks.
    pub fn new(config: &'a C) -> TrainLoop<'a, C, H> {
        TrainLoop {
            config,
            checkpoints: None,
            resume: false,
            hooks: None,
        }
    }

    /// Write checkpoints into `dir` (created when needed).
    pub fn checkpoints(mut self, dir: impl Into<PathBuf>) -> TrainLoop<'a, C, H> {
        self.checkpoints = Some(dir.into());
        self
    }

    /// Continue from the newest checkpoint in the checkpoint directory, if there is one; the
    /// result equals an uninterrupted run's.
    pub fn resume(mut self, resume: bool) -> TrainLoop<'a, C, H> {
        self.resume = resume;
        self
    }

    /// Report steps and epochs to `hooks`, and stop when they ask to.
    pub fn hooks(mut self, hooks: &'a mut H) -> TrainLoop<'a, C, H> {
        self.hooks = Some(hooks);
        self
    }

    /// The settings.
    pub fn config(&self) -> &C {
        self.config
    }

    /// The parts, for the loop that runs them: settings, checkpoint folder, resume, hooks.
    pub(crate) fn into_parts(self) -> (&'a C, Option<PathBuf>, bool, Option<&'a mut H>) {
        (self.config, self.checkpoints, self.resume, self.hooks)
    }
}

impl<'a> Trainer<'a> {
    /// Train the variables of `varmap` on `task`. At the end the variables hold the weights of
    /// the best validation epoch (or the last epoch without validation).
    pub fn run(self, task: &dyn TrainTask, varmap: &VarMap) -> Result<TrainOutcome> {
        let (config, checkpoints, resume, hooks) = self.into_parts();
        let mut no_hooks = NoHooks;
        let hooks: &mut dyn Hooks = match hooks {
            Some(h) => h,
            None => &mut no_hooks,
        };
        train(task, varmap, config, checkpoints.as_deref(), resume, hooks)
    }
}

fn train(
    task: &dyn TrainTask,
    varmap: &VarMap,
    cfg: &TrainConfig,
    checkpoints: Option<&Path>,
    resume: bool,
    hooks: &mut dyn Hooks,
) -> Result<TrainOutcome> {
    let n = task.len();
    check_run(cfg, n)?;
    let (train_idx, val_idx) = split(n, cfg.val_fraction, cfg.seed);
    let mut opt = AdamW::new(varmap, cfg.adamw)?;
    let mut state = TrainState::default();
    let ckpt = checkpoints.map(|d| Checkpointer::new(d.to_path_buf()));
    let mut resumed_from = None;
    if let (Some(ck), true) = (&ckpt, resume) {
        if let Some(s) = ck.load_latest(varmap, &mut opt, cfg)? {
            resumed_from = Some(s.epochs_done);
            tracing::info!("resuming after epoch {}", s.epochs_done);
            state = s;
        }
    }
    let steps_per_epoch = train_idx.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut last_lr = cfg.lr;
    while state.epochs_done < cfg.epochs && !state.stopped_early {
        let epoch = state.epochs_done;
        let mut order = train_idx.clone();
        order.shuffle(&mut named_rng(cfg.seed, &format!("shuffle/{epoch}")));
        let mut sum = 0.0;
        let mut count = 0usize;
        let mut max_norm = 0f64;
        for chunk in order.chunks(cfg.batch_size) {
            if hooks.should_stop() {
                return Err(NnError::Interrupted);
            }
            let lr = cfg
                .schedule
                .lr(cfg.lr, state.steps, steps_per_epoch, total_steps);
            last_lr = lr;
            let batch = Batch {
                indices: chunk,
                epoch,
                step: state.steps,
                train: true,
            };
            let loss = task.loss(&batch)?;
            let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(NnError::Diverged {
                    epoch: epoch + 1,
                    loss: value,
                });
            }
            let norm = opt.backward_step(&loss, lr, cfg.grad_clip)?;
            if !norm.is_finite() {
                return Err(NnError::Diverged {
                    epoch: epoch + 1,
                    loss: norm,
                });
            }
            max_norm = max_norm.max(norm);
            sum += value * chunk.len() as f64;
            count += chunk.len();
            state.steps += 1;
            hooks.on_step(state.steps, value);
        }
        let val_loss = if val_idx.is_empty() {
            None
        } else {
            Some(evaluate(task, &val_idx, cfg.batch_size, epoch)?)
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: sum / count.max(1) as f64,
            val_loss,
            lr: last_lr,
            max_grad_norm: max_norm,
        };
        state.epochs_done += 1;
        let improved = match (val_loss, state.best_val) {
            (None, _) => true,
            (Some(v), None) => v.is_finite(),
            (Some(v), Some(best)) => v < best - cfg.min_delta,
        };
        if improved {
            state.best_val = val_loss.or(state.best_val);
            state.best_epoch = epoch + 1;
            state.bad_epochs = 0;
            if let Some(ck) = &ckpt {
                ck.save_best(varmap)?;
            }
        } else {
            state.bad_epochs += 1;
            if cfg.patience > 0 && state.bad_epochs >= cfg.patience {
                state.stopped_early = true;
                tracing::info!(
                    "early stop after epoch {}: best epoch {}",
                    epoch + 1,
                    state.best_epoch
                );
            }
        }
        state.history.push(record.clone());
        hooks.on_epoch(&record);
        let last = state.epochs_done == cfg.epochs || state.stopped_early;
        if let Some(ck) = &ckpt {
            if state.epochs_done % cfg.checkpoint_every == 0 || last {
                ck.save(varmap, &opt, &state, cfg)?;
            }
        }
    }
    if let Some(ck) = &ckpt {
        ck.restore_best(varmap)?;
    }
    Ok(TrainOutcome {
        state,
        train_indices: train_idx,
        val_indices: val_idx,
        resumed_from,
    })
}

/// What every training loop checks before its first step: settings (under `[train]`) and at
/// least two examples; and the allocator set up for step after step of equal tensors.
pub(crate) fn check_run(cfg: &impl Validate, n: usize) -> Result<()> {
    cfg.validate().map_err(|e| e.within("train"))?;
    keep_freed_memory();
    if n < 2 {
        return Err(NnError::config(format!(
            "need at least 2 examples to train, got {n}"
        )));
    }
    Ok(())
}

/// Make the allocator keep freed memory for reuse instead of returning it to the kernel.
///
/// Every training step allocates and frees the same tensors again (candle allocates a fresh
/// buffer for every op result and every gradient). With glibc's defaults, buffers above a
/// (dynamic) threshold are mmap-ed and unmapped, and the top of the heap is trimmed, so each
/// step pays page faults on fresh memory: measured at a third of a conv-autoencoder step.
/// Raising the mmap threshold to its maximum (32 MiB) and the trim threshold keeps the pages
/// of one step for the next (the process's resident memory stays at its peak). Once per
/// process; glibc on Linux only (a no-op elsewhere).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        });
    }
}

/// Mean loss over `indices` in evaluation mode.
pub fn evaluate(
    task: &dyn TrainTask,
    indices: &[usize],
    batch_size: usize,
    epoch: usize,
) -> Result<f64> {
    let mut sum = 0.0;
    for (i, chunk) in indices.chunks(batch_size).enumerate() {
        let batch = Batch {
            indices: chunk,
            epoch,
            step: i,
            train: false,
        };
        let loss = task.loss(&batch)?;
        sum += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
    }
    Ok(sum / indices.len().max(1) as f64)
}

/// Where a training run keeps its checkpoints inside an output directory.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}
