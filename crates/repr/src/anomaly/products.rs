//! The tables of an anomaly run, as data for the caller to write (the caller adds provenance):
//!
//! - `latent.h5` ([`AnomalyResult::latent_datasets`], [`AnomalyResult::latent_attrs`]):
//!   `/ids`, `/latent` (n × latent), `/embedding` (n × 2, PCA of the latents), `/score`,
//!   `/recon_error`, `/neg_elbo` (VAE), `/baseline_score`, `/cluster`, `/labels` (when
//!   present); [`read_latent`] reads one back (for merging shards).
//! - `latent.parquet` ([`AnomalyResult::latent_table`]): the same per object as columns, `z0` …
//!   for the latent vector.
//! - `anomalies.fits` / `anomalies.csv` ([`AnomalyResult::catalogue`]): the `top_k` highest
//!   scores, ranked, with column descriptions.

use std::path::Path;

use deepsky_io::fits::{ColumnMeta, TableMeta};
use deepsky_io::h5::{AttrValue, H5Reader};
use deepsky_io::NdData;
use ndarray::{Array1, ArrayD};
use polars::prelude::{Column, DataFrame};

use super::{AnomalyResult, AnomalyScores, ScoreName};
use crate::error::{ReprError, Result};
use crate::objects::Objects;

/// The `layout` attribute of `latent.h5`.
pub const LATENT_LAYOUT: &str = "deepsky.anomaly.latent";
/// The `layout_version` attribute of `latent.h5`.
pub const LATENT_LAYOUT_VERSION: i64 = 1;

fn dyn1<T: Clone>(v: &[T]) -> ArrayD<T> {
    Array1::from(v.to_vec()).into_dyn()
}

impl AnomalyResult {
    /// The datasets of `latent.h5`, in the order they are written.
    pub fn latent_datasets(&self, objects: &Objects) -> Vec<(&'static str, NdData)> {
        let s = &self.scores;
        let mut sets = vec![
            ("/ids", NdData::I64(dyn1(&objects.ids))),
            ("/latent", NdData::F32(s.latent.clone().into_dyn())),
            ("/embedding", NdData::F64(self.embedding.clone().into_dyn())),
            ("/score", NdData::F64(dyn1(&s.score))),
            ("/recon_error", NdData::F64(dyn1(&s.recon))),
        ];
        if let Some(e) = &s.neg_elbo {
            sets.push(("/neg_elbo", NdData::F64(dyn1(e))));
        }
        sets.push(("/baseline_score", NdData::F64(dyn1(&s.baseline))));
        sets.push(("/cluster", NdData::I64(dyn1(&self.clusters))));
        if let Some(l) = &objects.labels {
            sets.push(("/labels", NdData::I64(dyn1(l))));
        }
        sets
    }

    /// The root attributes of `latent.h5` that describe its layout and score.
    pub fn latent_attrs(&self) -> Vec<(&'static str, AttrValue)> {
        vec![
            ("layout", AttrValue::Str(LATENT_LAYOUT.into())),
            ("layout_version", AttrValue::Int(LATENT_LAYOUT_VERSION)),
            (
                "score",
                AttrValue::Str(self.scores.score_name.as_str().into()),
            ),
        ]
    }

    /// One row per object: id, label and label name (when labelled), score, recon_error,
    /// neg_elbo (VAE), baseline_score, cluster, embed_x, embed_y, z0 ….
    pub fn latent_table(&self, objects: &Objects) -> Result<DataFrame> {
        let s = &self.scores;
        let mut cols: Vec<Column> = vec![Column::new("id".into(), &objects.ids)];
        if let Some(l) = &objects.labels {
            cols.push(Column::new("label".into(), l));
            let names: Vec<String> = l.iter().map(|&v| objects.label_name(v)).collect();
            cols.push(Column::new("label_name".into(), names));
        }
        cols.push(Column::new("score".into(), &s.score));
        cols.push(Column::new("recon_error".into(), &s.recon));
        if let Some(e) = &s.neg_elbo {
            cols.push(Column::new("neg_elbo".into(), e));
        }
        cols.push(Column::new("baseline_score".into(), &s.baseline));
        cols.push(Column::new("cluster".into(), &self.clusters));
        cols.push(Column::new(
            "embed_x".into(),
            self.embedding.column(0).to_vec(),
        ));
        cols.push(Column::new(
            "embed_y".into(),
            self.embedding.column(1).to_vec(),
        ));
        for j in 0..s.latent.ncols() {
            cols.push(Column::new(
                format!("z{j}").into(),
                s.latent.column(j).to_vec(),
            ));
        }
        DataFrame::new(objects.len(), cols).map_err(|e| ReprError::failed("latent table", e))
    }

    /// The ranked catalogue of the `top_k` most anomalous objects: RANK, ID, SCORE,
    /// BASELINE_SCORE, CLUSTER, LABEL and LABEL_NAME (when labelled), then the input features
    /// (tables; `INPUT_` before a name that clashes), with each column's description.
    pub fn catalogue(&self, objects: &Objects, top_k: usize) -> Result<(DataFrame, TableMeta)> {
        let s = &self.scores;
        let top = self.top(top_k);
        let k = top.len();
        let pick_i = |v: &[i64]| -> Vec<i64> { top.iter().map(|&i| v[i]).collect() };
        let pick_f = |v: &[f64]| -> Vec<f64> { top.iter().map(|&i| v[i]).collect() };
        let mut cat: Vec<Column> = vec![
            Column::new("RANK".into(), (1..=k as i64).collect::<Vec<_>>()),
            Column::new("ID".into(), pick_i(&objects.ids)),
            Column::new("SCORE".into(), pick_f(&s.score)),
            Column::new("BASELINE_SCORE".into(), pick_f(&s.baseline)),
            Column::new("CLUSTER".into(), pick_i(&self.clusters)),
        ];
        if let Some(l) = &objects.labels {
            cat.push(Column::new("LABEL".into(), pick_i(l)));
            let names: Vec<String> = top.iter().map(|&i| objects.label_name(l[i])).collect();
            cat.push(Column::new("LABEL_NAME".into(), names));
        }
        for (j, name) in objects
            .feature_names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j < objects.rows.ncols())
        {
            let v: Vec<f64> = top.iter().map(|&i| objects.rows[[i, j]] as f64).collect();
            let mut col = name.to_uppercase();
            if cat.iter().any(|c| c.name().as_str() == col) {
                col = format!("INPUT_{col}");
            }
            cat.push(Column::new(col.into(), v));
        }
        let catalogue = DataFrame::new(k, cat).map_err(|e| ReprError::failed("catalogue", e))?;
        let mut meta = TableMeta::new();
        let mut describe = |name: &str, text: &str| {
            meta.insert(name.into(), ColumnMeta::new("", text));
        };
        describe(
            "RANK",
            "rank by decreasing anomaly score (1 = most anomalous)",
        );
        describe("ID", "object id from the input");
        describe("SCORE", s.score_name.description());
        describe(
            "BASELINE_SCORE",
            "PCA reconstruction error, same number of components",
        );
        describe("CLUSTER", "latent-space cluster (-1: noise)");
        describe("LABEL", "truth label from the input");
        describe("LABEL_NAME", "name of the truth label");
        Ok((catalogue, meta))
    }
}

/// Ids, labels and scores of the objects in a `latent.h5` written from
/// [`AnomalyResult::latent_datasets`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredObjects {
    /// Object ids.
    pub ids: Vec<i64>,
    /// Truth labels, when the file has them.
    pub labels: Option<Vec<i64>>,
    /// The model's numbers.
    pub scores: AnomalyScores,
}

impl ScoredObjects {
    /// Consecutive blocks of objects (shards) as one set, in the order given: ids and scores
    /// concatenated (see [`AnomalyScores::concat`]); labels kept when every part has them.
    pub fn concat(parts: Vec<ScoredObjects>) -> Result<ScoredObjects> {
        let labels = if parts.iter().all(|p| p.labels.is_some()) {
            Some(
                parts
                    .iter()
                    .flat_map(|p| p.labels.iter().flatten().copied())
                    .collect(),
            )
        } else {
            None
        };
        let ids = parts.iter().flat_map(|p| p.ids.iter().copied()).collect();
        let scores: Vec<AnomalyScores> = parts.into_iter().map(|p| p.scores).collect();
        Ok(ScoredObjects {
            ids,
            labels,
            scores: AnomalyScores::concat(&scores)?,
        })
    }
}

/// Read `latent.h5` back: `latent` is the latent size and `score_name` the ranking score
/// (both from the run's report).
pub fn read_latent(path: &Path, latent: usize, score_name: ScoreName) -> Result<ScoredObjects> {
    let h5 = H5Reader::open(path)?;
    let f64s = |name: &str| -> Result<Vec<f64>> {
        let v = h5.read(name)?.to_f64().ok_or_else(|| {
            ReprError::bad_input(format!("{}: `{name}` is not numeric", path.display()))
        })?;
        Ok(v.iter().copied().collect())
    };
    let i64s = |name: &str| -> Result<Vec<i64>> {
        Ok(f64s(name)?.into_iter().map(|v| v as i64).collect())
    };
    let z = h5.read_f32("/latent")?;
    let n = z.shape()[0];
    let z = z
        .into_shape_with_order((n, latent))
        .map_err(|e| ReprError::bad_input(format!("{}: /latent: {e}", path.display())))?;
    let names: Vec<String> = h5.items()?.into_iter().map(|i| i.path).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    Ok(ScoredObjects {
        ids: i64s("/ids")?,
        labels: if has("/labels") {
            Some(i64s("/labels")?)
        } else {
            None
        },
        scores: AnomalyScores {
            latent: z,
            recon: f64s("/recon_error")?,
            neg_elbo: if has("/neg_elbo") {
                Some(f64s("/neg_elbo")?)
            } else {
                None
            },
            baseline: f64s("/baseline_score")?,
            score: f64s("/score")?,
            score_name,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsky_io::h5::{H5Writer, WriteOptions};
    use ndarray::Array2;

    fn result() -> (Objects, AnomalyResult) {
        let objects = Objects {
            rows: Array2::from_shape_fn((3, 2), |(i, j)| (i * 10 + j) as f32),
            shape: vec![2],
            ids: vec![5, 6, 7],
            labels: Some(vec![0, 1, 0]),
            label_names: vec!["normal".into(), "odd".into()],
            feature_names: vec!["score".into(), "flux".into()],
        };
        let scores = AnomalyScores {
            recon: vec![0.1, 0.3, 0.2],
            neg_elbo: Some(vec![0.15, 0.35, 0.25]),
            latent: Array2::from_shape_fn((3, 2), |(i, j)| (i + j) as f32),
            baseline: vec![1.0, 2.0, 3.0],
            score: vec![0.15, 0.35, 0.25],
            score_name: ScoreName::NegElbo,
        };
        let r = AnomalyResult {
            ranking: super::super::analysis::ranking(&scores.score, &objects.ids),
            scores,
            embedding: Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f64),
            clusters: vec![0, 1, 0],
        };
        (objects, r)
    }

    #[test]
    fn catalogue_ranks_and_renames_clashing_inputs() {
        let (objects, r) = result();
        let (cat, meta) = r.catalogue(&objects, 2).unwrap();
        assert_eq!(cat.height(), 2);
        let names: Vec<&str> = cat.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "RANK",
                "ID",
                "SCORE",
                "BASELINE_SCORE",
                "CLUSTER",
                "LABEL",
                "LABEL_NAME",
                "INPUT_SCORE",
                "FLUX"
            ]
        );
        let ids: Vec<i64> = cat
            .column("ID")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(ids, vec![6, 7]);
        let flux: Vec<f64> = cat
            .column("FLUX")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(flux, vec![11.0, 21.0]);
        assert!(meta["SCORE"]
            .description
            .as_deref()
            .unwrap()
            .starts_with("negative ELBO"));
        let t = r.latent_table(&objects).unwrap();
        assert_eq!(t.width(), 12);
        assert_eq!(t.column("z1").unwrap().f32().unwrap().get(2), Some(3.0));
    }

    #[test]
    fn latent_file_reads_back() {
        let (objects, r) = result();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latent.h5");
        let h5 = H5Writer::create(&path).unwrap();
        for (name, data) in r.latent_datasets(&objects) {
            h5.write(name, &data, &WriteOptions::default()).unwrap();
        }
        h5.finish().unwrap();
        let back = read_latent(&path, 2, ScoreName::NegElbo).unwrap();
        assert_eq!(back.ids, objects.ids);
        assert_eq!(back.labels, objects.labels);
        assert_eq!(back.scores, r.scores);
        assert_eq!(r.latent_attrs()[2].1, AttrValue::Str("neg_elbo".into()));
        let both = ScoredObjects::concat(vec![back.clone(), back]).unwrap();
        assert_eq!(both.ids, vec![5, 6, 7, 5, 6, 7]);
        assert_eq!(both.labels.as_ref().unwrap().len(), 6);
        assert_eq!(both.scores.latent.nrows(), 6);
    }
}
