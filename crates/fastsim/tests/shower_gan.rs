//! Training the shower GAN end to end on simulated showers: it learns (the energy term and the
//! response approach the reference), generated showers obey the layout's physics constraints,
//! and a resumed run equals an uninterrupted one.

use candle_core::Device;
use deepsky_fastsim::data::{simulate_reference, Conditioning, ShowerTensors, N_CELLS};
use deepsky_fastsim::model::ShowerGanConfig;
use deepsky_fastsim::shower_gan::{LoadedSimulator, ShowerGan, ShowerLossConfig};
use deepsky_nn::gan::{GanConfig, GanTrainer};
use deepsky_sim::shower::{EnergySpec, Particle};

fn small_model() -> ShowerGanConfig {
    ShowerGanConfig {
        latent: 8,
        generator: vec![32],
        critic: vec![32],
        cell_threshold_mev: 0.01,
    }
}

fn conditioning() -> Conditioning {
    Conditioning {
        e_min_gev: 5.0,
        e_max_gev: 20.0,
        particles: vec!["e-".into()],
    }
}

/// 96 electron showers of 5-20 GeV from the reference simulator, as training tensors.
fn training_data() -> ShowerTensors {
    let sample = simulate_reference(
        Particle::Electron,
        EnergySpec::Uniform {
            min: 5.0,
            max: 20.0,
        },
        96,
        11,
        0.01,
    )
    .unwrap();
    ShowerTensors::new(&[sample], &conditioning(), &Device::Cpu).unwrap()
}

/// A GAN on [`training_data`], trained on its mirror images too (the simulator is symmetric).
fn gan_with_data(seed: u64) -> ShowerGan {
    let cond = conditioning();
    let data = training_data().with_mirror(true);
    let mut gan = ShowerGan::new(
        &small_model(),
        cond,
        deepsky_io::calo::ShowerLayout::CaloGan,
        seed,
        &Device::Cpu,
    )
    .unwrap();
    gan.set_data(data, ShowerLossConfig::default()).unwrap();
    gan
}

fn train_cfg(epochs: usize) -> GanConfig {
    GanConfig {
        epochs,
        batch_size: 32,
        lr_generator: 2e-3,
        lr_critic: 2e-3,
        checkpoint_every: 2,
        ema_decay: 0.9,
        seed: 5,
        ..Default::default()
    }
}

#[test]
fn training_reduces_the_energy_term_and_generated_showers_are_physical() {
    let gan = gan_with_data(3);
    let out = GanTrainer::new(&train_cfg(12)).run(&gan).unwrap();
    let h = &out.state.history;
    assert_eq!(h.len(), 12);
    assert_eq!(out.state.steps, 12 * 3);
    let energy =
        |e: &deepsky_nn::gan::GanEpoch| e.terms.iter().find(|(k, _)| k == "energy").unwrap().1;
    let first = energy(&h[0]);
    let last = h[h.len() - 3..].iter().map(energy).sum::<f64>() / 3.0;
    assert!(
        last < 0.5 * first,
        "energy term should fall: first epoch {first}, last epochs {last}"
    );
    for e in h {
        assert!(e.critic_loss.is_finite() && e.generator_loss.is_finite());
    }

    // Generate at fixed energies from the moving average.
    let energies = vec![10.0f32; 40];
    let showers = gan
        .simulator()
        .generate(&energies, "e-", 9, 16, &Device::Cpu)
        .unwrap();
    assert_eq!(showers.layer_0.shape(), &[40, 3, 96]);
    assert_eq!(showers.layer_2.shape(), &[40, 12, 6]);
    assert!(showers.layer_1.iter().all(|&v| v == 0.0 || v > 0.01));
    // Response: cells + overflow over the incident energy, near the simulator's (~0.98).
    let mut mean = 0.0;
    for i in 0..40 {
        let sum: f32 = showers.layer_0.index_axis(ndarray::Axis(0), i).sum()
            + showers.layer_1.index_axis(ndarray::Axis(0), i).sum()
            + showers.layer_2.index_axis(ndarray::Axis(0), i).sum()
            + showers.overflow.row(i).sum();
        mean += sum as f64 / 10_000.0 / 40.0;
    }
    assert!((0.8..1.2).contains(&mean), "mean response {mean}");

    // The noise of shower i does not depend on the batch size (the matrix products may
    // round differently for other batch shapes).
    let again = gan
        .simulator()
        .generate(&energies, "e-", 9, 7, &Device::Cpu)
        .unwrap();
    let total = |s: &deepsky_io::calo::CaloGanShowers| s.layer_1.sum() as f64;
    let (t1, t2) = (total(&showers), total(&again));
    assert!((t1 - t2).abs() < 1e-4 * t1, "{t1} vs {t2}");
    // An unknown particle is a clear error.
    let err = gan
        .simulator()
        .generate(&energies, "gamma", 9, 7, &Device::Cpu)
        .unwrap_err();
    assert!(err.to_string().contains("gamma"), "{err}");

    // Saved and loaded, the generator makes the same showers.
    let dir = tempfile::tempdir().unwrap();
    gan.save(dir.path(), 12).unwrap();
    let loaded = LoadedSimulator::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.card.epochs, 12);
    let from_disk = loaded
        .simulator()
        .generate(&energies, "e-", 9, 16, &Device::Cpu)
        .unwrap();
    assert_eq!(from_disk.layer_0, showers.layer_0);
    assert_eq!(N_CELLS, 504);
}

#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("checkpoints");
    // Uninterrupted: 4 epochs.
    let full = gan_with_data(4);
    GanTrainer::new(&train_cfg(4)).run(&full).unwrap();
    // Interrupted after 2 epochs (checkpoint), then resumed to 4 in a fresh process image.
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
    let e = [12.0f32; 8];
    let a = full
        .simulator()
        .generate(&e, "e-", 1, 8, &Device::Cpu)
        .unwrap();
    let b = second
        .simulator()
        .generate(&e, "e-", 1, 8, &Device::Cpu)
        .unwrap();
    assert_eq!(a.layer_1, b.layer_1);
    // Changing a training setting other than `epochs` is refused on resume.
    let mut other = train_cfg(6);
    other.lr_critic = 1e-3;
    let third = gan_with_data(4);
    let err = GanTrainer::new(&other)
        .checkpoints(&ck)
        .resume(true)
        .run(&third)
        .unwrap_err();
    assert!(
        err.to_string().contains("different [train] settings"),
        "{err}"
    );
    // So is another loss weight or training without the mirror images (the task's
    // fingerprint), with the same [train] settings.
    for (mirror, energy_weight) in [(true, 3.0), (false, 1.0)] {
        let data = training_data().with_mirror(mirror);
        let mut other = ShowerGan::new(
            &small_model(),
            conditioning(),
            deepsky_io::calo::ShowerLayout::CaloGan,
            4,
            &Device::Cpu,
        )
        .unwrap();
        other
            .set_data(data, ShowerLossConfig { energy_weight })
            .unwrap();
        let err = GanTrainer::new(&train_cfg(6))
            .checkpoints(&ck)
            .resume(true)
            .run(&other)
            .unwrap_err();
        assert!(err.to_string().contains("another model"), "{err}");
    }
}
