//! The anomaly pipeline's configuration: `[input]`, `[model]`, `[train]`, `[cluster]`,
//! `[output]`. Every key has a default; `deepsky anomaly --dump-config` prints them all.

use std::path::PathBuf;

use deepsky_nn::train::TrainConfig;
use deepsky_repr::latent::ClusterConfig;
use deepsky_repr::model::ModelConfig;
use deepsky_repr::normalise::NormaliseKind;
use deepsky_runtime::config::{ensure, ConfigError, Validate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the objects come from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// An HDF5 dataset of stamps, `(n, h, w)` or `(n, c, h, w)` (e.g. `deepsky simulate cutouts`).
    Hdf5Stamps,
    /// Stamps cut from a FITS image around the positions of a catalogue.
    FitsStamps,
    /// Numeric columns of a table: FITS binary table, HDF5 compound dataset or Parquet.
    Table,
}

/// `[input]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// `hdf5_stamps`, `fits_stamps` or `table`.
    pub kind: InputKind,
    /// The HDF5 file of stamps, the FITS image, or the table file.
    pub path: PathBuf,
    /// hdf5_stamps: dataset of stamps; table in HDF5: the compound dataset.
    pub dataset: String,
    /// hdf5_stamps: dataset of object ids (empty: row numbers from 1).
    pub ids: String,
    /// hdf5_stamps: dataset of integer truth labels; table/fits_stamps: label column (empty: none).
    pub labels: String,
    /// Names of the labels 0, 1, 2, … for plots and catalogues.
    pub label_names: Vec<String>,
    /// The label of ordinary objects; every other label counts as anomalous in the ROC unless
    /// `anomalous_labels` says which do.
    pub normal_label: i64,
    /// Labels that count as anomalous in the ROC (empty: every label but `normal_label`).
    pub anomalous_labels: Vec<i64>,
    /// FITS HDU of the image or table (index or EXTNAME; empty: the first with data).
    pub hdu: String,
    /// fits_stamps: catalogue of positions (FITS table).
    pub catalog: PathBuf,
    /// fits_stamps: catalogue HDU.
    pub catalog_hdu: String,
    /// fits_stamps: column of x (1-based FITS pixels, as SExtractor writes).
    pub x_column: String,
    /// fits_stamps: column of y.
    pub y_column: String,
    /// fits_stamps/table: id column (empty: row numbers from 1).
    pub id_column: String,
    /// fits_stamps: stamp side in pixels.
    pub stamp_size: usize,
    /// table: numeric columns to use (empty: every numeric column except ids and labels).
    pub columns: Vec<String>,
    /// `asinh` (per-stamp, for images), `standardise` (per-column, for tables) or `none`.
    pub normalise: NormaliseKind,
    /// asinh softening in units of each stamp's noise.
    pub softening: f32,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            kind: InputKind::Hdf5Stamps,
            path: PathBuf::from("data/cutouts.h5"),
            dataset: "/images".into(),
            ids: "/ids".into(),
            labels: "/labels".into(),
            label_names: vec![
                "normal".into(),
                "lens".into(),
                "merger".into(),
                "artefact".into(),
            ],
            normal_label: 0,
            anomalous_labels: vec![],
            hdu: String::new(),
            catalog: PathBuf::new(),
            catalog_hdu: String::new(),
            x_column: "X".into(),
            y_column: "Y".into(),
            id_column: String::new(),
            stamp_size: 32,
            columns: vec![],
            normalise: NormaliseKind::Asinh,
            softening: 3.0,
        }
    }
}

impl InputConfig {
    /// Does a truth label count as anomalous?
    pub fn is_anomalous(&self, label: i64) -> bool {
        if self.anomalous_labels.is_empty() {
            label != self.normal_label
        } else {
            self.anomalous_labels.contains(&label)
        }
    }
}

/// Which per-object number ranks anomalies.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// The negative ELBO for a VAE, the reconstruction error otherwise.
    Auto,
    /// Mean squared reconstruction error.
    Recon,
    /// Negative ELBO (VAE only).
    Elbo,
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Rows of the ranked catalogue.
    pub top_k: usize,
    /// Stamps in the gallery of the most anomalous objects.
    pub gallery: usize,
    /// Which score ranks the objects: `auto`, `recon` or `elbo`.
    pub score: ScoreKind,
    /// Plot formats: any of `png`, `svg`, `pdf`.
    pub plots: Vec<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            top_k: 50,
            gallery: 12,
            score: ScoreKind::Auto,
            plots: vec!["png".into(), "pdf".into()],
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// What to read.
    pub input: InputConfig,
    /// The autoencoder.
    pub model: ModelConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// Clustering of the latent vectors.
    pub cluster: ClusterConfig,
    /// Catalogue and plots.
    pub output: OutputConfig,
}

impl AnomalyConfig {
    /// Seed of the initial weights: derived from the training seed, so one seed fixes the run.
    pub fn model_seed(&self) -> u64 {
        self.train.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed
    }
}

impl Validate for AnomalyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.train.validate().map_err(|e| e.within("train"))?;
        ensure(
            !self.input.path.as_os_str().is_empty(),
            "input.path",
            "is required",
        )?;
        ensure(
            self.input.stamp_size >= 4,
            "input.stamp_size",
            "must be at least 4",
        )?;
        ensure(
            self.input.softening > 0.0,
            "input.softening",
            "must be positive",
        )?;
        if self.input.kind == InputKind::FitsStamps {
            ensure(
                !self.input.catalog.as_os_str().is_empty(),
                "input.catalog",
                "is required for kind = \"fits_stamps\"",
            )?;
        }
        ensure(self.model.latent >= 1, "model.latent", "must be at least 1")?;
        ensure(
            !self.model.widths.is_empty(),
            "model.widths",
            "needs at least one width",
        )?;
        ensure(self.model.beta >= 0.0, "model.beta", "must be >= 0")?;
        ensure(self.cluster.k >= 1, "cluster.k", "must be at least 1")?;
        ensure(self.cluster.eps > 0.0, "cluster.eps", "must be positive")?;
        ensure(self.output.top_k >= 1, "output.top_k", "must be at least 1")?;
        crate::common::check_plot_formats(&self.output.plots)
    }
}
