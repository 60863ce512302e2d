//! Showers as the networks see them: cells, overflow, incident energy and the condition
//! vector, as tensors; and the readout threshold that defines an empty cell.
//!
//! The conditioning maps the incident energy to `2·(log E − log E_min)/(log E_max − log E_min) − 1`
//! over the training range (so 1–100 GeV spans [−1, 1] evenly per decade), followed by a
//! one-hot particle code when the training sample has more than one particle type.

use candle_core::{Device, Tensor};
use deepsky_io::calo::{CaloGanShowers, CALOGAN_LAYER_SHAPES};
use ndarray::{Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{FastsimError, Result};

/// Cells per layer, front to back (3×96, 12×12, 12×6).
pub const LAYER_CELLS: [usize; 3] = [288, 144, 72];
/// Cells per shower.
pub const N_CELLS: usize = 504;

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

/// The simulator's output as CaloGAN showers (the same arrays; the particle is dropped).
pub fn from_shower_set(set: deepsky_sim::shower::ShowerSet) -> CaloGanShowers {
    CaloGanShowers {
        layer_0: set.layer_0,
        layer_1: set.layer_1,
        layer_2: set.layer_2,
        energy: set.energy,
        overflow: set.overflow,
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
    let cfg = deepsky_sim::shower::ShowerConfig {
        particle,
        energy_gev: energy,
        n_showers: n,
        seed,
    };
    let set = deepsky_sim::shower::simulate_showers(&cfg, &())
        .map_err(|e| FastsimError::Input(format!("reference simulation: {e}")))?;
    let mut showers = from_shower_set(set);
    apply_threshold(&mut showers, threshold_mev);
    Ok(Sample {
        particle: particle.to_string(),
        showers,
    })
}

/// Flatten the three layers of every shower into (N, 504) MeV.
pub fn flatten_cells(s: &CaloGanShowers) -> Array2<f32> {
    let n = s.len();
    let mut out = Array2::<f32>::zeros((n, N_CELLS));
    for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        let cells = s
            .layer_0
            .index_axis(Axis(0), i)
            .into_iter()
            .chain(s.layer_1.index_axis(Axis(0), i))
            .chain(s.layer_2.index_axis(Axis(0), i));
        for (d, &v) in row.iter_mut().zip(cells) {
            *d = v;
        }
    }
    out
}

/// The inverse of [`flatten_cells`]: CaloGAN showers from (N, 504) cells, (N, 3) overflow
/// and N incident energies in GeV.
pub fn unflatten_cells(cells: &[f32], overflow: &[f32], energies_gev: &[f32]) -> CaloGanShowers {
    let n = energies_gev.len();
    let mut layers: Vec<Array3<f32>> = CALOGAN_LAYER_SHAPES
        .iter()
        .map(|&(r, c)| Array3::zeros((n, r, c)))
        .collect();
    for i in 0..n {
        let row = &cells[i * N_CELLS..(i + 1) * N_CELLS];
        let mut off = 0;
        for (l, layer) in layers.iter_mut().enumerate() {
            let k = LAYER_CELLS[l];
            for (d, &v) in layer
                .index_axis_mut(Axis(0), i)
                .iter_mut()
                .zip(&row[off..off + k])
            {
                *d = v;
            }
            off += k;
        }
    }
    let layer_2 = layers.pop().expect("three layers");
    let layer_1 = layers.pop().expect("three layers");
    let layer_0 = layers.pop().expect("three layers");
    CaloGanShowers {
        layer_0,
        layer_1,
        layer_2,
        energy: Array2::from_shape_vec((n, 1), energies_gev.to_vec()).expect("n energies"),
        overflow: Array2::from_shape_vec((n, 3), overflow.to_vec()).expect("n×3 overflow"),
    }
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
            cells.extend(flatten_cells(&s.showers).iter().copied());
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
    fn flatten_and_back_is_identity() {
        let n = 2;
        let mut s = CaloGanShowers {
            layer_0: Array3::from_shape_fn((n, 3, 96), |(i, r, c)| (i * 1000 + r * 96 + c) as f32),
            layer_1: Array3::from_shape_fn((n, 12, 12), |(i, r, c)| (i * 7 + r * 12 + c) as f32),
            layer_2: Array3::from_shape_fn((n, 12, 6), |(i, r, c)| (i + r * 6 + c) as f32 + 0.5),
            energy: Array2::from_shape_vec((n, 1), vec![1.0, 50.0]).unwrap(),
            overflow: Array2::from_shape_vec((n, 3), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap(),
        };
        let flat = flatten_cells(&s);
        assert_eq!(flat[[1, 0]], 1000.0);
        assert_eq!(flat[[0, 288]], 0.0);
        assert_eq!(flat[[1, 503]], 1.0 + 11.0 * 6.0 + 5.0 + 0.5);
        let back = unflatten_cells(
            flat.as_slice().unwrap(),
            s.overflow.as_slice().unwrap(),
            s.energy.as_slice().unwrap(),
        );
        assert_eq!(back, s);
        apply_threshold(&mut s, 1.0);
        assert_eq!(s.layer_0[[0, 0, 1]], 0.0);
        assert_eq!(s.layer_0[[0, 0, 2]], 2.0);
        assert_eq!(s.overflow[[0, 1]], 0.0);
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
