//! Writing an anomaly run's products (layouts: `deepsky_repr::anomaly::products`): latent.h5,
//! latent.parquet, anomalies.fits and anomalies.csv with provenance, and the plots.

use deepsky_io::fits::FitsWriter;
use deepsky_io::h5::{H5Writer, WriteOptions};
use deepsky_nn::train::TrainOutcome;
use deepsky_repr::anomaly::plots::{gallery, AnomalyPlots};
use deepsky_repr::anomaly::{AnomalyConfig, AnomalyModel, AnomalyResult};
use deepsky_repr::objects::Objects;
use deepsky_runtime::RunError;

use super::repr_error;
use crate::common::{loss_curves, plot_formats, Plots, RunFrame};

const PER_OBJECT: &str = "latent vectors, scores, clusters per object";
const RANKED: &str = "ranked catalogue of the most anomalous objects";

/// Write latent.h5, latent.parquet, anomalies.fits and anomalies.csv.
pub fn write_tables(
    r: &AnomalyResult,
    objects: &Objects,
    top_k: usize,
    frame: &mut RunFrame,
) -> Result<(), RunError> {
    let out = &frame.out;
    let h5 = H5Writer::create(out.path("latent.h5"))?;
    for (name, data) in r.latent_datasets(objects) {
        h5.write(name, &data, &WriteOptions::default())?;
    }
    for (k, v) in frame.provenance.hdf5_attrs() {
        h5.set_attr("/", &k, v)?;
    }
    for (k, v) in r.latent_attrs() {
        h5.set_attr("/", k, v)?;
    }
    h5.finish()?;
    frame.provenance.output("latent.h5", PER_OBJECT);

    let table = r.latent_table(objects).map_err(repr_error)?;
    deepsky_io::tabular::write_parquet(out.path("latent.parquet"), &table)?;
    frame.provenance.output("latent.parquet", PER_OBJECT);

    let (catalogue, meta) = r.catalogue(objects, top_k).map_err(repr_error)?;
    let mut fits = FitsWriter::create(out.path("anomalies.fits"))?;
    fits.write_primary_header(&frame.provenance.fits_cards())?;
    fits.write_table("ANOMALIES", &catalogue, &meta, &[])?;
    fits.finish()?;
    frame.provenance.output("anomalies.fits", RANKED);
    deepsky_io::tabular::write_csv(out.path("anomalies.csv"), &catalogue)?;
    frame.provenance.output("anomalies.csv", RANKED);
    Ok(())
}

/// Write the plots; returns their paths relative to the output directory.
pub fn write_plots(
    r: &AnomalyResult,
    objects: &Objects,
    model: Option<&AnomalyModel>,
    outcome: Option<&TrainOutcome>,
    cfg: &AnomalyConfig,
    frame: &RunFrame,
) -> Result<Vec<String>, RunError> {
    let formats = plot_formats(&cfg.output.plots)?;
    let mut written = Plots::new(frame, "plots", &formats)?;
    if let Some(o) = outcome {
        written.save(&loss_curves(&o.state.history), "loss")?;
    }
    let plots = AnomalyPlots::new(r, objects, &cfg.input).map_err(repr_error)?;
    written.save(&plots.latent_clusters, "latent_clusters")?;
    if let Some(p) = &plots.latent_labels {
        written.save(p, "latent_labels")?;
    }
    if let Some(p) = &plots.roc {
        written.save(p, "roc")?;
    }
    if let Some(p) = &plots.score_hist {
        written.save(p, "score_hist")?;
    }
    if let Some(m) = model {
        if let Some(g) = gallery(m, objects, r, cfg.output.gallery).map_err(repr_error)? {
            written.save(&g, "gallery")?;
        }
    }
    Ok(written.written)
}
