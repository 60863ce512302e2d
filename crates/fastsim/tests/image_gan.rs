//! Training the DCGAN-style image GAN on the bundled galaxy cutouts: it learns (generated
//! images move toward the data's brightness and central concentration), generated images have
//! the right shape and units, a resumed run equals an uninterrupted one, a saved generator makes
//! the same images, and bad settings are refused with the key named.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use deepsky_core::Validate;
use deepsky_fastsim::image_gan::{
    read_cutouts, ImageGan, ImageGanConfig, ImageNormalisation, LoadedImageGenerator, SnConv2d,
    MODEL_KIND,
};
use deepsky_nn::gan::{GanConfig, GanTrainer};
use deepsky_nn::init::SeededVarMap;
use deepsky_nn::layers::NormKind;
use ndarray::{s, Array3, Axis};

fn cutouts_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cutouts.h5")
}

/// The first 256 normal galaxies (label 0) of the bundled cutouts, read once.
fn normal_galaxies() -> &'static Array3<f32> {
    static DATA: OnceLock<Array3<f32>> = OnceLock::new();
    DATA.get_or_init(|| {
        let all = read_cutouts(&cutouts_path(), Some(0)).unwrap();
        all.slice(s![..256, .., ..]).to_owned()
    })
}

fn small_model() -> ImageGanConfig {
    ImageGanConfig {
        latent: 16,
        channels: 8,
        image_size: 32,
        norm: NormKind::Layer,
        asinh_softening: None,
    }
}

fn gan_with_data(seed: u64) -> ImageGan {
    let mut gan = ImageGan::new(&small_model(), seed, &Device::Cpu).unwrap();
    gan.set_data(normal_galaxies()).unwrap();
    gan
}

fn train_cfg(epochs: usize) -> GanConfig {
    GanConfig {
        epochs,
        batch_size: 32,
        // Two time-scale updates: in short runs the critic leading steadies the generator.
        lr_generator: 1e-3,
        lr_critic: 4e-3,
        checkpoint_every: 2,
        ema_decay: 0.9,
        seed: 5,
        ..Default::default()
    }
}

/// Mean over images of (mean of the central 8×8 pixels − mean of the 4-pixel border).
fn contrast(images: &Array3<f32>) -> f64 {
    let (n, h, w) = images.dim();
    let mut total = 0.0;
    for img in images.axis_iter(Axis(0)) {
        let centre = img
            .slice(s![h / 2 - 4..h / 2 + 4, w / 2 - 4..w / 2 + 4])
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / 64.0;
        let (mut edge, mut count) = (0.0, 0usize);
        for ((i, j), &v) in img.indexed_iter() {
            if i < 4 || j < 4 || i >= h - 4 || j >= w - 4 {
                edge += v as f64;
                count += 1;
            }
        }
        total += centre - edge / count as f64;
    }
    total / n as f64
}

fn mean(images: &Array3<f32>) -> f64 {
    images.iter().map(|&v| v as f64).sum::<f64>() / images.len() as f64
}

#[test]
fn training_moves_generated_images_toward_the_data() {
    let data = normal_galaxies();
    assert_eq!(data.dim(), (256, 32, 32));
    let gan = gan_with_data(3);
    let norm = gan.card.normalisation.unwrap();
    // The normalisation: noise-level softening (~20 ADU for these stamps), the scale maps the
    // 99.9 % quantile to 1, and it inverts below the clip.
    assert!(
        (5.0..60.0).contains(&norm.softening),
        "softening {}",
        norm.softening
    );
    let y = norm.apply(data);
    assert!(y.iter().all(|v| (-1.0..=1.0).contains(v)));
    let back = norm.invert(&y);
    for (&x, (&yv, &b)) in data.iter().zip(y.iter().zip(back.iter())) {
        if yv.abs() < 0.99 {
            assert!(
                (x - b).abs() <= 1e-3 * x.abs().max(norm.softening),
                "{x} vs {b}"
            );
        }
    }

    let before = gan.generate(128, 9).unwrap();
    let out = GanTrainer::new(&train_cfg(16)).run(&gan).unwrap();
    let h = &out.state.history;
    assert_eq!(h.len(), 16);
    assert_eq!(out.state.steps, 16 * 8);
    for e in h {
        assert!(
            e.critic_loss.is_finite() && e.generator_loss.is_finite(),
            "{e:?}"
        );
    }
    let after = gan.generate(128, 9).unwrap();
    assert_eq!(after.dim(), (128, 32, 32));
    assert!(after.iter().all(|v| v.is_finite()));

    let (m_data, m_before, m_after) = (mean(data), mean(&before), mean(&after));
    let (c_data, c_before, c_after) = (contrast(data), contrast(&before), contrast(&after));
    eprintln!(
        "mean pixel: data {m_data:.2}, before {m_before:.2}, after {m_after:.2}; \
         centre-edge contrast: data {c_data:.1}, before {c_before:.1}, after {c_after:.1}"
    );
    // Toward the data, from an untrained generator whose output, through the inverse asinh
    // stretch, is far too bright or dark, with an arbitrary fixed pattern instead of a central
    // galaxy. Six training seeds gave mean pixels of 25–40 (data 35) and contrasts of 270–460
    // (data 374).
    assert!(
        (m_after - m_data).abs() < (m_before - m_data).abs()
            && (m_after - m_data).abs() < 0.5 * m_data,
        "mean pixel: data {m_data}, before {m_before}, after {m_after}"
    );
    assert!(
        (c_after - c_data).abs() < (c_before - c_data).abs()
            && (0.5 * c_data..1.5 * c_data).contains(&c_after),
        "contrast: data {c_data}, before {c_before}, after {c_after}"
    );

    // An image does not depend on how many are made with it (up to the rounding of matrix
    // products of other shapes).
    let sampler = gan.sampler();
    let few = sampler.generate_normalised(5, 9).unwrap();
    let many = sampler.generate_normalised(300, 9).unwrap();
    assert_eq!(many.dim(), (300, 32, 32));
    let diff = (&few - &many.slice(s![..5, .., ..]))
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()));
    assert!(diff < 1e-5, "max difference {diff}");

    // Saved and loaded, the generator makes the same images.
    let dir = tempfile::tempdir().unwrap();
    gan.save(dir.path(), 16).unwrap();
    let loaded = LoadedImageGenerator::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.card.kind, MODEL_KIND);
    assert_eq!(loaded.card.epochs, 16);
    assert_eq!(loaded.card.trained_images, 256);
    assert_eq!(loaded.card.normalisation, Some(norm));
    assert_eq!(loaded.generate(128, 9).unwrap(), after);
}

#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("checkpoints");
    // Uninterrupted: 4 epochs.
    let full = gan_with_data(4);
    GanTrainer::new(&train_cfg(4)).run(&full).unwrap();
    // Interrupted after 2 epochs (checkpoint), then resumed to 4 in fresh networks.
    let first = gan_with_data(4);
    GanTrainer::new(&train_cfg(2))
        .checkpoints(&ck)
        .run(&first)
        .unwrap();
    let second = gan_with_data(4);
    let out = GanTrainer::new(&train_cfg(4))
        .checkpoints(&ck)
        .resume(true)
        .run(&second)
        .unwrap();
    assert_eq!(out.resumed_from, Some(2));
    assert_eq!(out.state.history.len(), 4);
    let a = full.generate(16, 1).unwrap();
    let b = second.generate(16, 1).unwrap();
    assert_eq!(a, b);
    // And the run did something: the EMA generator moved away from its initial weights.
    let fresh = gan_with_data(4).generate(16, 1).unwrap();
    assert_ne!(a, fresh);
}

#[test]
fn bad_settings_are_refused_with_the_key_named() {
    let cfg = ImageGanConfig {
        image_size: 48,
        ..small_model()
    };
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.key, "image_size");
    assert!(
        e.message.contains("power of two") && e.message.contains("48"),
        "{e}"
    );
    let err = ImageGan::new(&cfg, 1, &Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("model.image_size"), "{err}");
    for (size, ok) in [
        (8, false),
        (16, true),
        (64, true),
        (128, true),
        (256, false),
    ] {
        let cfg = ImageGanConfig {
            image_size: size,
            ..small_model()
        };
        assert_eq!(cfg.validate().is_ok(), ok, "image_size {size}");
    }
    let cfg = ImageGanConfig {
        asinh_softening: Some(-1.0),
        ..small_model()
    };
    assert_eq!(cfg.validate().unwrap_err().key, "asinh_softening");
    // Unknown keys are refused; absent keys take the defaults.
    let err = serde_json::from_str::<ImageGanConfig>(r#"{"image_sise": 32}"#).unwrap_err();
    assert!(err.to_string().contains("image_sise"), "{err}");
    let cfg: ImageGanConfig = serde_json::from_str(r#"{"latent": 8}"#).unwrap();
    assert_eq!(cfg.image_size, 32);
    assert_eq!(cfg.channels, 32);
    cfg.validate().unwrap();
    // Training images of another size than the model's are refused.
    let mut gan = ImageGan::new(&small_model(), 1, &Device::Cpu).unwrap();
    let err = gan.set_data(&Array3::zeros((4, 16, 16))).unwrap_err();
    assert!(err.to_string().contains("image_size"), "{err}");
    // Blank images have no noise level to soften at.
    let err = ImageNormalisation::fit(&Array3::zeros((4, 32, 32)), None).unwrap_err();
    assert!(err.to_string().contains("asinh_softening"), "{err}");
    // A generator cannot be saved without its normalisation.
    let dir = tempfile::tempdir().unwrap();
    assert!(gan.save(dir.path(), 0).is_err());
}

/// The spectrally normalised convolution divides the kernel, as an (out, in·k·k) matrix, by
/// its largest singular value once the power iteration has converged.
#[test]
fn sn_conv_normalises_by_the_largest_singular_value() {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(11);
    let conv = SnConv2d::new(3, 5, 4, 2, 1, vars.builder(&dev).pp("c")).unwrap();
    let x = (Tensor::arange(0f32, 2. * 3. * 8. * 8., &dev)
        .unwrap()
        .reshape((2, 3, 8, 8))
        .unwrap()
        .sin()
        .unwrap()
        * 2.0)
        .unwrap();
    for _ in 0..200 {
        conv.forward_t(&x, true).unwrap();
    }
    let y = conv.forward_t(&x, false).unwrap();
    assert_eq!(y.dims(), &[2, 5, 4, 4]);
    let map = vars.varmap().data().lock().unwrap();
    let w = map["c.weight"].as_tensor().clone();
    let b = map["c.bias"].as_tensor().clone();
    drop(map);
    // σ by power iteration on WᵀW in f64.
    let wm: Vec<Vec<f32>> = w.reshape((5, 48)).unwrap().to_vec2().unwrap();
    let mut v = vec![1.0f64; 48];
    let mut sigma = 0.0;
    for _ in 0..500 {
        let u: Vec<f64> = wm
            .iter()
            .map(|r| r.iter().zip(&v).map(|(&a, b)| a as f64 * b).sum())
            .collect();
        let mut nv = vec![0.0f64; 48];
        for (r, ui) in wm.iter().zip(&u) {
            for (n, &a) in nv.iter_mut().zip(r) {
                *n += a as f64 * ui;
            }
        }
        let norm = nv.iter().map(|a| a * a).sum::<f64>().sqrt();
        sigma = norm.sqrt();
        v = nv.iter().map(|a| a / norm).collect();
    }
    let reference = x
        .conv2d(&(w / sigma).unwrap(), 1, 2, 1, 1)
        .unwrap()
        .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
        .unwrap();
    let diff = (y - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "max difference {diff}");
}
