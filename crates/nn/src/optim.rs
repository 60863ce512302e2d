//! AdamW with its state in the open, so that checkpoints hold the moment estimates and a
//! resumed run continues exactly where it stopped (candle-nn's AdamW keeps them private), and
//! with global-norm gradient clipping.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator term.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        }
    }
}

/// AdamW over the named variables of a [`VarMap`].
pub struct AdamW {
    cfg: AdamWConfig,
    /// Sorted by name: a fixed order makes the update (and the clipping norm's sum) repeatable.
    vars: Vec<(String, Var)>,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
    step: u64,
}

impl AdamW {
    /// Optimise every variable of `map`.
    pub fn new(map: &VarMap, cfg: AdamWConfig) -> Result<AdamW> {
        let data = map.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, var) in &vars {
            m.insert(name.clone(), var.as_tensor().zeros_like()?);
            v.insert(name.clone(), var.as_tensor().zeros_like()?);
        }
        Ok(AdamW {
            cfg,
            vars,
            m,
            v,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Backpropagate `loss` and take one step at learning rate `lr`. Gradients whose global L2
    /// norm exceeds `clip` (when `clip > 0`) are scaled down to it. Returns the norm before
    /// clipping.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64, clip: f64) -> Result<f64> {
        let grads = loss.backward()?;
        self.step_with(&grads, lr, clip)
    }

    /// One step with precomputed gradients.
    pub fn step_with(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let mut sq = 0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Ok(norm);
        }
        let scale = if clip > 0.0 && norm > clip {
            clip / norm
        } else {
            1.0
        };
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        for (name, var) in &self.vars {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = if scale != 1.0 {
                g.affine(scale, 0.0)?
            } else {
                g.clone()
            };
            let m = self.m.get_mut(name).expect("state for every var");
            *m = ((&*m * beta1)? + (&g * (1.0 - beta1))?)?;
            let v = self.v.get_mut(name).expect("state for every var");
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&*m / bc1)?;
            let v_hat = (&*v / bc2)?;
            let theta = var.as_tensor();
            let decayed = (theta * (1.0 - lr * weight_decay))?;
            let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    /// The optimiser state as named tensors (`m.<var>`, `v.<var>`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (k, t) in &self.m {
            out.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("v.{k}"), t.clone());
        }
        out
    }

    /// Restore the state written by [`AdamW::state_tensors`], and the step count.
    pub fn load_state(
        &mut self,
        path: &Path,
        tensors: HashMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        for (name, _) in &self.vars {
            for (prefix, store) in [("m", &mut self.m), ("v", &mut self.v)] {
                let key = format!("{prefix}.{name}");
                let t = tensors.get(&key).ok_or_else(|| {
                    NnError::checkpoint(path, format!("optimiser state has no `{key}`"))
                })?;
                store.insert(name.clone(), t.clone());
            }
        }
        self.step = step;
        Ok(())
    }
}
