//! The autoencoder kinds train and score: dense, convolutional, and the β-VAE with its
//! negative ELBO; a saved model reloads to the same scores.

use candle_core::Device;
use deepsky_nn::train::{TrainConfig, Trainer};
use deepsky_repr::fit::AeModel;
use deepsky_repr::model::{ArchKind, ModelConfig};
use deepsky_repr::normalise::{NormaliseKind, Normaliser};
use ndarray::Array2;

/// 16×16 stamps of round Gaussian blobs with seeded positions and widths; a few elongated ones.
fn blobs(n: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, 256), |(i, p)| {
        let (y, x) = ((p / 16) as f32, (p % 16) as f32);
        let cx = 7.5 + ((i * 7) % 5) as f32 * 0.3 - 0.6;
        let s = 1.5 + ((i * 3) % 4) as f32 * 0.3;
        let e = if i % 25 == 0 { 3.0 } else { 1.0 };
        let r2 = ((x - cx) / (s * e)).powi(2) + ((y - 7.5) / s).powi(2);
        (-0.5 * r2).exp() * 10.0 + (((i * 131 + p * 17) % 23) as f32 / 23.0 - 0.5) * 0.2
    })
}

fn train_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 3e-3,
        val_fraction: 0.2,
        patience: 0,
        ..Default::default()
    }
}

#[test]
fn every_kind_trains_and_scores() {
    let x = blobs(120);
    let norm = Normaliser::fit(NormaliseKind::Asinh, 3.0, &x);
    let xn = norm.apply(&x);
    for (kind, variational) in [
        (ArchKind::Dense, false),
        (ArchKind::Conv, false),
        (ArchKind::Dense, true),
        (ArchKind::Conv, true),
    ] {
        let cfg = ModelConfig {
            kind,
            variational,
            widths: vec![8, 16],
            latent: 3,
            beta: 0.5,
            ..Default::default()
        };
        let m = AeModel::init(&cfg, &[1, 16, 16], norm.clone(), 5, &Device::Cpu).unwrap();
        let out = m.fit(&xn, Trainer::new(&train_cfg(6))).unwrap();
        let h = &out.state.history;
        assert!(
            h.last().unwrap().train_loss < h[0].train_loss,
            "{kind:?} vae={variational}: {h:?}"
        );
        let s = m.score(&xn, 50).unwrap();
        assert_eq!(s.latent.dim(), (120, 3));
        assert!(s.recon.iter().all(|v| v.is_finite() && *v >= 0.0));
        match (&s.neg_elbo, variational) {
            (Some(e), true) => {
                // The negative ELBO adds a non-negative KL term to the reconstruction error.
                assert!(e.iter().zip(&s.recon).all(|(e, r)| e >= r), "{kind:?}");
            }
            (None, false) => {}
            other => panic!(
                "neg_elbo presence wrong for {kind:?}: {}",
                other.0.is_some()
            ),
        }
    }
}

#[test]
fn saved_model_reloads_to_the_same_scores() {
    let x = blobs(60);
    let norm = Normaliser::fit(NormaliseKind::Asinh, 3.0, &x);
    let cfg = ModelConfig {
        kind: ArchKind::Conv,
        widths: vec![4, 8],
        latent: 2,
        ..Default::default()
    };
    let m = AeModel::init(&cfg, &[1, 16, 16], norm, 9, &Device::Cpu).unwrap();
    let xn = m.normaliser().apply(&x);
    m.fit(&xn, Trainer::new(&train_cfg(2))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let back = AeModel::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.normaliser(), m.normaliser());
    let (a, b) = (
        m.score(&xn, 16).unwrap(),
        back.score(&back.normaliser().apply(&x), 16).unwrap(),
    );
    assert_eq!(a.recon, b.recon);
    assert_eq!(a.latent, b.latent);
    // A config that does not fit the stamps is a clear error, not a panic.
    let bad = ModelConfig {
        kind: ArchKind::Conv,
        widths: vec![4, 8, 16, 32, 64],
        ..Default::default()
    };
    let e = AeModel::init(&bad, &[1, 16, 16], Normaliser::Identity, 1, &Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains("divisible by 32"), "{e}");
}

#[test]
fn anomaly_model_fits_saves_loads_and_scores_the_same() {
    use deepsky_repr::anomaly::{AnomalyModel, AnomalyParams, ScoreKind, ScoreName};
    use deepsky_repr::objects::Objects;
    let objects = Objects {
        rows: blobs(50),
        shape: vec![1, 16, 16],
        ids: (1..=50).collect(),
        labels: None,
        label_names: vec![],
        feature_names: vec![],
    };
    let params = AnomalyParams {
        model: ModelConfig {
            kind: ArchKind::Conv,
            widths: vec![4, 8],
            latent: 2,
            ..Default::default()
        },
        normalise: NormaliseKind::Asinh,
        softening: 3.0,
        seed: 3,
    };
    let (model, outcome) = params
        .fit(&objects, Trainer::new(&train_cfg(2)), &Device::Cpu)
        .unwrap();
    assert_eq!(outcome.train_indices.len(), 40);
    assert_eq!(model.baseline().features(), 256);
    let s = model.score(&objects, ScoreKind::Auto).unwrap();
    assert_eq!(s.score_name, ScoreName::Recon);
    assert_eq!(s.score, s.recon);
    assert_eq!(s.latent.dim(), (50, 2));
    assert_eq!(
        s.baseline,
        model
            .baseline()
            .reconstruction_error(&model.normaliser().apply(&objects.rows))
    );
    // `elbo` needs a VAE: an error naming the key.
    let e = model.score(&objects, ScoreKind::Elbo).err().unwrap();
    assert!(e.to_string().contains("`output.score`"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("model");
    model.save(&sub).unwrap();
    for f in AnomalyModel::FILES {
        assert!(sub.join(f).exists(), "{f}");
    }
    let back = AnomalyModel::load(&sub, &Device::Cpu).unwrap();
    assert_eq!(back.score(&objects, ScoreKind::Recon).unwrap(), s);
    // Saving what was loaded writes the same bytes.
    let again = dir.path().join("again");
    back.save(&again).unwrap();
    for f in AnomalyModel::FILES {
        assert_eq!(
            std::fs::read(sub.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
    // Reconstructions of a few rows: normalised like the whole set.
    let (rows, recon) = back.reconstruct(&objects, &[4, 0]).unwrap();
    let all = back.normaliser().apply(&objects.rows);
    assert_eq!(rows.row(0), all.row(4));
    assert_eq!(recon.dim(), (2, 256));
    // Objects of another shape are refused.
    let other = Objects {
        rows: Array2::zeros((3, 4)),
        shape: vec![4],
        ids: vec![1, 2, 3],
        ..objects.clone()
    };
    assert!(back
        .score(&other, ScoreKind::Auto)
        .err()
        .unwrap()
        .is_bad_input());
}
