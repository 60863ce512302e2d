//! API behaviour of the shower simulator: parsing, validation, shapes, layouts, determinism.

use std::sync::atomic::{AtomicU64, Ordering};

use deepsky_core::Validate;
use deepsky_sim::shower::{
    shower_diagnostics, simulate_showers, Calorimeter, EnergySpec, Particle, ShowerConfig,
    ShowerSet,
};
use deepsky_sim::Progress;

fn config(particle: Particle, energy_gev: EnergySpec, n_showers: usize, seed: u64) -> ShowerConfig {
    ShowerConfig {
        particle,
        energy_gev,
        n_showers,
        seed,
    }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

#[test]
fn shower_particle_parsing_and_display() {
    for (text, p, pdg) in [
        ("e-", Particle::Electron, 11),
        ("electron", Particle::Electron, 11),
        ("e+", Particle::Positron, -11),
        ("positron", Particle::Positron, -11),
        ("gamma", Particle::Photon, 22),
        ("photon", Particle::Photon, 22),
    ] {
        let parsed: Particle = text.parse().expect("known particle");
        assert_eq!(parsed, p);
        assert_eq!(parsed.pdg_id(), pdg);
        // Display gives the canonical short name, which parses back.
        assert_eq!(
            parsed.to_string().parse::<Particle>().expect("round trip"),
            p
        );
    }
    assert_eq!(Particle::Electron.to_string(), "e-");
    assert_eq!(Particle::Positron.to_string(), "e+");
    assert_eq!(Particle::Photon.to_string(), "gamma");
    let err = "muon"
        .parse::<Particle>()
        .expect_err("unknown particle")
        .to_string();
    assert!(err.contains("particle") && err.contains("`muon`"), "{err}");
    assert!(err.contains("e-, e+, gamma"), "{err}");
}

#[test]
fn shower_config_validation_names_the_parameter() {
    let bad_energies = [
        (EnergySpec::Fixed(0.05), "0.05"),
        (EnergySpec::Fixed(1500.0), "1500"),
        (EnergySpec::Fixed(f64::NAN), "NaN"),
        (EnergySpec::Uniform { min: 5.0, max: 2.0 }, "5"),
        (EnergySpec::Uniform { min: 3.0, max: 3.0 }, "3"),
        (
            EnergySpec::Uniform {
                min: 0.01,
                max: 2.0,
            },
            "0.01",
        ),
        (
            EnergySpec::LogUniform {
                min: 1.0,
                max: 2000.0,
            },
            "2000",
        ),
    ];
    for (spec, value) in bad_energies {
        let err = simulate_showers(&config(Particle::Electron, spec, 3, 1), &())
            .expect_err("bad energy must be rejected")
            .to_string();
        assert!(
            err.contains("energy_gev") && err.contains(value),
            "{spec:?}: {err}"
        );
    }
    let err = config(Particle::Photon, EnergySpec::Fixed(10.0), 0, 1)
        .validate()
        .expect_err("zero showers")
        .to_string();
    assert!(err.contains("n_showers"), "{err}");
    let cal = Calorimeter::calogan();
    let err = shower_diagnostics(&cal, Particle::Photon, 0.0, 10, 1, &()).expect_err("0 GeV");
    assert!(err.to_string().contains("energy_gev"), "{err}");
    // The edges of the range are allowed.
    for spec in [
        EnergySpec::Fixed(0.1),
        EnergySpec::Fixed(1000.0),
        EnergySpec::LogUniform {
            min: 0.1,
            max: 1000.0,
        },
    ] {
        config(Particle::Electron, spec, 1, 1)
            .validate()
            .expect("valid range edge");
    }
}

#[test]
fn shower_config_serde_round_trip() {
    let cfg = config(
        Particle::Positron,
        EnergySpec::Uniform {
            min: 1.0,
            max: 100.0,
        },
        10,
        3,
    );
    let json = serde_json::to_string(&cfg).expect("serialise");
    assert!(
        json.contains("\"e+\"") && json.contains("uniform"),
        "{json}"
    );
    let back: ShowerConfig = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, cfg);
    let alias: ShowerConfig = serde_json::from_str(
        r#"{"particle":"photon","energy_gev":{"fixed":10.0},"n_showers":2,"seed":1}"#,
    )
    .expect("alias");
    assert_eq!(alias.particle, Particle::Photon);
}

struct Counter(AtomicU64);

impl Progress for Counter {
    fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

#[test]
fn shower_set_shapes_energies_and_progress() {
    let counter = Counter(AtomicU64::new(0));
    let cfg = config(
        Particle::Photon,
        EnergySpec::Uniform { min: 1.0, max: 4.0 },
        24,
        11,
    );
    let set = simulate_showers(&cfg, &counter).expect("simulate");
    assert_eq!(counter.0.load(Ordering::Relaxed), 24);
    assert_eq!(set.len(), 24);
    assert_eq!(set.particle, Particle::Photon);
    assert_eq!(set.layer_0.shape(), &[24, 3, 96]);
    assert_eq!(set.layer_1.shape(), &[24, 12, 12]);
    assert_eq!(set.layer_2.shape(), &[24, 12, 6]);
    assert_eq!(set.energy.shape(), &[24, 1]);
    assert_eq!(set.overflow.shape(), &[24, 3]);
    for &e in &set.energy {
        assert!(
            (1.0..=4.0).contains(&e),
            "energy {e} GeV outside the requested range"
        );
    }
    // Energies are drawn, not all equal.
    assert!(set
        .energy
        .iter()
        .any(|&e| (e - set.energy[[0, 0]]).abs() > 0.01));
    for v in set
        .layer_0
        .iter()
        .chain(&set.layer_1)
        .chain(&set.layer_2)
        .chain(&set.overflow)
    {
        assert!(v.is_finite() && *v >= 0.0, "cell energy {v}");
    }
    // Every layer sees energy in every shower at these energies.
    for i in 0..set.len() {
        let l1: f32 = set.layer_1.index_axis(ndarray::Axis(0), i).sum();
        let total: f32 = l1
            + set.layer_0.index_axis(ndarray::Axis(0), i).sum()
            + set.layer_2.index_axis(ndarray::Axis(0), i).sum()
            + set.overflow.row(i).sum();
        let e_mev = set.energy[[i, 0]] * 1000.0;
        // Calibrated sum within 50 % of the incident energy (σ/E ≈ 7 % at 2 GeV).
        assert!(
            (total / e_mev - 1.0).abs() < 0.5,
            "shower {i}: {total} MeV of {e_mev}"
        );
        assert!(
            l1 > 0.3 * total,
            "shower {i}: the middle layer holds most of the energy"
        );
    }
}

#[test]
fn shower_calochallenge_layout() {
    let set = simulate_showers(
        &config(Particle::Electron, EnergySpec::Fixed(2.0), 5, 4),
        &(),
    )
    .expect("simulate");
    let cc = set.to_calochallenge();
    let (incident, showers) = (cc.incident_energies, cc.showers);
    assert_eq!(incident.shape(), &[5, 1]);
    assert_eq!(showers.shape(), &[5, 504]);
    for i in 0..5 {
        assert_eq!(incident[[i, 0]], 2000.0);
        let row = showers.row(i);
        // C order: layer 0 (3, 96) at 0..288, layer 1 (12, 12) at 288..432, layer 2 at 432..504.
        assert_eq!(row[7], set.layer_0[[i, 0, 7]]);
        assert_eq!(row[96 + 50], set.layer_0[[i, 1, 50]]);
        assert_eq!(row[288 + 12 * 5 + 6], set.layer_1[[i, 5, 6]]);
        assert_eq!(row[432 + 6 * 11 + 5], set.layer_2[[i, 11, 5]]);
        let sum: f32 = set.layer_0.index_axis(ndarray::Axis(0), i).sum()
            + set.layer_1.index_axis(ndarray::Axis(0), i).sum()
            + set.layer_2.index_axis(ndarray::Axis(0), i).sum();
        assert!((row.sum() - sum).abs() <= 1e-3 * sum);
    }
}

#[test]
fn shower_is_centred_on_the_grid() {
    // Normal incidence at the centre: the 4 central cells of layer 1 share the core, and the
    // mean energy is symmetric between the two halves of each axis (tolerance 10 % with 40
    // showers, whose centroid scatter is ≈ 1 mm on 40 mm cells).
    let set = simulate_showers(
        &config(Particle::Electron, EnergySpec::Fixed(5.0), 40, 8),
        &(),
    )
    .expect("simulate");
    let mean = set.layer_1.mean_axis(ndarray::Axis(0)).expect("mean");
    let core = mean[[5, 5]] + mean[[5, 6]] + mean[[6, 5]] + mean[[6, 6]];
    assert!(core > 0.6 * mean.sum(), "core {core} of {}", mean.sum());
    let lo: f32 = mean.slice(ndarray::s![..6, ..]).sum();
    let hi: f32 = mean.slice(ndarray::s![6.., ..]).sum();
    assert!((lo / hi - 1.0).abs() < 0.1, "eta halves {lo} vs {hi}");
    let lo: f32 = mean.slice(ndarray::s![.., ..6]).sum();
    let hi: f32 = mean.slice(ndarray::s![.., 6..]).sum();
    assert!((lo / hi - 1.0).abs() < 0.1, "phi halves {lo} vs {hi}");
    // Layer 0: the 3 coarse strips put the core in the middle one.
    let m0 = set.layer_0.mean_axis(ndarray::Axis(0)).expect("mean");
    let middle: f32 = m0.row(1).sum();
    assert!(
        middle > 0.9 * m0.sum(),
        "middle strip row {middle} of {}",
        m0.sum()
    );
}

fn assert_identical(a: &ShowerSet, b: &ShowerSet) {
    assert_eq!(a.layer_0, b.layer_0);
    assert_eq!(a.layer_1, b.layer_1);
    assert_eq!(a.layer_2, b.layer_2);
    assert_eq!(a.energy, b.energy);
    assert_eq!(a.overflow, b.overflow);
}

#[test]
fn shower_output_is_deterministic_across_thread_counts() {
    let cfg = config(
        Particle::Electron,
        EnergySpec::LogUniform { min: 1.0, max: 8.0 },
        16,
        99,
    );
    let one = in_pool(1, || simulate_showers(&cfg, &())).expect("1 thread");
    let two = in_pool(2, || simulate_showers(&cfg, &())).expect("2 threads");
    let again = in_pool(2, || simulate_showers(&cfg, &())).expect("2 threads again");
    assert_identical(&one, &two);
    assert_identical(&two, &again);
    // A different seed gives different showers.
    let other = simulate_showers(
        &ShowerConfig {
            seed: 100,
            ..cfg.clone()
        },
        &(),
    )
    .expect("seed");
    assert_ne!(one.energy, other.energy);
    assert_ne!(one.layer_1, other.layer_1);
    // Shower i does not depend on how many showers are run: the first 8 of 16 equal a run of 8.
    let first = simulate_showers(
        &ShowerConfig {
            n_showers: 8,
            ..cfg
        },
        &(),
    )
    .expect("8");
    assert_eq!(first.layer_1, one.layer_1.slice(ndarray::s![..8, .., ..]));
    // Diagnostics are summed in a fixed order: identical for 1 and 2 threads.
    let cal = Calorimeter::calogan();
    let d1 = in_pool(1, || {
        shower_diagnostics(&cal, Particle::Photon, 3.0, 20, 5, &())
    })
    .expect("diag 1");
    let d2 = in_pool(2, || {
        shower_diagnostics(&cal, Particle::Photon, 3.0, 20, 5, &())
    })
    .expect("diag 2");
    assert_eq!(d1, d2);
}
