//! `report.json` of `deepsky anomaly`: [`AnomalyReport`] for a training run, a `--model` run
//! and each `--shard K/N` run; [`MergeReport`] for `--merge`. Both share [`Summary`]. The keys
//! are a documented contract (README, "deepsky anomaly"); a report read back with a key
//! missing is an error that names the key.

use std::collections::BTreeMap;
use std::path::Path;

use deepsky_nn::train::{EpochRecord, TrainOutcome};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::analysis::Metrics;
use super::{AnomalyResult, ScoreName};
use crate::error::{ReprError, Result};
use crate::objects::Objects;

/// What every anomaly report holds: counts, clusters, metrics and the plots written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always `anomaly`.
    pub pipeline: String,
    /// Objects scored.
    pub n_objects: usize,
    /// Shape of one example.
    pub input_shape: Vec<usize>,
    /// Which score ranks.
    pub score: ScoreName,
    /// Size of the latent vector.
    pub latent: usize,
    /// Number of clusters (DBSCAN noise is none).
    pub n_clusters: usize,
    /// Objects per cluster label.
    pub cluster_sizes: BTreeMap<String, usize>,
    /// Rows of the ranked catalogue.
    pub top_k: usize,
    /// Components of the PCA baseline (the latent size).
    pub pca_baseline_components: usize,
    /// Plot files, relative to the output directory.
    pub plots: Vec<String>,
    /// Seconds spent on the analysis and outputs after scoring.
    pub outputs_s: f64,
    /// AUCs and the rare objects among the top k.
    #[serde(flatten)]
    pub metrics: Metrics,
}

impl Summary {
    /// The summary of `result` for `objects`, with `metrics` from
    /// [`AnomalyResult::metrics`] and the `plots` written.
    pub fn new(
        result: &AnomalyResult,
        objects: &Objects,
        top_k: usize,
        metrics: Metrics,
        plots: Vec<String>,
        outputs_s: f64,
    ) -> Summary {
        let latent = result.scores.latent.ncols();
        Summary {
            pipeline: "anomaly".into(),
            n_objects: objects.len(),
            input_shape: objects.shape.clone(),
            score: result.scores.score_name,
            latent,
            n_clusters: result.n_clusters(),
            cluster_sizes: result.cluster_sizes(),
            top_k: top_k.min(objects.len()),
            pca_baseline_components: latent,
            plots,
            outputs_s,
            metrics,
        }
    }
}

/// How training went (runs that train).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// Epochs completed.
    pub epochs: usize,
    /// Epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Stopped by early stopping?
    pub stopped_early: bool,
    /// Epoch of the checkpoint a `--resume` continued from.
    #[serde(deserialize_with = "Option::deserialize")]
    pub resumed_from_epoch: Option<usize>,
    /// Training loss of the last epoch.
    #[serde(deserialize_with = "Option::deserialize")]
    pub final_train_loss: Option<f64>,
    /// Best validation loss (None without a validation split).
    #[serde(deserialize_with = "Option::deserialize")]
    pub best_val_loss: Option<f64>,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
}

impl From<&TrainOutcome> for TrainingReport {
    fn from(o: &TrainOutcome) -> Self {
        TrainingReport {
            epochs: o.state.epochs_done,
            best_epoch: o.state.best_epoch,
            stopped_early: o.state.stopped_early,
            resumed_from_epoch: o.resumed_from,
            final_train_loss: o.state.history.last().map(|r| r.train_loss),
            best_val_loss: o.state.best_val,
            history: o.state.history.clone(),
        }
    }
}

/// Seconds per stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTimings {
    /// Reading the objects.
    pub load: f64,
    /// Training (or loading the model).
    pub train: f64,
    /// Scoring.
    pub score: f64,
    /// The whole run.
    pub total: f64,
}

/// `report.json` of a training, `--model` or `--shard` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// Counts, clusters, metrics, plots.
    #[serde(flatten)]
    pub summary: Summary,
    /// Present when the run trained the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingReport>,
    /// `K/N` for a shard of a `--shard` run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Seconds per stage.
    pub timings_s: RunTimings,
}

/// Seconds of a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeTimings {
    /// The whole merge.
    pub total: f64,
}

/// `report.json` of `--merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeReport {
    /// Counts, clusters, metrics, plots of all shards together.
    #[serde(flatten)]
    pub summary: Summary,
    /// Number of shards merged.
    pub merged_shards: usize,
    /// Seconds.
    pub timings_s: MergeTimings,
}

/// Read a report written from one of these types; a missing key or a wrong type is an error
/// naming the file and the key.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReprError::bad_input(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| ReprError::bad_input(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::analysis::LabelMetrics;

    fn report() -> AnomalyReport {
        AnomalyReport {
            summary: Summary {
                pipeline: "anomaly".into(),
                n_objects: 10,
                input_shape: vec![1, 4, 4],
                score: ScoreName::Recon,
                latent: 2,
                n_clusters: 1,
                cluster_sizes: [("0".to_string(), 10)].into(),
                top_k: 5,
                pca_baseline_components: 2,
                plots: vec!["plots/roc.png".into()],
                outputs_s: 0.5,
                metrics: Metrics::Labelled(LabelMetrics {
                    n_rare: 2,
                    auc: Some(0.9),
                    baseline_auc: Some(0.6),
                    auc_margin: Some(0.9 - 0.6),
                    per_class: BTreeMap::new(),
                    rare_in_top_k: 2,
                    precision_at_top_k: 0.4,
                }),
            },
            training: None,
            shard: Some("1/2".into()),
            timings_s: RunTimings {
                load: 0.1,
                train: 0.2,
                score: 0.3,
                total: 0.6,
            },
        }
    }

    #[test]
    fn keys_are_flat_and_optional_parts_absent() {
        let v = serde_json::to_value(report()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "auc",
                "auc_margin",
                "baseline_auc",
                "cluster_sizes",
                "input_shape",
                "labels",
                "latent",
                "n_clusters",
                "n_objects",
                "n_rare",
                "outputs_s",
                "pca_baseline_components",
                "per_class",
                "pipeline",
                "plots",
                "precision_at_top_k",
                "rare_in_top_k",
                "score",
                "shard",
                "timings_s",
                "top_k"
            ]
        );
        assert_eq!(v["score"], "recon");
    }

    #[test]
    fn reports_read_back_and_a_missing_key_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let mut v = serde_json::to_value(report()).unwrap();
        std::fs::write(&path, v.to_string()).unwrap();
        assert_eq!(read::<AnomalyReport>(&path).unwrap(), report());
        v.as_object_mut().unwrap().remove("n_clusters");
        std::fs::write(&path, v.to_string()).unwrap();
        let e = read::<AnomalyReport>(&path).unwrap_err().to_string();
        assert!(
            e.contains("report.json") && e.contains("missing field `n_clusters`"),
            "{e}"
        );
        let e = read::<MergeReport>(&dir.path().join("none.json")).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
    }
}
