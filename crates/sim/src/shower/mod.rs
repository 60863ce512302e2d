//! Particle-level Monte Carlo of electromagnetic showers in a lead/liquid-argon sampling
//! calorimeter with the CaloGAN segmentation.
//!
//! This is the slow, physically honest reference that deepsky's fast-simulation GAN learns to
//! replace. Every e⁻, e⁺ and photon of the cascade is followed in 3-D through the absorber; the
//! longitudinal profile, the Molière-radius lateral spread and the a/√E resolution are not put in
//! by hand but come out of the interactions below (the integration tests check them against the
//! PDG rules of thumb).
//!
//! # Detector
//!
//! An ATLAS-barrel-like sampling structure: 1.5 mm lead absorber plates with 4.2 mm liquid-argon
//! gaps (electrodes and steel cladding ignored). With the PDG radiation lengths
//! X0(Pb) = 5.612 mm and X0(LAr) = 140 mm this gives an effective
//! X0 = 5.7 mm / (1.5/5.612 + 4.2/140) = **19.1 mm**. Lead supplies 90 % of the radiation
//! lengths, so the photon cross-sections per X0 below are those of lead plus the extra Compton
//! electrons of the argon.
//!
//! | quantity | value | source |
//! |---|---|---|
//! | effective radiation length X0 | 19.1 mm | computed from the plates, PDG X0 |
//! | critical energy E_c | 10 MeV | Rossi definition (ionisation loss per X0 = E); ≈ 1.25 MeV cm²/g × 1.70 g/cm² Pb + 1.7 MeV cm²/g × 0.59 g/cm² LAr per 0.298 X0 period ≈ 10.5 MeV |
//! | Molière radius R_M = X0 · E_s/E_c | 40.6 mm (2.12 X0) | PDG eq. with E_s = 21.2 MeV |
//! | sampling fraction (EM) | 0.20 | LAr/Pb e/mip ≈ 0.65 × mip fraction 0.32; ATLAS barrel ≈ 0.17–0.2 |
//! | stochastic term a | 10 %/√GeV | ATLAS LAr barrel test beam |
//!
//! The three layers (normal incidence at the centre of the front face, shower axis = z):
//!
//! | layer | depth | cells (axis 1 × axis 2) | cell size | cell size in R_M |
//! |---|---|---|---|---|
//! | 0 (strips) | 4.3 X0 (82 mm) | 3 × 96 | 160 mm × 5 mm | 3.94 × 0.123 |
//! | 1 (middle) | 16.0 X0 (306 mm) | 12 × 12 | 40 mm × 40 mm | 0.99 × 0.99 |
//! | 2 (back) | 2.0 X0 (38 mm) | 12 × 6 | 40 mm × 80 mm | 0.99 × 1.97 |
//!
//! The depths are those of the ATLAS EM barrel (22.3 X0 in all); the cell counts and sizes are
//! CaloGAN's (each layer's grid is 480 mm × 480 mm, ±5.9 R_M around the axis, so the
//! shower is contained laterally to well below a per cent). Axis 1 and axis 2 are CaloGAN's
//! "eta" and "phi" directions, i.e. the x and y directions of the simulation. The absorber extends
//! without limit sideways: energy deposited outside a layer's grid goes to that layer's
//! [`ShowerSet::overflow`]. Energy leaving through the front face (albedo) or the back
//! (longitudinal leakage) is lost.
//!
//! # Physics model
//!
//! Lengths are tracked in units of X0 and energies in MeV. Incident energies are kinetic energies
//! (as Geant4's particle gun, which CaloGAN used).
//!
//! * **Bremsstrahlung** (e±): complete-screening Bethe–Heitler spectrum in Tsai's form,
//!   dN/(dk dt) = (1/k)(4/3 − 4/3 y + y²), y = k/E, per X0 (PDG "Passage of particles through
//!   matter", eq. for dσ/dk). Photons above [`BREMS_K_MIN_MEV`] are emitted as discrete,
//!   exponentially distributed events with the exact integrated cross-section; the energy of
//!   softer photons, ≈ (4/3)·k_min per X0, is deposited continuously along the track. Photon
//!   angles follow Geant4's modified Tsai distribution, θ ≈ u·m_e/E with ⟨u⟩ ≈ 3.
//! * **Ionisation** (e±): a continuous loss of E_c per X0 (Rossi's approximation B: equal to the
//!   radiative loss at E = E_c), deposited at the middle of each step. Landau fluctuations and
//!   δ-rays are ignored (the sampling fluctuations below dominate).
//! * **Multiple scattering** (e±): Highland's formula
//!   θ0 = 13.6 MeV/(βcp) √(s/X0) (1 + 0.038 ln(s/(X0β²))) per plane, with the correlated
//!   lateral displacement of the PDG review (y = s θ0 (z1/√12 + z2/2)) and the mean path-length
//!   shortening s(1 − θ0²/2). Steps are limited to [`MAX_STEP_X0`], to a
//!   [`MAX_STEP_ENERGY_LOSS`] fraction of the kinetic energy and to θ0 ≤ [`MAX_STEP_THETA0`].
//!   The Gaussian treatment is crude at θ0 ≈ 1 rad, but that only happens for electrons of a
//!   few MeV whose direction is randomised within a millimetre anyway: halving the angle limit
//!   changed t_max by < 0.05 X0 and the containment in R_M by < 0.003 at 10 GeV, at twice the
//!   cost. Applying Highland per step (its logarithm is not additive) slightly underestimates
//!   the scattering of long tracks; the measured Molière containment shows no sign of a too
//!   narrow shower.
//! * **Pair production** (γ): σ_pair = (7/9)/X0 · f(k) with
//!   f(k) = 1 − exp(−0.094 [ln(k/2m_e)]^1.71), a fit to the shape of the NIST XCOM pair
//!   cross-section of lead (f = 0.05 at 2 MeV, 0.32 at 10 MeV, 0.72 at 100 MeV, 0.92 at 1 GeV,
//!   → 1 at high energy, i.e. a mean free path → 9/7 X0). Energy sharing from the
//!   complete-screening Bethe–Heitler spectrum dσ/dx ∝ 1 − (4/3)x(1 − x); opening angles
//!   ≈ m_e/E± (modified Tsai again).
//! * **Compton scattering** (γ): Klein–Nishina cross-section per electron times the electron
//!   density of the Pb/LAr mixture (1.90 × 10²⁴ e⁻/cm² per X0); final state sampled with the
//!   Geant4 `G4KleinNishinaCompton` method. This is what spreads the energy of the many MeV
//!   photons of the shower tail over a few X0 (the lead attenuation minimum is near 3.5 MeV).
//! * **Photoabsorption** (γ): lead only, μ/ρ = 0.00648/k³ + 0.01202/k cm²/g (k in MeV), a fit to
//!   XCOM between 0.15 and 2 MeV; the photon energy is deposited on the spot (photo-electron and
//!   fluorescence ranges are ≪ the cell sizes). Coherent scattering is ignored.
//! * **Positron annihilation**: at rest, when the positron reaches the tracking cut, into two
//!   back-to-back 511 keV photons that are tracked (annihilation in flight is ignored).
//! * **Tracking cuts**: e± below [`ELECTRON_CUT_MEV`] kinetic energy (range ≈ 0.1 X0) and
//!   photons below [`PHOTON_CUT_MEV`] (attenuation length < 0.03 X0) deposit their energy where
//!   they are.
//!
//! # Sampling and output
//!
//! Only the argon sees energy; the visible energy is the sampling fraction times the deposit,
//! smeared by sampling fluctuations. They are modelled as Gamma-distributed visible energy with
//! variance proportional to the deposit: a deposit ΔE gives a calibrated signal drawn from
//! Gamma(shape = ΔE/ε, scale = ε), ε = a² × 1 GeV = 10 MeV. Because Gamma variates with a common
//! scale add, drawing once per cell with the cell's summed deposit is exactly equivalent to
//! smearing each deposit, and the summed signal has σ/E = a/√E. The output cell energies are
//! **calibrated** energies in MeV (visible energy divided by the sampling fraction), so that the
//! sum over cells and overflow is, on average, the incident energy minus leakage. The
//! incident `energy` column is in GeV, as in the CaloGAN files.
//!
//! # Validation and cost
//!
//! The tests in `tests/shower_physics.rs` measure (release build, fixed seeds):
//!
//! * longitudinal maximum (Gamma fit to the mean profile in 0.25 X0 bins) versus PDG's
//!   t_max = ln(E/E_c) − 0.5 (e⁻) / + 0.5 (γ): e⁻ 5.44/6.35/8.17 X0 at 5/10/50 GeV (PDG
//!   5.71/6.41/8.02), γ 7.18/8.96 X0 at 10/50 GeV (PDG 7.41/9.02); Gamma scale b ≈ 0.42–0.50;
//!   t_max grows by 1.1–1.2 X0 per e-fold of energy (PDG: 1), because complete-screening
//!   bremsstrahlung shortens the low-energy showers a little;
//! * 86.7 % (e⁻, 10 GeV) to 87.3 % (γ, 50 GeV) of the energy within 1 R_M of the axis, 98.8 %
//!   within 3.5 R_M (PDG: ≈ 90 % and ≈ 99 %);
//! * calibrated response 0.98–0.995 from 2 to 50 GeV (longitudinal leakage and albedo),
//!   σ/E = 10.2 %/√E ⊕ 0.7–1.6 % (the constant term, leakage fluctuations of a 22.3 X0 deep
//!   stack, is poorly measured by 100 showers at 50 GeV);
//! * energy conservation to 1e-6 MeV per shower (deposit + leakage = incident energy).
//!
//! The cost grows linearly with energy, ≈ 0.3 ms of CPU per GeV: about 3,000 showers per
//! CPU-second at 1 GeV, 300 at 10 GeV and 30 at 100 GeV (release build, AMD EPYC core;
//! `examples/shower_bench.rs` measures it).
//!
//! # Reproducibility
//!
//! Shower `i` of a run draws all its random numbers (its energy, then the cascade) from
//! `stream_rng(seed, "shower", i)`, so the output is bit-identical for any number of threads.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::shower::{simulate_showers, EnergySpec, Particle, ShowerConfig};
//!
//! let cfg = ShowerConfig {
//!     particle: "e-".parse()?,
//!     energy_gev: EnergySpec::Uniform { min: 1.0, max: 2.0 },
//!     n_showers: 4,
//!     seed: 7,
//! };
//! let set = simulate_showers(&cfg, &())?;
//! assert_eq!(set.layer_1.shape(), &[4, 12, 12]);
//! let cc = set.to_calochallenge();
//! let (incident_mev, showers) = (cc.incident_energies, cc.showers);
//! assert_eq!(showers.shape(), &[4, 504]);
//! // Calibrated cell energies add up to roughly the incident energy.
//! let sum: f32 = showers.row(0).sum() + set.overflow.row(0).sum();
//! assert!((sum / incident_mev[[0, 0]] - 1.0).abs() < 0.5);
//! # Ok::<(), deepsky_sim::SimError>(())
//! ```

// The settings (config), the detector's geometry and material with its cross-sections
// (calorimeter), the cascade of one shower and its sampling (transport), the output sets
// (set), the physics diagnostics (diagnostics), and the parallel drivers (simulate).
pub(crate) mod calorimeter;
pub(crate) mod config;
pub(crate) mod diagnostics;
pub(crate) mod set;
pub(crate) mod settings;
pub(crate) mod simulate;
pub(crate) mod transport;

pub use calorimeter::{
    Calorimeter, LayerSpec, CRITICAL_ENERGY_MEV, ELECTRON_MASS_MEV, LAR_GAP_MM, LEAD_PLATE_MM,
    MOLIERE_SCALE_ENERGY_MEV, N_CELLS, SAMPLING_FRACTION, STOCHASTIC_TERM, X0_LAR_MM, X0_LEAD_MM,
};
pub use config::{EnergySpec, Particle, ShowerConfig, MAX_ENERGY_GEV, MIN_ENERGY_GEV};
pub use diagnostics::{fit_gamma_profile, GammaProfileFit, ShowerDiagnostics};
pub use set::{OneShower, ShowerSet};
pub use settings::ShowerSettings;
pub use simulate::{
    longitudinal_profile, shower_diagnostics, simulate_showers, simulate_showers_until,
};
pub use transport::{
    simulate_one, simulate_one_with_diagnostics, BREMS_K_MIN_MEV, ELECTRON_CUT_MEV,
    MAX_STEP_ENERGY_LOSS, MAX_STEP_THETA0, MAX_STEP_X0, PHOTON_CUT_MEV,
};
