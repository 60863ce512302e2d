//! Physics diagnostics independent of the cell segmentation: true deposits in fine depth and
//! radial bins, containment, and the Gamma-function fit of the longitudinal profile.

use deepsky_core::math::ln_gamma;

use super::calorimeter::Calorimeter;
use crate::{Result, SimError};

/// True (unsampled) energy deposits summed over showers in fine depth bins and in radial bins
/// around the shower axis, independent of the cell segmentation. Used to check the physics.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowerDiagnostics {
    pub(super) depth_bin_x0: f64,
    pub(super) depth_mev: Vec<f64>,
    pub(super) radial_bin_rm: f64,
    /// Radial bins plus a last bin for everything beyond.
    pub(super) radial_mev: Vec<f64>,
    pub(super) n_showers: u64,
    pub(super) deposited_mev: f64,
    pub(super) leaked_mev: f64,
    total_depth_x0: f64,
}

impl ShowerDiagnostics {
    /// Empty diagnostics for `cal` with depth bins of `depth_bin_x0` X0 over the full depth
    /// and radial bins of `radial_bin_rm` Molière radii out to `radial_max_rm` (at most
    /// [`Self::MAX_BINS`] bins each).
    pub fn new(
        cal: &Calorimeter,
        depth_bin_x0: f64,
        radial_bin_rm: f64,
        radial_max_rm: f64,
    ) -> Result<Self> {
        let depth = cal.depth_x0();
        let n_depth = depth / depth_bin_x0;
        if !(depth_bin_x0 > 0.0 && n_depth.is_finite() && n_depth <= Self::MAX_BINS as f64) {
            return Err(SimError::invalid(
                "depth_bin_x0",
                format!(
                    "need a positive bin width giving at most {} bins over {depth} X0, got \
                     {depth_bin_x0}",
                    Self::MAX_BINS
                ),
            ));
        }
        let n_rad = (radial_max_rm / radial_bin_rm).round();
        if !(radial_bin_rm > 0.0
            && radial_max_rm >= radial_bin_rm
            && n_rad.is_finite()
            && n_rad <= Self::MAX_BINS as f64)
        {
            return Err(SimError::invalid(
                "radial_bin_rm",
                format!(
                    "need 0 < radial_bin_rm <= radial_max_rm and at most {} bins, got \
                     {radial_bin_rm} and {radial_max_rm}",
                    Self::MAX_BINS
                ),
            ));
        }
        Ok(Self::binned(
            cal,
            depth_bin_x0,
            radial_bin_rm,
            n_rad as usize,
        ))
    }

    /// Largest number of depth or radial bins accepted by [`Self::new`].
    pub const MAX_BINS: usize = 100_000;

    /// Default binning: 0.25 X0 in depth, 0.05 R_M out to 5 R_M.
    pub fn for_calorimeter(cal: &Calorimeter) -> Self {
        Self::binned(cal, 0.25, 0.05, 100)
    }

    fn binned(cal: &Calorimeter, depth_bin_x0: f64, radial_bin_rm: f64, n_rad: usize) -> Self {
        let depth = cal.depth_x0();
        ShowerDiagnostics {
            depth_bin_x0,
            depth_mev: vec![0.0; (depth / depth_bin_x0).ceil().max(1.0) as usize],
            radial_bin_rm,
            radial_mev: vec![0.0; n_rad.max(1) + 1],
            n_showers: 0,
            deposited_mev: 0.0,
            leaked_mev: 0.0,
            total_depth_x0: depth,
        }
    }

    /// Adds the contents of `other`, which must have the same binning.
    pub fn merge(&mut self, other: &ShowerDiagnostics) -> Result<()> {
        if self.depth_mev.len() != other.depth_mev.len()
            || self.radial_mev.len() != other.radial_mev.len()
            || self.depth_bin_x0 != other.depth_bin_x0
            || self.radial_bin_rm != other.radial_bin_rm
        {
            return Err(SimError::invalid(
                "diagnostics",
                "cannot merge different binnings",
            ));
        }
        for (a, b) in self.depth_mev.iter_mut().zip(&other.depth_mev) {
            *a += b;
        }
        for (a, b) in self.radial_mev.iter_mut().zip(&other.radial_mev) {
            *a += b;
        }
        self.n_showers += other.n_showers;
        self.deposited_mev += other.deposited_mev;
        self.leaked_mev += other.leaked_mev;
        Ok(())
    }

    /// Number of showers accumulated.
    pub fn n_showers(&self) -> u64 {
        self.n_showers
    }

    /// Mean true energy deposited in the calorimeter per shower, MeV.
    pub fn mean_deposited_mev(&self) -> f64 {
        self.deposited_mev / self.n_showers.max(1) as f64
    }

    /// Mean energy leaving the calorimeter per shower, MeV.
    pub fn mean_leaked_mev(&self) -> f64 {
        self.leaked_mev / self.n_showers.max(1) as f64
    }

    /// Mean longitudinal profile: (bin centres in X0, mean dE/dt in MeV per X0). The last bin
    /// may be cut by the back face; its density uses its true width.
    pub fn longitudinal_profile(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.n_showers.max(1) as f64;
        let bw = self.depth_bin_x0;
        self.depth_mev
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let lo = i as f64 * bw;
                let hi = (lo + bw).min(self.total_depth_x0);
                ((lo + hi) / 2.0, e / n / (hi - lo).max(1e-12))
            })
            .unzip()
    }

    /// Mean lateral profile: (bin centres in R_M, mean energy per bin in MeV), integrated over
    /// depth. The energy beyond the last bin is not included (see [`Self::containment`]).
    pub fn lateral_profile(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.n_showers.max(1) as f64;
        let bw = self.radial_bin_rm;
        let k = self.radial_mev.len() - 1;
        self.radial_mev[..k]
            .iter()
            .enumerate()
            .map(|(i, &e)| ((i as f64 + 0.5) * bw, e / n))
            .unzip()
    }

    /// Fraction of the deposited energy inside a cylinder of radius `r_rm` Molière radii around
    /// the shower axis (linear interpolation inside a bin).
    pub fn containment(&self, r_rm: f64) -> f64 {
        let total: f64 = self.radial_mev.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let k = self.radial_mev.len() - 1;
        let x = (r_rm / self.radial_bin_rm).max(0.0);
        let full = (x.floor() as usize).min(k);
        let mut inside: f64 = self.radial_mev[..full].iter().sum();
        if full < k {
            inside += self.radial_mev[full] * (x - full as f64);
        } else {
            inside += self.radial_mev[k];
        }
        inside / total
    }

    /// Gamma-function fit to the mean longitudinal profile (see [`fit_gamma_profile`]).
    pub fn gamma_fit(&self) -> Option<GammaProfileFit> {
        let (t, y) = self.longitudinal_profile();
        fit_gamma_profile(&t, &y)
    }

    /// Depth of the maximum of the mean profile, X0, located without assuming a Gamma shape:
    /// the highest point of the profile smoothed over ±0.75 X0, refined by a least-squares
    /// parabola through the unsmoothed profile within ±1.5 X0 of it.
    pub fn peak_depth_x0(&self) -> f64 {
        let (t, y) = self.longitudinal_profile();
        let n = y.len();
        let bw = self.depth_bin_x0;
        let half = |w: f64| ((w / bw).round() as usize).max(1);
        let smooth_half = half(0.75);
        let mut im = 0;
        let mut best = f64::NEG_INFINITY;
        for i in 0..n {
            let lo = i.saturating_sub(smooth_half);
            let hi = (i + smooth_half).min(n - 1);
            let m = y[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64;
            if m > best {
                best = m;
                im = i;
            }
        }
        let w = half(1.5);
        let (lo, hi) = (im.saturating_sub(w), (im + w).min(n - 1));
        let mut m = [[0.0f64; 3]; 3];
        let mut v = [0.0f64; 3];
        for i in lo..=hi {
            let u = t[i] - t[im];
            let f = [1.0, u, u * u];
            for r in 0..3 {
                for c in 0..3 {
                    m[r][c] += f[r] * f[c];
                }
                v[r] += f[r] * y[i];
            }
        }
        match solve3(m, v) {
            Some([_, c1, c2]) if c2 < 0.0 => {
                t[im] + (-c1 / (2.0 * c2)).clamp(t[lo] - t[im], t[hi] - t[im])
            }
            _ => t[im],
        }
    }
}

/// Result of fitting dE/dt = E b (bt)^(a−1) e^(−bt) / Γ(a) to a longitudinal profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaProfileFit {
    /// Shape parameter a.
    pub a: f64,
    /// Scale parameter b, per X0.
    pub b: f64,
    /// Depth of the maximum, (a − 1)/b, in X0.
    pub t_max: f64,
    /// Normalisation E of the fitted curve (its integral to infinity), in the profile's
    /// energy unit.
    pub energy: f64,
}

/// Fits the Gamma-function profile dE/dt = E b (bt)^(a−1) e^(−bt)/Γ(a) to (t, dE/dt) points.
///
/// Linear least squares on ln(dE/dt) = c + (a − 1) ln t − b t, weighted by dE/dt (the
/// log-variance of a Poisson-like bin content), using bins above 1 % of the maximum. Returns
/// `None` if there are fewer than 4 usable points or the fit gives no maximum (a ≤ 1, b ≤ 0).
pub fn fit_gamma_profile(t: &[f64], dedt: &[f64]) -> Option<GammaProfileFit> {
    let ymax = dedt.iter().cloned().fold(0.0f64, f64::max);
    if ymax <= 0.0 {
        return None;
    }
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    let mut used = 0;
    for (&ti, &yi) in t.iter().zip(dedt) {
        if !(ti > 0.0 && yi > 0.01 * ymax) {
            continue;
        }
        let w = yi / ymax;
        let f = [1.0, ti.ln(), -ti];
        let ly = yi.ln();
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] += w * f[r] * f[c];
            }
            v[r] += w * f[r] * ly;
        }
        used += 1;
    }
    if used < 4 {
        return None;
    }
    let p = solve3(m, v)?;
    let (c, am1, b) = (p[0], p[1], p[2]);
    let a = am1 + 1.0;
    if !(a > 1.0 && b > 0.0) {
        return None;
    }
    // exp(c) = E b^a / Γ(a)
    let energy = (c - a * b.ln() + ln_gamma(a)).exp();
    Some(GammaProfileFit {
        a,
        b,
        t_max: am1 / b,
        energy,
    })
}

/// Solves a 3×3 linear system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[piv][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, piv);
        v.swap(col, piv);
        for r in col + 1..3 {
            let f = m[r][col] / m[col][col];
            for c in col..3 {
                m[r][c] -= f * m[col][c];
            }
            v[r] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let mut s = v[r];
        for c in r + 1..3 {
            s -= m[r][c] * x[c];
        }
        x[r] = s / m[r][r];
    }
    x.iter().all(|x| x.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shower_ln_gamma_and_fit() {
        // An exact Gamma profile is recovered.
        let (a, b, e) = (4.0, 0.5, 1000.0);
        let t: Vec<f64> = (0..80).map(|i| (i as f64 + 0.5) * 0.25).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|&t| e * b * (b * t).powf(a - 1.0) * (-b * t).exp() / ln_gamma(a).exp())
            .collect();
        let f = fit_gamma_profile(&t, &y).expect("fit");
        assert!((f.a - a).abs() < 1e-6 && (f.b - b).abs() < 1e-6, "{f:?}");
        assert!((f.t_max - 6.0).abs() < 1e-6 && (f.energy / e - 1.0).abs() < 1e-6);
    }
}
