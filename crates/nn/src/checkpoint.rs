//! Checkpoints: model weights and optimiser state as safetensors, the loop's state as JSON.
//!
//! Files of epoch `e` are `epoch-<e>.model.safetensors`, `epoch-<e>.optim.safetensors` and
//! `epoch-<e>.state.json`; `latest.json` names the newest complete set and is written last and
//! atomically, so a run killed while writing a checkpoint resumes from the previous one.
//! `best.safetensors` holds the weights of the best validation epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::optim::AdamW;
use crate::train::{TrainConfig, TrainState};

#[derive(Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    model: String,
    optim: String,
    state: String,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    state: TrainState,
    optimizer_steps: u64,
    train: TrainConfig,
}

/// Writes and reads the checkpoints of one training run.
pub struct Checkpointer {
    dir: PathBuf,
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::checkpoint(path, e)
}

/// Save named tensors to `path` atomically (temporary name, then rename).
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let tmp = tmp_name(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Save the variables of `map` to `path` atomically.
pub fn save_varmap(map: &VarMap, path: &Path) -> Result<()> {
    let data = map.data().lock().expect("varmap lock");
    let tensors: HashMap<String, Tensor> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    drop(data);
    save_tensors(&tensors, path)
}

/// Load weights into the variables of `map`; every variable must be present with its shape.
pub fn load_varmap(map: &VarMap, path: &Path) -> Result<()> {
    let tensors = load_tensors(path)?;
    let data = map.data().lock().expect("varmap lock");
    for (name, var) in data.iter() {
        let t = tensors.get(name).ok_or_else(|| {
            io_err(
                path,
                format!("has no tensor `{name}`: not a checkpoint of this model"),
            )
        })?;
        if t.shape() != var.shape() {
            return Err(io_err(
                path,
                format!(
                    "tensor `{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(&t.to_device(var.device())?)?;
    }
    Ok(())
}

/// Write a trained model's weights and its card (`model.safetensors`, `model.json`) into
/// `dir`, each atomically (written under a temporary name, then renamed).
pub fn save_model<C: Serialize>(map: &VarMap, card: &C, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| NnError::checkpoint(dir, e))?;
    save_varmap(map, &dir.join("model.safetensors"))?;
    let json = serde_json::to_string_pretty(card).expect("model cards serialise");
    let path = dir.join("model.json");
    let tmp = dir.join(format!(".model.json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, json).map_err(|e| NnError::checkpoint(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NnError::checkpoint(&path, e))
}

/// Read the card `dir/model.json` written by [`save_model`]; `what` names the kind of model in
/// the error when the file is not such a card.
pub fn load_card<C: serde::de::DeserializeOwned>(dir: &Path, what: &str) -> Result<C> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| NnError::checkpoint(&path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| NnError::checkpoint(&path, format!("not a {what} model card: {e}")))
}

/// Read all tensors of a safetensors file (on the CPU).
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(io_err(path, "no such file"));
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| io_err(path, format!("not a readable safetensors file: {e}")))
}

fn write_json_atomic<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    let tmp = tmp_name(path);
    let text = serde_json::to_string_pretty(value).map_err(|e| io_err(path, e))?;
    std::fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

impl Checkpointer {
    /// Checkpoints in `dir` (created on first save).
    pub fn new(dir: PathBuf) -> Checkpointer {
        Checkpointer { dir }
    }

    /// Write a checkpoint of the state after `state.epochs_done` epochs and drop older ones.
    pub fn save(
        &self,
        map: &VarMap,
        opt: &AdamW,
        state: &TrainState,
        cfg: &TrainConfig,
    ) -> Result<()> {
        let e = state.epochs_done;
        let model = format!("epoch-{e:04}.model.safetensors");
        let optim = format!("epoch-{e:04}.optim.safetensors");
        let st = format!("epoch-{e:04}.state.json");
        save_varmap(map, &self.dir.join(&model))?;
        save_tensors(&opt.state_tensors(), &self.dir.join(&optim))?;
        write_json_atomic(
            &StateFile {
                state: state.clone(),
                optimizer_steps: opt.steps(),
                train: cfg.clone(),
            },
            &self.dir.join(&st),
        )?;
        write_json_atomic(
            &Latest {
                epoch: e,
                model: model.clone(),
                optim: optim.clone(),
                state: st.clone(),
            },
            &self.dir.join("latest.json"),
        )?;
        // Older epochs are no longer needed once latest.json points past them.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("epoch-") && name != model && name != optim && name != st {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Keep the current weights as the best so far.
    pub fn save_best(&self, map: &VarMap) -> Result<()> {
        save_varmap(map, &self.dir.join("best.safetensors"))
    }

    /// Load the best weights back into `map`, if any were saved.
    pub fn restore_best(&self, map: &VarMap) -> Result<()> {
        let best = self.dir.join("best.safetensors");
        if best.exists() {
            load_varmap(map, &best)?;
        }
        Ok(())
    }

    /// Load the newest checkpoint into `map` and `opt`; None when there is none yet. A
    /// checkpoint written with different training settings (other than `epochs`, which may be
    /// raised to train longer) is refused, because resuming it could not reproduce a single run.
    pub fn load_latest(
        &self,
        map: &VarMap,
        opt: &mut AdamW,
        cfg: &TrainConfig,
    ) -> Result<Option<TrainState>> {
        let latest_path = self.dir.join("latest.json");
        if !latest_path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&latest_path).map_err(|e| io_err(&latest_path, e))?;
        let latest: Latest = serde_json::from_str(&text)
            .map_err(|e| io_err(&latest_path, format!("corrupt: {e}")))?;
        let st_path = self.dir.join(&latest.state);
        let text = std::fs::read_to_string(&st_path).map_err(|e| io_err(&st_path, e))?;
        let st: StateFile =
            serde_json::from_str(&text).map_err(|e| io_err(&st_path, format!("corrupt: {e}")))?;
        let mut saved = st.train.clone();
        saved.epochs = cfg.epochs;
        if &saved != cfg {
            return Err(io_err(
                &st_path,
                "was written with different [train] settings; resume with the same config or start a new output directory",
            ));
        }
        load_varmap(map, &self.dir.join(&latest.model))?;
        let optim_path = self.dir.join(&latest.optim);
        let tensors = load_tensors(&optim_path)?;
        let device = map
            .all_vars()
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu);
        let tensors = tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_device(&device)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        opt.load_state(&optim_path, tensors, st.optimizer_steps)?;
        let mut state = st.state;
        // Raising `epochs` after an early stop does not restart training.
        if state.epochs_done < cfg.epochs && !state.stopped_early {
            state.stopped_early = false;
        }
        Ok(Some(state))
    }
}
