//! The segmenter's pieces on simulated data: training examples carry the truth where the
//! artefacts are, a short training run lowers the loss and reloads equal, tiling gives the
//! same probabilities as one tile, and bad images are refused with a clear message.

use candle_core::Device;
use deepsky_core::mask::MaskPlane;
use deepsky_detect::Preprocess;
use deepsky_nn::train::{TrainConfig, Trainer};
use deepsky_segment::dataset::{ArtefactRanges, DataConfig, TrainData};
use deepsky_segment::model::{LossConfig, Segmenter};
use deepsky_segment::predict::{predict, PredictConfig};
use deepsky_segment::unet::UNetConfig;
use ndarray::Array2;

fn small_data(fields: usize) -> DataConfig {
    let mut d = DataConfig {
        fields,
        crops_per_field: 6,
        crop: 64,
        artefacts: ArtefactRanges {
            cosmic_rays: [30, 30],
            ..Default::default()
        },
        ..Default::default()
    };
    d.sky.width = 96;
    d.sky.height = 96;
    d
}

fn tiny() -> UNetConfig {
    UNetConfig {
        widths: vec![4, 8],
        convs: 1,
        ..Default::default()
    }
}

#[test]
fn examples_carry_the_truth_where_the_cosmic_rays_are() {
    let planes = tiny().mask_planes();
    let data = TrainData::simulate(&small_data(2), &Preprocess::default(), &planes, 3).unwrap();
    assert_eq!(data.len(), 12);
    let mut cr_pixels = 0;
    let (mut on, mut off) = (0.0f64, 0.0f64);
    let (mut n_on, mut n_off) = (0usize, 0usize);
    for i in 0..data.len() {
        let e = data.example(i, 0).unwrap();
        assert_eq!(e.image.dim(), (64, 64));
        assert_eq!(e.targets.len(), planes.len() * 64 * 64);
        let cr = &e.targets[..64 * 64];
        let other: Vec<bool> = (0..64 * 64)
            .map(|k| (1..planes.len()).any(|p| e.targets[p * 64 * 64 + k] > 0.5))
            .collect();
        for (k, (&t, v)) in cr.iter().zip(e.image.iter()).enumerate() {
            if t > 0.5 {
                cr_pixels += 1;
                on += *v as f64;
                n_on += 1;
            } else if !other[k] {
                off += *v as f64;
                n_off += 1;
            }
        }
        // The same index and epoch give the same example.
        assert_eq!(data.example(i, 0).unwrap().image, e.image);
    }
    assert!(cr_pixels > 50, "{cr_pixels} cosmic-ray pixels");
    // After the flips, the target still sits on the bright pixels: cosmic-ray pixels are far
    // above the sky (normalised: asinh of several σ), plain sky near 0.
    let (on, off) = (on / n_on as f64, off / n_off as f64);
    assert!(
        on > 2.0 && off.abs() < 0.5,
        "mean normalised value {on} on hits, {off} on sky"
    );
}

#[test]
fn training_lowers_the_loss_and_saved_models_reload_equal() {
    let model = tiny();
    let planes = model.mask_planes();
    let data = TrainData::simulate(&small_data(2), &Preprocess::default(), &planes, 4).unwrap();
    let mut seg = Segmenter::init(
        &model,
        &Preprocess::default(),
        Default::default(),
        9,
        &Device::Cpu,
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 8,
        batch_size: 4,
        lr: 1e-2,
        val_fraction: 0.0,
        ..Default::default()
    };
    let loss = LossConfig::default();
    let out = seg.fit(&data, &loss, Trainer::new(&cfg)).unwrap();
    let h = &out.state.history;
    assert!(
        h.last().unwrap().train_loss < 0.75 * h[0].train_loss,
        "{h:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    seg.save(dir.path()).unwrap();
    let back = Segmenter::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.card(), seg.card());
    let all: Vec<usize> = (0..data.len()).collect();
    assert_eq!(
        back.evaluate_loss(&data, &all, &loss).unwrap(),
        seg.evaluate_loss(&data, &all, &loss).unwrap()
    );
}

/// A field-like image: sky, noise-like texture, a few bright spots.
fn field(h: usize, w: usize) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(r, c)| {
        let hash = ((r * 7919 + c * 104_729) % 1009) as f32 / 1009.0;
        let spot = if (r % 37 == 5) && (c % 41 == 7) {
            800.0
        } else {
            0.0
        };
        100.0 + 10.0 * (hash - 0.5) + spot
    })
}

#[test]
fn tiling_gives_the_probabilities_of_one_tile() {
    let seg = Segmenter::init(
        &UNetConfig {
            widths: vec![4, 6, 8],
            convs: 1,
            ..Default::default()
        },
        &Preprocess::default(),
        Default::default(),
        12,
        &Device::Cpu,
    )
    .unwrap();
    let net = seg.compile().unwrap();
    let img = field(230, 190);
    let one = PredictConfig {
        tile: 512,
        ..Default::default()
    };
    let many = PredictConfig {
        tile: 64,
        ..Default::default()
    };
    let a = predict(&seg, &net, img.view(), &one, &|_, _| true).unwrap();
    let b = predict(&seg, &net, img.view(), &many, &|_, _| true).unwrap();
    assert_eq!(a.tiles, 1);
    assert!(b.tiles > 4, "{} tiles", b.tiles);
    let worst = a
        .probabilities
        .iter()
        .zip(b.probabilities.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "tiled vs one tile: {worst}");
    assert_eq!(a.bits, b.bits);
}

#[test]
fn nan_pixels_are_no_data_and_bad_images_are_refused() {
    let seg = Segmenter::init(
        &tiny(),
        &Preprocess::default(),
        Default::default(),
        1,
        &Device::Cpu,
    )
    .unwrap();
    let net = seg.compile().unwrap();
    let cfg = PredictConfig::default();
    let mut img = field(80, 80);
    for r in 10..20 {
        for c in 30..45 {
            img[[r, c]] = f32::NAN;
        }
    }
    let p = predict(&seg, &net, img.view(), &cfg, &|_, _| true).unwrap();
    let no_data = p
        .bits
        .iter()
        .filter(|&&b| MaskPlane::NoData.is_set(b))
        .count();
    assert_eq!(no_data, 150);
    assert_eq!(p.bits[[15, 40]], MaskPlane::NoData.bit());

    let nan = Array2::from_elem((80, 80), f32::NAN);
    let e = predict(&seg, &net, nan.view(), &cfg, &|_, _| true)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    let small = field(4, 200);
    let e = predict(&seg, &net, small.view(), &cfg, &|_, _| true)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("receptive field"), "{e}");
}

#[test]
fn stopping_between_tiles_is_an_interruption() {
    let seg = Segmenter::init(
        &tiny(),
        &Preprocess::default(),
        Default::default(),
        1,
        &Device::Cpu,
    )
    .unwrap();
    let net = seg.compile().unwrap();
    let cfg = PredictConfig {
        tile: 64,
        ..Default::default()
    };
    let img = field(200, 200);
    let e = predict(&seg, &net, img.view(), &cfg, &|_, _| false)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            deepsky_detect::DetectError::Nn(deepsky_nn::NnError::Interrupted)
        ),
        "{e}"
    );
}
