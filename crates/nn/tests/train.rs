//! The shared training loop: losses fall, seeds repeat, and a resumed run equals an
//! uninterrupted one bit for bit.

use candle_core::{Device, Module, Tensor};
use deepsky_nn::init::SeededVarMap;
use deepsky_nn::train::{self, Batch, Hooks, TrainConfig, TrainTask, Trainer};
use deepsky_nn::NnError;

/// A two-layer MLP regressing y = sin(3x) + x².
struct Curve {
    l1: candle_nn::Linear,
    l2: candle_nn::Linear,
    x: Tensor,
    y: Tensor,
}

impl Curve {
    fn new(vars: &SeededVarMap) -> Curve {
        let vb = vars.builder(&Device::Cpu);
        let n = 256;
        let xs: Vec<f32> = (0..n).map(|i| i as f32 / n as f32 * 2.0 - 1.0).collect();
        let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin() + x * x).collect();
        Curve {
            l1: candle_nn::linear(1, 32, vb.pp("l1")).unwrap(),
            l2: candle_nn::linear(32, 1, vb.pp("l2")).unwrap(),
            x: Tensor::from_vec(xs, (n, 1), &Device::Cpu).unwrap(),
            y: Tensor::from_vec(ys, (n, 1), &Device::Cpu).unwrap(),
        }
    }
}

impl TrainTask for Curve {
    fn len(&self) -> usize {
        256
    }
    fn loss(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
        let idx: Vec<u32> = b.indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::new(idx, &Device::Cpu)?;
        let h = self.l1.forward(&self.x.index_select(&idx, 0)?)?.tanh()?;
        candle_nn::loss::mse(&self.l2.forward(&h)?, &self.y.index_select(&idx, 0)?)
    }
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 0.02,
        val_fraction: 0.2,
        patience: 0,
        ..Default::default()
    }
}

fn weights(vars: &SeededVarMap) -> Vec<f32> {
    let data = vars.varmap().data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            data[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

struct StopAfter(usize, usize);
impl Hooks for StopAfter {
    fn on_step(&mut self, step: usize, _loss: f64) {
        self.1 = step;
    }
    fn should_stop(&self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn loss_falls_and_seed_repeats() {
    let vars = SeededVarMap::new(3);
    let task = Curve::new(&vars);
    let out = Trainer::new(&cfg(30)).run(&task, vars.varmap()).unwrap();
    let h = &out.state.history;
    assert_eq!(h.len(), 30);
    assert!(
        h[29].train_loss < h[0].train_loss * 0.2,
        "{} -> {}",
        h[0].train_loss,
        h[29].train_loss
    );
    assert!(h[29].val_loss.unwrap() < 0.05, "{:?}", h[29].val_loss);

    let again = SeededVarMap::new(3);
    let task2 = Curve::new(&again);
    Trainer::new(&cfg(30)).run(&task2, again.varmap()).unwrap();
    assert_eq!(weights(&vars), weights(&again));

    // The seed, not the construction, decides the initial weights.
    let (s3, s3b, s4) = (
        SeededVarMap::new(3),
        SeededVarMap::new(3),
        SeededVarMap::new(4),
    );
    let _ = (Curve::new(&s3), Curve::new(&s3b), Curve::new(&s4));
    assert_eq!(weights(&s3), weights(&s3b));
    assert_ne!(weights(&s3), weights(&s4));
}

#[test]
fn interrupted_then_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted: 6 epochs.
    let a = SeededVarMap::new(11);
    let ta = Curve::new(&a);
    let full = Trainer::new(&cfg(6))
        .checkpoints(&dir.path().join("a"))
        .run(&ta, a.varmap())
        .unwrap();

    // Interrupted in the middle of epoch 4 (7 steps per epoch), then resumed.
    let b = SeededVarMap::new(11);
    let tb = Curve::new(&b);
    let ck = dir.path().join("b");
    let err = Trainer::new(&cfg(6))
        .checkpoints(&ck)
        .hooks(&mut StopAfter(24, 0))
        .run(&tb, b.varmap())
        .unwrap_err();
    assert!(matches!(err, NnError::Interrupted));
    let c = SeededVarMap::new(99); // a different init: everything must come from the checkpoint
    let tc = Curve::new(&c);
    let resumed = Trainer::new(&cfg(6))
        .checkpoints(&ck)
        .resume(true)
        .run(&tc, c.varmap())
        .unwrap();
    assert_eq!(resumed.resumed_from, Some(3));
    assert_eq!(resumed.state.history, full.state.history);
    assert_eq!(weights(&a), weights(&c));

    // Different training settings refuse to resume.
    let d = SeededVarMap::new(11);
    let td = Curve::new(&d);
    let mut other = cfg(6);
    other.lr = 0.5;
    let e = Trainer::new(&other)
        .checkpoints(&ck)
        .resume(true)
        .run(&td, d.varmap())
        .unwrap_err();
    assert!(e.to_string().contains("different [train] settings"), "{e}");
}

#[test]
fn early_stopping_keeps_best_weights() {
    let vars = SeededVarMap::new(5);
    let task = Curve::new(&vars);
    let mut c = cfg(200);
    c.patience = 3;
    c.min_delta = 1e-3;
    let dir = tempfile::tempdir().unwrap();
    let out = Trainer::new(&c)
        .checkpoints(dir.path())
        .run(&task, vars.varmap())
        .unwrap();
    assert!(out.state.stopped_early);
    assert!(out.state.history.len() < 200);
    // The weights left in the model are the best epoch's: evaluating gives the best val loss.
    let v = train::evaluate(&task, &out.val_indices, 32, 0).unwrap();
    assert!(
        (v - out.state.best_val.unwrap()).abs() < 1e-6,
        "{v} vs {:?}",
        out.state.best_val
    );
}

#[test]
fn absurd_epoch_counts_are_config_errors_not_overflows() {
    use deepsky_core::Validate;
    let mut c = cfg(1);
    c.epochs = 1_000_000_000_000_000_000;
    let err = c.validate().unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.message.as_str()),
        ("epochs", "must be at most 1000000")
    );
    let gan = deepsky_nn::gan::GanConfig {
        epochs: usize::MAX,
        ..Default::default()
    };
    assert_eq!(gan.validate().unwrap_err().key, "epochs");
    c.epochs = train::MAX_EPOCHS;
    c.validate().unwrap();
}
