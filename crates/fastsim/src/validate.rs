//! Validation of a fast simulator against reference Monte Carlo, the way the field does it.
//!
//! Three samples at the same incident-energy spectrum: reference A, an independent reference
//! B, and generated showers G at A's energies. Every number for G-vs-A comes with the same
//! number for B-vs-A, the noise floor: what a perfect generator would score with samples of
//! this size.
//!
//! - [`compare_observables`]: per observable, χ² separation power and Wasserstein-1 on a
//!   shared binning ([`ObservableSamples`] keeps the values and draws the histogram);
//! - [`ClassifierTests`]: the classifier two-sample test on the high-level observables and
//!   on all cells, for G-vs-A and B-vs-A;
//! - [`measure_speed`]: showers per second of the generator against the reference simulator;
//! - [`ValidationReport`]: all of it as `report.json` holds it.
//!
//! ```
//! use deepsky_fastsim::data::simulate_reference;
//! use deepsky_fastsim::validate::compare_observables;
//! use deepsky_sim::shower::{EnergySpec, Particle};
//!
//! let a = simulate_reference(Particle::Electron, EnergySpec::Fixed(10.0), 200, 1, 0.01)?;
//! let b = simulate_reference(Particle::Electron, EnergySpec::Fixed(10.0), 200, 2, 0.01)?;
//! let far = simulate_reference(Particle::Electron, EnergySpec::Fixed(50.0), 200, 3, 0.01)?;
//! let chi2 = |other: &deepsky_fastsim::data::Sample| {
//!     let c = compare_observables(&a.showers, &other.showers, None, 20);
//!     c.iter().find(|c| c.name == "e_layer_1").unwrap().chi2
//! };
//! // The energy in the middle layer tells 10 GeV from 50 GeV at once.
//! assert!(chi2(&far) > 0.5 && chi2(&b) < 0.2);
//! # Ok::<(), deepsky_fastsim::FastsimError>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use deepsky_io::calo::CaloGanShowers;
use deepsky_plot::{Hist1d, HistSample, HistStyle, LegendPos, Roc, RocCurve};
use deepsky_sim::shower::{EnergySpec, Particle};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::config::SpeedConfig;
use crate::data::{simulate_reference_until, Conditioning, Sample};
use crate::error::{FastsimError, Result};
use crate::metrics::{binning, chi2_separation, wasserstein1};
use crate::observables::{
    cell_features, high_level_features, observable_list, observables, Observable,
};
use crate::shower_gan::FastSimulator;
use crate::two_sample::{classifier_auc_until, ClassifierConfig, TwoSampleResult};

/// Mean of `v` (0 for an empty slice).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// One observable's values in the reference, generated and (optionally) second reference
/// samples, and the binning they are compared on.
#[derive(Debug, Clone)]
pub struct ObservableSamples {
    /// Which observable.
    pub observable: Observable,
    /// Bin edges shared by reference A and the generated sample ([`binning`]).
    pub edges: Vec<f64>,
    /// Values in reference A.
    pub reference: Vec<f64>,
    /// Values in the generated sample.
    pub generated: Vec<f64>,
    /// Values in reference B, when there is one.
    pub reference_b: Option<Vec<f64>>,
    bins: usize,
}

/// The numbers of one observable's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservableComparison {
    /// The observable's name ([`Observable::name`]).
    pub name: String,
    /// χ² separation power of the generated sample against reference A.
    pub chi2: f64,
    /// Wasserstein-1 distance of the generated sample against reference A.
    pub w1: f64,
    /// The same for reference B against reference A (absent without reference B).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference_chi2: Option<f64>,
    /// Wasserstein-1 of reference B against reference A.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference_w1: Option<f64>,
    /// Mean in reference A.
    pub reference_mean: f64,
    /// Mean in the generated sample.
    pub generated_mean: f64,
}

impl ObservableSamples {
    /// χ², W1 and means. The noise floor (B against A) is binned on the two references' own
    /// range: the generator's range must not change what "perfect" scores.
    pub fn comparison(&self) -> ObservableComparison {
        let (a, g, obs) = (&self.reference, &self.generated, &self.observable);
        ObservableComparison {
            name: obs.name.to_string(),
            chi2: chi2_separation(g, a, &self.edges),
            w1: wasserstein1(g, a),
            reference_chi2: self
                .reference_b
                .as_ref()
                .map(|b| chi2_separation(b, a, &binning(a, b, self.bins, obs.log_x))),
            reference_w1: self.reference_b.as_ref().map(|b| wasserstein1(b, a)),
            reference_mean: mean(a),
            generated_mean: mean(g),
        }
    }

    /// The normalised histograms of the samples with their ratio to reference A.
    pub fn histogram(&self) -> Hist1d {
        let mut samples =
            vec![HistSample::values("Reference", self.reference.clone())
                .with_style(HistStyle::Filled)];
        if let Some(b) = &self.reference_b {
            samples.push(HistSample::values("Reference 2", b.clone()));
        }
        samples
            .push(HistSample::values("GAN", self.generated.clone()).with_style(HistStyle::Points));
        Hist1d {
            x_label: self.observable.label.into(),
            edges: self.edges.clone(),
            samples,
            log_x: self.observable.log_x && self.edges[0] > 0.0,
            density: true,
            ratio_to: Some(0),
            ratio_label: "Ratio to reference".into(),
            ..Default::default()
        }
    }
}

/// Every observable of [`observable_list`] in the three samples, binned in `bins` bins.
///
/// # Panics
///
/// When a sample does not have the CaloGAN shapes (as [`observables`]).
pub fn observable_samples(
    reference: &CaloGanShowers,
    generated: &CaloGanShowers,
    reference_b: Option<&CaloGanShowers>,
    bins: usize,
) -> Vec<ObservableSamples> {
    let column = |a: &Array2<f64>, k: usize| a.column(k).to_vec();
    let oa = observables(reference);
    let og = observables(generated);
    let ob = reference_b.map(observables);
    observable_list()
        .into_iter()
        .enumerate()
        .map(|(k, observable)| {
            let (a, g) = (column(&oa, k), column(&og, k));
            ObservableSamples {
                edges: binning(&a, &g, bins, observable.log_x),
                observable,
                reference: a,
                generated: g,
                reference_b: ob.as_ref().map(|o| column(o, k)),
                bins,
            }
        })
        .collect()
}

/// [`ObservableSamples::comparison`] of every observable.
pub fn compare_observables(
    reference: &CaloGanShowers,
    generated: &CaloGanShowers,
    reference_b: Option<&CaloGanShowers>,
    bins: usize,
) -> Vec<ObservableComparison> {
    observable_samples(reference, generated, reference_b, bins)
        .iter()
        .map(ObservableSamples::comparison)
        .collect()
}

/// The classifier two-sample tests: generated against reference A and reference B against
/// reference A, each on the high-level observables ([`high_level_features`]) and on all cells
/// ([`cell_features`]).
#[derive(Debug, Clone)]
pub struct ClassifierTests {
    /// Generated vs A, high-level observables.
    pub high_level: TwoSampleResult,
    /// Generated vs A, all cells.
    pub all_cells: TwoSampleResult,
    /// B vs A, high-level observables (the noise floor).
    pub reference_high_level: TwoSampleResult,
    /// B vs A, all cells.
    pub reference_all_cells: TwoSampleResult,
}

impl ClassifierTests {
    /// Train the four classifiers; `on_done` is called after each, `stop` between optimiser
    /// steps (true ends the call with `NnError::Interrupted`).
    pub fn run(
        reference_a: &CaloGanShowers,
        reference_b: &CaloGanShowers,
        generated: &CaloGanShowers,
        cfg: &ClassifierConfig,
        on_done: &mut dyn FnMut(),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<ClassifierTests> {
        let mut pair = |a: &Array2<f32>, other: &Array2<f32>| {
            let r = classifier_auc_until(a.view(), other.view(), cfg, stop);
            on_done();
            r
        };
        let (hl_a, hl_b, hl_g) = (
            high_level_features(reference_a),
            high_level_features(reference_b),
            high_level_features(generated),
        );
        let high_level = pair(&hl_a, &hl_g)?;
        let reference_high_level = pair(&hl_a, &hl_b)?;
        let (c_a, c_b, c_g) = (
            cell_features(reference_a),
            cell_features(reference_b),
            cell_features(generated),
        );
        let all_cells = pair(&c_a, &c_g)?;
        let reference_all_cells = pair(&c_a, &c_b)?;
        Ok(ClassifierTests {
            high_level,
            all_cells,
            reference_high_level,
            reference_all_cells,
        })
    }

    /// The four ROC curves in one plot.
    pub fn roc(&self) -> Roc {
        let curve = |label: &str, r: &TwoSampleResult| RocCurve {
            label: label.into(),
            fpr: r.fpr.clone(),
            tpr: r.tpr.clone(),
            auc: r.auc,
        };
        Roc {
            title: "Classifier two-sample test".into(),
            legend: LegendPos::LowerRight,
            curves: vec![
                curve("GAN, high-level", &self.high_level),
                curve("GAN, all cells", &self.all_cells),
                curve("Ref. 2, high-level", &self.reference_high_level),
                curve("Ref. 2, all cells", &self.reference_all_cells),
            ],
            ..Default::default()
        }
    }
}

/// The two reference samples and where they came from.
#[derive(Debug, Clone)]
pub struct References {
    /// Reference A: the generated showers are made at its energies.
    pub a: Sample,
    /// Reference B, independent of A: the noise floor.
    pub b: Sample,
    /// `files`, or how they were simulated.
    pub source: String,
}

impl References {
    /// Two held-out reference files ([`Sample::read`], `particle` when a file has no
    /// `particle` attribute).
    pub fn read(paths: [&Path; 2], particle: &str, threshold_mev: f32) -> Result<References> {
        let read = |p: &Path| Sample::read(p, None, Some(particle), threshold_mev).map(|s| s.0);
        Ok(References {
            a: read(paths[0])?,
            b: read(paths[1])?,
            source: "files".into(),
        })
    }

    /// Run the reference simulator twice over the model's energy range (uniform; fixed when
    /// the model knows one energy), `n` showers each, with seeds `seed` and `seed + 1`;
    /// `on_done` is called after each sample, `stop` before each shower (true ends the call
    /// with `NnError::Interrupted`).
    pub fn simulate(
        particle: &str,
        range: &Conditioning,
        n: usize,
        seed: u64,
        threshold_mev: f32,
        on_done: &mut dyn FnMut(),
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<References> {
        let p: Particle = particle
            .parse()
            .map_err(|e| FastsimError::Input(format!("validate: {e}")))?;
        let spec = if range.e_min_gev < range.e_max_gev {
            EnergySpec::Uniform {
                min: range.e_min_gev,
                max: range.e_max_gev,
            }
        } else {
            EnergySpec::Fixed(range.e_min_gev)
        };
        let a = simulate_reference_until(p, spec, n, seed, threshold_mev, stop)?;
        on_done();
        let b = simulate_reference_until(p, spec, n, seed + 1, threshold_mev, stop)?;
        on_done();
        Ok(References {
            a,
            b,
            source: format!(
                "simulated: {n} {particle} showers each, uniform {:.3}–{:.3} GeV, seeds {seed} and {}",
                range.e_min_gev,
                range.e_max_gev,
                seed + 1
            ),
        })
    }
}

/// Showers/s of the generator and of the reference simulator at one energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedPoint {
    /// Incident energy, GeV.
    pub energy_gev: f64,
    /// Reference simulator rate.
    pub simulator_showers_per_s: f64,
    /// Showers the simulator ran to measure it.
    pub simulator_showers: usize,
    /// (batch, showers/s) of the generator.
    pub generator: Vec<(usize, f64)>,
    /// Best generator rate over the simulator's.
    pub speedup: f64,
}

/// The generator against the reference simulator at each of `cfg.energies_gev`, on the
/// threads both get (rayon's pool); `on_step` is called after each timing, `stop` before each
/// timing and each simulated shower (true ends the call with `NnError::Interrupted`).
pub fn measure_speed(
    sim: &FastSimulator<'_>,
    particle: &str,
    cfg: &SpeedConfig,
    device: &Device,
    on_step: &mut dyn FnMut(),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<SpeedPoint>> {
    let check = || -> Result<()> {
        if stop() {
            return Err(FastsimError::Nn(deepsky_nn::NnError::Interrupted));
        }
        Ok(())
    };
    let p: Particle = particle
        .parse()
        .map_err(|e| FastsimError::Input(format!("speed: {e}")))?;
    let mut points = Vec::new();
    for &e in &cfg.energies_gev {
        // Grow the number of simulated showers until the run takes `simulator_seconds`.
        let mut n = 4usize;
        let (rate, simulated) = loop {
            let t = Instant::now();
            simulate_reference_until(p, EnergySpec::Fixed(e), n, 7, 0.0, stop)?;
            let dt = t.elapsed().as_secs_f64();
            if dt >= cfg.simulator_seconds || n >= 1 << 20 {
                break (n as f64 / dt, n);
            }
            let grow = (cfg.simulator_seconds / dt.max(1e-3) * 1.2).ceil() as usize;
            n = (n * grow.clamp(2, 64)).min(1 << 20);
        };
        on_step();
        let mut generator = Vec::new();
        for &b in &cfg.batches {
            let n = cfg.generated_showers.max(2 * b);
            let energies = vec![e as f32; n];
            check()?;
            // One warm-up batch (allocations, thread pool start-up), then the timed run.
            sim.generate(&energies[..b], particle, 1, b, device)?;
            let t = Instant::now();
            sim.generate(&energies, particle, 1, b, device)?;
            generator.push((b, n as f64 / t.elapsed().as_secs_f64()));
            on_step();
        }
        let best = generator.iter().map(|g| g.1).fold(0.0, f64::max);
        points.push(SpeedPoint {
            energy_gev: e,
            simulator_showers_per_s: rate,
            simulator_showers: simulated,
            generator,
            speedup: best / rate,
        });
    }
    Ok(points)
}

/// One observable in `report.json`: its numbers and plot files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservableEntry {
    /// χ², W1, means.
    #[serde(flatten)]
    pub comparison: ObservableComparison,
    /// Plot files, relative to the output directory.
    pub plots: Vec<String>,
}

/// Size and length of one classifier's training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierRun {
    /// Training rows.
    pub n_train: usize,
    /// Test rows.
    pub n_test: usize,
    /// Epochs trained.
    pub epochs_run: usize,
}

impl From<&TwoSampleResult> for ClassifierRun {
    fn from(r: &TwoSampleResult) -> ClassifierRun {
        ClassifierRun {
            n_train: r.n_train,
            n_test: r.n_test,
            epochs_run: r.epochs_run,
        }
    }
}

/// The classifier section of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierSection {
    /// The classifier's settings.
    pub config: ClassifierConfig,
    /// The generated-vs-A high-level classifier.
    pub high_level: ClassifierRun,
    /// The generated-vs-A all-cells classifier.
    pub all_cells: ClassifierRun,
    /// ROC plot files.
    pub plots: Vec<String>,
}

/// The speed section of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedSection {
    /// Threads of the measurement.
    pub threads: usize,
    /// Device of the generator.
    pub device: String,
    /// One point per energy (empty with `--no-speed`).
    pub points: Vec<SpeedPoint>,
    /// Speed-up at 1 GeV, when measured.
    pub speedup_1gev: Option<f64>,
    /// Speed-up at 10 GeV, when measured.
    pub speedup_10gev: Option<f64>,
    /// Speed-up at 100 GeV, when measured.
    pub speedup_100gev: Option<f64>,
}

impl SpeedSection {
    /// The section for `points`.
    pub fn new(points: Vec<SpeedPoint>, threads: usize, device: String) -> SpeedSection {
        let at = |e: f64| {
            points
                .iter()
                .find(|p| (p.energy_gev - e).abs() < 1e-9)
                .map(|p| p.speedup)
        };
        SpeedSection {
            threads,
            device,
            speedup_1gev: at(1.0),
            speedup_10gev: at(10.0),
            speedup_100gev: at(100.0),
            points,
        }
    }
}

/// The targets of the project, met or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goals {
    /// At least 1000× faster than the simulator at 100 GeV (None: not measured).
    pub speedup_100gev_at_least_1000: Option<bool>,
    /// High-level classifier AUC at most 0.75.
    pub auc_high_level_at_most_0_75: bool,
}

/// Seconds spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationTiming {
    /// Reading or simulating the references.
    pub reference_s: f64,
    /// Generating the showers.
    pub generate_s: f64,
    /// The whole run.
    pub total_s: f64,
}

/// `report.json` of `deepsky fastsim validate`. The keys are a documented contract (README,
/// "deepsky fastsim").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The model directory.
    pub model: String,
    /// The particle generated.
    pub particle: String,
    /// Where the references came from ([`References::source`]).
    pub reference: String,
    /// Showers per reference sample.
    pub n_reference: usize,
    /// Generated showers.
    pub n_generated: usize,
    /// Speed-up at 100 GeV, when measured.
    pub speedup_100gev: Option<f64>,
    /// Generated-vs-A AUC on the high-level observables.
    pub auc_high_level: f64,
    /// Generated-vs-A AUC on all cells.
    pub auc_all_cells: f64,
    /// B-vs-A AUC on the high-level observables.
    pub reference_auc_high_level: f64,
    /// B-vs-A AUC on all cells.
    pub reference_auc_all_cells: f64,
    /// The classifiers.
    pub classifier: ClassifierSection,
    /// Per observable, by name.
    pub observables: BTreeMap<String, ObservableEntry>,
    /// Mean χ² of the generated sample over the observables.
    pub mean_chi2: f64,
    /// Mean χ² of reference B over the observables.
    pub reference_mean_chi2: f64,
    /// The observable with the largest χ².
    pub worst_observable: Option<String>,
    /// The speed measurement.
    pub speed: SpeedSection,
    /// The targets.
    pub goals: Goals,
    /// Seconds spent.
    pub timing: ValidationTiming,
}

impl ValidationReport {
    /// The report of one validation; `observables` pairs each comparison with its plots.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &Path,
        particle: &str,
        references: &References,
        n_generated: usize,
        observables: Vec<ObservableEntry>,
        tests: &ClassifierTests,
        classifier: (&ClassifierConfig, Vec<String>),
        speed: SpeedSection,
        timing: ValidationTiming,
    ) -> ValidationReport {
        let chi2: Vec<f64> = observables.iter().map(|o| o.comparison.chi2).collect();
        let reference_chi2: Vec<f64> = observables
            .iter()
            .filter_map(|o| o.comparison.reference_chi2)
            .collect();
        let worst_observable = observables
            .iter()
            .max_by(|a, b| a.comparison.chi2.total_cmp(&b.comparison.chi2))
            .map(|o| o.comparison.name.clone());
        ValidationReport {
            model: model.display().to_string(),
            particle: particle.to_string(),
            reference: references.source.clone(),
            n_reference: references.a.showers.len(),
            n_generated,
            speedup_100gev: speed.speedup_100gev,
            auc_high_level: tests.high_level.auc,
            auc_all_cells: tests.all_cells.auc,
            reference_auc_high_level: tests.reference_high_level.auc,
            reference_auc_all_cells: tests.reference_all_cells.auc,
            classifier: ClassifierSection {
                config: classifier.0.clone(),
                high_level: (&tests.high_level).into(),
                all_cells: (&tests.all_cells).into(),
                plots: classifier.1,
            },
            observables: observables
                .into_iter()
                .map(|o| (o.comparison.name.clone(), o))
                .collect(),
            mean_chi2: mean(&chi2),
            reference_mean_chi2: mean(&reference_chi2),
            worst_observable,
            goals: Goals {
                speedup_100gev_at_least_1000: speed.speedup_100gev.map(|s| s >= 1000.0),
                auc_high_level_at_most_0_75: tests.high_level.auc <= 0.75,
            },
            speed,
            timing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::simulate_reference;

    #[test]
    fn the_noise_floor_uses_the_references_own_binning() {
        let a = simulate_reference(Particle::Electron, EnergySpec::Fixed(10.0), 150, 1, 0.01)
            .unwrap()
            .showers;
        let b = simulate_reference(Particle::Electron, EnergySpec::Fixed(10.0), 150, 2, 0.01)
            .unwrap()
            .showers;
        let g = simulate_reference(Particle::Electron, EnergySpec::Fixed(20.0), 150, 3, 0.01)
            .unwrap()
            .showers;
        let samples = observable_samples(&a, &g, Some(&b), 25);
        assert_eq!(samples.len(), observable_list().len());
        for s in &samples {
            let c = s.comparison();
            let floor = chi2_separation(
                s.reference_b.as_ref().unwrap(),
                &s.reference,
                &binning(
                    &s.reference,
                    s.reference_b.as_ref().unwrap(),
                    25,
                    s.observable.log_x,
                ),
            );
            assert_eq!(c.reference_chi2, Some(floor));
            assert_eq!(
                c.chi2,
                chi2_separation(&s.generated, &s.reference, &s.edges)
            );
            assert_eq!(s.histogram().samples.len(), 3);
        }
        // Twice the energy is far above the floor in the middle layer's energy.
        let middle = samples
            .iter()
            .find(|s| s.observable.name == "e_layer_1")
            .unwrap()
            .comparison();
        assert!(
            middle.chi2 > 5.0 * middle.reference_chi2.unwrap(),
            "{middle:?}"
        );
        assert!((middle.generated_mean / middle.reference_mean - 2.0).abs() < 0.3);
    }

    #[test]
    fn the_report_keeps_its_keys_and_reads_back() {
        let result = |auc: f64| TwoSampleResult {
            auc,
            fpr: vec![0.0, 1.0],
            tpr: vec![0.0, 1.0],
            n_train: 80,
            n_test: 20,
            epochs_run: 3,
        };
        let tests = ClassifierTests {
            high_level: result(0.7),
            all_cells: result(0.9),
            reference_high_level: result(0.52),
            reference_all_cells: result(0.55),
        };
        let sample = |seed| {
            simulate_reference(Particle::Photon, EnergySpec::Fixed(5.0), 20, seed, 0.0).unwrap()
        };
        let refs = References {
            a: sample(1),
            b: sample(2),
            source: "files".into(),
        };
        let observables = compare_observables(&refs.a.showers, &refs.b.showers, None, 10)
            .into_iter()
            .map(|comparison| ObservableEntry {
                comparison,
                plots: vec![],
            })
            .collect();
        let point = SpeedPoint {
            energy_gev: 100.0,
            simulator_showers_per_s: 10.0,
            simulator_showers: 40,
            generator: vec![(1, 500.0), (100, 20_000.0)],
            speedup: 2000.0,
        };
        let report = ValidationReport::new(
            Path::new("model"),
            "gamma",
            &refs,
            20,
            observables,
            &tests,
            (&ClassifierConfig::default(), vec![]),
            SpeedSection::new(vec![point], 2, "cpu".into()),
            ValidationTiming {
                reference_s: 1.0,
                generate_s: 0.1,
                total_s: 2.0,
            },
        );
        assert_eq!(report.speedup_100gev, Some(2000.0));
        assert_eq!(report.goals.speedup_100gev_at_least_1000, Some(true));
        assert!(report.goals.auc_high_level_at_most_0_75);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["observables"]["e_layer_1"]["name"], "e_layer_1");
        assert!(json["observables"]["e_layer_1"]
            .get("reference_chi2")
            .is_none());
        assert_eq!(json["speed"]["points"][0]["generator"][1][0], 100);
        assert_eq!(json["classifier"]["all_cells"]["n_test"], 20);
        let back: ValidationReport = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, report);
        let mut missing = json;
        missing.as_object_mut().unwrap().remove("auc_all_cells");
        let err = serde_json::from_value::<ValidationReport>(missing).unwrap_err();
        assert!(err.to_string().contains("auc_all_cells"), "{err}");
    }
}
