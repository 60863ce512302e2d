//! Thresholding and labelling: the above-threshold runs of each filtered row, joined into
//! connected components by a union-find over runs.

use super::filter::{snr_of, value_of};

/// The above-threshold runs of one row, with the SNR and filtered value of each of their pixels
/// (in run order), which is all that detection keeps of the filtered image.
pub(super) struct RowRuns {
    pub(super) runs: Vec<Run>,
    pub(super) snr: Vec<f32>,
    pub(super) value: Vec<f32>,
}

impl RowRuns {
    pub(super) fn above(threshold: f32, conv: &[f32], w: &[f32], q: &[f32], rms: &[f32]) -> Self {
        let mut out = RowRuns {
            runs: Vec::new(),
            snr: Vec::new(),
            value: Vec::new(),
        };
        // First a branch-free pass the compiler vectorises (no division, one sqrt): every pixel
        // of the image goes through it. `snr_of` is then evaluated only on the few pixels above.
        // (A zero noise or a footprint without data is never above threshold, as in `snr_of`.)
        let mut c = 0;
        let n = conv.len();
        while c < n {
            let chunk = (n - c).min(64);
            let mut flags = 0u64;
            for i in 0..chunk {
                let j = c + i;
                let noise = rms[j] * q[j].max(0.0).sqrt();
                let above = conv[j] > threshold * noise && noise > 0.0 && w[j] > 1e-6;
                flags |= (above as u64) << i;
            }
            // Runs within the chunk (a run crossing chunks is merged below).
            while flags != 0 {
                let start = flags.trailing_zeros() as usize;
                let len = (!(flags >> start)).trailing_zeros() as usize;
                let (c0, c1) = (c + start, c + start + len);
                match out.runs.last_mut() {
                    Some(last) if last.c1 as usize == c0 => last.c1 = c1 as u32,
                    _ => out.runs.push(Run {
                        row: 0,
                        c0: c0 as u32,
                        c1: c1 as u32,
                        first: out.snr.len() as u32,
                    }),
                }
                for j in c0..c1 {
                    out.snr.push(snr_of(conv[j], w[j], q[j], rms[j]));
                    out.value.push(value_of(conv[j], w[j]));
                }
                flags = if start + len >= 64 {
                    0
                } else {
                    flags & (!0u64 << (start + len))
                };
            }
            c += chunk;
        }
        out
    }
}

/// A horizontal run of above-threshold pixels: row `row`, columns `c0..c1`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub(super) row: u32,
    pub(super) c0: u32,
    pub(super) c1: u32,
    /// Index of the run's first pixel in its row's [`RowRuns::snr`] and [`RowRuns::value`].
    pub(super) first: u32,
}

/// Connected components of the above-threshold runs of every row, as lists of runs.
///
/// A union-find over runs (not pixels) joins runs that touch the previous row's. Nothing is
/// recursive, so a component of any size is safe.
pub(super) fn label_runs(row_runs: &[RowRuns], eight: bool) -> Vec<Vec<Run>> {
    let nrows = row_runs.len();
    // The row index is only known here (the rows were filtered independently).
    let rows: Vec<Vec<Run>> = row_runs
        .iter()
        .enumerate()
        .map(|(r, rr)| {
            rr.runs
                .iter()
                .map(|&run| Run {
                    row: r as u32,
                    ..run
                })
                .collect()
        })
        .collect();

    let offsets: Vec<usize> = rows
        .iter()
        .scan(0usize, |acc, v| {
            let o = *acc;
            *acc += v.len();
            Some(o)
        })
        .collect();
    let all: Vec<Run> = rows.iter().flatten().copied().collect();
    let mut parent: Vec<u32> = (0..all.len() as u32).collect();
    // Two runs in consecutive rows touch if their column ranges overlap, or (8-connectivity) are
    // diagonally adjacent.
    let slack = u32::from(eight);
    for r in 1..nrows {
        let (prev, cur) = (&rows[r - 1], &rows[r]);
        let (po, co) = (offsets[r - 1], offsets[r]);
        let mut j0 = 0;
        for (i, run) in cur.iter().enumerate() {
            while j0 < prev.len() && prev[j0].c1 + slack <= run.c0 {
                j0 += 1;
            }
            let mut j = j0;
            while j < prev.len() && prev[j].c0 < run.c1 + slack {
                union(&mut parent, (po + j) as u32, (co + i) as u32);
                j += 1;
            }
        }
    }
    let mut index_of_root = vec![u32::MAX; all.len()];
    let mut comps: Vec<Vec<Run>> = Vec::new();
    for (i, &run) in all.iter().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        if index_of_root[root] == u32::MAX {
            index_of_root[root] = comps.len() as u32;
            comps.push(Vec::new());
        }
        comps[index_of_root[root] as usize].push(run);
    }
    comps
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        // Path halving keeps the trees flat without recursion.
        parent[i as usize] = parent[parent[i as usize] as usize];
        i = parent[i as usize];
    }
    i
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

#[cfg(test)]
mod tests {
    // Reference implementations index pixels explicitly, to mirror the formulas they check.
    #![allow(clippy::needless_range_loop)]
    use super::*;
    use crate::background::Background;
    use crate::classical::{detect_classical, ClassicalConfig};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    #[test]
    fn row_runs_match_a_naive_scan() {
        let mut rng = Pcg64::seed_from_u64(17);
        for n in [1usize, 63, 64, 65, 200, 300] {
            // Long runs and gaps, crossing the 64-pixel chunks.
            let mut level = 0.0f32;
            let conv: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.random::<f32>() < 0.05 {
                        level = if level > 0.0 { 0.0 } else { 10.0 };
                    }
                    level + rng.random::<f32>()
                })
                .collect();
            let (w, q, rms) = (vec![1.0f32; n], vec![1.0f32; n], vec![1.0f32; n]);
            let got = RowRuns::above(5.0, &conv, &w, &q, &rms);
            let mut expected = Vec::new();
            let mut start = None;
            for c in 0..=n {
                let above = c < n && conv[c] > 5.0;
                match (above, start) {
                    (true, None) => start = Some(c),
                    (false, Some(s0)) => {
                        expected.push((s0 as u32, c as u32));
                        start = None;
                    }
                    _ => {}
                }
            }
            let runs: Vec<(u32, u32)> = got.runs.iter().map(|r| (r.c0, r.c1)).collect();
            assert_eq!(runs, expected, "n = {n}");
            for r in &got.runs {
                for c in r.c0..r.c1 {
                    assert_eq!(got.snr[(r.first + c - r.c0) as usize], conv[c as usize]);
                }
            }
        }
    }

    #[test]
    fn min_area_and_connectivity() {
        let mut img = Array2::<f32>::zeros((40, 40));
        // A 2×2 block (4 px), a 3×2 block (6 px), and a diagonal line of 7 pixels.
        img.slice_mut(ndarray::s![5..7, 5..7]).fill(100.0);
        img.slice_mut(ndarray::s![20..23, 5..7]).fill(100.0);
        for k in 0..7 {
            img[[10 + k, 25 + k]] = 100.0;
        }
        let bkg = Background::constant((40, 40), 0.0, 1.0);
        // A tiny FWHM makes the filter (almost) the identity, so the areas are exact.
        let cfg = ClassicalConfig {
            fwhm: 0.3,
            min_area: 5,
            deblend: false,
            ..Default::default()
        };
        let found = detect_classical(img.view(), None, &bkg, &cfg).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .any(|d| d.npix == 7 && d.xmin == 26 && d.ymax == 17));
        let block = found.iter().find(|d| d.npix == 6).expect("3×2 block");
        assert_eq!(
            (block.xmin, block.xmax, block.ymin, block.ymax),
            (6, 7, 21, 23)
        );
        assert!((block.x - 6.5).abs() < 1e-6 && (block.y - 22.0).abs() < 1e-6);
        assert!((block.flux - 600.0).abs() < 1e-3 && (block.peak - 100.0).abs() < 1e-3);
        assert!((block.flux_err - 6f64.sqrt()).abs() < 1e-6);
        let four = ClassicalConfig {
            connectivity: 4,
            ..cfg.clone()
        };
        let found4 = detect_classical(img.view(), None, &bkg, &four).unwrap();
        assert_eq!(
            found4.len(),
            1,
            "diagonal pixels do not connect with 4-connectivity"
        );
        assert_eq!(found4[0].npix, 6);
        let area1 = ClassicalConfig {
            min_area: 1,
            connectivity: 4,
            ..cfg
        };
        assert_eq!(
            detect_classical(img.view(), None, &bkg, &area1)
                .unwrap()
                .len(),
            9
        );
    }
}
