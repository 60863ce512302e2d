//! Light-curve shapes: the rate of a source over time relative to its quiescent rate.

use std::f64::consts::PI as PI_F64;

/// The time profile of a source: λ(t) = quiescent rate × `factor(t)`, t from TSTART.
#[derive(Debug, Clone, Copy)]
pub(super) enum Profile {
    Constant,
    Flare {
        t_start: f64,
        rise: f64,
        decay: f64,
        amplitude: f64,
    },
    Periodic {
        period: f64,
        pulsed_fraction: f64,
        phase: f64,
    },
}

impl Profile {
    pub(super) fn factor(&self, t: f64) -> f64 {
        match *self {
            Profile::Constant => 1.0,
            Profile::Flare {
                t_start,
                rise,
                decay,
                amplitude,
            } => {
                let t_peak = t_start + rise;
                let g = if t < t_start {
                    0.0
                } else if t < t_peak {
                    (t - t_start) / rise
                } else {
                    (-(t - t_peak) / decay).exp()
                };
                1.0 + (amplitude - 1.0) * g
            }
            Profile::Periodic {
                period,
                pulsed_fraction,
                phase,
            } => 1.0 + pulsed_fraction * (2.0 * PI_F64 * t / period + phase).sin(),
        }
    }

    /// An upper bound of `factor` over all t (exact maximum), the thinning envelope.
    pub(super) fn max_factor(&self) -> f64 {
        match *self {
            Profile::Constant => 1.0,
            Profile::Flare { amplitude, .. } => amplitude,
            Profile::Periodic {
                pulsed_fraction, ..
            } => 1.0 + pulsed_fraction,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flare_profile_shape() {
        let p = Profile::Flare {
            t_start: 100.0,
            rise: 50.0,
            decay: 200.0,
            amplitude: 11.0,
        };
        assert_eq!(p.factor(0.0), 1.0);
        assert!((p.factor(125.0) - 6.0).abs() < 1e-12);
        assert!((p.factor(150.0) - 11.0).abs() < 1e-12);
        assert!((p.factor(350.0) - (1.0 + 10.0 / std::f64::consts::E)).abs() < 1e-12);
        assert_eq!(p.max_factor(), 11.0);
    }
}
