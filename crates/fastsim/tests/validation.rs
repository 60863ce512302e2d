//! The validation tools on real physics: showers from deepsky's reference simulator must give
//! physical observables, two independent reference samples must look alike to every metric,
//! and showers of different energies must not. The classifier two-sample test is checked on
//! Gaussian samples with a known answer.

use std::sync::OnceLock;
use std::time::Instant;

use deepsky_fastsim::metrics::{binning, chi2_separation, wasserstein1};
use deepsky_fastsim::observables::{
    cell_features, high_level_features, observable_list, observables, N_CELL_FEATURES,
    N_HIGH_LEVEL_FEATURES, N_OBSERVABLES,
};
use deepsky_fastsim::two_sample::{classifier_auc, ClassifierConfig};
use deepsky_io::calo::CaloGanShowers;
use deepsky_sim::shower::{simulate_showers, EnergySpec, Particle, ShowerConfig};
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64;

/// Electron showers from the reference simulator, in the CaloGAN layout.
fn simulate(energy_gev: EnergySpec, n_showers: usize, seed: u64) -> CaloGanShowers {
    let cfg = ShowerConfig {
        particle: Particle::Electron,
        energy_gev,
        n_showers,
        seed,
    };
    CaloGanShowers::from(simulate_showers(&cfg, &()).expect("simulation runs"))
}

/// Showers per 10 GeV reference sample: enough that the finite-sample bias of the separation
/// power (about bins / 2n for identical distributions) stays well below the 0.1 threshold.
const N_REF: usize = 300;

/// Two independent 10 GeV samples (different seeds) and one at 50 GeV, simulated once and
/// shared by the tests (about 4 s of simulation on one core).
fn samples() -> &'static [CaloGanShowers; 3] {
    static SAMPLES: OnceLock<[CaloGanShowers; 3]> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let t = Instant::now();
        let s = [
            simulate(EnergySpec::Fixed(10.0), N_REF, 11),
            simulate(EnergySpec::Fixed(10.0), N_REF, 12),
            simulate(EnergySpec::Fixed(50.0), 150, 13),
        ];
        eprintln!("simulated the reference samples in {:.1?}", t.elapsed());
        s
    })
}

fn index_of(name: &str) -> usize {
    observable_list()
        .iter()
        .position(|o| o.name == name)
        .unwrap_or_else(|| panic!("no observable `{name}`"))
}

fn col(obs: &Array2<f64>, name: &str) -> Vec<f64> {
    obs.column(index_of(name)).to_vec()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

#[test]
fn reference_showers_have_physical_observables() {
    let showers = &samples()[0];
    let obs = observables(showers);
    assert_eq!(obs.shape(), &[N_REF, N_OBSERVABLES]);
    assert!(obs.iter().all(|v| v.is_finite()), "NaN or inf observable");

    // Calibrated cells add up to the incident energy minus leakage, albedo and the lateral
    // overflow: a response a little below 1.
    let response = mean(&col(&obs, "e_total_over_incident"));
    assert!((0.8..1.1).contains(&response), "mean response {response}");

    for row in obs.rows() {
        let at = |name: &str| row[index_of(name)];
        let fsum = at("frac_layer_0") + at("frac_layer_1") + at("frac_layer_2");
        assert!((fsum - 1.0).abs() < 1e-9, "fractions sum to {fsum}");
        // The layer energies and the response describe the same cells.
        let e_sum = at("e_layer_0") + at("e_layer_1") + at("e_layer_2");
        assert!((e_sum / 10.0 - at("e_total_over_incident")).abs() < 1e-9);
        let depth = at("depth");
        assert!(depth > 0.0 && depth < 2.0, "depth {depth}");
        assert!((0.0..=1.0).contains(&at("depth_width")));
        for l in 0..3 {
            let s = at(&format!("sparsity_layer_{l}"));
            assert!((0.0..=1.0).contains(&s), "sparsity {s}");
            // Inside the 480 mm × 480 mm grid: at most its half-diagonal.
            let w = at(&format!("width_layer_{l}"));
            assert!((0.0..340.0).contains(&w), "width {w}");
        }
        assert!(at("e_max") > 0.0 && at("e_max") <= e_sum);
    }

    // Physics of a 10 GeV electron in this 4.3 / 16 / 2 X0 stack: the middle layer holds most
    // of the energy and the shower maximum (≈ 6.4 X0) lies in it.
    assert!(mean(&col(&obs, "frac_layer_1")) > 0.5);
    let depth = mean(&col(&obs, "depth"));
    assert!((0.5..1.5).contains(&depth), "mean depth {depth}");
    // The core of an EM shower is about a Molière radius (41 mm) wide.
    let w1 = mean(&col(&obs, "width_layer_1"));
    assert!((5.0..60.0).contains(&w1), "mean width in layer 1: {w1} mm");

    let cells = cell_features(showers);
    assert_eq!(cells.shape(), &[N_REF, N_CELL_FEATURES]);
    assert!(cells.iter().all(|v| v.is_finite()));
    assert!((cells[[0, N_CELL_FEATURES - 1]] - 1.0).abs() < 1e-6); // log10(10 GeV)
    let hl = high_level_features(showers);
    assert_eq!(hl.shape(), &[N_REF, N_HIGH_LEVEL_FEATURES]);
    assert!(hl.iter().all(|v| v.is_finite()));
}

/// Separation power and W1 of every observable between two samples, printed for the log.
fn compare(a: &Array2<f64>, b: &Array2<f64>, bins: usize) -> Vec<(&'static str, f64, f64)> {
    observable_list()
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let (x, y) = (a.column(k).to_vec(), b.column(k).to_vec());
            let edges = binning(&x, &y, bins, o.log_x);
            let chi2 = chi2_separation(&x, &y, &edges);
            let w1 = wasserstein1(&x, &y);
            eprintln!("{:<24} chi2 {chi2:.4}  W1 {w1:.4}", o.name);
            (o.name, chi2, w1)
        })
        .collect()
}

#[test]
fn independent_reference_samples_are_close() {
    let [a, b, _] = samples();
    let d = compare(&observables(a), &observables(b), 20);
    for (name, chi2, w1) in &d {
        assert!(*chi2 < 0.1, "{name}: chi2 separation {chi2}");
        assert!(w1.is_finite());
    }
    let w1 = d
        .iter()
        .find(|(n, ..)| *n == "e_total_over_incident")
        .unwrap()
        .2;
    assert!(w1 < 0.05, "W1 of the response {w1}");
}

#[test]
fn showers_of_10_and_50_gev_are_separated() {
    let [a, _, c] = samples();
    let d = compare(&observables(a), &observables(c), 20);
    for (name, chi2, _) in d.iter().filter(|(n, ..)| n.starts_with("e_layer_")) {
        assert!(*chi2 > 0.5, "{name}: chi2 separation only {chi2}");
    }
}

#[test]
fn classifier_tells_10_from_50_gev_showers() {
    let [a, _, c] = samples();
    // Without the incident-energy column, so that the network must use the showers.
    let strip = |x: Array2<f32>| x.slice(s![.., ..N_HIGH_LEVEL_FEATURES - 1]).to_owned();
    let r = classifier_auc(
        strip(high_level_features(a)).view(),
        strip(high_level_features(c)).view(),
        &ClassifierConfig::default(),
    )
    .unwrap();
    eprintln!("10 vs 50 GeV, high-level features: AUC {:.3}", r.auc);
    assert!(r.auc > 0.95, "AUC {}", r.auc);
}

#[test]
fn classifier_cannot_tell_independent_reference_samples_apart() {
    let [a, b, _] = samples();
    let r = classifier_auc(
        high_level_features(a).view(),
        high_level_features(b).view(),
        &ClassifierConfig::default(),
    )
    .unwrap();
    eprintln!("10 vs 10 GeV, high-level features: AUC {:.3}", r.auc);
    // 90 test showers per class: the AUC's standard deviation under the null is ≈ 0.04.
    assert!((r.auc - 0.5).abs() < 0.15, "AUC {}", r.auc);
}

/// `n` rows of `d` independent standard normal features, the first shifted by `shift`.
fn gaussian(n: usize, d: usize, shift: f32, seed: u64) -> Array2<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut x = Array2::from_shape_simple_fn((n, d), || StandardNormal.sample(&mut rng));
    x.column_mut(0).mapv_inplace(|v: f32| v + shift);
    x
}

fn is_roc(fpr: &[f64], tpr: &[f64]) -> bool {
    let monotone = |v: &[f64]| v.windows(2).all(|w| w[1] >= w[0]);
    fpr.len() == tpr.len()
        && monotone(fpr)
        && monotone(tpr)
        && (fpr[0], tpr[0]) == (0.0, 0.0)
        && (fpr[fpr.len() - 1], tpr[tpr.len() - 1]) == (1.0, 1.0)
}

#[test]
fn classifier_auc_is_near_half_for_the_same_distribution() {
    let cfg = ClassifierConfig::default();
    let r = classifier_auc(
        gaussian(1000, 10, 0.0, 1).view(),
        gaussian(1000, 10, 0.0, 2).view(),
        &cfg,
    )
    .unwrap();
    eprintln!("same Gaussian: AUC {:.3}", r.auc);
    // 300 test rows per class: the null standard deviation of the AUC is ≈ 0.024.
    assert!((r.auc - 0.5).abs() < 0.1, "AUC {}", r.auc);
    assert_eq!((r.n_train, r.n_test), (1400, 600));
    assert!(r.epochs_run >= 1 && r.epochs_run <= cfg.epochs);
    assert!(is_roc(&r.fpr, &r.tpr));
}

#[test]
fn classifier_detects_a_two_sigma_shift_in_one_column() {
    // Unequal sizes: the larger sample is cut to the smaller one.
    let r = classifier_auc(
        gaussian(1200, 10, 0.0, 3).view(),
        gaussian(1000, 10, 2.0, 4).view(),
        &ClassifierConfig::default(),
    )
    .unwrap();
    eprintln!("2σ shift: AUC {:.3}", r.auc);
    // The best possible AUC for a 2σ shift of one Gaussian is Φ(2/√2) = 0.921.
    assert!(r.auc > 0.85 && r.auc < 0.96, "AUC {}", r.auc);
    assert_eq!(r.n_train + r.n_test, 2000);
}

#[test]
fn classifier_is_deterministic_for_a_seed() {
    let (a, b) = (gaussian(300, 5, 0.0, 5), gaussian(300, 5, 0.5, 6));
    let cfg = ClassifierConfig {
        epochs: 8,
        ..Default::default()
    };
    let r1 = classifier_auc(a.view(), b.view(), &cfg).unwrap();
    let r2 = classifier_auc(a.view(), b.view(), &cfg).unwrap();
    assert_eq!(r1, r2);
    let other = ClassifierConfig { seed: 99, ..cfg };
    let r3 = classifier_auc(a.view(), b.view(), &other).unwrap();
    assert_ne!(
        r1.auc, r3.auc,
        "the seed should change the split and the weights"
    );
}

#[test]
fn classifier_on_all_cells_size_stays_fast_and_does_not_overfit() {
    // The all-cells test's shape: 2 × 2000 rows of 505 features. Same distribution, so any
    // AUC far from 0.5 would be overfitting that early stopping failed to catch.
    let (a, b) = (gaussian(2000, 505, 0.0, 7), gaussian(2000, 505, 0.0, 8));
    let t = Instant::now();
    let r = classifier_auc(a.view(), b.view(), &ClassifierConfig::default()).unwrap();
    eprintln!(
        "2 × 2000 × 505: AUC {:.3} after {} epochs in {:.1?}",
        r.auc,
        r.epochs_run,
        t.elapsed()
    );
    assert!((r.auc - 0.5).abs() < 0.1, "AUC {}", r.auc);
}
