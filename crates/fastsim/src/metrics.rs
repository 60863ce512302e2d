//! Distances between two samples of one observable: how far a generated distribution is from
//! the reference.
//!
//! Two numbers, as in the CaloChallenge evaluation:
//!
//! * [`chi2_separation`], the *separation power* of two normalised histograms, bounded in
//!   \[0, 1\] (0: identical histograms, 1: no overlap). It depends on the binning, so both
//!   samples must be histogrammed with the same edges, which [`binning`] chooses robustly.
//! * [`wasserstein1`], the exact 1-D earth mover's distance between the two empirical
//!   distributions, in the unit of the observable. It needs no binning and is sensitive to
//!   shifts that a coarse histogram hides.
//!
//! Both are biased upwards by finite samples (two samples of the same distribution do not give
//! exactly 0): compare a generator's numbers with those of two independent reference samples
//! of the same size, not with zero.

/// Quantile `q` ∈ \[0, 1\] of sorted, non-empty `sorted` with linear interpolation between
/// order statistics (numpy's default).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = pos - lo as f64;
    sorted[lo] + t * (sorted[hi] - sorted[lo])
}

/// The finite values, sorted.
fn finite_sorted(x: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Lower and upper quantile used for the histogram range: the extreme 0.1 % on each side of a
/// sample are left to the overflow bins, so that one outlier cannot squeeze the bulk of the
/// distribution into a single bin.
const TAIL: f64 = 0.001;

/// `bins + 1` strictly increasing bin edges for comparing `other` with `reference`.
///
/// The range runs from the 0.1 % to the 99.9 % quantile of each sample, taking the wider of
/// the two at each end, so that it covers the bulk of both: a generator that is off shows up
/// in the histograms instead of vanishing into the edge bins. With `log` and all finite values
/// of both samples positive, the edges are log-spaced; otherwise linear. Constant data (or a
/// range of zero width) get a small range around the value, so the edges are always strictly
/// increasing. Non-finite values are ignored; two samples without any finite value get the
/// edges of \[0, 1\]. `bins` = 0 is treated as 1.
pub fn binning(reference: &[f64], other: &[f64], bins: usize, log: bool) -> Vec<f64> {
    let bins = bins.max(1);
    let r = finite_sorted(reference);
    let o = finite_sorted(other);
    let (mut lo, mut hi) = match (r.is_empty(), o.is_empty()) {
        (true, true) => (0.0, 1.0),
        (false, true) => (quantile_sorted(&r, TAIL), quantile_sorted(&r, 1.0 - TAIL)),
        (true, false) => (quantile_sorted(&o, TAIL), quantile_sorted(&o, 1.0 - TAIL)),
        (false, false) => (
            quantile_sorted(&r, TAIL).min(quantile_sorted(&o, TAIL)),
            quantile_sorted(&r, 1.0 - TAIL).max(quantile_sorted(&o, 1.0 - TAIL)),
        ),
    };
    let min_value = r
        .first()
        .into_iter()
        .chain(o.first())
        .fold(f64::INFINITY, |a, &b| a.min(b));
    let use_log = log && min_value > 0.0 && min_value.is_finite();
    if use_log {
        // Relative width: a constant positive sample gets a factor 1.5 either side.
        if hi <= lo * (1.0 + 1e-9) {
            lo /= 1.5;
            hi *= 1.5;
        }
        let (l0, l1) = (lo.ln(), hi.ln());
        let mut edges: Vec<f64> = (0..=bins)
            .map(|k| (l0 + (l1 - l0) * k as f64 / bins as f64).exp())
            .collect();
        // exp(ln(x)) need not give x back; pin the ends to the range itself.
        edges[0] = lo;
        edges[bins] = hi;
        edges
    } else {
        let scale = lo.abs().max(hi.abs());
        if hi - lo <= 1e-9 * scale {
            // Constant data: ±5 % of the value, at least ±0.5 (sparsity 0, empty layers …).
            let c = 0.5 * (lo + hi);
            let d = (0.05 * c.abs()).max(0.5);
            lo = c - d;
            hi = c + d;
        }
        (0..=bins)
            .map(|k| {
                if k == bins {
                    hi
                } else {
                    lo + (hi - lo) * k as f64 / bins as f64
                }
            })
            .collect()
    }
}

/// Counts of `x` in the bins of `edges`, values below/above the range going to the first/last
/// bin; NaN is skipped. Returns the counts and the number of values counted.
fn histogram(x: &[f64], edges: &[f64]) -> (Vec<f64>, f64) {
    let nb = edges.len() - 1;
    let mut counts = vec![0.0; nb];
    let mut n = 0.0;
    for &v in x {
        if v.is_nan() {
            continue;
        }
        // Number of edges ≤ v, minus one, is the bin of v (left-closed bins).
        let k = edges
            .partition_point(|&e| e <= v)
            .saturating_sub(1)
            .min(nb - 1);
        counts[k] += 1.0;
        n += 1.0;
    }
    (counts, n)
}

/// Separation power of the histograms of `a` and `b` over `edges` (CaloChallenge, eq. of
/// Krause et al. 2024): ½ Σᵢ (pᵢ − qᵢ)² / (pᵢ + qᵢ), with p and q the histograms normalised to
/// unit sum. 0 for identical histograms, 1 for disjoint ones.
///
/// Values outside the edges are counted in the first or last bin, so that the result never
/// ignores part of a sample; NaN values are skipped. Returns NaN when either sample has no
/// (non-NaN) value, as the separation is undefined then.
///
/// # Panics
///
/// When `edges` has fewer than 2 entries.
pub fn chi2_separation(a: &[f64], b: &[f64], edges: &[f64]) -> f64 {
    assert!(
        edges.len() >= 2,
        "chi2_separation needs at least 2 bin edges, got {}",
        edges.len()
    );
    let (ha, na) = histogram(a, edges);
    let (hb, nb) = histogram(b, edges);
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = ha
        .iter()
        .zip(&hb)
        .map(|(&ca, &cb)| {
            let (p, q) = (ca / na, cb / nb);
            if p + q > 0.0 {
                (p - q) * (p - q) / (p + q)
            } else {
                0.0
            }
        })
        .sum();
    0.5 * sum
}

/// The 1-D Wasserstein-1 (earth mover's) distance between the empirical distributions of `a`
/// and `b`: ∫ |F_a(x) − F_b(x)| dx, integrated exactly over the merged sorted values, as
/// `scipy.stats.wasserstein_distance(a, b)`. The samples may have different sizes.
///
/// NaN values are skipped. An infinite value makes the distance infinite unless both samples
/// have the same share of it. Returns NaN when either sample has no (non-NaN) value.
pub fn wasserstein1(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |x: &[f64]| {
        let mut v: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut ia, mut ib) = (0usize, 0usize);
    let mut w = 0.0;
    // Between consecutive merged values x_k and x_{k+1} both CDFs are constant:
    // F_a = #{a ≤ x_k} / n_a and likewise for b.
    for win in all.windows(2) {
        let (x, next) = (win[0], win[1]);
        while ia < a.len() && a[ia] <= x {
            ia += 1;
        }
        while ib < b.len() && b[ib] <= x {
            ib += 1;
        }
        let diff = (ia as f64 / na - ib as f64 / nb).abs();
        // Skip zero differences: an interval between two equal infinities has width NaN.
        if diff != 0.0 {
            w += diff * (next - x);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strictly_increasing(e: &[f64]) -> bool {
        e.windows(2).all(|w| w[1] > w[0]) && e.iter().all(|v| v.is_finite())
    }

    /// Deterministic pseudo-random values in [0, 1) (a Weyl sequence), so that the tests need
    /// no RNG.
    fn weyl(n: usize, offset: f64) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as f64 + offset) * 0.618_033_988_749_894_9).fract())
            .collect()
    }

    #[test]
    fn binning_is_strictly_increasing_in_edge_cases() {
        let cases: Vec<(Vec<f64>, Vec<f64>, bool)> = vec![
            (vec![3.0; 50], vec![3.0; 50], false),
            (vec![3.0; 50], vec![3.0; 50], true),
            (vec![0.0; 50], vec![0.0; 10], true), // log impossible with zeros: linear
            (vec![], vec![], false),
            (vec![f64::NAN, f64::INFINITY], vec![1.0], false),
            (vec![1e-7, 1e-7], vec![1e-7], false),
            (vec![-5.0, 1e6], vec![2.0], false),
        ];
        for (r, o, log) in cases {
            for bins in [0, 1, 10, 1000] {
                let e = binning(&r, &o, bins, log);
                assert_eq!(e.len(), bins.max(1) + 1);
                assert!(strictly_increasing(&e), "{r:?} {o:?} {log}: {e:?}");
            }
        }
    }

    #[test]
    fn binning_covers_both_samples_and_is_log_when_asked() {
        let r: Vec<f64> = weyl(1000, 0.0).iter().map(|u| 1.0 + 9.0 * u).collect();
        let o: Vec<f64> = r.iter().map(|v| v * 3.0).collect();
        let e = binning(&r, &o, 20, true);
        assert!(e[0] < 1.05 && e[20] > 29.5, "{e:?}");
        // Log spacing: constant ratio of consecutive edges.
        let ratios: Vec<f64> = e.windows(2).map(|w| w[1] / w[0]).collect();
        assert!(ratios.iter().all(|q| (q - ratios[0]).abs() < 1e-9));
        // A single far outlier does not stretch the range.
        let mut r2 = r.clone();
        r2.push(1e9);
        let e2 = binning(&r2, &r, 10, false);
        assert!(e2[10] < 11.0, "{e2:?}");
    }

    #[test]
    fn chi2_identical_is_zero_and_disjoint_is_one() {
        let a = weyl(500, 0.0);
        let e = binning(&a, &a, 25, false);
        assert_eq!(chi2_separation(&a, &a, &e), 0.0);
        let b: Vec<f64> = a.iter().map(|v| v + 10.0).collect();
        let e = binning(&a, &b, 25, false);
        assert!((chi2_separation(&a, &b, &e) - 1.0).abs() < 1e-12);
        // Symmetric.
        let c: Vec<f64> = a.iter().map(|v| v * v).collect();
        let e = binning(&a, &c, 25, false);
        assert_eq!(chi2_separation(&a, &c, &e), chi2_separation(&c, &a, &e));
    }

    #[test]
    fn chi2_hand_computed_and_out_of_range_values() {
        // Edges [0, 1, 2]. a: 3 values in bin 0, 1 in bin 1 → p = (0.75, 0.25).
        // b: −7 goes to bin 0, 5 and 1.5 to bin 1 → q = (1/3, 2/3).
        // By hand: ½ [(3/4 − 1/3)² / (3/4 + 1/3) + (1/4 − 2/3)² / (1/4 + 2/3)]
        //        = ½ [(25/144)/(13/12) + (25/144)/(11/12)] = ½ [25/156 + 25/132] = 25/143.
        let a = [0.1, 0.2, 0.9, 1.2];
        let b = [-7.0, 5.0, 1.5];
        let got = chi2_separation(&a, &b, &[0.0, 1.0, 2.0]);
        assert!((got - 25.0 / 143.0).abs() < 1e-15, "{got}");
        // NaN is skipped; an empty sample gives NaN.
        assert_eq!(chi2_separation(&[0.1, f64::NAN], &[0.2], &[0.0, 1.0]), 0.0);
        assert!(chi2_separation(&[], &[0.2], &[0.0, 1.0]).is_nan());
    }

    #[test]
    fn wasserstein_identical_and_shifted() {
        let a = weyl(300, 0.0);
        assert_eq!(wasserstein1(&a, &a), 0.0);
        for d in [0.25, 3.0, -1.5] {
            let b: Vec<f64> = a.iter().map(|v| v + d).collect();
            let w = wasserstein1(&a, &b);
            assert!((w - d.abs()).abs() < 1e-9, "shift {d}: {w}");
        }
        // Order of the inputs does not matter.
        let mut rev = a.clone();
        rev.reverse();
        assert_eq!(wasserstein1(&rev, &[0.5]), wasserstein1(&a, &[0.5]));
    }

    #[test]
    fn wasserstein_hand_computed_examples() {
        // scipy's documented example: wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5.0.
        assert!((wasserstein1(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-12);
        // Against one point, W1 is the mean absolute deviation from it: |0 − ½| and |1 − ½|.
        assert!((wasserstein1(&[0.0, 1.0], &[0.5]) - 0.5).abs() < 1e-12);
        // Different sizes, derived by hand through the quantile functions
        // (W1 = ∫₀¹ |Q_a(u) − Q_b(u)| du, a different route from the CDF integral in the code):
        // Q_a = 1, 2, 3 on [0,⅓), [⅓,⅔), [⅔,1); Q_b = 1, 4, 5 on [0,½), [½,¾), [¾,1).
        // |Q_a − Q_b| = 0 on [0,⅓), 1 on [⅓,½), 2 on [½,⅔), 1 on [⅔,¾), 2 on [¾,1)
        // → 1·⅙ + 2·⅙ + 1·1/12 + 2·¼ = 13/12.
        let w = wasserstein1(&[1.0, 2.0, 3.0], &[1.0, 1.0, 4.0, 5.0]);
        assert!((w - 13.0 / 12.0).abs() < 1e-12, "{w}");
        assert_eq!(w, wasserstein1(&[1.0, 1.0, 4.0, 5.0], &[1.0, 2.0, 3.0]));
    }

    #[test]
    fn wasserstein_nan_and_infinite_values() {
        assert!(wasserstein1(&[], &[1.0]).is_nan());
        assert_eq!(wasserstein1(&[1.0, f64::NAN], &[1.0]), 0.0);
        assert_eq!(wasserstein1(&[1.0, f64::INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(
            wasserstein1(&[1.0, f64::INFINITY], &[2.0, f64::INFINITY]),
            0.5
        );
    }
}
