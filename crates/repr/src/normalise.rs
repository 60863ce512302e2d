//! Input normalisation that is part of the saved model, so applying a model to new data repeats
//! it exactly.
//!
//! - [`Normaliser::AsinhStamp`] for image stamps: subtract each stamp's median, divide by its
//!   robust noise (1.4826 × MAD) times `softening`, take asinh, then divide by one global scale
//!   fitted on the training stamps. Astronomical stamps span orders of magnitude in flux; asinh
//!   keeps faint structure and bright cores in one range, as in SDSS colour images.
//! - [`Normaliser::Standardise`] for table columns: (x − mean) / std per column.

use ndarray::{Array2, ArrayView1, Axis};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A fitted normalisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normaliser {
    /// Leave values as they are.
    Identity,
    /// Per-stamp asinh scaling, then a global scale.
    AsinhStamp {
        /// Softening in units of the stamp's noise.
        softening: f32,
        /// Global divisor fitted on the training set (standard deviation after asinh).
        scale: f32,
    },
    /// Per-column standardisation.
    Standardise {
        /// Column means.
        mean: Vec<f32>,
        /// Column standard deviations (1 where a column is constant).
        std: Vec<f32>,
    },
}

/// Which normalisation to fit (the `[input] normalise` config key).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NormaliseKind {
    /// No change.
    None,
    /// Per-stamp asinh.
    Asinh,
    /// Per-column standardisation.
    Standardise,
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

fn asinh_row(row: ArrayView1<f32>, softening: f32) -> Vec<f32> {
    let mut vals: Vec<f32> = row.iter().copied().filter(|v| v.is_finite()).collect();
    let med = median(&mut vals);
    let mut dev: Vec<f32> = vals.iter().map(|v| (v - med).abs()).collect();
    let sigma = (1.4826 * median(&mut dev)).max(1e-12);
    let s = softening * sigma;
    row.iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - med) / s).asinh()
            } else {
                0.0
            }
        })
        .collect()
}

impl Normaliser {
    /// Fit `kind` on training rows (one example per row).
    pub fn fit(kind: NormaliseKind, softening: f32, train: &Array2<f32>) -> Normaliser {
        match kind {
            NormaliseKind::None => Normaliser::Identity,
            NormaliseKind::Asinh => {
                let mut sum = 0f64;
                let mut sq = 0f64;
                let mut n = 0usize;
                for row in train.rows() {
                    for v in asinh_row(row, softening) {
                        sum += v as f64;
                        sq += (v as f64) * (v as f64);
                        n += 1;
                    }
                }
                let mean = sum / n.max(1) as f64;
                let var = (sq / n.max(1) as f64 - mean * mean).max(1e-12);
                Normaliser::AsinhStamp {
                    softening,
                    scale: var.sqrt() as f32,
                }
            }
            NormaliseKind::Standardise => {
                let mut mean = vec![];
                let mut std = vec![];
                for col in train.axis_iter(Axis(1)) {
                    let vals: Vec<f64> = col
                        .iter()
                        .filter(|v| v.is_finite())
                        .map(|&v| v as f64)
                        .collect();
                    let n = vals.len().max(1) as f64;
                    let m = vals.iter().sum::<f64>() / n;
                    let s = (vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
                    mean.push(m as f32);
                    std.push(if s > 0.0 { s as f32 } else { 1.0 });
                }
                Normaliser::Standardise { mean, std }
            }
        }
    }

    /// Apply to rows (one example per row). Non-finite values become 0 (the normalised mean).
    pub fn apply(&self, rows: &Array2<f32>) -> Array2<f32> {
        let mut out = rows.clone();
        match self {
            Normaliser::Identity => {
                out.mapv_inplace(|v| if v.is_finite() { v } else { 0.0 });
            }
            Normaliser::AsinhStamp { softening, scale } => {
                for (mut o, r) in out.rows_mut().into_iter().zip(rows.rows()) {
                    for (dst, v) in o.iter_mut().zip(asinh_row(r, *softening)) {
                        *dst = v / scale;
                    }
                }
            }
            Normaliser::Standardise { mean, std } => {
                for mut row in out.rows_mut() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if v.is_finite() {
                            (*v - mean[j]) / std[j]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardise_gives_zero_mean_unit_std() {
        let x = Array2::from_shape_vec((4, 2), vec![1., 10., 2., 20., 3., 30., 4., 40.]).unwrap();
        let n = Normaliser::fit(NormaliseKind::Standardise, 3.0, &x);
        let y = n.apply(&x);
        for c in y.axis_iter(Axis(1)) {
            let m: f32 = c.sum() / 4.0;
            let v: f32 = c.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / 4.0;
            assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn asinh_is_invariant_to_stamp_offset_and_gain() {
        let base: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 11) as f32) + if i == 27 { 100.0 } else { 0.0 })
            .collect();
        let a = Array2::from_shape_vec((1, 64), base.clone()).unwrap();
        let b = Array2::from_shape_vec((1, 64), base.iter().map(|v| 5.0 * v + 1000.0).collect())
            .unwrap();
        let n = Normaliser::fit(NormaliseKind::Asinh, 3.0, &a);
        let (ya, yb) = (n.apply(&a), n.apply(&b));
        for (p, q) in ya.iter().zip(yb.iter()) {
            assert!((p - q).abs() < 1e-4, "{p} {q}");
        }
    }
}
