//! Learning-rate schedules: linear warm-up, then constant, cosine decay or step decay.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant.
    Constant,
    /// Cosine from the base rate down to `min_lr` at the last step.
    Cosine,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
}

/// A learning-rate schedule, evaluated per optimiser step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// `constant`, `cosine` or `step`.
    pub kind: ScheduleKind,
    /// Linear warm-up from 0 over this many epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// Lower bound of the cosine schedule.
    pub min_lr: f64,
    /// For `step`: epochs between decays.
    pub step_epochs: usize,
    /// For `step`: decay factor.
    pub gamma: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            kind: ScheduleKind::Cosine,
            warmup_epochs: 1.0,
            min_lr: 1e-5,
            step_epochs: 10,
            gamma: 0.5,
        }
    }
}

impl Schedule {
    /// The learning rate at optimiser step `step` (0-based) of `total_steps`, with
    /// `steps_per_epoch` steps per epoch and base rate `lr`.
    pub fn lr(&self, lr: f64, step: usize, steps_per_epoch: usize, total_steps: usize) -> f64 {
        let spe = steps_per_epoch.max(1) as f64;
        let warmup = self.warmup_epochs * spe;
        let s = step as f64;
        if s < warmup {
            return lr * (s + 1.0) / warmup.max(1.0);
        }
        match self.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::Cosine => {
                let span = (total_steps as f64 - warmup).max(1.0);
                let p = ((s - warmup) / span).clamp(0.0, 1.0);
                self.min_lr + 0.5 * (lr - self.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
            ScheduleKind::Step => {
                let epoch = (s / spe).floor() as usize;
                lr * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_min() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            warmup_epochs: 1.0,
            min_lr: 0.0,
            ..Default::default()
        };
        assert!((s.lr(1.0, 0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 10, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
        assert!(s.lr(1.0, 99, 10, 100) < 0.01);
        let st = Schedule {
            kind: ScheduleKind::Step,
            warmup_epochs: 0.0,
            step_epochs: 2,
            gamma: 0.5,
            ..Default::default()
        };
        assert_eq!(st.lr(1.0, 0, 10, 100), 1.0);
        assert_eq!(st.lr(1.0, 25, 10, 100), 0.5);
        assert_eq!(st.lr(1.0, 45, 10, 100), 0.25);
    }
}
