//! The calorimeter: the Pb/LAr stack's material constants, its three-layer CaloGAN cell
//! grid, and the photon and bremsstrahlung cross-sections per radiation length.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Electron mass, MeV (PDG).
pub const ELECTRON_MASS_MEV: f64 = 0.510_998_95;
/// Radiation length of lead, mm (PDG atomic and nuclear properties).
pub const X0_LEAD_MM: f64 = 5.612;
/// Radiation length of liquid argon, mm (PDG atomic and nuclear properties).
pub const X0_LAR_MM: f64 = 140.0;
/// Lead absorber plate thickness, mm (ATLAS EM barrel, |η| < 0.8).
pub const LEAD_PLATE_MM: f64 = 1.5;
/// Liquid-argon gap per absorber plate, mm (ATLAS EM barrel: two 2.1 mm half-gaps).
pub const LAR_GAP_MM: f64 = 4.2;
/// Critical energy of the Pb/LAr mixture, MeV (Rossi definition; see the module docs).
pub const CRITICAL_ENERGY_MEV: f64 = 10.0;
/// Scale energy E_s = m_e √(4π/α) of the Molière radius R_M = X0 E_s/E_c, MeV (PDG).
pub const MOLIERE_SCALE_ENERGY_MEV: f64 = 21.2;
/// Fraction of the shower energy deposited in the liquid argon (EM sampling fraction).
pub const SAMPLING_FRACTION: f64 = 0.2;
/// Stochastic term a of the resolution σ/E = a/√E (E in GeV), as a fraction (10 %/√GeV).
pub const STOCHASTIC_TERM: f64 = 0.10;

/// 2π r_e², the Klein–Nishina prefactor, in cm².
const TWO_PI_RE2_CM2: f64 = 4.989_34e-25;
/// Avogadro's number, mol⁻¹.
const AVOGADRO: f64 = 6.022_140_76e23;
/// Lead density (g/cm³) and Z/A (mol/g).
const LEAD_DENSITY: f64 = 11.35;
const LEAD_Z_OVER_A: f64 = 82.0 / 207.2;
/// Liquid-argon density (g/cm³) and Z/A (mol/g).
const LAR_DENSITY: f64 = 1.396;
const LAR_Z_OVER_A: f64 = 18.0 / 39.948;
/// Photoabsorption fit for lead, μ/ρ = A/k³ + B/k (cm²/g, k in MeV).
const PHOTO_A: f64 = 0.006_48;
const PHOTO_B: f64 = 0.012_02;
/// Shape of the pair cross-section: f(k) = 1 − exp(−C [ln(k/2m_e)]^P).
const PAIR_C: f64 = 0.094;
const PAIR_P: f64 = 1.71;

/// Number of cells per shower over the three layers (288 + 144 + 72).
pub const N_CELLS: usize = 504;

/// One longitudinal layer: its depth and its cell grid, centred on the shower axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LayerSpec {
    /// Depth of the layer along the axis, in radiation lengths.
    pub thickness_x0: f64,
    /// Number of cells along axis 1 (CaloGAN "eta", simulation x).
    pub n_eta: usize,
    /// Number of cells along axis 2 (CaloGAN "phi", simulation y).
    pub n_phi: usize,
    /// Cell size along axis 1, mm.
    pub cell_eta_mm: f64,
    /// Cell size along axis 2, mm.
    pub cell_phi_mm: f64,
}

impl LayerSpec {
    /// Number of cells, `n_eta * n_phi`.
    pub fn n_cells(&self) -> usize {
        self.n_eta * self.n_phi
    }
}

/// The calorimeter: geometry and material constants. Build it with [`Calorimeter::calogan`].
///
/// Serialisable for run metadata; not deserialisable, so that every instance comes from
/// [`Calorimeter::calogan`] and matches the fixed [`ShowerSet`](super::ShowerSet) shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calorimeter {
    pub(super) layers: [LayerSpec; 3],
    pub(super) x0_mm: f64,
    pub(super) critical_energy_mev: f64,
    moliere_radius_mm: f64,
    sampling_fraction: f64,
    pub(super) stochastic_term: f64,
    /// Electrons per cm² in one X0 of the mixture (for Compton scattering).
    electrons_per_x0_cm2: f64,
    /// Grams of lead per cm² in one X0 of the mixture (for photoabsorption).
    lead_g_cm2_per_x0: f64,
}

impl Calorimeter {
    /// The CaloGAN segmentation on an ATLAS-like Pb/LAr stack (see the module docs).
    pub fn calogan() -> Calorimeter {
        let period_x0 = LEAD_PLATE_MM / X0_LEAD_MM + LAR_GAP_MM / X0_LAR_MM;
        let x0_mm = (LEAD_PLATE_MM + LAR_GAP_MM) / period_x0;
        // Electron and lead areal densities per period, divided by the period's X0.
        let lead_g = LEAD_PLATE_MM / 10.0 * LEAD_DENSITY;
        let lar_g = LAR_GAP_MM / 10.0 * LAR_DENSITY;
        let electrons = (lead_g * LEAD_Z_OVER_A + lar_g * LAR_Z_OVER_A) * AVOGADRO;
        let layer = |thickness_x0, n_eta, n_phi, cell_eta_mm, cell_phi_mm| LayerSpec {
            thickness_x0,
            n_eta,
            n_phi,
            cell_eta_mm,
            cell_phi_mm,
        };
        Calorimeter {
            layers: [
                layer(4.3, 3, 96, 160.0, 5.0),
                layer(16.0, 12, 12, 40.0, 40.0),
                layer(2.0, 12, 6, 40.0, 80.0),
            ],
            x0_mm,
            critical_energy_mev: CRITICAL_ENERGY_MEV,
            moliere_radius_mm: x0_mm * MOLIERE_SCALE_ENERGY_MEV / CRITICAL_ENERGY_MEV,
            sampling_fraction: SAMPLING_FRACTION,
            stochastic_term: STOCHASTIC_TERM,
            electrons_per_x0_cm2: electrons / period_x0,
            lead_g_cm2_per_x0: lead_g / period_x0,
        }
    }

    /// The three layers, front to back.
    pub fn layers(&self) -> &[LayerSpec; 3] {
        &self.layers
    }

    /// Effective radiation length of the Pb/LAr stack, mm.
    pub fn x0_mm(&self) -> f64 {
        self.x0_mm
    }

    /// Critical energy, MeV; also the ionisation loss per X0.
    pub fn critical_energy_mev(&self) -> f64 {
        self.critical_energy_mev
    }

    /// Molière radius, mm.
    pub fn moliere_radius_mm(&self) -> f64 {
        self.moliere_radius_mm
    }

    /// Molière radius in radiation lengths.
    pub fn moliere_radius_x0(&self) -> f64 {
        self.moliere_radius_mm / self.x0_mm
    }

    /// Fraction of the deposited energy seen by the liquid argon.
    pub fn sampling_fraction(&self) -> f64 {
        self.sampling_fraction
    }

    /// Stochastic term a of σ/E = a/√(E/GeV), as a fraction.
    pub fn stochastic_term(&self) -> f64 {
        self.stochastic_term
    }

    /// Total depth, in radiation lengths.
    pub fn depth_x0(&self) -> f64 {
        self.layers.iter().map(|l| l.thickness_x0).sum()
    }

    /// Depth of the front face of layer `i` (0, 1, 2; 3 gives the back face), in X0.
    pub fn layer_front_x0(&self, i: usize) -> f64 {
        self.layers.iter().take(i).map(|l| l.thickness_x0).sum()
    }

    /// Photon interaction cross-sections per X0 at energy `k_mev` > 0:
    /// (photoabsorption, Compton, pair production).
    pub fn photon_cross_sections_per_x0(&self, k_mev: f64) -> (f64, f64, f64) {
        let k = k_mev;
        let photo = self.lead_g_cm2_per_x0 * (PHOTO_A / (k * k * k) + PHOTO_B / k);
        let compton = klein_nishina_cm2(k) * self.electrons_per_x0_cm2;
        let pair = pair_cross_section_per_x0(k);
        (photo, compton, pair)
    }

    /// Photon mean free path, in X0 (→ 9/7 at high energy).
    pub fn photon_mean_free_path_x0(&self, k_mev: f64) -> f64 {
        let (a, b, c) = self.photon_cross_sections_per_x0(k_mev);
        1.0 / (a + b + c)
    }
}

/// Klein–Nishina total cross-section per electron, cm².
fn klein_nishina_cm2(k_mev: f64) -> f64 {
    let kap = k_mev / ELECTRON_MASS_MEV;
    let l = (1.0 + 2.0 * kap).ln();
    let q = 1.0 + 2.0 * kap;
    TWO_PI_RE2_CM2
        * ((1.0 + kap) / (kap * kap) * (2.0 * (1.0 + kap) / q - l / kap) + l / (2.0 * kap)
            - (1.0 + 3.0 * kap) / (q * q))
}

/// Pair-production cross-section per X0: (7/9) times the energy dependence of lead.
fn pair_cross_section_per_x0(k_mev: f64) -> f64 {
    let thr = 2.0 * ELECTRON_MASS_MEV;
    if k_mev <= thr {
        return 0.0;
    }
    let x = (k_mev / thr).ln();
    7.0 / 9.0 * (1.0 - (-PAIR_C * x.powf(PAIR_P)).exp())
}

/// Integrated Tsai bremsstrahlung spectrum per X0 for photons in `[kmin, kmax]`, electron total
/// energy `e`: ∫ (1/k)(4/3 − 4/3 k/E + k²/E²) dk.
pub(super) fn brems_rate_per_x0(e: f64, kmin: f64, kmax: f64) -> f64 {
    if kmax <= kmin {
        return 0.0;
    }
    4.0 / 3.0 * (kmax / kmin).ln() - 4.0 / 3.0 * (kmax - kmin) / e
        + (kmax * kmax - kmin * kmin) / (2.0 * e * e)
}

/// Energy radiated per X0 in photons below `kcut` by an electron of total energy `e`:
/// E ∫₀^{y} (4/3 − 4/3 y + y²) dy.
pub(super) fn soft_brems_loss_per_x0(e: f64, kcut: f64) -> f64 {
    let y = kcut / e;
    e * (4.0 / 3.0 * y - 2.0 / 3.0 * y * y + y * y * y / 3.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shower_geometry_constants() {
        let cal = Calorimeter::calogan();
        // X0 of 1.5 mm Pb + 4.2 mm LAr, and R_M = X0 · 21.2/10.
        assert!((cal.x0_mm() - 19.13).abs() < 0.05, "X0 = {}", cal.x0_mm());
        assert!(
            (cal.moliere_radius_mm() - 40.56).abs() < 0.1,
            "R_M = {}",
            cal.moliere_radius_mm()
        );
        assert!((cal.depth_x0() - 22.3).abs() < 1e-12);
        let cells: usize = cal.layers().iter().map(|l| l.n_cells()).sum();
        assert_eq!(cells, N_CELLS);
        for l in cal.layers() {
            assert_eq!(l.n_eta as f64 * l.cell_eta_mm, 480.0);
            assert_eq!(l.n_phi as f64 * l.cell_phi_mm, 480.0);
        }
    }
    #[test]
    fn shower_cross_sections() {
        let cal = Calorimeter::calogan();
        // High-energy photon mean free path → 9/7 X0 (within 1 % at 100 GeV).
        let l = cal.photon_mean_free_path_x0(1e5);
        assert!((l / (9.0 / 7.0) - 1.0).abs() < 0.01, "λ(100 GeV) = {l}");
        // Attenuation minimum of lead-like matter near 3–5 MeV, a few X0 long.
        let l4 = cal.photon_mean_free_path_x0(4.0);
        assert!(l4 > 2.0 && l4 < 4.5, "λ(4 MeV) = {l4}");
        assert!(cal.photon_mean_free_path_x0(1.0) < l4);
        assert!(cal.photon_mean_free_path_x0(0.2) < 0.5);
        // Klein–Nishina: 0.2112 b per electron at 1 MeV (Hubbell tables), 0.665 b Thomson limit.
        assert!((klein_nishina_cm2(1.0) / 0.2112e-24 - 1.0).abs() < 0.01);
        assert!((klein_nishina_cm2(1e-3) / 0.6652e-24 - 1.0).abs() < 0.01);
        // Tsai spectrum radiates E per X0 in total: ∫k dN/dk = E.
        let e = 1000.0;
        let n = 20000;
        let radiated: f64 = (0..n)
            .map(|i| {
                let y = (i as f64 + 0.5) / n as f64;
                e * (4.0 / 3.0 - 4.0 / 3.0 * y + y * y) / n as f64
            })
            .sum();
        assert!((radiated / e - 1.0).abs() < 1e-6);
        assert!((soft_brems_loss_per_x0(e, e) / e - 1.0).abs() < 1e-12);
    }
}
