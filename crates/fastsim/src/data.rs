//! Showers as the networks see them: cells, overflow, incident energy and the condition
//! vector, as tensors; and the readout threshold that defines an empty cell.
//!
//! The conditioning maps the incident energy to `2·(log E − log E_min)/(log E_max − log E_min) − 1`
//! over the training range (so 1–100 GeV spans [−1, 1] evenly per decade), followed by a
//! one-hot particle code when the training sample has more than one particle type.

use candle_core::{Device, Tensor};
use std::path::Path;

use deepsky_io::calo::{read_showers, CaloGanShowers, ShowerLayout};
use deepsky_io::h5::{AttrValue, H5Reader};
use serde::{Deserialize, Serialize};

use crate::error::{FastsimError, Result};

/// Cells per layer, front to back (3×96, 12×12, 12×6).
pub const LAYER_CELLS: [usize; 3] = [288, 144, 72];
/// Cells per shower.
pub const N_CELLS: usize = deepsky_io::calo::CALOGAN_CELLS;

/// Zero every cell (and overflow entry) at or below `threshold_mev`, as a detector's readout
/// does. The simulator's sampling fluctuations leave cells down to 1e-45 MeV that no detector
/// could see and no generator should be asked to reproduce; validation compares reference and
/// generated showers after the same threshold (the CaloChallenge applies 15 keV).
pub fn apply_threshold(showers: &mut CaloGanShowers, threshold_mev: f32) {
    let cut = |v: &mut f32| {
        if *v <= threshold_mev {
            *v = 0.0
        }
    };
    showers.layer_0.map_inplace(cut);
    showers.layer_1.map_inplace(cut);
    showers.layer_2.map_inplace(cut);
    showers.overflow.map_inplace(cut);
}

/// Centres of `n` cells of `size_mm` along one axis, in mm from the shower axis: the grid
/// spans ±n·size/2 around the axis, as the simulator's tally places it.
pub fn axis_centres_mm(n: usize, size_mm: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (i as f64 + 0.5) * size_mm - 0.5 * n as f64 * size_mm)
        .collect()
}

/// Cell centres of each layer in mm from the shower axis, C order over (eta, phi):
/// `(eta_mm, phi_mm)` per cell.
pub fn cell_positions_mm() -> [Vec<(f64, f64)>; 3] {
    let cal = deepsky_sim::shower::Calorimeter::calogan();
    let layers = cal.layers();
    std::array::from_fn(|l| {
        let s = layers[l];
        let phi = axis_centres_mm(s.n_phi, s.cell_phi_mm);
        axis_centres_mm(s.n_eta, s.cell_eta_mm)
            .into_iter()
            .flat_map(|eta| phi.iter().map(move |&p| (eta, p)))
            .collect()
    })
}

/// How incident energy and particle type become the networks' condition vector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Conditioning {
    /// Lowest incident energy of the training sample, GeV.
    pub e_min_gev: f64,
    /// Highest incident energy of the training sample, GeV.
    pub e_max_gev: f64,
    /// Particle names in code order (`e-`, `gamma` …); one-hot coded when more than one.
    pub particles: Vec<String>,
}

impl Conditioning {
    /// Length of the condition vector.
    pub fn dim(&self) -> usize {
        1 + if self.particles.len() > 1 {
            self.particles.len()
        } else {
            0
        }
    }

    /// Index of `particle` among the trained particles; the error lists them.
    pub fn particle_index(&self, particle: &str) -> Result<usize> {
        self.particles
            .iter()
            .position(|p| p == particle)
            .ok_or_else(|| {
                FastsimError::Input(format!(
                    "the model was trained on {:?}, not on `{particle}`",
                    self.particles
                ))
            })
    }

    /// The scaled log-energy of `e_gev`.
    pub fn energy_code(&self, e_gev: f64) -> f64 {
        let (a, b) = (self.e_min_gev.ln(), self.e_max_gev.ln());
        if b > a {
            2.0 * (e_gev.ln() - a) / (b - a) - 1.0
        } else {
            0.0
        }
    }

    /// Condition rows (N, dim) for incident energies in GeV and particle indices.
    pub fn encode(&self, energies_gev: &[f32], particles: &[usize]) -> Vec<f32> {
        let dim = self.dim();
        let mut out = vec![0f32; energies_gev.len() * dim];
        for (i, (&e, &p)) in energies_gev.iter().zip(particles).enumerate() {
            let row = &mut out[i * dim..(i + 1) * dim];
            row[0] = self.energy_code(e as f64) as f32;
            if dim > 1 {
                row[1 + p] = 1.0;
            }
        }
        out
    }
}

/// One training or reference sample: showers of one particle type.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Particle name (`e-`, `e+`, `gamma`).
    pub particle: String,
    /// The showers, after the readout threshold.
    pub showers: CaloGanShowers,
}

impl Sample {
    /// Read a shower file in either layout ([`read_showers`]) with the readout threshold
    /// applied. The particle is `particle` when given, else the file's `particle` attribute
    /// (which `deepsky simulate showers` writes), else `default_particle`; a file with none of
    /// them, no showers, or energies that are not finite positive numbers is an error naming
    /// the file.
    pub fn read(
        path: &Path,
        particle: Option<&str>,
        default_particle: Option<&str>,
        threshold_mev: f32,
    ) -> Result<(Sample, ShowerLayout)> {
        let bad = |m: String| FastsimError::Input(format!("{}: {m}", path.display()));
        let particle = match particle {
            Some(p) => p.to_string(),
            None => {
                let attrs = H5Reader::open(path)?.root_attrs()?;
                match attrs.into_iter().find(|(k, _)| k == "particle") {
                    Some((_, AttrValue::Str(p))) => p,
                    _ => match default_particle {
                        Some(p) => p.to_string(),
                        None => return Err(bad(
                            "no `particle` attribute; name it in the config (data.samples = [{ path = \"…\", particle = \"e-\" }])".into(),
                        )),
                    },
                }
            }
        };
        let (mut showers, layout) = read_showers(path)?;
        if showers.is_empty() {
            return Err(bad("no showers".into()));
        }
        if let Some(e) = showers
            .energy
            .iter()
            .find(|e| !(e.is_finite() && **e > 0.0))
        {
            return Err(bad(format!(
                "incident energy {e} GeV is not a positive number"
            )));
        }
        let finite = [&showers.layer_0, &showers.layer_1, &showers.layer_2]
            .iter()
            .all(|l| l.iter().all(|v| v.is_finite()))
            && showers.overflow.iter().all(|v| v.is_finite());
        if !finite {
            return Err(bad(
                "cell or overflow energies contain NaN or infinity".into()
            ));
        }
        apply_threshold(&mut showers, threshold_mev);
        Ok((Sample { particle, showers }, layout))
    }
}

/// The training showers: one sample per particle type, the conditioning their energies and
/// particles span, and the layout of the first file (which generated files copy).
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// One sample per particle type, in the order of the files.
    pub samples: Vec<Sample>,
    /// Energy range and particle codes of the samples.
    pub conditioning: Conditioning,
    /// Layout of the first file.
    pub layout: ShowerLayout,
}

impl TrainingSet {
    /// Read `files` (path and particle, `None` for the file's `particle` attribute) with the
    /// readout threshold applied; two files of one particle type are an error.
    pub fn read(files: &[(&Path, Option<&str>)], threshold_mev: f32) -> Result<TrainingSet> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut layout = None;
        for &(path, particle) in files {
            let (sample, l) = Sample::read(path, particle, None, threshold_mev)?;
            if samples.iter().any(|s| s.particle == sample.particle) {
                return Err(FastsimError::Input(format!(
                    "data.samples: two files of `{}`; give one file per particle type",
                    sample.particle
                )));
            }
            layout.get_or_insert(l);
            samples.push(sample);
        }
        let Some(layout) = layout else {
            return Err(FastsimError::Input("data.samples: no training file".into()));
        };
        let (mut e_min, mut e_max) = (f64::INFINITY, 0f64);
        for &e in samples.iter().flat_map(|s| s.showers.energy.iter()) {
            e_min = e_min.min(e as f64);
            e_max = e_max.max(e as f64);
        }
        let conditioning = Conditioning {
            e_min_gev: e_min,
            e_max_gev: e_max,
            particles: samples.iter().map(|s| s.particle.clone()).collect(),
        };
        Ok(TrainingSet {
            samples,
            conditioning,
            layout,
        })
    }

    /// Showers in all samples.
    pub fn len(&self) -> usize {
        self.samples.iter().map(|s| s.showers.len()).sum()
    }

    /// True when there are no showers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Run the reference simulator: `n` showers of `particle` at `energy`, seed `seed`, after the
/// readout threshold.
pub fn simulate_reference(
    particle: deepsky_sim::shower::Particle,
    energy: deepsky_sim::shower::EnergySpec,
    n: usize,
    seed: u64,
    threshold_mev: f32,
) -> Result<Sample> {
    simulate_reference_until(particle, energy, n, seed, threshold_mev, &|| false)
}

/// [`simulate_reference`], stopping within a shower per worker once `stop` returns true
/// (then `NnError::Interrupted`, which the CLI turns into exit 130).
pub fn simulate_reference_until(
    particle: deepsky_sim::shower::Particle,
    energy: deepsky_sim::shower::EnergySpec,
    n: usize,
    seed: u64,
    threshold_mev: f32,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Sample> {
    let cfg = deepsky_sim::shower::ShowerConfig {
        particle,
        energy_gev: energy,
        n_showers: n,
        seed,
    };
    let set =
        deepsky_sim::shower::simulate_showers_until(&cfg, &(), stop).map_err(|e| match e {
            deepsky_sim::SimError::Interrupted => {
                FastsimError::Nn(deepsky_nn::NnError::Interrupted)
            }
            e => FastsimError::Input(format!("reference simulation: {e}")),
        })?;
    let mut showers = CaloGanShowers::from(set);
    apply_threshold(&mut showers, threshold_mev);
    Ok(Sample {
        particle: particle.to_string(),
        showers,
    })
}

/// Showers as tensors on a device, ready for mini-batches.
pub struct ShowerTensors {
    /// (N, 504) cell energies, MeV.
    pub cells: Tensor,
    /// (N, 3) overflow, MeV.
    pub overflow: Tensor,
    /// (N, 1) incident energy, MeV.
    pub incident_mev: Tensor,
    /// (N, dim) condition vectors.
    pub cond: Tensor,
    /// Incident energies, GeV (host copy for generation at the same energies).
    pub energies_gev: Vec<f32>,
    /// Particle index of each shower.
    pub particles: Vec<usize>,
    /// Serve every shower in one of its four mirror images (η and φ reflected or not,
    /// chosen at random per batch): see [`ShowerTensors::with_mirror`].
    pub mirror: bool,
}

impl ShowerTensors {
    /// Stack samples (one per particle type) under `cond`.
    pub fn new(samples: &[Sample], cond: &Conditioning, device: &Device) -> Result<ShowerTensors> {
        let mut cells = Vec::new();
        let mut overflow = Vec::new();
        let mut energies = Vec::new();
        let mut particles = Vec::new();
        for s in samples {
            let p = cond.particle_index(&s.particle)?;
            cells.extend(s.showers.cells().iter().copied());
            overflow.extend(s.showers.overflow.iter().copied());
            energies.extend(s.showers.energy.iter().copied());
            particles.extend(std::iter::repeat_n(p, s.showers.len()));
        }
        let n = energies.len();
        if n == 0 {
            return Err(FastsimError::Input("no showers".into()));
        }
        if let Some(bad) = energies.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
            return Err(FastsimError::Input(format!(
                "incident energy {bad} GeV is not a positive number"
            )));
        }
        if cells.iter().chain(&overflow).any(|v| !v.is_finite()) {
            return Err(FastsimError::Input(
                "cell or overflow energies contain NaN or infinity".into(),
            ));
        }
        let c = cond.encode(&energies, &particles);
        let incident: Vec<f32> = energies.iter().map(|e| e * 1000.0).collect();
        Ok(ShowerTensors {
            cells: Tensor::from_vec(cells, (n, N_CELLS), device)?,
            overflow: Tensor::from_vec(overflow, (n, 3), device)?,
            incident_mev: Tensor::from_vec(incident, (n, 1), device)?,
            cond: Tensor::from_vec(c, (n, cond.dim()), device)?,
            energies_gev: energies,
            particles,
            mirror: false,
        })
    }

    /// Train on mirror images too. A calorimeter and beam symmetric under η → −η and
    /// φ → −φ (the grid is centred on the shower axis) make a reflected shower as likely as
    /// the original, so reflections give four training showers for each simulated one
    /// without biasing anything; on an asymmetric detector they would.
    pub fn with_mirror(mut self, mirror: bool) -> ShowerTensors {
        self.mirror = mirror;
        self
    }

    /// Number of showers.
    pub fn len(&self) -> usize {
        self.energies_gev.len()
    }

    /// True without showers.
    pub fn is_empty(&self) -> bool {
        self.energies_gev.is_empty()
    }
}

/// For each of the four mirror images (bit 0: η reflected, bit 1: φ reflected), the source
/// cell of every cell (504 indices, C order over (eta, phi) per layer).
pub fn mirror_permutations() -> [Vec<u32>; 4] {
    let cal = deepsky_sim::shower::Calorimeter::calogan();
    std::array::from_fn(|image| {
        let mut perm = Vec::with_capacity(N_CELLS);
        let mut offset = 0;
        for spec in cal.layers() {
            let (n_eta, n_phi) = (spec.n_eta, spec.n_phi);
            for i in 0..n_eta {
                for j in 0..n_phi {
                    let si = if image & 1 == 1 { n_eta - 1 - i } else { i };
                    let sj = if image & 2 == 2 { n_phi - 1 - j } else { j };
                    perm.push((offset + si * n_phi + sj) as u32);
                }
            }
            offset += n_eta * n_phi;
        }
        perm
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_images_reflect_each_layer_about_the_shower_axis() {
        let perms = mirror_permutations();
        assert!(perms[0].iter().enumerate().all(|(i, &p)| p as usize == i));
        let positions: Vec<(f64, f64)> = cell_positions_mm().concat();
        for (image, perm) in perms.iter().enumerate() {
            let mut seen = perm.clone();
            seen.sort_unstable();
            assert!(seen.iter().enumerate().all(|(i, &p)| p as usize == i));
            // The source cell sits at the reflected position, in the same layer.
            let sign = |bit: usize| if image & bit == bit { -1.0 } else { 1.0 };
            for (cell, &source) in perm.iter().enumerate() {
                let (eta, phi) = positions[cell];
                let (s_eta, s_phi) = positions[source as usize];
                assert!(
                    (s_eta - sign(1) * eta).abs() < 1e-9 && (s_phi - sign(2) * phi).abs() < 1e-9
                );
                let layer = |c: usize| (c >= 288) as usize + (c >= 432) as usize;
                assert_eq!(layer(cell), layer(source as usize));
            }
        }
        // Reflecting twice is the identity.
        for perm in &perms {
            assert!((0..N_CELLS).all(|i| perm[perm[i] as usize] as usize == i));
        }
    }

    #[test]
    fn the_threshold_zeroes_cells_and_overflow_at_or_below_it() {
        let mut s = CaloGanShowers::from_cells(
            ndarray::Array2::from_shape_fn((1, N_CELLS), |(_, c)| c as f32).view(),
            ndarray::Array2::from_shape_vec((1, 3), vec![0.5, 1.0, 2.0])
                .unwrap()
                .view(),
            &[10.0],
        );
        apply_threshold(&mut s, 1.0);
        assert_eq!(s.layer_0[[0, 0, 1]], 0.0);
        assert_eq!(s.layer_0[[0, 0, 2]], 2.0);
        assert_eq!(s.overflow.row(0).to_vec(), [0.0, 0.0, 2.0]);
    }

    #[test]
    fn samples_read_either_layout_and_name_the_particle() {
        let dir = tempfile::tempdir().unwrap();
        let set = deepsky_sim::shower::simulate_showers(
            &deepsky_sim::shower::ShowerConfig {
                particle: deepsky_sim::shower::Particle::Photon,
                energy_gev: deepsky_sim::shower::EnergySpec::Fixed(5.0),
                n_showers: 3,
                seed: 4,
            },
            &(),
        )
        .unwrap();
        let showers = CaloGanShowers::from(set);
        let gan = dir.path().join("gan.h5");
        let challenge = dir.path().join("challenge.h5");
        let attrs = [("particle".to_string(), AttrValue::Str("gamma".into()))];
        showers.write(&gan, &attrs).unwrap();
        showers.to_calochallenge().write(&challenge, &[]).unwrap();

        let (a, layout) = Sample::read(&gan, None, None, 0.01).unwrap();
        assert_eq!(
            (a.particle.as_str(), layout),
            ("gamma", ShowerLayout::CaloGan)
        );
        assert_eq!(a.showers.len(), 3);
        assert!(a.showers.layer_1.iter().all(|&v| v == 0.0 || v > 0.01));
        // No attribute: the default, else an error naming the file and the config key.
        let (b, layout) = Sample::read(&challenge, None, Some("e-"), 0.01).unwrap();
        assert_eq!(
            (b.particle.as_str(), layout),
            ("e-", ShowerLayout::CaloChallenge)
        );
        assert_eq!(b.showers.layer_1, a.showers.layer_1);
        let err = Sample::read(&challenge, None, None, 0.01)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("challenge.h5") && err.contains("data.samples"),
            "{err}"
        );
        let (c, _) = Sample::read(&gan, Some("e+"), None, 0.01).unwrap();
        assert_eq!(c.particle, "e+");

        // A training set spans the energies and particles of its files.
        let set = TrainingSet::read(&[(&gan, None), (&challenge, Some("e-"))], 0.01).unwrap();
        assert_eq!(set.conditioning.particles, ["gamma", "e-"]);
        assert_eq!(
            (set.conditioning.e_min_gev, set.conditioning.e_max_gev),
            (5.0, 5.0)
        );
        assert_eq!((set.layout, set.len()), (ShowerLayout::CaloGan, 6));
        let err = TrainingSet::read(&[(&gan, None), (&challenge, Some("gamma"))], 0.01)
            .unwrap_err()
            .to_string();
        assert!(err.contains("two files of `gamma`"), "{err}");
    }

    #[test]
    fn conditioning_spans_minus_one_to_one_and_codes_particles() {
        let c = Conditioning {
            e_min_gev: 1.0,
            e_max_gev: 100.0,
            particles: vec!["e-".into(), "gamma".into()],
        };
        assert_eq!(c.dim(), 3);
        let v = c.encode(&[1.0, 10.0, 100.0], &[0, 1, 0]);
        assert!((v[0] + 1.0).abs() < 1e-6 && v[1] == 1.0 && v[2] == 0.0);
        assert!(v[3].abs() < 1e-6 && v[4] == 0.0 && v[5] == 1.0);
        assert!((v[6] - 1.0).abs() < 1e-6);
        assert!(c
            .particle_index("e+")
            .unwrap_err()
            .to_string()
            .contains("gamma"));
    }

    #[test]
    fn cell_centres_are_symmetric_about_the_axis() {
        let pos = cell_positions_mm();
        for (l, p) in pos.iter().enumerate() {
            assert_eq!(p.len(), LAYER_CELLS[l]);
            let (sx, sy) = p.iter().fold((0.0, 0.0), |a, q| (a.0 + q.0, a.1 + q.1));
            assert!(sx.abs() < 1e-9 && sy.abs() < 1e-9);
        }
        // Layer 0: 3 strips of 160 mm in eta, 96 of 5 mm in phi.
        assert_eq!(pos[0][0], (-160.0, -237.5));
    }
}
