//! ROC curves and the area under them: how well a score ranks one class above another.
//!
//! The anomaly ranking (rare objects against normal ones), the detector's evaluation and the
//! fast-simulation classifier two-sample test (generated against reference showers) all report
//! a ROC AUC; this is the one implementation they share. Drawing is `deepsky-plot`'s `Roc`.

use std::fmt;

/// Why a ROC curve cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsError(String);

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricsError {}

/// A ROC curve: one point per distinct score threshold, from (0, 0) to (1, 1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Roc {
    /// False-positive rates (background efficiency), increasing from 0 to 1.
    pub fpr: Vec<f64>,
    /// True-positive rates (signal efficiency), increasing from 0 to 1.
    pub tpr: Vec<f64>,
    /// Area under the curve by the trapezoidal rule.
    pub auc: f64,
}

/// The ROC curve of classifier `scores` against true `labels`, a higher score meaning "more
/// positive". Ties are kept together (one point per distinct score), so the area equals the
/// probability that a random positive scores above a random negative, ties counting one half.
///
/// Errors: lengths differ, a score is NaN, or a class is missing.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Result<Roc, MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError(format!(
            "{} scores for {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(MetricsError("scores contain NaN".into()));
    }
    let p = labels.iter().filter(|l| **l).count();
    let n = labels.len() - p;
    if p == 0 || n == 0 {
        return Err(MetricsError(format!(
            "a ROC curve needs both classes; got {p} positives and {n} negatives"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut fpr = vec![0.0];
    let mut tpr = vec![0.0];
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            fpr.push(fp as f64 / n as f64);
            tpr.push(tp as f64 / p as f64);
        }
    }
    let auc = auc(&fpr, &tpr);
    Ok(Roc { fpr, tpr, auc })
}

/// Area under a curve given by points sorted by x, by the trapezoidal rule.
pub fn auc(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let labels = [true, true, false, false];
        assert_eq!(roc_curve(&[0.9, 0.8, 0.2, 0.1], &labels).unwrap().auc, 1.0);
        assert_eq!(roc_curve(&[0.1, 0.2, 0.8, 0.9], &labels).unwrap().auc, 0.0);
    }

    #[test]
    fn alternating_ranking_has_its_points_and_area() {
        let r = roc_curve(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(r.auc, 0.75);
    }

    #[test]
    fn ties_count_one_half_as_sklearn() {
        // sklearn.metrics.roc_auc_score([1,0,1,0,1,0], [.9,.8,.7,.3,.3,.1]) = 0.7222...
        let labels = [true, false, true, false, true, false];
        let r = roc_curve(&[0.9, 0.8, 0.7, 0.3, 0.3, 0.1], &labels).unwrap();
        assert!((r.auc - 0.722_222_222_222_222_2).abs() < 1e-12, "{}", r.auc);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(roc_curve(&[0.1, 0.2], &[true, true]).is_err());
        assert!(roc_curve(&[0.1], &[true, false]).is_err());
        assert!(roc_curve(&[f64::NAN, 0.2], &[true, false]).is_err());
    }
}
