//! The figures of an anomaly run, as deepsky-plot values for the caller to save: the latent
//! embedding coloured by cluster and by truth label, the ROC curves of the autoencoder and the
//! PCA baseline, the score histogram per label, and a gallery of the most anomalous stamps
//! with their reconstructions.

use deepsky_plot::{
    Gallery, Hist1d, HistSample, Interval, LegendPos, Roc, RocCurve, Scatter, Stamp,
};
use ndarray::{Array2, ArrayView1};

use super::{AnomalyModel, AnomalyResult};
use crate::error::{ReprError, Result};
use crate::objects::{InputConfig, Objects};

/// The figures that need no model, each None where it does not apply (no labels; only one
/// class; no positive score).
pub struct AnomalyPlots {
    /// Latent embedding coloured by cluster.
    pub latent_clusters: Scatter,
    /// Latent embedding coloured by truth label.
    pub latent_labels: Option<Scatter>,
    /// ROC curves of the ranking score and the PCA baseline.
    pub roc: Option<Roc>,
    /// Histogram of the score per truth label.
    pub score_hist: Option<Hist1d>,
}

impl AnomalyPlots {
    /// The figures of `result` for `objects`; `input` says which labels are anomalous.
    pub fn new(result: &AnomalyResult, objects: &Objects, input: &InputConfig) -> Result<Self> {
        let (latent_labels, roc, score_hist) = match &objects.labels {
            Some(labels) => (
                Some(latent_labels(result, objects, labels, input)),
                roc(result, labels, input)?,
                score_hist(result, objects, labels),
            ),
            None => (None, None, None),
        };
        Ok(AnomalyPlots {
            latent_clusters: latent_clusters(result),
            latent_labels,
            roc,
            score_hist,
        })
    }
}

fn latent_clusters(r: &AnomalyResult) -> Scatter {
    let mut cluster_ids: Vec<i64> = r.clusters.to_vec();
    cluster_ids.sort_unstable();
    cluster_ids.dedup();
    Scatter {
        x_label: "Latent PC 1".into(),
        y_label: "Latent PC 2".into(),
        x: r.embedding.column(0).to_vec(),
        y: r.embedding.column(1).to_vec(),
        category: r
            .clusters
            .iter()
            .map(|c| cluster_ids.binary_search(c).unwrap_or(0))
            .collect(),
        category_names: cluster_ids
            .iter()
            .map(|c| {
                if *c < 0 {
                    "noise".into()
                } else {
                    format!("cluster {c}")
                }
            })
            .collect(),
        marker_pt: Some(1.5),
        opacity: 0.7,
        legend: LegendPos::Best,
        ..Default::default()
    }
}

fn latent_labels(
    r: &AnomalyResult,
    objects: &Objects,
    labels: &[i64],
    input: &InputConfig,
) -> Scatter {
    let (ex, ey) = (r.embedding.column(0), r.embedding.column(1));
    let classes = sorted_classes(labels);
    // Common objects first, rare ones on top where they can be seen.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (input.is_anomalous(labels[i]), i));
    Scatter {
        x_label: "Latent PC 1".into(),
        y_label: "Latent PC 2".into(),
        x: order.iter().map(|&i| ex[i]).collect(),
        y: order.iter().map(|&i| ey[i]).collect(),
        category: order
            .iter()
            .map(|&i| classes.binary_search(&labels[i]).unwrap_or(0))
            .collect(),
        category_names: classes.iter().map(|&c| objects.label_name(c)).collect(),
        marker_pt: Some(1.5),
        opacity: 0.8,
        ..Default::default()
    }
}

fn roc(r: &AnomalyResult, labels: &[i64], input: &InputConfig) -> Result<Option<Roc>> {
    let rare: Vec<bool> = labels.iter().map(|&l| input.is_anomalous(l)).collect();
    if !(rare.iter().any(|&r| r) && rare.iter().any(|&r| !r)) {
        return Ok(None);
    }
    let s = &r.scores;
    let ae_name = if s.neg_elbo.is_some() {
        "VAE"
    } else {
        "autoencoder"
    };
    let curve = |name: &str, v: &[f64]| {
        RocCurve::from_scores(name, v, &rare).map_err(|e| ReprError::failed("ROC", e))
    };
    Ok(Some(Roc {
        curves: vec![
            curve(ae_name, &s.score)?,
            curve("PCA baseline", &s.baseline)?,
        ],
        ..Default::default()
    }))
}

fn score_hist(r: &AnomalyResult, objects: &Objects, labels: &[i64]) -> Option<Hist1d> {
    let score = &r.scores.score;
    let finite: Vec<f64> = score
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if finite.is_empty() {
        return None;
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let edges = deepsky_plot::log_edges(lo * 0.9, hi * 1.1, 40);
    let samples = sorted_classes(labels)
        .iter()
        .map(|&c| {
            let v: Vec<f64> = (0..labels.len())
                .filter(|&i| labels[i] == c)
                .map(|i| score[i].max(lo))
                .collect();
            HistSample::values(objects.label_name(c), v)
        })
        .collect();
    Some(Hist1d {
        x_label: "Anomaly score".into(),
        edges,
        samples,
        log_x: true,
        log_y: true,
        ..Default::default()
    })
}

fn sorted_classes(labels: &[i64]) -> Vec<i64> {
    let mut classes = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    classes
}

/// The `n` most anomalous stamps in normalised units, each with its reconstruction and the
/// residual (first channel only: a gallery is for the eye); None for tables or `n == 0`.
pub fn gallery(
    model: &AnomalyModel,
    objects: &Objects,
    result: &AnomalyResult,
    n: usize,
) -> Result<Option<Gallery>> {
    if objects.shape.len() != 3 || n == 0 {
        return Ok(None);
    }
    let (h, w) = (objects.shape[1], objects.shape[2]);
    let top = result.top(n);
    let (rows, recon) = model.reconstruct(objects, top)?;
    let mut stamps = vec![];
    for (k, &i) in top.iter().enumerate() {
        let d = stamp_2d(rows.row(k), h, w);
        let r = stamp_2d(recon.row(k), h, w);
        let res = &d - &r;
        let tag = match &objects.labels {
            Some(l) => format!("#{} {}", k + 1, objects.label_name(l[i])),
            None => format!("#{} id {}", k + 1, objects.ids[i]),
        };
        stamps.push(Stamp::new(d, tag));
        stamps.push(Stamp::new(r, "recon"));
        stamps.push(Stamp::new(res, "residual"));
    }
    Ok(Some(Gallery {
        stamps,
        columns: 6,
        interval: Interval::Percentile(99.5),
        ..Default::default()
    }))
}

/// The first `h × w` values of a row as an image.
fn stamp_2d(row: ArrayView1<f32>, h: usize, w: usize) -> Array2<f32> {
    row.slice(ndarray::s![..h * w])
        .to_owned()
        .into_shape_with_order((h, w))
        .expect("stamp shape")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::{AnomalyScores, ScoreName};

    #[test]
    fn figures_follow_the_labels() {
        let objects = Objects {
            rows: Array2::zeros((4, 0)),
            shape: vec![3],
            ids: vec![1, 2, 3, 4],
            labels: Some(vec![1, 0, 0, 0]),
            label_names: vec!["normal".into(), "rare".into()],
            feature_names: vec![],
        };
        let r = AnomalyResult {
            scores: AnomalyScores {
                recon: vec![4.0, 1.0, 2.0, 0.0],
                neg_elbo: None,
                latent: Array2::zeros((4, 2)),
                baseline: vec![1.0, 2.0, 3.0, 4.0],
                score: vec![4.0, 1.0, 2.0, 0.0],
                score_name: ScoreName::Recon,
            },
            embedding: Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f64),
            clusters: vec![1, -1, 1, 0],
            ranking: vec![0, 2, 1, 3],
        };
        let p = AnomalyPlots::new(&r, &objects, &InputConfig::default()).unwrap();
        assert_eq!(
            p.latent_clusters.category_names,
            ["noise", "cluster 0", "cluster 1"]
        );
        assert_eq!(p.latent_clusters.category, vec![2, 0, 2, 1]);
        // The rare object is drawn last.
        let by_label = p.latent_labels.unwrap();
        assert_eq!(by_label.x, vec![2.0, 4.0, 6.0, 0.0]);
        assert_eq!(by_label.category_names, ["normal", "rare"]);
        let roc = p.roc.unwrap();
        assert_eq!(roc.curves.len(), 2);
        assert_eq!(roc.curves[0].label, "autoencoder");
        // The zero score is left out of the range and drawn at its lower end.
        let hist = p.score_hist.unwrap();
        assert_eq!(hist.samples.len(), 2);
        assert!((hist.edges[0] - 0.9).abs() < 1e-12);
        let unlabelled = Objects {
            labels: None,
            ..objects
        };
        let q = AnomalyPlots::new(&r, &unlabelled, &InputConfig::default()).unwrap();
        assert!(q.latent_labels.is_none() && q.roc.is_none() && q.score_hist.is_none());
    }
}
