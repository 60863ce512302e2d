//! Simulated showers: one at a time ([`OneShower`]) and as a set in the CaloGAN layout
//! ([`ShowerSet`]), convertible to the CaloChallenge layout.

use ndarray::{Array2, Array3};

use super::config::Particle;

/// One simulated shower.
#[derive(Debug, Clone, PartialEq)]
pub struct OneShower {
    /// Incident kinetic energy, GeV.
    pub energy_gev: f64,
    /// Layer 0 cells, calibrated MeV, C order of shape (3, 96).
    pub layer_0: Vec<f32>,
    /// Layer 1 cells, calibrated MeV, C order of shape (12, 12).
    pub layer_1: Vec<f32>,
    /// Layer 2 cells, calibrated MeV, C order of shape (12, 6).
    pub layer_2: Vec<f32>,
    /// Calibrated energy per layer outside the cell grid, MeV.
    pub overflow: [f32; 3],
    /// True energy deposited in the calorimeter (before sampling), MeV.
    pub deposited_mev: f64,
    /// True energy that left the calorimeter (front, back), MeV. For an incident e⁻ or γ,
    /// `deposited_mev + leaked_mev` is the incident energy; an incident e⁺ adds 2 m_e.
    pub leaked_mev: f64,
}

impl OneShower {
    /// Sum of calibrated cell energies and overflow, MeV.
    pub fn total_mev(&self) -> f64 {
        self.layer_0
            .iter()
            .chain(&self.layer_1)
            .chain(&self.layer_2)
            .chain(&self.overflow)
            .map(|&v| v as f64)
            .sum()
    }
}

/// A set of showers in CaloGAN layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowerSet {
    /// Layer 0, shape (N, 3, 96), calibrated MeV.
    pub layer_0: Array3<f32>,
    /// Layer 1, shape (N, 12, 12), calibrated MeV.
    pub layer_1: Array3<f32>,
    /// Layer 2, shape (N, 12, 6), calibrated MeV.
    pub layer_2: Array3<f32>,
    /// Incident energy, shape (N, 1), GeV.
    pub energy: Array2<f32>,
    /// Calibrated energy outside the grid of each layer, shape (N, 3), MeV.
    pub overflow: Array2<f32>,
    /// The incident particle of all showers.
    pub particle: Particle,
}

/// The simulator's showers as the CaloGAN layout holds them (the same arrays; the particle,
/// which the layout does not record, is dropped).
impl From<ShowerSet> for deepsky_io::calo::CaloGanShowers {
    fn from(set: ShowerSet) -> Self {
        deepsky_io::calo::CaloGanShowers {
            layer_0: set.layer_0,
            layer_1: set.layer_1,
            layer_2: set.layer_2,
            energy: set.energy,
            overflow: set.overflow,
        }
    }
}

impl ShowerSet {
    /// Number of showers.
    pub fn len(&self) -> usize {
        self.energy.nrows()
    }

    /// True if the set holds no shower.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The CaloChallenge layout: incident energies (N, 1) and showers (N, 504), both in MeV,
    /// the cells in the order of [`deepsky_io::calo::flatten_layers`]. Overflow is not
    /// included.
    pub fn to_calochallenge(&self) -> deepsky_io::calo::CaloChallengeShowers {
        deepsky_io::calo::CaloChallengeShowers {
            incident_energies: self.energy.mapv(|e| e * 1000.0),
            showers: deepsky_io::calo::flatten_layers([
                self.layer_0.view(),
                self.layer_1.view(),
                self.layer_2.view(),
            ]),
        }
    }
}
