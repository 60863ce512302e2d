//! The anomaly pipeline's products: metrics, tables (HDF5, Parquet, FITS, CSV) and plots.
//!
//! Output contract (also in the README):
//! - `latent.h5`: `/ids`, `/latent` (n × latent), `/embedding` (n × 2, PCA of the latents),
//!   `/score`, `/recon_error`, `/baseline_score`, `/cluster`, and `/labels` and `/neg_elbo` when
//!   present; root attributes carry provenance.
//! - `latent.parquet`: the same per object as columns (`z0` … for the latent vector).
//! - `anomalies.fits` (HDU `ANOMALIES`) and `anomalies.csv`: the `top_k` highest scores, ranked.
//! - `plots/`: loss, latent_clusters, latent_labels, roc, score_hist, gallery.

use std::collections::BTreeMap;

use deepsky_io::fits::{ColumnMeta, FitsWriter, TableMeta};
use deepsky_io::h5::{AttrValue, H5Writer, WriteOptions};
use deepsky_io::NdData;
use deepsky_nn::train::TrainOutcome;
use deepsky_plot::{
    save_formats, Gallery, Hist1d, HistSample, Interval, LegendPos, Roc, RocCurve, Scatter, Stamp,
};
use deepsky_repr::fit::{Scores, Trained};
use deepsky_runtime::RunError;
use ndarray::{Array1, Array2, Axis};
use polars::prelude::*;
use serde_json::{json, Value};

use super::config::AnomalyConfig;
use super::input::Objects;
use crate::common::{plot_formats, RunFrame};

/// Everything the outputs are made from.
pub struct Analysis<'a> {
    pub objects: &'a Objects,
    /// Normalised inputs and the model: None when merging shards (no gallery then).
    pub normalised: Option<&'a Array2<f32>>,
    pub model: Option<&'a Trained>,
    pub scores: &'a Scores,
    pub score: &'a [f64],
    pub score_name: &'a str,
    pub baseline: &'a [f64],
    pub embedding: &'a Array2<f64>,
    pub clusters: &'a [i64],
    pub outcome: Option<&'a TrainOutcome>,
}

impl Analysis<'_> {
    /// Object indices by decreasing score (ties by increasing id, so the order is defined).
    pub fn ranking(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.score.len()).collect();
        idx.sort_by(|&a, &b| {
            self.score[b]
                .total_cmp(&self.score[a])
                .then(self.objects.ids[a].cmp(&self.objects.ids[b]))
        });
        idx
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::failed(format!("{what}: {e}"))
}

/// Object counts per cluster label.
pub fn cluster_sizes(clusters: &[i64]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in clusters {
        *m.entry(c.to_string()).or_insert(0) += 1;
    }
    m
}

fn auc_of(scores: &[f64], positive: &[bool]) -> Option<f64> {
    if positive.iter().all(|&p| p) || positive.iter().all(|&p| !p) {
        return None;
    }
    deepsky_core::metrics::roc_curve(scores, positive)
        .ok()
        .map(|r| r.auc)
}

/// ROC AUCs when the input has truth labels: `auc` (autoencoder), `baseline_auc` (PCA
/// reconstruction), their difference, per-class AUCs and the rare fraction in the top k.
pub fn metrics(a: &Analysis<'_>, cfg: &AnomalyConfig) -> Result<Value, RunError> {
    let Some(labels) = &a.objects.labels else {
        return Ok(json!({ "auc": null, "baseline_auc": null, "labels": false }));
    };
    let normal = cfg.input.normal_label;
    let rare: Vec<bool> = labels.iter().map(|&l| cfg.input.is_anomalous(l)).collect();
    let n_rare = rare.iter().filter(|&&r| r).count();
    let auc = auc_of(a.score, &rare);
    let baseline_auc = auc_of(a.baseline, &rare);
    let mut per_class = BTreeMap::new();
    let classes: std::collections::BTreeSet<i64> = labels
        .iter()
        .copied()
        .filter(|&l| cfg.input.is_anomalous(l))
        .collect();
    for c in classes {
        let keep: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] == c || labels[i] == normal)
            .collect();
        let pos: Vec<bool> = keep.iter().map(|&i| labels[i] == c).collect();
        let s: Vec<f64> = keep.iter().map(|&i| a.score[i]).collect();
        let b: Vec<f64> = keep.iter().map(|&i| a.baseline[i]).collect();
        per_class.insert(
            a.objects.label_name(c),
            json!({ "n": pos.iter().filter(|&&p| p).count(), "auc": auc_of(&s, &pos), "baseline_auc": auc_of(&b, &pos) }),
        );
    }
    let k = cfg.output.top_k.min(labels.len());
    let rare_in_top = a.ranking()[..k].iter().filter(|&&i| rare[i]).count();
    Ok(json!({
        "labels": true,
        "n_rare": n_rare,
        "auc": auc,
        "baseline_auc": baseline_auc,
        "auc_margin": match (auc, baseline_auc) { (Some(x), Some(y)) => Some(x - y), _ => None },
        "per_class": per_class,
        "rare_in_top_k": rare_in_top,
        "precision_at_top_k": rare_in_top as f64 / k.max(1) as f64,
    }))
}

fn dyn1<T: Clone>(v: &[T]) -> ndarray::ArrayD<T> {
    Array1::from(v.to_vec()).into_dyn()
}

/// Write latent.h5, latent.parquet, anomalies.fits and anomalies.csv.
pub fn write_tables(
    a: &Analysis<'_>,
    cfg: &AnomalyConfig,
    frame: &mut RunFrame,
) -> Result<(), RunError> {
    let n = a.objects.len();
    let out = &frame.out;
    let opts = WriteOptions::default();

    // HDF5.
    let h5 = H5Writer::create(out.path("latent.h5"))?;
    h5.write("/ids", &NdData::I64(dyn1(&a.objects.ids)), &opts)?;
    h5.write(
        "/latent",
        &NdData::F32(a.scores.latent.clone().into_dyn()),
        &opts,
    )?;
    h5.write(
        "/embedding",
        &NdData::F64(a.embedding.clone().into_dyn()),
        &opts,
    )?;
    h5.write("/score", &NdData::F64(dyn1(a.score)), &opts)?;
    h5.write("/recon_error", &NdData::F64(dyn1(&a.scores.recon)), &opts)?;
    if let Some(e) = &a.scores.neg_elbo {
        h5.write("/neg_elbo", &NdData::F64(dyn1(e)), &opts)?;
    }
    h5.write("/baseline_score", &NdData::F64(dyn1(a.baseline)), &opts)?;
    h5.write("/cluster", &NdData::I64(dyn1(a.clusters)), &opts)?;
    if let Some(l) = &a.objects.labels {
        h5.write("/labels", &NdData::I64(dyn1(l)), &opts)?;
    }
    for (k, v) in frame.provenance.hdf5_attrs() {
        h5.set_attr("/", &k, v)?;
    }
    h5.set_attr(
        "/",
        "layout",
        AttrValue::Str("deepsky.anomaly.latent".into()),
    )?;
    h5.set_attr("/", "layout_version", AttrValue::Int(1))?;
    h5.set_attr("/", "score", AttrValue::Str(a.score_name.into()))?;
    h5.finish()?;
    frame
        .provenance
        .output("latent.h5", "latent vectors, scores, clusters per object");

    // Per-object table.
    let mut cols: Vec<Column> = vec![Column::new("id".into(), &a.objects.ids)];
    if let Some(l) = &a.objects.labels {
        cols.push(Column::new("label".into(), l));
        let names: Vec<String> = l.iter().map(|&v| a.objects.label_name(v)).collect();
        cols.push(Column::new("label_name".into(), names));
    }
    cols.push(Column::new("score".into(), a.score));
    cols.push(Column::new("recon_error".into(), &a.scores.recon));
    if let Some(e) = &a.scores.neg_elbo {
        cols.push(Column::new("neg_elbo".into(), e));
    }
    cols.push(Column::new("baseline_score".into(), a.baseline));
    cols.push(Column::new("cluster".into(), a.clusters));
    cols.push(Column::new(
        "embed_x".into(),
        a.embedding.column(0).to_vec(),
    ));
    cols.push(Column::new(
        "embed_y".into(),
        a.embedding.column(1).to_vec(),
    ));
    for j in 0..a.scores.latent.ncols() {
        cols.push(Column::new(
            format!("z{j}").into(),
            a.scores.latent.column(j).to_vec(),
        ));
    }
    let per_object = DataFrame::new(n, cols).map_err(|e| fail("latent table", e))?;
    deepsky_io::tabular::write_parquet(out.path("latent.parquet"), &per_object)?;
    frame.provenance.output(
        "latent.parquet",
        "latent vectors, scores, clusters per object",
    );

    // Ranked catalogue of the top k.
    let k = cfg.output.top_k.min(n);
    let order = a.ranking();
    let top: Vec<usize> = order[..k].to_vec();
    let pick_i = |v: &[i64]| -> Vec<i64> { top.iter().map(|&i| v[i]).collect() };
    let pick_f = |v: &[f64]| -> Vec<f64> { top.iter().map(|&i| v[i]).collect() };
    let mut cat: Vec<Column> = vec![
        Column::new("RANK".into(), (1..=k as i64).collect::<Vec<_>>()),
        Column::new("ID".into(), pick_i(&a.objects.ids)),
        Column::new("SCORE".into(), pick_f(a.score)),
        Column::new("BASELINE_SCORE".into(), pick_f(a.baseline)),
        Column::new("CLUSTER".into(), pick_i(a.clusters)),
    ];
    if let Some(l) = &a.objects.labels {
        cat.push(Column::new("LABEL".into(), pick_i(l)));
        let names: Vec<String> = top.iter().map(|&i| a.objects.label_name(l[i])).collect();
        cat.push(Column::new("LABEL_NAME".into(), names));
    }
    for (j, name) in a
        .objects
        .feature_names
        .iter()
        .enumerate()
        .filter(|(j, _)| *j < a.objects.rows.ncols())
    {
        let v: Vec<f64> = top.iter().map(|&i| a.objects.rows[[i, j]] as f64).collect();
        // An input column may share a name with one of ours (e.g. a `score` column).
        let mut col = name.to_uppercase();
        if cat.iter().any(|c| c.name().as_str() == col) {
            col = format!("INPUT_{col}");
        }
        cat.push(Column::new(col.into(), v));
    }
    let catalogue = DataFrame::new(k, cat).map_err(|e| fail("catalogue", e))?;
    let mut meta = TableMeta::new();
    meta.insert(
        "RANK".into(),
        ColumnMeta::new("", "rank by decreasing anomaly score (1 = most anomalous)"),
    );
    meta.insert("ID".into(), ColumnMeta::new("", "object id from the input"));
    meta.insert(
        "SCORE".into(),
        ColumnMeta::new(
            "",
            if a.score_name == "neg_elbo" {
                "negative ELBO per feature (normalised units)"
            } else {
                "mean squared reconstruction error (normalised units)"
            },
        ),
    );
    meta.insert(
        "BASELINE_SCORE".into(),
        ColumnMeta::new("", "PCA reconstruction error, same number of components"),
    );
    meta.insert(
        "CLUSTER".into(),
        ColumnMeta::new("", "latent-space cluster (-1: noise)"),
    );
    meta.insert(
        "LABEL".into(),
        ColumnMeta::new("", "truth label from the input"),
    );
    meta.insert(
        "LABEL_NAME".into(),
        ColumnMeta::new("", "name of the truth label"),
    );
    let cards = frame.provenance.fits_cards();
    let mut fits = FitsWriter::create(out.path("anomalies.fits"))?;
    fits.write_primary_header(&cards)?;
    fits.write_table("ANOMALIES", &catalogue, &meta, &[])?;
    fits.finish()?;
    frame.provenance.output(
        "anomalies.fits",
        "ranked catalogue of the most anomalous objects",
    );
    deepsky_io::tabular::write_csv(out.path("anomalies.csv"), &catalogue)?;
    frame.provenance.output(
        "anomalies.csv",
        "ranked catalogue of the most anomalous objects",
    );
    Ok(())
}

fn stamp_2d(row: ndarray::ArrayView1<f32>, h: usize, w: usize) -> Array2<f32> {
    row.to_owned()
        .into_shape_with_order((h, w))
        .expect("stamp shape")
}

/// Write the plots; returns their paths relative to the output directory.
pub fn write_plots(
    a: &Analysis<'_>,
    cfg: &AnomalyConfig,
    _metrics: &Value,
    frame: &mut RunFrame,
) -> Result<Vec<String>, RunError> {
    let formats = plot_formats(&cfg.output.plots)?;
    let dir = frame.out.path("plots");
    std::fs::create_dir_all(&dir).map_err(|e| fail(&dir.display().to_string(), e))?;
    let mut written = vec![];
    let mut save =
        |name: &str, res: deepsky_plot::Result<Vec<std::path::PathBuf>>| -> Result<(), RunError> {
            let paths = res.map_err(|e| fail("plot", e))?;
            for p in paths {
                if let Ok(rel) = p.strip_prefix(frame.out.root()) {
                    written.push(rel.display().to_string());
                }
            }
            let _ = name;
            Ok(())
        };

    if let Some(o) = a.outcome {
        let plot = crate::common::loss_curves(&o.state.history);
        save("loss", save_formats(&plot, dir.join("loss"), &formats))?;
    }

    let ex: Vec<f64> = a.embedding.column(0).to_vec();
    let ey: Vec<f64> = a.embedding.column(1).to_vec();
    let mut cluster_ids: Vec<i64> = a.clusters.to_vec();
    cluster_ids.sort_unstable();
    cluster_ids.dedup();
    let by_cluster = Scatter {
        x_label: "Latent PC 1".into(),
        y_label: "Latent PC 2".into(),
        x: ex.clone(),
        y: ey.clone(),
        category: a
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
    };
    save(
        "latent_clusters",
        save_formats(&by_cluster, dir.join("latent_clusters"), &formats),
    )?;

    if let Some(labels) = &a.objects.labels {
        let mut classes: Vec<i64> = labels.clone();
        classes.sort_unstable();
        classes.dedup();
        // Common objects first, rare ones on top where they can be seen.
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| (cfg.input.is_anomalous(labels[i]), i));
        let by_label = Scatter {
            x_label: "Latent PC 1".into(),
            y_label: "Latent PC 2".into(),
            x: order.iter().map(|&i| ex[i]).collect(),
            y: order.iter().map(|&i| ey[i]).collect(),
            category: order
                .iter()
                .map(|&i| classes.binary_search(&labels[i]).unwrap_or(0))
                .collect(),
            category_names: classes.iter().map(|&c| a.objects.label_name(c)).collect(),
            marker_pt: Some(1.5),
            opacity: 0.8,
            ..Default::default()
        };
        save(
            "latent_labels",
            save_formats(&by_label, dir.join("latent_labels"), &formats),
        )?;

        let rare: Vec<bool> = labels.iter().map(|&l| cfg.input.is_anomalous(l)).collect();
        if rare.iter().any(|&r| r) && rare.iter().any(|&r| !r) {
            let ae_name = if a.scores.neg_elbo.is_some() {
                "VAE"
            } else {
                "autoencoder"
            };
            let roc = Roc {
                curves: vec![
                    RocCurve::from_scores(ae_name, a.score, &rare).map_err(|e| fail("ROC", e))?,
                    RocCurve::from_scores("PCA baseline", a.baseline, &rare)
                        .map_err(|e| fail("ROC", e))?,
                ],
                ..Default::default()
            };
            save("roc", save_formats(&roc, dir.join("roc"), &formats))?;
        }

        let finite: Vec<f64> = a
            .score
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        if !finite.is_empty() {
            let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let edges = deepsky_plot::log_edges(lo * 0.9, hi * 1.1, 40);
            let samples = classes
                .iter()
                .map(|&c| {
                    let v: Vec<f64> = (0..labels.len())
                        .filter(|&i| labels[i] == c)
                        .map(|i| a.score[i].max(lo))
                        .collect();
                    HistSample::values(a.objects.label_name(c), v)
                })
                .collect();
            let hist = Hist1d {
                x_label: "Anomaly score".into(),
                edges,
                samples,
                log_x: true,
                log_y: true,
                ..Default::default()
            };
            save(
                "score_hist",
                save_formats(&hist, dir.join("score_hist"), &formats),
            )?;
        }
    }

    // Gallery of the most anomalous stamps: data, reconstruction, residual (normalised units).
    if let (Some(model), Some(normalised), true) = (
        a.model,
        a.normalised,
        a.objects.shape.len() == 3 && cfg.output.gallery > 0,
    ) {
        let (h, w) = (a.objects.shape[1], a.objects.shape[2]);
        let plane = h * w;
        let top: Vec<usize> = a.ranking().into_iter().take(cfg.output.gallery).collect();
        let rows = normalised.select(Axis(0), &top);
        let recon = model
            .reconstruct_rows(&rows)
            .map_err(|e| fail("gallery", e))?;
        let mut stamps = vec![];
        for (k, &i) in top.iter().enumerate() {
            // First channel only: a gallery is for the eye.
            let d = stamp_2d(rows.row(k).slice(ndarray::s![..plane]), h, w);
            let r = stamp_2d(recon.row(k).slice(ndarray::s![..plane]), h, w);
            let res = &d - &r;
            let tag = match &a.objects.labels {
                Some(l) => format!("#{} {}", k + 1, a.objects.label_name(l[i])),
                None => format!("#{} id {}", k + 1, a.objects.ids[i]),
            };
            stamps.push(Stamp::new(d, tag));
            stamps.push(Stamp::new(r, "recon"));
            stamps.push(Stamp::new(res, "residual"));
        }
        let gallery = Gallery {
            stamps,
            columns: 6,
            interval: Interval::Percentile(99.5),
            ..Default::default()
        };
        save(
            "gallery",
            save_formats(&gallery, dir.join("gallery"), &formats),
        )?;
    }
    Ok(written)
}
