//! The adversarial training loop every deepsky GAN shares (shower generator, image DCGAN):
//! two AdamW optimisers (critic and generator, each with its own learning rate), several
//! critic steps per generator step if wanted, an exponential moving average (EMA) of the
//! generator's weights — the weights one generates with, since they average out the
//! oscillation of adversarial training — checkpoints of all three networks and both
//! optimisers, and `--resume` that continues exactly as an uninterrupted run.
//!
//! The model side is a [`GanTask`]: a critic loss and a generator loss over a batch of dataset
//! indices. Noise must be drawn from [`Batch::step`]-keyed streams ([`crate::init::named_rng`])
//! so that a resumed run draws the same noise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use deepsky_core::config::{ConfigError, Validate};
use schemars::JsonSchema;

use crate::checkpoint::{load_tensors, save_tensors};
use crate::error::{NnError, Result};
use crate::init::named_rng;
use crate::optim::{AdamW, AdamWConfig};
use crate::train::{check_run, Batch, TrainLoop};

/// Settings of adversarial training (the `[train]` section of a GAN pipeline config).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GanConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Real examples per step.
    pub batch_size: usize,
    /// Generator learning rate.
    pub lr_generator: f64,
    /// Critic learning rate (two time-scale updates: usually higher than the generator's).
    pub lr_critic: f64,
    /// Critic steps per generator step.
    pub critic_steps: usize,
    /// Adam first-moment decay (0.5 is the GAN convention: less momentum chasing a moving
    /// target).
    pub beta1: f64,
    /// Adam second-moment decay.
    pub beta2: f64,
    /// Decay of the moving average of the generator's weights per generator step.
    pub ema_decay: f64,
    /// Write a checkpoint every this many epochs (and at the end).
    pub checkpoint_every: usize,
    /// Seed for shuffling and noise.
    pub seed: u64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            epochs: 100,
            batch_size: 128,
            lr_generator: 2e-4,
            lr_critic: 4e-4,
            critic_steps: 1,
            beta1: 0.5,
            beta2: 0.9,
            ema_decay: 0.999,
            checkpoint_every: 10,
            seed: 1,
        }
    }
}

impl Validate for GanConfig {
    /// Range checks, keys relative to the `[train]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: &str| Err(ConfigError::at(k, m));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.epochs > crate::train::MAX_EPOCHS {
            return bad("epochs", "must be at most 1000000");
        }
        if self.batch_size < 2 {
            return bad("batch_size", "must be at least 2");
        }
        if !(self.lr_generator > 0.0 && self.lr_generator < 1.0) {
            return bad("lr_generator", "must be in (0, 1)");
        }
        if !(self.lr_critic > 0.0 && self.lr_critic < 1.0) {
            return bad("lr_critic", "must be in (0, 1)");
        }
        if self.critic_steps == 0 || self.critic_steps > 20 {
            return bad("critic_steps", "must be in 1..=20");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", "must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("ema_decay", "must be in [0, 1)");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        Ok(())
    }
}

impl GanConfig {
    /// The smallest batch a step is taken on: a last partial batch below half a batch would
    /// give the critic a noisy step and is skipped.
    pub fn min_batch(&self, n: usize) -> usize {
        (self.batch_size / 2).max(2).min(n)
    }

    /// Generator steps per epoch over `n` examples (for progress bars).
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n / self.batch_size + usize::from(n % self.batch_size >= self.min_batch(n))
    }
}

/// A step whose gradient norm is not finite ends the run as diverged (0-based `epoch`): the
/// optimiser skips such a step, and a run that kept going would only look like training.
fn finite_gradients(norm: f64, epoch: usize) -> Result<()> {
    if norm.is_finite() {
        Ok(())
    } else {
        Err(NnError::Diverged {
            epoch: epoch + 1,
            loss: norm,
        })
    }
}

/// What the adversarial loop trains.
pub trait GanTask {
    /// Number of real examples.
    fn len(&self) -> usize;
    /// True without examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The generator's variables (optimised by the generator's AdamW).
    fn generator_vars(&self) -> &VarMap;
    /// The critic's variables.
    fn critic_vars(&self) -> &VarMap;
    /// The moving average of the generator's variables: same names and shapes.
    fn ema_vars(&self) -> &VarMap;
    /// Critic loss on real examples `batch.indices` and generated ones (detached from the
    /// generator). `sub` counts the critic steps within one generator step.
    fn critic_loss(&self, batch: &Batch<'_>, sub: usize) -> candle_core::Result<Tensor>;
    /// What, besides the `[train]` settings, must be the same for a checkpoint to be resumed
    /// (model sizes, conditioning, loss weights …), as text; empty: nothing.
    fn fingerprint(&self) -> String {
        String::new()
    }
    /// Generator loss for a batch, and named extra terms to record (means over the epoch).
    fn generator_loss(
        &self,
        batch: &Batch<'_>,
    ) -> candle_core::Result<(Tensor, Vec<(&'static str, f64)>)>;
}

/// Callbacks for progress, interruption and per-epoch work (periodic validation plots).
pub trait GanHooks {
    /// After each generator step.
    fn on_step(&mut self, _step: usize) {}
    /// After each epoch (the EMA weights are current).
    fn on_epoch(&mut self, _record: &GanEpoch) -> Result<()> {
        Ok(())
    }
    /// Polled between steps; true stops the run (it resumes from the last checkpoint).
    fn should_stop(&self) -> bool {
        false
    }
}

/// Hooks that do nothing.
pub struct NoGanHooks;
impl GanHooks for NoGanHooks {}

/// What happened in one epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GanEpoch {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean critic loss.
    pub critic_loss: f64,
    /// Mean generator loss.
    pub generator_loss: f64,
    /// Means of the generator's extra terms.
    pub terms: Vec<(String, f64)>,
}

/// Everything the loop needs to continue after a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GanState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Generator steps taken.
    pub steps: usize,
    /// Every completed epoch.
    pub history: Vec<GanEpoch>,
}

/// Outcome of [`GanTrainer::run`].
#[derive(Debug, Clone)]
pub struct GanOutcome {
    /// Final state and history.
    pub state: GanState,
    /// The epoch a resumed run started after.
    pub resumed_from: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    state: GanState,
    #[serde(default)]
    task: String,
    generator_steps: u64,
    critic_steps: u64,
    train: GanConfig,
}

#[derive(Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    tensors: String,
    state: String,
}

/// Copy every variable of `from` into the same-named variable of `to`.
pub fn copy_vars(from: &VarMap, to: &VarMap) -> Result<()> {
    let src = from.data().lock().expect("varmap lock");
    let dst = to.data().lock().expect("varmap lock");
    for (name, var) in dst.iter() {
        let s = src
            .get(name)
            .ok_or_else(|| NnError::config(format!("EMA has `{name}`, the generator has not")))?;
        var.set(s.as_tensor())?;
    }
    Ok(())
}

fn ema_update(model: &VarMap, ema: &VarMap, decay: f64) -> Result<()> {
    let src = model.data().lock().expect("varmap lock");
    let dst = ema.data().lock().expect("varmap lock");
    for (name, var) in dst.iter() {
        let s = src
            .get(name)
            .ok_or_else(|| NnError::config(format!("EMA has `{name}`, the generator has not")))?;
        let next = ((var.as_tensor() * decay)? + (s.as_tensor() * (1.0 - decay))?)?;
        var.set(&next)?;
    }
    Ok(())
}

fn prefixed(map: &VarMap, prefix: &str, out: &mut HashMap<String, Tensor>) {
    let data = map.data().lock().expect("varmap lock");
    for (k, v) in data.iter() {
        out.insert(format!("{prefix}{k}"), v.as_tensor().clone());
    }
}

fn load_prefixed(
    map: &VarMap,
    prefix: &str,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    let data = map.data().lock().expect("varmap lock");
    for (name, var) in data.iter() {
        let key = format!("{prefix}{name}");
        let t = tensors.get(&key).ok_or_else(|| {
            NnError::checkpoint(
                path,
                format!("has no tensor `{key}`: not a checkpoint of this model"),
            )
        })?;
        if t.shape() != var.shape() {
            return Err(NnError::checkpoint(
                path,
                format!(
                    "tensor `{key}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(&t.to_device(var.device())?)?;
    }
    Ok(())
}

fn write_json_atomic<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(value).expect("checkpoint state serialises");
    std::fs::write(&tmp, text).map_err(|e| NnError::checkpoint(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NnError::checkpoint(path, e))
}

struct Optimisers {
    generator: AdamW,
    critic: AdamW,
}

fn save_checkpoint(
    dir: &Path,
    task: &dyn GanTask,
    opt: &Optimisers,
    state: &GanState,
    cfg: &GanConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| NnError::checkpoint(dir, e))?;
    let e = state.epochs_done;
    let tensors_name = format!("epoch-{e:05}.safetensors");
    let state_name = format!("epoch-{e:05}.state.json");
    let mut t = HashMap::new();
    prefixed(task.generator_vars(), "generator.", &mut t);
    prefixed(task.critic_vars(), "critic.", &mut t);
    prefixed(task.ema_vars(), "ema.", &mut t);
    for (k, v) in opt.generator.state_tensors() {
        t.insert(format!("opt_generator.{k}"), v);
    }
    for (k, v) in opt.critic.state_tensors() {
        t.insert(format!("opt_critic.{k}"), v);
    }
    save_tensors(&t, &dir.join(&tensors_name))?;
    write_json_atomic(
        &CheckpointState {
            state: state.clone(),
            generator_steps: opt.generator.steps(),
            critic_steps: opt.critic.steps(),
            train: cfg.clone(),
            task: task.fingerprint(),
        },
        &dir.join(&state_name),
    )?;
    write_json_atomic(
        &Latest {
            epoch: e,
            tensors: tensors_name.clone(),
            state: state_name.clone(),
        },
        &dir.join("latest.json"),
    )?;
    // Older epochs are not needed once latest.json points past them.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("epoch-") && name != tensors_name && name != state_name {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

fn load_checkpoint(
    dir: &Path,
    task: &dyn GanTask,
    opt: &mut Optimisers,
    cfg: &GanConfig,
) -> Result<Option<GanState>> {
    let latest_path = dir.join("latest.json");
    if !latest_path.exists() {
        return Ok(None);
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| NnError::checkpoint(p, e));
    let latest: Latest = serde_json::from_str(&read(&latest_path)?)
        .map_err(|e| NnError::checkpoint(&latest_path, format!("corrupt: {e}")))?;
    let st_path = dir.join(&latest.state);
    let st: CheckpointState = serde_json::from_str(&read(&st_path)?)
        .map_err(|e| NnError::checkpoint(&st_path, format!("corrupt: {e}")))?;
    let mut saved = st.train.clone();
    saved.epochs = cfg.epochs;
    if &saved != cfg {
        return Err(NnError::checkpoint(
            &st_path,
            "was written with different [train] settings; resume with the same config or start a new output directory",
        ));
    }
    if st.task != task.fingerprint() {
        return Err(NnError::checkpoint(
            &st_path,
            "was written for another model, conditioning or loss; resume with the same config and data or start a new output directory",
        ));
    }
    let path = dir.join(&latest.tensors);
    let tensors = load_tensors(&path)?;
    load_prefixed(task.generator_vars(), "generator.", &tensors, &path)?;
    load_prefixed(task.critic_vars(), "critic.", &tensors, &path)?;
    load_prefixed(task.ema_vars(), "ema.", &tensors, &path)?;
    let device = task
        .generator_vars()
        .all_vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let strip = |prefix: &str| -> Result<HashMap<String, Tensor>> {
        tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|k| (k.to_string(), t)))
            .map(|(k, t)| Ok((k, t.to_device(&device)?)))
            .collect()
    };
    opt.generator
        .load_state(&path, strip("opt_generator.")?, st.generator_steps)?;
    opt.critic
        .load_state(&path, strip("opt_critic.")?, st.critic_steps)?;
    Ok(Some(st.state))
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Adversarial training of [`GanTask`]s: see [`TrainLoop`] for the builder and
/// [`GanTrainer::run`]. Checkpoints hold both networks, both optimisers and the moving average
/// of the generator's weights, which starts as a copy of the generator (unless resumed) and
/// follows it after every generator step.
pub type GanTrainer<'a> = TrainLoop<'a, GanConfig, dyn GanHooks + 'a>;

impl<'a> GanTrainer<'a> {
    /// Train `task` adversarially.
    pub fn run(self, task: &dyn GanTask) -> Result<GanOutcome> {
        let (config, checkpoints, resume, hooks) = self.into_parts();
        let mut no_hooks = NoGanHooks;
        let hooks: &mut dyn GanHooks = match hooks {
            Some(h) => h,
            None => &mut no_hooks,
        };
        train_gan(task, config, checkpoints.as_deref(), resume, hooks)
    }
}

fn train_gan(
    task: &dyn GanTask,
    cfg: &GanConfig,
    checkpoints: Option<&Path>,
    resume: bool,
    hooks: &mut dyn GanHooks,
) -> Result<GanOutcome> {
    let n = task.len();
    check_run(cfg, n)?;
    let adam = AdamWConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = Optimisers {
        generator: AdamW::new(task.generator_vars(), adam)?,
        critic: AdamW::new(task.critic_vars(), adam)?,
    };
    copy_vars(task.generator_vars(), task.ema_vars())?;
    let mut state = GanState::default();
    let mut resumed_from = None;
    if let (Some(dir), true) = (checkpoints, resume) {
        if let Some(s) = load_checkpoint(dir, task, &mut opt, cfg)? {
            tracing::info!("resuming after epoch {}", s.epochs_done);
            resumed_from = Some(s.epochs_done);
            state = s;
        }
    }
    let min_batch = cfg.min_batch(n);
    while state.epochs_done < cfg.epochs {
        let epoch = state.epochs_done;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut named_rng(cfg.seed, &format!("gan-shuffle/{epoch}")));
        let (mut sum_d, mut sum_g, mut count) = (0.0, 0.0, 0usize);
        let mut terms: Vec<(String, f64)> = Vec::new();
        let batches: Vec<&[usize]> = order
            .chunks(cfg.batch_size)
            .filter(|c| c.len() >= min_batch)
            .collect();
        for chunk in &batches {
            if hooks.should_stop() {
                return Err(NnError::Interrupted);
            }
            let batch = Batch {
                indices: chunk,
                epoch,
                step: state.steps,
                train: true,
            };
            let mut d_value = 0.0;
            for sub in 0..cfg.critic_steps {
                let loss = task.critic_loss(&batch, sub)?;
                d_value = scalar(&loss)?;
                if !d_value.is_finite() {
                    return Err(NnError::Diverged {
                        epoch: epoch + 1,
                        loss: d_value,
                    });
                }
                let norm = opt.critic.backward_step(&loss, cfg.lr_critic, 0.0)?;
                finite_gradients(norm, epoch)?;
            }
            let (loss, extra) = task.generator_loss(&batch)?;
            let g_value = scalar(&loss)?;
            if !g_value.is_finite() {
                return Err(NnError::Diverged {
                    epoch: epoch + 1,
                    loss: g_value,
                });
            }
            // Only the generator's variables are stepped; the critic's gradients from this
            // backward pass are dropped.
            let grads = loss.backward()?;
            let norm = opt.generator.step_with(&grads, cfg.lr_generator, 0.0)?;
            finite_gradients(norm, epoch)?;
            ema_update(task.generator_vars(), task.ema_vars(), cfg.ema_decay)?;
            sum_d += d_value;
            sum_g += g_value;
            count += 1;
            for (name, v) in extra {
                match terms.iter_mut().find(|(k, _)| k == name) {
                    Some(t) => t.1 += v,
                    None => terms.push((name.to_string(), v)),
                }
            }
            state.steps += 1;
            hooks.on_step(state.steps);
        }
        let c = count.max(1) as f64;
        let record = GanEpoch {
            epoch: epoch + 1,
            critic_loss: sum_d / c,
            generator_loss: sum_g / c,
            terms: terms.into_iter().map(|(k, v)| (k, v / c)).collect(),
        };
        state.epochs_done += 1;
        state.history.push(record.clone());
        hooks.on_epoch(&record)?;
        let last = state.epochs_done == cfg.epochs;
        if let Some(dir) = checkpoints {
            if state.epochs_done % cfg.checkpoint_every == 0 || last {
                save_checkpoint(dir, task, &opt, &state, cfg)?;
            }
        }
    }
    Ok(GanOutcome {
        state,
        resumed_from,
    })
}

/// Where a GAN run keeps its checkpoints inside an output directory.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}
