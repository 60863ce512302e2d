//! Training on a user's own labelled image (issue 21): an image and a catalogue with only
//! x, y and class become training examples whose targets are the catalogue's sources, and a
//! detector trained on them alone learns (its loss falls).

use candle_core::Device;
use deepsky_detect::assign::AssignConfig;
use deepsky_detect::dataset::{DataConfig, LabelledImage, TrainData};
use deepsky_detect::detector::{Detector, TrainedOn};
use deepsky_detect::labelled::CatalogColumns;
use deepsky_detect::loss::LossConfig;
use deepsky_detect::model::DetectorConfig;
use deepsky_detect::Preprocess;
use deepsky_nn::train::{TrainConfig, Trainer};
use deepsky_sim::sky::{simulate_sky, SkyConfig, SourceClass};
use polars::prelude::*;

#[test]
fn a_labelled_image_trains_a_detector() {
    let dir = tempfile::tempdir().unwrap();
    let sky_cfg = SkyConfig {
        width: 128,
        height: 128,
        seed: 4242,
        ..Default::default()
    };
    let sky = simulate_sky(&sky_cfg, &()).unwrap();
    let image = dir.path().join("exposure.fits");
    deepsky_sim::files::sky(&image, &sky, &[]).unwrap();
    // The user's catalogue: stars and galaxies, FITS 1-based x/y and a class name.
    let c = &sky.catalog;
    let rows: Vec<usize> = (0..c.len())
        .filter(|&i| matches!(c.class[i], SourceClass::Star | SourceClass::Galaxy))
        .filter(|&i| c.snr[i] > 5.0)
        .collect();
    let df = df!(
        "x" => rows.iter().map(|&i| c.x[i]).collect::<Vec<f64>>(),
        "y" => rows.iter().map(|&i| c.y[i]).collect::<Vec<f64>>(),
        "class" => rows.iter().map(|&i| c.class[i].name()).collect::<Vec<&str>>(),
    )
    .unwrap();
    let catalog = dir.path().join("deep.csv");
    deepsky_io::tabular::write_csv(&catalog, &df).unwrap();

    let data_cfg = DataConfig {
        fields: 0,
        crops_per_field: 8,
        crop: 64,
        images: vec![LabelledImage {
            image: image.clone(),
            hdu: String::new(),
            catalog,
            columns: CatalogColumns::default(),
            psf_fwhm_pixels: None,
            weight: 2,
        }],
        ..Default::default()
    };
    let pre = Preprocess::default();
    let data = TrainData::simulate(&data_cfg, &pre, 3).unwrap();
    assert_eq!(data.fields.len(), 2, "the image, sampled twice");
    assert_eq!(data.len(), 16);
    // The image's pixels, not a simulation of them: its truth is the catalogue's sources.
    assert!(data.fields.iter().all(|f| f.real));
    assert_eq!(data.fields[0].truth.len(), rows.len());
    assert_eq!(data.fields[0].expected, sky.image);
    // Targets of an example are the catalogue sources whose box centre lies in its crop.
    let ex = data.example(0, 0).unwrap();
    assert_eq!(ex.image.dim(), (64, 64));
    assert!(!ex.targets.is_empty());
    assert!(ex.targets.len() <= rows.len());

    let mut det = Detector::init(
        &DetectorConfig::default(),
        &pre,
        TrainedOn::default(),
        5,
        &Device::Cpu,
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 6,
        batch_size: 4,
        lr: 5e-3,
        val_fraction: 0.0,
        ..Default::default()
    };
    let out = det
        .fit(
            &data,
            &AssignConfig::default(),
            &LossConfig::default(),
            Trainer::new(&cfg),
        )
        .unwrap();
    let h = &out.state.history;
    let (first, last) = (h[0].train_loss, h[h.len() - 1].train_loss);
    assert!(last < 0.8 * first, "loss {first} -> {last}");
}
