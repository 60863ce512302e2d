//! Pixel-level scores of a probability map against a truth mask: the ROC (true-positive rate
//! against false-positive rate over every threshold), its area, the true-positive rate at a
//! fixed false-positive rate (how cosmic-ray finders are compared: deepCR, LACosmic), and the
//! threshold that reaches a target false-positive rate (the model's calibration).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// The scores of one plane.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlaneScore {
    /// Plane name.
    pub plane: String,
    /// Truth pixels in the plane (among the pixels scored).
    pub positives: usize,
    /// Pixels not in the plane.
    pub negatives: usize,
    /// Threshold of the binary mask scored below.
    pub threshold: f32,
    /// True-positive rate of the binary mask.
    pub tpr: f64,
    /// False-positive rate of the binary mask.
    pub fpr: f64,
    /// ROC area.
    pub auc: f64,
    /// True-positive rate at a false-positive rate of 1e-3 (and 1e-4).
    pub tpr_at_fpr_1e3: f64,
    /// True-positive rate at a false-positive rate of 1e-4.
    pub tpr_at_fpr_1e4: f64,
    /// ROC points `[fpr, tpr]` at log-spaced false-positive rates from 1e-6 to 1.
    pub roc: Vec<[f64; 2]>,
}

/// Probabilities of the truth-positive and truth-negative pixels, each sorted descending.
pub struct Split {
    pos: Vec<f32>,
    neg: Vec<f32>,
}

impl Split {
    /// Split `prob` by `truth` over the pixels where `valid` is true.
    pub fn new(prob: ArrayView2<f32>, truth: ArrayView2<bool>, valid: ArrayView2<bool>) -> Split {
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        ndarray::Zip::from(&prob)
            .and(&truth)
            .and(&valid)
            .for_each(|&p, &t, &v| {
                if v {
                    if t {
                        pos.push(p)
                    } else {
                        neg.push(p)
                    }
                }
            });
        Split::from_vecs(pos, neg)
    }

    /// From the probabilities of positives and negatives (any order).
    pub fn from_vecs(mut pos: Vec<f32>, mut neg: Vec<f32>) -> Split {
        pos.sort_unstable_by(|a, b| b.total_cmp(a));
        neg.sort_unstable_by(|a, b| b.total_cmp(a));
        Split { pos, neg }
    }

    /// Merge several splits (e.g. of several fields).
    pub fn merge(parts: Vec<Split>) -> Split {
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        for p in parts {
            pos.extend(p.pos);
            neg.extend(p.neg);
        }
        Split::from_vecs(pos, neg)
    }

    fn count_at_least(sorted_desc: &[f32], t: f32) -> usize {
        sorted_desc.partition_point(|&v| v >= t)
    }

    /// (tpr, fpr) of the mask `prob >= t`.
    pub fn rates(&self, t: f32) -> (f64, f64) {
        let tp = Self::count_at_least(&self.pos, t) as f64 / self.pos.len().max(1) as f64;
        let fp = Self::count_at_least(&self.neg, t) as f64 / self.neg.len().max(1) as f64;
        (tp, fp)
    }

    /// The lowest threshold whose false-positive rate is at most `fpr`.
    pub fn threshold_at_fpr(&self, fpr: f64) -> f32 {
        let k = (fpr * self.neg.len() as f64).floor() as usize;
        match self.neg.get(k) {
            // Just above the (k+1)-th highest negative: at most k negatives reach it.
            Some(&v) => f32::from_bits(v.max(0.0).to_bits() + 1).min(1.0),
            None => 0.0,
        }
    }

    /// The threshold (on a grid of 0.01 steps) with the best F1 score, `2TP / (2TP + FP + FN)`.
    pub fn threshold_best_f1(&self) -> f32 {
        let (p, n) = (self.pos.len() as f64, self.neg.len() as f64);
        let f1 = |t: f32| {
            let (tpr, fpr) = self.rates(t);
            let tp = tpr * p;
            2.0 * tp / (2.0 * tp + fpr * n + (p - tp)).max(f64::MIN_POSITIVE)
        };
        (1..100)
            .map(|k| k as f32 / 100.0)
            .max_by(|&a, &b| f1(a).total_cmp(&f1(b)).then(b.total_cmp(&a)))
            .unwrap_or(0.5)
    }

    /// True-positive rate at false-positive rate `fpr` (at the threshold reaching it).
    pub fn tpr_at_fpr(&self, fpr: f64) -> f64 {
        self.rates(self.threshold_at_fpr(fpr)).0
    }

    /// ROC area (Mann–Whitney: the probability that a positive outranks a negative, ties
    /// counted half).
    pub fn auc(&self) -> f64 {
        if self.pos.is_empty() || self.neg.is_empty() {
            return f64::NAN;
        }
        let mut total = 0.0f64;
        // For each positive: negatives strictly below it, plus half the ties.
        for &p in &self.pos {
            let above_or_eq = self.neg.partition_point(|&v| v >= p);
            let above = self.neg.partition_point(|&v| v > p);
            let below = self.neg.len() - above_or_eq;
            total += below as f64 + 0.5 * (above_or_eq - above) as f64;
        }
        total / (self.pos.len() as f64 * self.neg.len() as f64)
    }

    /// All scores of the plane `plane` at `threshold`.
    pub fn score(&self, plane: &str, threshold: f32) -> PlaneScore {
        let (tpr, fpr) = self.rates(threshold);
        let roc = (0..=24)
            .map(|i| {
                let f = 10f64.powf(-6.0 + i as f64 * 0.25);
                let (t, fp) = self.rates(self.threshold_at_fpr(f));
                [fp, t]
            })
            .collect();
        PlaneScore {
            plane: plane.to_string(),
            positives: self.pos.len(),
            negatives: self.neg.len(),
            threshold,
            tpr,
            fpr,
            auc: self.auc(),
            tpr_at_fpr_1e3: self.tpr_at_fpr(1e-3),
            tpr_at_fpr_1e4: self.tpr_at_fpr(1e-4),
            roc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_thresholds_and_area_of_a_known_ranking() {
        // 4 positives, 1000 negatives; one negative (0.95) outranks positive 0.9.
        let pos = vec![0.99, 0.97, 0.9, 0.2];
        let mut neg: Vec<f32> = (0..999).map(|i| i as f32 / 2000.0).collect();
        neg.push(0.95);
        let s = Split::from_vecs(pos, neg);
        assert_eq!(s.rates(0.96), (0.5, 0.0));
        assert_eq!(s.rates(0.9), (0.75, 0.001));
        // At most 1 negative in 1000 allowed: the threshold excludes all but 0.95.
        let t = s.threshold_at_fpr(1e-3);
        assert!(t > 0.499 && t < 0.9, "{t}");
        assert_eq!(s.tpr_at_fpr(1e-3), 0.75);
        assert_eq!(s.tpr_at_fpr(0.0), 0.5);
        // AUC: positives 0.99, 0.97 beat all; 0.9 beats 999; 0.2 beats 400 and ties one.
        let want = (1000.0 + 1000.0 + 999.0 + 400.5) / 4000.0;
        assert!((s.auc() - want).abs() < 1e-12, "{}", s.auc());
        // F1: 0.96 keeps 2 of 4 positives and no negative (F1 2/3); 0.5 to 0.9 keep 3 and
        // one negative (F1 0.75, the best); below 0.5 come hundreds of negatives.
        let t = s.threshold_best_f1();
        assert!((0.5..=0.9).contains(&t), "{t}");
        assert_eq!(s.rates(t), (0.75, 0.001));
        let sc = s.score("COSMIC_RAY", 0.5);
        assert_eq!(sc.positives, 4);
        assert!(sc.roc.windows(2).all(|w| w[0][0] <= w[1][0] + 1e-12));
    }
}
