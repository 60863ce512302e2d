//! What follows scoring: a 2-D PCA embedding and clusters of the latent vectors, the ranking
//! by score, and, when the objects have truth labels, how well the score finds the rare ones
//! (ROC AUC of the autoencoder and of the PCA baseline, per rare class, rare objects among the
//! top k).

use std::collections::{BTreeMap, BTreeSet};

use ndarray::Array2;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AnomalyScores;
use crate::error::{ReprError, Result};
use crate::latent::{self, ClusterConfig, PcaModel};
use crate::objects::{InputConfig, Objects};

/// Scores with the latent-space analysis and the ranking: everything the catalogue, the
/// tables, the plots and the report are made from.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyResult {
    /// The model's numbers per object.
    pub scores: AnomalyScores,
    /// The latent vectors projected on their first two principal axes, `(n, 2)`.
    pub embedding: Array2<f64>,
    /// Cluster per object (−1: DBSCAN noise).
    pub clusters: Vec<i64>,
    /// Object indices by decreasing score (ties by increasing id).
    pub ranking: Vec<usize>,
}

impl AnomalyResult {
    /// Embed and cluster the latent vectors of `scores` and rank the objects (`ids` break
    /// ties).
    pub fn analyse(
        scores: AnomalyScores,
        ids: &[i64],
        cluster: &ClusterConfig,
    ) -> Result<AnomalyResult> {
        let embed =
            PcaModel::fit(&scores.latent, 2).map_err(|e| ReprError::failed("latent PCA", e))?;
        let embedding = embed.transform(&scores.latent);
        let clusters = latent::cluster(&scores.latent, cluster)
            .map_err(|e| ReprError::failed("clustering", e))?;
        let ranking = ranking(&scores.score, ids);
        Ok(AnomalyResult {
            scores,
            embedding,
            clusters,
            ranking,
        })
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.ranking.len()
    }

    /// True when there are no objects.
    pub fn is_empty(&self) -> bool {
        self.ranking.is_empty()
    }

    /// The `k` most anomalous objects (fewer when there are fewer), most anomalous first.
    pub fn top(&self, k: usize) -> &[usize] {
        &self.ranking[..k.min(self.ranking.len())]
    }

    /// Number of clusters (DBSCAN noise is none).
    pub fn n_clusters(&self) -> usize {
        self.clusters
            .iter()
            .filter(|&&c| c >= 0)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Object counts per cluster label.
    pub fn cluster_sizes(&self) -> BTreeMap<String, usize> {
        cluster_sizes(&self.clusters)
    }

    /// How well the score finds the objects whose truth label `input` calls anomalous, with
    /// `top_k` for the rare fraction among the most anomalous; [`Metrics::Unlabelled`] when
    /// the objects have no labels.
    pub fn metrics(&self, objects: &Objects, input: &InputConfig, top_k: usize) -> Metrics {
        let Some(labels) = &objects.labels else {
            return Metrics::Unlabelled;
        };
        let (score, baseline) = (&self.scores.score, &self.scores.baseline);
        let normal = input.normal_label;
        let rare: Vec<bool> = labels.iter().map(|&l| input.is_anomalous(l)).collect();
        let n_rare = rare.iter().filter(|&&r| r).count();
        let auc = auc_of(score, &rare);
        let baseline_auc = auc_of(baseline, &rare);
        let mut per_class = BTreeMap::new();
        let classes: BTreeSet<i64> = labels
            .iter()
            .copied()
            .filter(|&l| input.is_anomalous(l))
            .collect();
        for c in classes {
            // Each rare class against the normal objects only.
            let keep: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] == c || labels[i] == normal)
                .collect();
            let pos: Vec<bool> = keep.iter().map(|&i| labels[i] == c).collect();
            let s: Vec<f64> = keep.iter().map(|&i| score[i]).collect();
            let b: Vec<f64> = keep.iter().map(|&i| baseline[i]).collect();
            per_class.insert(
                objects.label_name(c),
                ClassMetrics {
                    n: pos.iter().filter(|&&p| p).count(),
                    auc: auc_of(&s, &pos),
                    baseline_auc: auc_of(&b, &pos),
                },
            );
        }
        let k = top_k.min(labels.len());
        let rare_in_top_k = self.ranking[..k].iter().filter(|&&i| rare[i]).count();
        Metrics::Labelled(LabelMetrics {
            n_rare,
            auc,
            baseline_auc,
            auc_margin: match (auc, baseline_auc) {
                (Some(x), Some(y)) => Some(x - y),
                _ => None,
            },
            per_class,
            rare_in_top_k,
            precision_at_top_k: rare_in_top_k as f64 / k.max(1) as f64,
        })
    }
}

/// Object indices by decreasing score, ties by increasing id, so the order is defined.
pub fn ranking(score: &[f64], ids: &[i64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(ids[a].cmp(&ids[b])));
    idx
}

/// Object counts per cluster label.
pub fn cluster_sizes(clusters: &[i64]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in clusters {
        *m.entry(c.to_string()).or_insert(0) += 1;
    }
    m
}

/// ROC AUC of `scores` for the `positive` objects; None when only one class is present.
fn auc_of(scores: &[f64], positive: &[bool]) -> Option<f64> {
    if positive.iter().all(|&p| p) || positive.iter().all(|&p| !p) {
        return None;
    }
    deepsky_core::metrics::roc_curve(scores, positive)
        .ok()
        .map(|r| r.auc)
}

/// The ROC AUCs of one rare class against the normal objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Objects of the class.
    pub n: usize,
    /// AUC of the ranking score.
    #[serde(deserialize_with = "Option::deserialize")]
    pub auc: Option<f64>,
    /// AUC of the PCA baseline.
    #[serde(deserialize_with = "Option::deserialize")]
    pub baseline_auc: Option<f64>,
}

/// How well the score finds the rare objects of a labelled input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    /// Objects whose label counts as anomalous.
    pub n_rare: usize,
    /// ROC AUC of the ranking score (None when every object is rare, or none is).
    #[serde(deserialize_with = "Option::deserialize")]
    pub auc: Option<f64>,
    /// ROC AUC of the PCA baseline.
    #[serde(deserialize_with = "Option::deserialize")]
    pub baseline_auc: Option<f64>,
    /// `auc − baseline_auc`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub auc_margin: Option<f64>,
    /// Per rare class, by label name.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Rare objects among the `top_k` most anomalous.
    pub rare_in_top_k: usize,
    /// `rare_in_top_k / top_k`.
    pub precision_at_top_k: f64,
}

/// The report's metrics: `labels` says whether the input had truth labels; `auc` and
/// `baseline_auc` are always present (null without labels), the other keys only with labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Metrics {
    /// No truth labels.
    Unlabelled,
    /// Truth labels.
    Labelled(LabelMetrics),
}

impl Metrics {
    /// The autoencoder's ROC AUC, when there is one.
    pub fn auc(&self) -> Option<f64> {
        match self {
            Metrics::Unlabelled => None,
            Metrics::Labelled(m) => m.auc,
        }
    }
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    labels: bool,
    #[serde(flatten)]
    rest: &'a T,
}

#[derive(Serialize, Deserialize)]
struct NoLabels {
    #[serde(deserialize_with = "Option::deserialize")]
    auc: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    baseline_auc: Option<f64>,
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Metrics::Unlabelled => Tagged {
                labels: false,
                rest: &NoLabels {
                    auc: None,
                    baseline_auc: None,
                },
            }
            .serialize(s),
            Metrics::Labelled(m) => Tagged {
                labels: true,
                rest: m,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Metrics {
    /// `labels` decides which keys must be present; a missing one is an error naming it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Head {
            labels: bool,
        }
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let value = serde_json::Value::Object(map);
        let head = Head::deserialize(&value).map_err(D::Error::custom)?;
        if head.labels {
            let m = LabelMetrics::deserialize(&value).map_err(D::Error::custom)?;
            Ok(Metrics::Labelled(m))
        } else {
            NoLabels::deserialize(&value).map_err(D::Error::custom)?;
            Ok(Metrics::Unlabelled)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::ScoreName;

    fn scores(score: Vec<f64>, baseline: Vec<f64>) -> AnomalyScores {
        let n = score.len();
        AnomalyScores {
            recon: score.clone(),
            neg_elbo: None,
            latent: Array2::from_shape_fn((n, 2), |(i, j)| ((i * 7 + j * 3) % 5) as f32),
            baseline,
            score,
            score_name: ScoreName::Recon,
        }
    }

    #[test]
    fn ranking_is_by_score_then_id() {
        assert_eq!(
            ranking(&[0.5, 2.0, 0.5, 1.0], &[9, 1, 3, 4]),
            vec![1, 3, 2, 0]
        );
        assert_eq!(
            cluster_sizes(&[1, -1, 1, 0])
                .into_iter()
                .collect::<Vec<_>>(),
            vec![
                ("-1".to_string(), 1),
                ("0".to_string(), 1),
                ("1".to_string(), 2)
            ]
        );
    }

    #[test]
    fn metrics_of_a_labelled_set() {
        // Six objects: labels 0 (normal), 1 and 2 (rare). The score ranks both rare ones
        // first; the baseline ranks them last.
        let objects = Objects {
            rows: Array2::zeros((6, 0)),
            shape: vec![2],
            ids: vec![1, 2, 3, 4, 5, 6],
            labels: Some(vec![0, 1, 0, 0, 2, 0]),
            label_names: vec!["normal".into(), "lens".into()],
            feature_names: vec![],
        };
        let s = scores(
            vec![0.1, 0.9, 0.2, 0.3, 0.8, 0.4],
            vec![0.5, 0.0, 0.6, 0.7, 0.1, 0.8],
        );
        let r = AnomalyResult {
            ranking: ranking(&s.score, &objects.ids),
            embedding: Array2::zeros((6, 2)),
            clusters: vec![0, 1, 0, 0, 1, -1],
            scores: s,
        };
        assert_eq!(r.top(2), &[1, 4]);
        assert_eq!(r.n_clusters(), 2);
        let Metrics::Labelled(m) = r.metrics(&objects, &InputConfig::default(), 3) else {
            panic!("labelled");
        };
        assert_eq!(m.n_rare, 2);
        assert_eq!(m.auc, Some(1.0));
        assert_eq!(m.baseline_auc, Some(0.0));
        assert_eq!(m.auc_margin, Some(1.0));
        assert_eq!(m.rare_in_top_k, 2);
        assert_eq!(m.precision_at_top_k, 2.0 / 3.0);
        assert_eq!(m.per_class["lens"].n, 1);
        assert_eq!(m.per_class["label 2"].auc, Some(1.0));
        let unlabelled = Objects {
            labels: None,
            ..objects
        };
        assert_eq!(
            r.metrics(&unlabelled, &InputConfig::default(), 3),
            Metrics::Unlabelled
        );
    }

    #[test]
    fn metrics_round_trip_and_missing_keys_are_errors() {
        let v = serde_json::to_value(Metrics::Unlabelled).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "labels": false, "auc": null, "baseline_auc": null })
        );
        assert_eq!(
            serde_json::from_value::<Metrics>(v).unwrap(),
            Metrics::Unlabelled
        );
        let m = Metrics::Labelled(LabelMetrics {
            n_rare: 3,
            auc: Some(0.75),
            baseline_auc: None,
            auc_margin: None,
            per_class: BTreeMap::new(),
            rare_in_top_k: 1,
            precision_at_top_k: 0.1,
        });
        let mut v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["labels"], true);
        assert!(v["auc_margin"].is_null());
        assert_eq!(serde_json::from_value::<Metrics>(v.clone()).unwrap(), m);
        v.as_object_mut().unwrap().remove("auc_margin");
        let e = serde_json::from_value::<Metrics>(v).unwrap_err();
        assert!(e.to_string().contains("missing field `auc_margin`"), "{e}");
    }
}
