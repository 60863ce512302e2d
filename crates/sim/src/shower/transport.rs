//! The cascade of one shower: every e±, photon and their interactions followed through the
//! stack, the deposits tallied per cell, then the sampling fluctuations of the readout.

use rand::Rng;
use rand_distr::{Distribution, Gamma, StandardNormal};

use super::calorimeter::{
    brems_rate_per_x0, soft_brems_loss_per_x0, Calorimeter, ELECTRON_MASS_MEV, N_CELLS,
};
use super::config::Particle;
use super::diagnostics::ShowerDiagnostics;
use super::set::OneShower;
use crate::rng::SimRng;

/// Kinetic energy below which e± stop and deposit their energy on the spot, MeV.
pub const ELECTRON_CUT_MEV: f64 = 1.0;
/// Energy below which photons are absorbed on the spot, MeV.
pub const PHOTON_CUT_MEV: f64 = 0.1;
/// Lowest bremsstrahlung photon energy emitted as a tracked photon, MeV; softer photons are
/// treated as a continuous energy loss.
pub const BREMS_K_MIN_MEV: f64 = 0.5;
/// Longest charged-particle step, in X0.
pub const MAX_STEP_X0: f64 = 0.1;
/// Largest fraction of its kinetic energy an e± may lose continuously in one step.
pub const MAX_STEP_ENERGY_LOSS: f64 = 0.2;
/// Largest Highland scattering angle θ0 (per plane) allowed in one step, rad.
pub const MAX_STEP_THETA0: f64 = 1.0;

/// Highland constant, MeV.
const HIGHLAND_MEV: f64 = 13.6;

/// 1/√12, of the PDG's correlated lateral displacement y = s θ0 (z1/√12 + z2/2).
const INV_SQRT12: f64 = 0.288_675_134_594_812_9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Electron,
    Positron,
    Photon,
}

/// A particle on the stack. `e` is the kinetic energy for e± and the energy for photons (MeV);
/// positions are in X0 with z along the axis from the front face.
#[derive(Debug, Clone, Copy)]
struct Track {
    kind: Kind,
    e: f64,
    pos: [f64; 3],
    dir: [f64; 3],
}

/// Geometry of one layer in simulation units (X0).
#[derive(Debug, Clone, Copy)]
struct LayerGrid {
    half_x: f64,
    half_y: f64,
    inv_cx: f64,
    inv_cy: f64,
    nx: usize,
    ny: usize,
    offset: usize,
}

/// Accumulates the energy deposits of one shower.
struct Tally<'a> {
    z_front: [f64; 3],
    depth: f64,
    grids: [LayerGrid; 3],
    cells: [f64; N_CELLS],
    overflow: [f64; 3],
    deposited: f64,
    leaked: f64,
    diag: Option<&'a mut ShowerDiagnostics>,
    inv_rm_x0: f64,
}

impl<'a> Tally<'a> {
    fn new(cal: &Calorimeter, diag: Option<&'a mut ShowerDiagnostics>) -> Self {
        let x0 = cal.x0_mm;
        let mut offset = 0;
        let grids = cal.layers.map(|l| {
            let g = LayerGrid {
                half_x: 0.5 * l.n_eta as f64 * l.cell_eta_mm / x0,
                half_y: 0.5 * l.n_phi as f64 * l.cell_phi_mm / x0,
                inv_cx: x0 / l.cell_eta_mm,
                inv_cy: x0 / l.cell_phi_mm,
                nx: l.n_eta,
                ny: l.n_phi,
                offset,
            };
            offset += l.n_cells();
            g
        });
        Tally {
            z_front: [0.0, cal.layer_front_x0(1), cal.layer_front_x0(2)],
            depth: cal.depth_x0(),
            grids,
            cells: [0.0; N_CELLS],
            overflow: [0.0; 3],
            deposited: 0.0,
            leaked: 0.0,
            diag,
            inv_rm_x0: 1.0 / cal.moliere_radius_x0(),
        }
    }

    #[inline]
    fn inside(&self, p: &[f64; 3]) -> bool {
        p[2] >= 0.0 && p[2] < self.depth
    }

    /// Deposits `e` MeV at `p`; outside the slab it counts as leakage.
    #[inline]
    fn deposit(&mut self, p: [f64; 3], e: f64) {
        if e <= 0.0 {
            return;
        }
        if !self.inside(&p) {
            self.leaked += e;
            return;
        }
        self.deposited += e;
        let layer = if p[2] < self.z_front[1] {
            0
        } else if p[2] < self.z_front[2] {
            1
        } else {
            2
        };
        let g = &self.grids[layer];
        let fx = (p[0] + g.half_x) * g.inv_cx;
        let fy = (p[1] + g.half_y) * g.inv_cy;
        if fx >= 0.0 && fy >= 0.0 && fx < g.nx as f64 && fy < g.ny as f64 {
            let (ix, iy) = (fx as usize, fy as usize);
            self.cells[g.offset + ix * g.ny + iy] += e;
        } else {
            self.overflow[layer] += e;
        }
        if let Some(d) = self.diag.as_deref_mut() {
            let nd = d.depth_mev.len();
            let id = ((p[2] / d.depth_bin_x0) as usize).min(nd - 1);
            d.depth_mev[id] += e;
            let r = (p[0] * p[0] + p[1] * p[1]).sqrt() * self.inv_rm_x0;
            let nr = d.radial_mev.len() - 1;
            let ir = ((r / d.radial_bin_rm) as usize).min(nr);
            d.radial_mev[ir] += e;
        }
    }
}

#[inline]
fn uniform(rng: &mut SimRng) -> f64 {
    rng.random::<f64>()
}

/// Uniform in (0, 1], safe for logarithms.
#[inline]
fn uniform_open0(rng: &mut SimRng) -> f64 {
    1.0 - rng.random::<f64>()
}

#[inline]
fn normal(rng: &mut SimRng) -> f64 {
    rng.sample(StandardNormal)
}

/// Two unit vectors perpendicular to the unit vector `d` (and to each other).
#[inline]
fn perp_basis(d: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    let (u, v, w) = (d[0], d[1], d[2]);
    let s2 = u * u + v * v;
    if s2 < 1e-24 {
        return ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
    }
    let s = s2.sqrt();
    ([u * w / s, v * w / s, -s], [-v / s, u / s, 0.0])
}

#[inline]
fn normalise(d: [f64; 3]) -> [f64; 3] {
    let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    if n > 0.0 && n.is_finite() {
        [d[0] / n, d[1] / n, d[2] / n]
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// `d` turned by polar angle θ (given as cos, sin) at azimuth φ (given as cos, sin).
#[inline]
fn rotate(d: [f64; 3], cos_t: f64, sin_t: f64, cos_p: f64, sin_p: f64) -> [f64; 3] {
    let (e1, e2) = perp_basis(d);
    let a = sin_t * cos_p;
    let b = sin_t * sin_p;
    normalise([
        cos_t * d[0] + a * e1[0] + b * e2[0],
        cos_t * d[1] + a * e1[1] + b * e2[1],
        cos_t * d[2] + a * e1[2] + b * e2[2],
    ])
}

/// `d` turned by polar angle `theta` at a random azimuth.
#[inline]
fn rotate_random_azimuth(d: [f64; 3], theta: f64, rng: &mut SimRng) -> [f64; 3] {
    let (cp, sp) = random_azimuth(rng);
    let (st, ct) = sin_cos(theta);
    rotate(d, ct, st, cp, sp)
}

/// (cos φ, sin φ) of a uniform azimuth, without trigonometric calls: a point drawn uniformly in
/// the unit disk has a uniform polar angle φ/2, and the double-angle formulas give φ.
#[inline]
fn random_azimuth(rng: &mut SimRng) -> (f64, f64) {
    loop {
        let x = 2.0 * uniform(rng) - 1.0;
        let y = 2.0 * uniform(rng) - 1.0;
        let r2 = x * x + y * y;
        if r2 > 1e-12 && r2 <= 1.0 {
            return ((x * x - y * y) / r2, 2.0 * x * y / r2);
        }
    }
}

/// (sin θ, cos θ), by Taylor series for the small angles that dominate the step loop (error
/// below 1e-7 for θ < 0.4) and by the library otherwise.
#[inline]
fn sin_cos(theta: f64) -> (f64, f64) {
    if theta.abs() < 0.4 {
        let t2 = theta * theta;
        let s = theta * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0)));
        let c = 1.0 - t2 / 2.0 * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0)));
        (s, c)
    } else {
        theta.sin_cos()
    }
}

/// Geant4's modified Tsai angular distribution for bremsstrahlung photons and pair leptons:
/// θ = u m_e/E with u = −ln(r1 r2)/a, a = 1.6 (25 %) or 1.6/3 (75 %). `e_total` in MeV.
#[inline]
fn tsai_angle(e_total: f64, rng: &mut SimRng) -> f64 {
    let r = uniform_open0(rng) * uniform_open0(rng);
    let a = if uniform(rng) < 0.25 { 1.6 } else { 1.6 / 3.0 };
    (-r.ln() / a * ELECTRON_MASS_MEV / e_total).min(std::f64::consts::PI)
}

/// Follows all particles of one cascade.
struct Transport<'c, 't> {
    cal: &'c Calorimeter,
    tally: Tally<'t>,
    stack: Vec<Track>,
}

impl Transport<'_, '_> {
    fn run(&mut self, rng: &mut SimRng) {
        while let Some(t) = self.stack.pop() {
            match t.kind {
                Kind::Photon => self.photon(t, rng),
                Kind::Electron | Kind::Positron => self.charged(t, rng),
            }
        }
    }

    fn photon(&mut self, mut t: Track, rng: &mut SimRng) {
        loop {
            if t.e <= PHOTON_CUT_MEV {
                self.tally.deposit(t.pos, t.e);
                return;
            }
            let (photo, compton, pair) = self.cal.photon_cross_sections_per_x0(t.e);
            let total = photo + compton + pair;
            let d = -uniform_open0(rng).ln() / total;
            for i in 0..3 {
                t.pos[i] += d * t.dir[i];
            }
            if !self.tally.inside(&t.pos) {
                self.tally.leaked += t.e;
                return;
            }
            let r = uniform(rng) * total;
            if r < photo {
                self.tally.deposit(t.pos, t.e);
                return;
            } else if r < photo + compton {
                self.compton(&mut t, rng);
            } else {
                self.pair(&t, rng);
                return;
            }
        }
    }

    /// Klein–Nishina scattering (Geant4 G4KleinNishinaCompton sampling): updates the photon
    /// and pushes the recoil electron.
    fn compton(&mut self, t: &mut Track, rng: &mut SimRng) {
        let k = t.e;
        let kap = k / ELECTRON_MASS_MEV;
        let eps0 = 1.0 / (1.0 + 2.0 * kap);
        let eps0sq = eps0 * eps0;
        let alpha1 = -eps0.ln();
        let alpha2 = 0.5 * (1.0 - eps0sq);
        let (eps, onecost, sint2) = loop {
            let (eps, epssq) = if alpha1 / (alpha1 + alpha2) > uniform(rng) {
                let e = (-alpha1 * uniform(rng)).exp();
                (e, e * e)
            } else {
                let e2 = eps0sq + (1.0 - eps0sq) * uniform(rng);
                (e2.sqrt(), e2)
            };
            let onecost = (1.0 - eps) / (eps * kap);
            let sint2 = onecost * (2.0 - onecost);
            let g = 1.0 - eps * sint2 / (1.0 + epssq);
            if g >= uniform(rng) {
                break (eps, onecost, sint2);
            }
        };
        let cost = 1.0 - onecost;
        let sint = sint2.max(0.0).sqrt();
        let (cp, sp) = random_azimuth(rng);
        let new_dir = rotate(t.dir, cost, sint, cp, sp);
        let k1 = eps * k;
        // Electron momentum from momentum conservation: p_e = k d − k' d'.
        let pe = normalise([
            k * t.dir[0] - k1 * new_dir[0],
            k * t.dir[1] - k1 * new_dir[1],
            k * t.dir[2] - k1 * new_dir[2],
        ]);
        self.stack.push(Track {
            kind: Kind::Electron,
            e: k - k1,
            pos: t.pos,
            dir: pe,
        });
        t.e = k1;
        t.dir = new_dir;
    }

    /// Bethe–Heitler pair production (complete screening energy sharing).
    fn pair(&mut self, t: &Track, rng: &mut SimRng) {
        let k = t.e;
        let x0 = ELECTRON_MASS_MEV / k;
        let x = loop {
            let x = x0 + (1.0 - 2.0 * x0) * uniform(rng);
            if uniform(rng) < 1.0 - 4.0 / 3.0 * x * (1.0 - x) {
                break x;
            }
        };
        let (em, ep) = (x * k, (1.0 - x) * k);
        let (tm, tp) = (tsai_angle(em, rng), tsai_angle(ep, rng));
        let (cp, sp) = random_azimuth(rng);
        let (stm, ctm) = sin_cos(tm);
        let (stp, ctp) = sin_cos(tp);
        let dm = rotate(t.dir, ctm, stm, cp, sp);
        let dp = rotate(t.dir, ctp, stp, -cp, -sp);
        let push = |s: &mut Vec<Track>, kind, e: f64, dir| {
            s.push(Track {
                kind,
                e: (e - ELECTRON_MASS_MEV).max(0.0),
                pos: t.pos,
                dir,
            })
        };
        push(&mut self.stack, Kind::Electron, em, dm);
        push(&mut self.stack, Kind::Positron, ep, dp);
    }

    fn charged(&mut self, mut t: Track, rng: &mut SimRng) {
        let ec = self.cal.critical_energy_mev;
        // Number of bremsstrahlung mean free paths to the next emission, used up step by step
        // (exact for a cross-section that changes with the energy along the track).
        let mut n_lambda = -uniform_open0(rng).ln();
        loop {
            if t.e <= ELECTRON_CUT_MEV {
                self.stop(t, rng);
                return;
            }
            let e_tot = t.e + ELECTRON_MASS_MEV;
            let kmin = BREMS_K_MIN_MEV;
            let sig_b = brems_rate_per_x0(e_tot, kmin, t.e);
            let dedx = ec + soft_brems_loss_per_x0(e_tot, kmin.min(t.e));
            let p2 = t.e * (t.e + 2.0 * ELECTRON_MASS_MEV);
            let beta_cp = p2 / e_tot;
            let beta2 = p2 / (e_tot * e_tot);
            // Step limits: geometry, continuous loss, scattering angle (Highland without its
            // logarithm, which only lowers θ0 for s < X0).
            let s_ms = (MAX_STEP_THETA0 * beta_cp / HIGHLAND_MEV).powi(2);
            let mut s = MAX_STEP_X0.min(MAX_STEP_ENERGY_LOSS * t.e / dedx).min(s_ms);
            let mut brems = false;
            if sig_b > 0.0 {
                let sb = n_lambda / sig_b;
                if sb < s {
                    s = sb;
                    brems = true;
                    n_lambda = -uniform_open0(rng).ln();
                } else {
                    n_lambda -= s * sig_b;
                }
            }
            let de = (dedx * s).min(t.e);
            // Highland θ0 per plane, its log argument kept in the formula's validity range.
            let log_arg = (s / beta2).max(1e-3);
            let theta0 =
                (HIGHLAND_MEV / beta_cp * s.sqrt() * (1.0 + 0.038 * log_arg.ln())).max(0.0);
            let (z1a, z2a, z1b, z2b) = (normal(rng), normal(rng), normal(rng), normal(rng));
            let (e1, e2) = perp_basis(t.dir);
            let forward = s * (1.0 - 0.5 * theta0 * theta0).max(0.0);
            let lx = s * theta0 * (z1a * INV_SQRT12 + 0.5 * z2a);
            let ly = s * theta0 * (z1b * INV_SQRT12 + 0.5 * z2b);
            let mid = [
                t.pos[0] + 0.5 * forward * t.dir[0] + 0.5 * (lx * e1[0] + ly * e2[0]),
                t.pos[1] + 0.5 * forward * t.dir[1] + 0.5 * (lx * e1[1] + ly * e2[1]),
                t.pos[2] + 0.5 * forward * t.dir[2] + 0.5 * (lx * e1[2] + ly * e2[2]),
            ];
            self.tally.deposit(mid, de);
            for i in 0..3 {
                t.pos[i] += forward * t.dir[i] + lx * e1[i] + ly * e2[i];
            }
            let (tx, ty) = (theta0 * z2a, theta0 * z2b);
            let th = (tx * tx + ty * ty).sqrt();
            if th > 0.0 {
                let (st, ct) = sin_cos(th);
                let (cp, sp) = (tx / th, ty / th);
                t.dir = normalise([
                    ct * t.dir[0] + st * (cp * e1[0] + sp * e2[0]),
                    ct * t.dir[1] + st * (cp * e1[1] + sp * e2[1]),
                    ct * t.dir[2] + st * (cp * e1[2] + sp * e2[2]),
                ]);
            }
            t.e -= de;
            if !self.tally.inside(&t.pos) {
                let rest = if t.kind == Kind::Positron {
                    2.0 * ELECTRON_MASS_MEV
                } else {
                    0.0
                };
                self.tally.leaked += t.e + rest;
                return;
            }
            if brems && t.e > kmin {
                let e_tot = t.e + ELECTRON_MASS_MEV;
                let k = sample_brems_photon(e_tot, kmin, t.e, rng);
                let theta = tsai_angle(e_tot, rng);
                let dir = rotate_random_azimuth(t.dir, theta, rng);
                self.stack.push(Track {
                    kind: Kind::Photon,
                    e: k,
                    pos: t.pos,
                    dir,
                });
                t.e -= k;
            }
        }
    }

    /// An e± at the tracking cut: deposits its kinetic energy; a positron annihilates at rest
    /// into two back-to-back 511 keV photons.
    fn stop(&mut self, t: Track, rng: &mut SimRng) {
        self.tally.deposit(t.pos, t.e);
        if t.kind == Kind::Positron {
            let cost = 2.0 * uniform(rng) - 1.0;
            let sint = (1.0 - cost * cost).max(0.0).sqrt();
            let (cp, sp) = random_azimuth(rng);
            let n = [sint * cp, sint * sp, cost];
            for dir in [n, [-n[0], -n[1], -n[2]]] {
                self.stack.push(Track {
                    kind: Kind::Photon,
                    e: ELECTRON_MASS_MEV,
                    pos: t.pos,
                    dir,
                });
            }
        }
    }
}

/// Samples a photon energy in [kmin, kmax] from (1/k)(4/3 − 4/3 y + y²), y = k/E.
#[inline]
fn sample_brems_photon(e_tot: f64, kmin: f64, kmax: f64, rng: &mut SimRng) -> f64 {
    let ratio = kmax / kmin;
    loop {
        let k = kmin * ratio.powf(uniform(rng));
        let y = k / e_tot;
        // (4/3 − 4/3 y + y²)/(4/3) ≤ 1 for 0 ≤ y ≤ 1.
        if uniform(rng) < 1.0 - y + 0.75 * y * y {
            return k;
        }
    }
}

/// Simulates one shower of `particle` with kinetic energy `energy_gev` entering the centre of
/// the front face along the axis. Draws every random number from `rng`. A non-finite or
/// non-positive energy gives an empty shower (validation is the job of
/// [`ShowerConfig`](super::ShowerConfig)'s checks).
pub fn simulate_one(
    cal: &Calorimeter,
    particle: Particle,
    energy_gev: f64,
    rng: &mut SimRng,
) -> OneShower {
    simulate_one_inner(cal, particle, energy_gev, rng, None)
}

/// As [`simulate_one`] (same random numbers, same result), and adds the true deposits of the
/// shower to `diag`.
pub fn simulate_one_with_diagnostics(
    cal: &Calorimeter,
    particle: Particle,
    energy_gev: f64,
    rng: &mut SimRng,
    diag: &mut ShowerDiagnostics,
) -> OneShower {
    simulate_one_inner(cal, particle, energy_gev, rng, Some(diag))
}

fn simulate_one_inner(
    cal: &Calorimeter,
    particle: Particle,
    energy_gev: f64,
    rng: &mut SimRng,
    mut diag: Option<&mut ShowerDiagnostics>,
) -> OneShower {
    let valid = energy_gev.is_finite() && energy_gev > 0.0;
    let (deposited, leaked, cells, overflow) = {
        let mut tr = Transport {
            cal,
            tally: Tally::new(cal, diag.as_deref_mut()),
            stack: Vec::with_capacity(128),
        };
        if valid {
            let kind = match particle {
                Particle::Electron => Kind::Electron,
                Particle::Positron => Kind::Positron,
                Particle::Photon => Kind::Photon,
            };
            tr.stack.push(Track {
                kind,
                e: energy_gev * 1000.0,
                pos: [0.0; 3],
                dir: [0.0, 0.0, 1.0],
            });
            tr.run(rng);
        }
        let t = tr.tally;
        (t.deposited, t.leaked, t.cells, t.overflow)
    };
    if let Some(d) = diag {
        d.n_showers += 1;
        d.deposited_mev += deposited;
        d.leaked_mev += leaked;
    }
    // Sampling: calibrated signal ~ Gamma(ΔE/ε, ε), ε = a² · 1 GeV (see the module docs).
    let eps = cal.stochastic_term * cal.stochastic_term * 1000.0;
    let mut sample = |e: f64| -> f32 {
        if e <= 0.0 {
            return 0.0;
        }
        match Gamma::new(e / eps, eps) {
            Ok(g) => g.sample(rng) as f32,
            Err(_) => e as f32,
        }
    };
    let n0 = cal.layers[0].n_cells();
    let n1 = cal.layers[1].n_cells();
    let mut flat: Vec<f32> = cells.iter().map(|&e| sample(e)).collect();
    let overflow = overflow.map(&mut sample);
    let layer_2 = flat.split_off(n0 + n1);
    let layer_1 = flat.split_off(n0);
    OneShower {
        energy_gev: if valid { energy_gev } else { 0.0 },
        layer_0: flat,
        layer_1,
        layer_2,
        overflow,
        deposited_mev: deposited,
        leaked_mev: leaked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    #[test]
    fn shower_energy_is_conserved() {
        let cal = Calorimeter::calogan();
        for (p, extra) in [
            (Particle::Electron, 0.0),
            (Particle::Photon, 0.0),
            (Particle::Positron, 2.0 * ELECTRON_MASS_MEV),
        ] {
            for i in 0..5 {
                let mut rng = stream_rng(3, "shower", i);
                let s = simulate_one(&cal, p, 5.0, &mut rng);
                let sum = s.deposited_mev + s.leaked_mev;
                assert!((sum - 5000.0 - extra).abs() < 1e-6, "{p}: {sum} MeV");
            }
        }
    }
    #[test]
    fn shower_bad_energy_gives_empty_shower() {
        let cal = Calorimeter::calogan();
        let mut rng = stream_rng(3, "shower", 0);
        for e in [f64::NAN, -1.0, 0.0] {
            let s = simulate_one(&cal, Particle::Photon, e, &mut rng);
            assert_eq!(s.total_mev(), 0.0);
        }
    }
}
