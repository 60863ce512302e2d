//! Classifier two-sample test: can a neural network tell generated showers from reference
//! ones?
//!
//! One-dimensional metrics ([`crate::metrics`]) miss correlations: a generator can reproduce
//! every observable's histogram and still produce showers that no real particle makes. The
//! CaloChallenge therefore trains a classifier to separate the two samples and reports the
//! ROC AUC on held-out showers (Krause et al. 2024; Lopez-Paz & Oquab 2017): 0.5 means the
//! network finds no difference, 1.0 means the samples are perfectly separable.
//!
//! [`classifier_auc`] does this with a small MLP trained through deepsky's shared training loop
//! ([`deepsky_nn::train::Trainer`]):
//!
//! 1. both samples are cut to the same size (a seeded random subset of the larger one), so
//!    that the AUC is not shifted by a class imbalance;
//! 2. each class is split, seeded, into training and test rows (stratified, so both classes
//!    keep the same share in the test set);
//! 3. features are standardised with the training rows' mean and standard deviation;
//! 4. the network is trained with binary cross-entropy on logits; a validation part of the
//!    training rows drives early stopping and the weights of the best validation epoch are
//!    kept, so the network does not memorise the training showers;
//! 5. the ROC curve and its AUC are computed on the test rows only.
//!
//! The AUC is reported as is: a value clearly *below* 0.5 means the classifier learned
//! something that does not generalise (or the labels are swapped), which is worth seeing
//! rather than folding into max(AUC, 1 − AUC).
//!
//! Sample A gets label 0 (usually the reference), sample B label 1 (usually generated).
//! Typical inputs are [`crate::observables::cell_features`] and
//! [`crate::observables::high_level_features`].

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarMap};
use deepsky_core::config::{ConfigError, Validate};
use deepsky_nn::init::{named_rng, SeededVarMap};
use deepsky_nn::layers::Act;
use deepsky_nn::train::{Batch, EpochRecord, Hooks, TrainConfig, TrainTask, Trainer};
use ndarray::ArrayView2;
use rand::seq::SliceRandom;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{FastsimError, Result};

/// Fewest rows per sample [`classifier_auc`] accepts: with fewer, the test split holds a
/// handful of showers and the AUC is noise.
pub const MIN_ROWS: usize = 20;

/// Share of the training rows held out for early stopping.
const VAL_FRACTION: f64 = 0.2;
/// Epochs without improvement of the validation loss before training stops.
const PATIENCE: usize = 5;
/// Validation-loss improvement that counts (same meaning as in [`TrainConfig`]).
const MIN_DELTA: f64 = 1e-4;
/// Rows per forward pass when scoring the test split.
const SCORE_BATCH: usize = 1024;

/// Settings of the classifier two-sample test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Widths of the hidden layers (SiLU after each); empty gives logistic regression.
    pub hidden: Vec<usize>,
    /// Maximum passes over the training rows (early stopping usually ends sooner).
    pub epochs: usize,
    /// Rows per optimiser step.
    pub batch_size: usize,
    /// Base learning rate of AdamW (warm-up and cosine decay as in [`TrainConfig`]).
    pub lr: f64,
    /// Share of each sample held out for the AUC, in \[0.05, 0.95\].
    pub test_fraction: f64,
    /// Seed of the subsampling, the split, the initial weights and the shuffling.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            hidden: vec![64, 64],
            epochs: 30,
            batch_size: 128,
            lr: 1e-3,
            test_fraction: 0.3,
            seed: 1,
        }
    }
}

impl Validate for ClassifierConfig {
    /// Range checks, keys relative to the classifier's section; the message gives the value.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: String| Err(ConfigError::at(k, m));
        if self.hidden.contains(&0) {
            return bad(
                "hidden",
                format!("every layer needs at least 1 unit, got {:?}", self.hidden),
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1, got 0".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1, got 0".into());
        }
        if !(self.lr > 0.0 && self.lr < 10.0) {
            return bad("lr", format!("must be in (0, 10), got {}", self.lr));
        }
        if !(0.05..=0.95).contains(&self.test_fraction) {
            return bad(
                "test_fraction",
                format!("must be in [0.05, 0.95], got {}", self.test_fraction),
            );
        }
        Ok(())
    }
}

/// Outcome of [`classifier_auc`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TwoSampleResult {
    /// Area under the ROC curve on the test rows (0.5: indistinguishable, 1: separable).
    pub auc: f64,
    /// False-positive rates of the ROC curve (sample A rows called B), from 0 to 1.
    pub fpr: Vec<f64>,
    /// True-positive rates of the ROC curve (sample B rows called B), from 0 to 1.
    pub tpr: Vec<f64>,
    /// Training rows of both classes (including the part held out for early stopping).
    pub n_train: usize,
    /// Test rows of both classes (the AUC's sample).
    pub n_test: usize,
    /// Epochs trained before early stopping (or `epochs`).
    pub epochs_run: usize,
}

/// Checks one sample: enough rows, all values finite.
fn check_sample(x: &ArrayView2<'_, f32>, name: &str) -> Result<()> {
    if x.nrows() < MIN_ROWS {
        return Err(FastsimError::Input(format!(
            "sample {name} has {} rows; the classifier two-sample test needs at least {MIN_ROWS}",
            x.nrows()
        )));
    }
    if let Some(((r, c), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(FastsimError::Input(format!(
            "sample {name} has a non-finite feature ({v}) at row {r}, column {c}"
        )));
    }
    Ok(())
}

/// A plain MLP: Linear → SiLU → … → Linear to one logit.
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn new(inputs: usize, hidden: &[usize], vb: candle_nn::VarBuilder) -> Result<Mlp> {
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut width = inputs;
        for (i, &h) in hidden.iter().chain(std::iter::once(&1)).enumerate() {
            layers.push(candle_nn::linear(width, h, vb.pp(format!("l{i}")))?);
            width = h;
        }
        Ok(Mlp { layers })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = Act::Silu.apply(&h)?;
            }
        }
        Ok(h)
    }
}

/// Mean binary cross-entropy of `logits` against 0/1 `targets`, in the stable form
/// max(z, 0) − z·y + ln(1 + e^(−|z|)): no log of a saturated sigmoid, so no NaN for
/// confident wrong predictions.
fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let softplus_tail = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    ((logits.relu()? - (logits * targets)?)? + softplus_tail)?.mean_all()
}

/// The classifier's training task over the standardised training rows.
struct Task<'a> {
    model: &'a Mlp,
    x: &'a Tensor,
    y: &'a Tensor,
}

impl TrainTask for Task<'_> {
    fn len(&self) -> usize {
        self.x.dims()[0]
    }

    fn loss(&self, batch: &Batch<'_>) -> candle_core::Result<Tensor> {
        let idx: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::new(idx, self.x.device())?;
        let logits = self.model.forward(&self.x.index_select(&idx, 0)?)?;
        bce_with_logits(&logits, &self.y.index_select(&idx, 0)?)
    }
}

/// Keeps a copy of the weights of the best validation epoch.
///
/// The shared loop restores the best weights only when it writes checkpoints to a directory;
/// a two-sample test has no directory, so this hook takes the snapshot in memory (the MLP is
/// small) with the loop's own improvement rule.
struct KeepBest<'a> {
    varmap: &'a VarMap,
    stop: &'a (dyn Fn() -> bool + Sync),
    best: Option<f64>,
    snapshot: Option<Vec<(String, Tensor)>>,
    error: Option<candle_core::Error>,
}

impl KeepBest<'_> {
    fn take_snapshot(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let data = self.varmap.data().lock().expect("varmap lock");
        // `copy` gives new storage: the optimiser updates the variables in place.
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    fn restore(&self) -> candle_core::Result<()> {
        if let Some(snapshot) = &self.snapshot {
            let data = self.varmap.data().lock().expect("varmap lock");
            for (k, t) in snapshot {
                if let Some(v) = data.get(k) {
                    v.set(t)?;
                }
            }
        }
        Ok(())
    }
}

impl Hooks for KeepBest<'_> {
    fn should_stop(&self) -> bool {
        (self.stop)()
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        let Some(v) = record.val_loss else { return };
        let improved = match self.best {
            None => v.is_finite(),
            Some(best) => v < best - MIN_DELTA,
        };
        if improved && self.error.is_none() {
            self.best = Some(v);
            match self.take_snapshot() {
                Ok(s) => self.snapshot = Some(s),
                Err(e) => self.error = Some(e),
            }
        }
    }
}

/// Seeded order of the rows of one class: its first `n` entries are the balanced subsample.
fn shuffled_rows(rows: usize, seed: u64, class: &str) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows).collect();
    idx.shuffle(&mut named_rng(seed, &format!("two_sample/rows/{class}")));
    idx
}

/// Per-column mean and standard deviation of the rows `rows` of `samples` (std 0 → 1).
fn standardiser(samples: &[ArrayView2<'_, f32>; 2], rows: [&[usize]; 2]) -> (Vec<f64>, Vec<f64>) {
    let d = samples[0].ncols();
    let mut sum = vec![0.0; d];
    let mut n = 0.0;
    for (x, idx) in samples.iter().zip(rows) {
        for &r in idx {
            for (s, &v) in sum.iter_mut().zip(x.row(r)) {
                *s += f64::from(v);
            }
            n += 1.0;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut sq = vec![0.0; d];
    for (x, idx) in samples.iter().zip(rows) {
        for &r in idx {
            for ((s, &v), m) in sq.iter_mut().zip(x.row(r)).zip(&mean) {
                let dv = f64::from(v) - m;
                *s += dv * dv;
            }
        }
    }
    let std = sq
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            // A constant column carries no information; dividing by 1 leaves it at 0.
            if sd > 0.0 {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

/// Standardised rows of both classes as a tensor, with their 0/1 labels.
fn to_tensors(
    samples: &[ArrayView2<'_, f32>; 2],
    rows: [&[usize]; 2],
    mean: &[f64],
    std: &[f64],
) -> Result<(Tensor, Tensor, Vec<bool>)> {
    let d = mean.len();
    let n: usize = rows.iter().map(|r| r.len()).sum();
    let mut values = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for (class, (x, idx)) in samples.iter().zip(rows).enumerate() {
        for &r in idx {
            for ((&v, m), s) in x.row(r).iter().zip(mean).zip(std) {
                values.push(((f64::from(v) - m) / s) as f32);
            }
            labels.push(class == 1);
        }
    }
    let x = Tensor::from_vec(values, (n, d), &Device::Cpu)?;
    let y: Vec<f32> = labels.iter().map(|&b| f32::from(u8::from(b))).collect();
    let y = Tensor::from_vec(y, (n, 1), &Device::Cpu)?;
    Ok((x, y, labels))
}

/// Trains a classifier to tell sample `a` (label 0) from sample `b` (label 1) and returns the
/// ROC AUC on held-out rows (see the module docs for the procedure).
///
/// Rows are examples, columns features; both samples need the same columns, at least
/// [`MIN_ROWS`] rows and only finite values, else [`FastsimError::Input`]. A configuration out
/// of range gives [`FastsimError::InvalidConfig`]. The same inputs and `cfg` (including its
/// seed) give the same result.
pub fn classifier_auc(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    cfg: &ClassifierConfig,
) -> Result<TwoSampleResult> {
    classifier_auc_until(a, b, cfg, &|| false)
}

/// [`classifier_auc`], polling `stop` between optimiser steps: once it returns true the
/// training ends with `NnError::Interrupted` (a Ctrl-C honoured within a step).
pub fn classifier_auc_until(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    cfg: &ClassifierConfig,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<TwoSampleResult> {
    cfg.validate()?;
    if a.ncols() != b.ncols() {
        return Err(FastsimError::Input(format!(
            "the two samples have different features: {} columns in A, {} in B",
            a.ncols(),
            b.ncols()
        )));
    }
    if a.ncols() == 0 {
        return Err(FastsimError::Input(
            "the samples have no feature columns".into(),
        ));
    }
    check_sample(&a, "A")?;
    check_sample(&b, "B")?;

    // Balanced classes and a stratified split, from one seeded order per class.
    let n = a.nrows().min(b.nrows());
    let n_test = ((n as f64 * cfg.test_fraction).round() as usize).clamp(1, n - 1);
    let order_a = shuffled_rows(a.nrows(), cfg.seed, "a");
    let order_b = shuffled_rows(b.nrows(), cfg.seed, "b");
    let (test_a, train_a) = order_a[..n].split_at(n_test);
    let (test_b, train_b) = order_b[..n].split_at(n_test);

    // Views with one common lifetime (the arguments' may differ).
    let samples = [a.view(), b.view()];
    let (mean, std) = standardiser(&samples, [train_a, train_b]);
    let (x_train, y_train, _) = to_tensors(&samples, [train_a, train_b], &mean, &std)?;
    let (x_test, _, test_labels) = to_tensors(&samples, [test_a, test_b], &mean, &std)?;

    let vars = SeededVarMap::new(cfg.seed);
    let model = Mlp::new(a.ncols(), &cfg.hidden, vars.builder(&Device::Cpu).pp("clf"))?;
    let task = Task {
        model: &model,
        x: &x_train,
        y: &y_train,
    };
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        val_fraction: VAL_FRACTION,
        patience: PATIENCE,
        min_delta: MIN_DELTA,
        // No checkpoint directory is written; the value only has to pass the check.
        checkpoint_every: cfg.epochs,
        seed: cfg.seed,
        ..TrainConfig::default()
    };
    let mut keep = KeepBest {
        varmap: vars.varmap(),
        stop,
        best: None,
        snapshot: None,
        error: None,
    };
    let outcome = Trainer::new(&train_cfg)
        .hooks(&mut keep)
        .run(&task, vars.varmap())?;
    if let Some(e) = keep.error.take() {
        return Err(e.into());
    }
    keep.restore()?;

    let n_rows = x_test.dims()[0];
    let mut scores = Vec::with_capacity(n_rows);
    let mut start = 0;
    while start < n_rows {
        let len = SCORE_BATCH.min(n_rows - start);
        let logits = model.forward(&x_test.narrow(0, start, len)?)?;
        let logits = logits
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        scores.extend(logits);
        start += len;
    }
    let deepsky_core::metrics::Roc { fpr, tpr, auc } =
        deepsky_core::metrics::roc_curve(&scores, &test_labels)
            .map_err(|e| FastsimError::Input(format!("classifier two-sample test: {e}")))?;
    tracing::debug!(
        auc,
        n_train = 2 * train_a.len(),
        n_test = 2 * n_test,
        epochs = outcome.state.epochs_done,
        best_epoch = outcome.state.best_epoch,
        "classifier two-sample test"
    );
    Ok(TwoSampleResult {
        auc,
        fpr,
        tpr,
        n_train: 2 * train_a.len(),
        n_test: 2 * n_test,
        epochs_run: outcome.state.epochs_done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn ramp(rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32 * 0.01)
    }

    fn input_error(r: Result<TwoSampleResult>) -> String {
        match r {
            Err(FastsimError::Input(m)) => m,
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_inputs_with_clear_messages() {
        let cfg = ClassifierConfig::default();
        let m = input_error(classifier_auc(ramp(19, 3).view(), ramp(50, 3).view(), &cfg));
        assert!(
            m.contains("sample A has 19 rows") && m.contains("at least 20"),
            "{m}"
        );
        let m = input_error(classifier_auc(ramp(50, 3).view(), ramp(50, 4).view(), &cfg));
        assert!(m.contains("3 columns in A, 4 in B"), "{m}");
        let mut b = ramp(50, 3);
        b[[7, 2]] = f32::INFINITY;
        let m = input_error(classifier_auc(ramp(50, 3).view(), b.view(), &cfg));
        assert!(
            m.contains("sample B") && m.contains("row 7, column 2"),
            "{m}"
        );
        b[[7, 2]] = f32::NAN;
        let m = input_error(classifier_auc(ramp(50, 3).view(), b.view(), &cfg));
        assert!(m.contains("non-finite"), "{m}");
    }

    #[test]
    fn config_checks_and_serde_defaults() {
        assert!(ClassifierConfig::default().validate().is_ok());
        for bad in [
            ClassifierConfig {
                test_fraction: 0.0,
                ..Default::default()
            },
            ClassifierConfig {
                hidden: vec![8, 0],
                ..Default::default()
            },
            ClassifierConfig {
                epochs: 0,
                ..Default::default()
            },
            ClassifierConfig {
                lr: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
        let cfg: ClassifierConfig = serde_json::from_str(r#"{"epochs": 5}"#).unwrap();
        assert_eq!(cfg.epochs, 5);
        assert_eq!(cfg.hidden, vec![64, 64]);
        assert!(serde_json::from_str::<ClassifierConfig>(r#"{"epoch": 5}"#).is_err());
    }

    #[test]
    fn stable_bce_matches_the_definition_and_survives_saturation() {
        let z = Tensor::new(&[[-3.0f32], [0.0], [2.0], [-100.0], [100.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[0.0f32], [1.0], [1.0], [1.0], [0.0]], &Device::Cpu).unwrap();
        let got = bce_with_logits(&z, &y).unwrap().to_scalar::<f32>().unwrap() as f64;
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        // −ln(1 − σ(−3)), −ln σ(0), −ln σ(2), and the saturated ones ≈ 100 each.
        let direct = -(1.0 - sig(-3.0)).ln() - sig(0.0).ln() - sig(2.0).ln() + 100.0 + 100.0;
        assert!(
            (got - direct / 5.0).abs() < 1e-4,
            "{got} vs {}",
            direct / 5.0
        );
    }
}
