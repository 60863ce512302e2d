//! Latent-space analysis: PCA (also the reconstruction baseline the autoencoder must beat) and
//! clustering with linfa (KMeans, Gaussian mixture, DBSCAN).
//!
//! PCA: linfa-reduction's `Pca` estimates the SVD by LOBPCG, which panicked ("NaN values in
//! array") on an 8-dimensional latent space of 1000 objects. Here the covariance's leading
//! eigenvectors come from linfa-linalg's dense symmetric eigensolver for up to 256 features,
//! and from seeded subspace iteration (randomised SVD with oversampling, then the dense solver
//! on the small projected matrix) above that — the dense solver alone took 160 s for the
//! 1024 pixels of a 32×32 stamp.

use deepsky_core::config::{ensure, ConfigError, Validate};
use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{Dbscan, GaussianMixtureModel, KMeans};
use linfa_linalg::eigh::{EigSort, Eigh};
use ndarray::{Array1, Array2, Axis};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Errors from linfa, as text (they are rare and not actionable beyond the message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LatentError(pub String);

fn err(e: impl std::fmt::Display) -> LatentError {
    LatentError(e.to_string())
}

fn to_f64(x: &Array2<f32>) -> Array2<f64> {
    x.mapv(f64::from)
}

/// A fitted PCA: the mean and the leading principal axes.
#[derive(Debug, Clone)]
pub struct PcaModel {
    mean: Array1<f64>,
    /// (components, features), rows of unit length, by decreasing variance.
    components: Array2<f64>,
    explained_ratio: Vec<f64>,
}

impl PcaModel {
    /// Fit `components` principal components on `rows` (one example per row).
    pub fn fit(rows: &Array2<f32>, components: usize) -> Result<PcaModel, LatentError> {
        let (n, d) = rows.dim();
        if n < 2 || d == 0 {
            return Err(LatentError(format!(
                "PCA needs at least 2 rows and 1 column, got {n}x{d}"
            )));
        }
        if rows.iter().any(|v| !v.is_finite()) {
            return Err(LatentError("PCA input holds NaN or infinite values".into()));
        }
        let k = components.clamp(1, d);
        let x = to_f64(rows);
        let mean = x.mean_axis(Axis(0)).expect("n >= 2");
        let xc = &x - &mean;
        let total: f64 = xc.iter().map(|v| v * v).sum::<f64>() / (n as f64 - 1.0);
        let total = total.max(f64::MIN_POSITIVE);
        let (vals, vecs) = leading_eigenvectors(&xc, k)?;
        let mut comps = vecs.t().to_owned();
        // A deterministic sign: the largest |loading| of each axis is positive.
        for mut row in comps.rows_mut() {
            let big = row
                .iter()
                .copied()
                .fold(0f64, |a, v| if v.abs() > a.abs() { v } else { a });
            if big < 0.0 {
                row.mapv_inplace(|v| -v);
            }
        }
        Ok(PcaModel {
            mean,
            components: comps,
            explained_ratio: vals.iter().take(k).map(|v| v.max(0.0) / total).collect(),
        })
    }

    /// Project rows onto the components, `(n, k)`.
    pub fn transform(&self, rows: &Array2<f32>) -> Array2<f64> {
        (to_f64(rows) - &self.mean).dot(&self.components.t())
    }

    /// Mean squared error of reconstructing each row from its projection.
    pub fn reconstruction_error(&self, rows: &Array2<f32>) -> Vec<f64> {
        let x = to_f64(rows);
        let z = (&x - &self.mean).dot(&self.components.t());
        let xr = z.dot(&self.components) + &self.mean;
        (&x - &xr)
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v * v).sum::<f64>() / r.len().max(1) as f64)
            .collect()
    }

    /// Fraction of the total variance each component explains.
    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.explained_ratio
    }

    /// Save as JSON (mean, components, explained variance), atomically.
    pub fn save(&self, path: &std::path::Path) -> Result<(), LatentError> {
        let stored = StoredPca {
            mean: self.mean.to_vec(),
            components: self
                .components
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect(),
            explained_ratio: self.explained_ratio.clone(),
        };
        let text = serde_json::to_string(&stored).map_err(err)?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| LatentError(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| LatentError(format!("{}: {e}", path.display())))
    }

    /// Load what [`PcaModel::save`] wrote.
    pub fn load(path: &std::path::Path) -> Result<PcaModel, LatentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LatentError(format!("{}: {e}", path.display())))?;
        let s: StoredPca = serde_json::from_str(&text)
            .map_err(|e| LatentError(format!("{}: not a saved PCA: {e}", path.display())))?;
        let k = s.components.len();
        let d = s.mean.len();
        if s.components.iter().any(|r| r.len() != d) {
            return Err(LatentError(format!(
                "{}: components do not match the mean's length {d}",
                path.display()
            )));
        }
        Ok(PcaModel {
            mean: Array1::from(s.mean),
            components: Array2::from_shape_vec(
                (k, d),
                s.components.into_iter().flatten().collect(),
            )
            .expect("checked"),
            explained_ratio: s.explained_ratio,
        })
    }

    /// Number of input features.
    pub fn features(&self) -> usize {
        self.mean.len()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredPca {
    mean: Vec<f64>,
    components: Vec<Vec<f64>>,
    explained_ratio: Vec<f64>,
}

/// The `k` largest eigenvalues of the covariance of the centred rows `xc` and their
/// eigenvectors as columns `(d, k)`.
fn leading_eigenvectors(
    xc: &Array2<f64>,
    k: usize,
) -> Result<(Vec<f64>, Array2<f64>), LatentError> {
    let (n, d) = xc.dim();
    let scale = 1.0 / (n as f64 - 1.0);
    if d <= 256 {
        let cov = xc.t().dot(xc) * scale;
        let (vals, vecs) = cov.eigh().map_err(err)?.sort_eig_desc();
        return Ok((
            vals.iter().take(k).copied().collect(),
            vecs.slice(ndarray::s![.., ..k]).to_owned(),
        ));
    }
    // Subspace iteration on C = Xcᵀ Xc / (n-1), never forming C: each step costs O(n·d·m).
    let m = (k + 10).min(d);
    let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(0x5ca1ab1e);
    let mut q = Array2::from_shape_simple_fn((d, m), || {
        use rand_xoshiro::rand_core::RngCore;
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    });
    orthonormalise(&mut q);
    for _ in 0..40 {
        q = xc.t().dot(&xc.dot(&q));
        orthonormalise(&mut q);
    }
    let p = xc.dot(&q);
    let small = p.t().dot(&p) * scale;
    let (vals, w) = small.eigh().map_err(err)?.sort_eig_desc();
    let vecs = q.dot(&w.slice(ndarray::s![.., ..k]));
    Ok((vals.iter().take(k).copied().collect(), vecs))
}

/// Modified Gram–Schmidt on the columns (twice, for numerical orthogonality).
fn orthonormalise(q: &mut Array2<f64>) {
    for _ in 0..2 {
        for j in 0..q.ncols() {
            for i in 0..j {
                let dot = q.column(i).dot(&q.column(j));
                let ci = q.column(i).to_owned();
                q.column_mut(j).scaled_add(-dot, &ci);
            }
            let norm = q.column(j).dot(&q.column(j)).sqrt();
            if norm > 0.0 {
                q.column_mut(j).mapv_inplace(|v| v / norm);
            }
        }
    }
}

/// Clustering algorithm (the `[cluster]` section's `method`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMethod {
    /// KMeans with k-means++ initialisation, best of several runs.
    Kmeans,
    /// Gaussian mixture fitted by EM.
    Gmm,
    /// Density-based clustering; points in no dense region are noise (label −1).
    Dbscan,
}

/// The `[cluster]` section.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `kmeans`, `gmm` or `dbscan`.
    pub method: ClusterMethod,
    /// Number of clusters (kmeans, gmm).
    pub k: usize,
    /// Neighbourhood radius in standardised latent units (dbscan).
    pub eps: f64,
    /// Minimum neighbours of a core point (dbscan).
    pub min_points: usize,
    /// Seed of the initialisation.
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            method: ClusterMethod::Kmeans,
            k: 4,
            eps: 0.5,
            min_points: 5,
            seed: 1,
        }
    }
}

impl Validate for ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.k >= 1, "k", "must be at least 1")?;
        ensure(self.eps > 0.0, "eps", "must be positive")
    }
}

/// Cluster label per row (−1 for DBSCAN noise). Latent vectors are standardised first so that
/// no single latent dimension dominates the distances.
pub fn cluster(latent: &Array2<f32>, cfg: &ClusterConfig) -> Result<Vec<i64>, LatentError> {
    let mut x = to_f64(latent);
    for mut col in x.columns_mut() {
        let m = col.mean().unwrap_or(0.0);
        let s = col.std(0.0);
        col.mapv_inplace(|v| if s > 0.0 { (v - m) / s } else { 0.0 });
    }
    let rng = Xoshiro256Plus::seed_from_u64(cfg.seed);
    match cfg.method {
        ClusterMethod::Kmeans => {
            let ds = DatasetBase::from(x.clone());
            let model = KMeans::params_with_rng(cfg.k, rng)
                .n_runs(5)
                .max_n_iterations(300)
                .tolerance(1e-6)
                .fit(&ds)
                .map_err(err)?;
            let labels: Array1<usize> = model.predict(&x);
            Ok(labels.iter().map(|&l| l as i64).collect())
        }
        ClusterMethod::Gmm => {
            let ds = DatasetBase::from(x.clone());
            let model = GaussianMixtureModel::params_with_rng(cfg.k, rng)
                .n_runs(3)
                .max_n_iterations(300)
                .tolerance(1e-5)
                .fit(&ds)
                .map_err(err)?;
            let labels: Array1<usize> = model.predict(&x);
            Ok(labels.iter().map(|&l| l as i64).collect())
        }
        ClusterMethod::Dbscan => {
            let labels = Dbscan::params(cfg.min_points)
                .tolerance(cfg.eps)
                .transform(&x)
                .map_err(err)?;
            Ok(labels
                .iter()
                .map(|l| l.map(|v| v as i64).unwrap_or(-1))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_plane_and_reconstructs_it() {
        // Points on a tilted plane in 3-D plus one outlier off it.
        let mut x = Array2::<f32>::zeros((201, 3));
        for i in 0..200 {
            let (a, b) = ((i % 20) as f32 - 10.0, (i / 20) as f32 - 5.0);
            x.row_mut(i)
                .assign(&ndarray::arr1(&[a, b, 0.5 * a - 0.25 * b]));
        }
        x.row_mut(200).assign(&ndarray::arr1(&[0.0, 0.0, 5.0]));
        let pca = PcaModel::fit(&x, 2).unwrap();
        let r = pca.explained_variance_ratio();
        assert!(r[0] + r[1] > 0.99, "{r:?}");
        let e = pca.reconstruction_error(&x);
        let worst = e
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(worst, 200);
        assert!(e[..200].iter().all(|&v| v < 0.05));
        assert_eq!(pca.transform(&x).dim(), (201, 2));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pca.json");
        pca.save(&p).unwrap();
        assert_eq!(PcaModel::load(&p).unwrap().reconstruction_error(&x), e);
    }

    #[test]
    fn subspace_iteration_agrees_with_dense_solver() {
        // 300 features (the iterative path) whose variance lives mostly in 3 directions.
        let x = Array2::from_shape_fn((400, 300), |(i, j)| {
            let (a, b, c) = (
                ((i * 7) % 13) as f32 - 6.0,
                ((i * 5) % 11) as f32 - 5.0,
                ((i * 3) % 7) as f32 - 3.0,
            );
            let noise = (((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5) * 0.1;
            a * ((j as f32) * 0.01).sin()
                + b * ((j as f32) * 0.02).cos()
                + c * (j % 3) as f32
                + noise
        });
        let it = PcaModel::fit(&x, 3).unwrap();
        let xc = to_f64(&x) - &to_f64(&x).mean_axis(Axis(0)).unwrap();
        let cov = xc.t().dot(&xc) / 399.0;
        let (vals, vecs) = cov.eigh().unwrap().sort_eig_desc();
        for c in 0..3 {
            let dot = it.components.row(c).dot(&vecs.column(c)).abs();
            assert!(dot > 0.999, "component {c}: |cos| {dot}");
        }
        let total: f64 = vals.iter().sum();
        assert!((it.explained_variance_ratio()[0] - vals[0] / total).abs() < 1e-6);
    }

    #[test]
    fn kmeans_and_gmm_separate_two_blobs() {
        let x = Array2::from_shape_fn((100, 2), |(i, j)| {
            if i < 50 {
                (i % 7) as f32 * 0.01 + j as f32 * 0.0
            } else {
                5.0 + (i % 5) as f32 * 0.01
            }
        });
        for method in [ClusterMethod::Kmeans, ClusterMethod::Gmm] {
            let l = cluster(
                &x,
                &ClusterConfig {
                    method,
                    k: 2,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(
                l[..50].iter().all(|&v| v == l[0])
                    && l[50..].iter().all(|&v| v == l[50])
                    && l[0] != l[50],
                "{method:?}"
            );
        }
        let l = cluster(
            &x,
            &ClusterConfig {
                method: ClusterMethod::Dbscan,
                eps: 0.3,
                min_points: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(l[0], l[99]);
    }
}
