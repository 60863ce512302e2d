//! Multi-threshold deblending (SExtractor, Bertin & Arnouts 1996, §2.6): a component splits
//! where, at some level between the detection threshold and its peak, it falls apart into
//! branches that each hold enough flux and pixels.

use super::measure::Pix;
use super::ClassicalConfig;

/// A component's pixels laid out on its bounding box, to find each pixel's neighbours.
struct PixelGrid {
    /// Index + 1 of the pixel at each position of the bounding box (0 = outside).
    cells: Vec<u32>,
    r0: u32,
    c0: u32,
    width: usize,
    height: usize,
    /// 8-connectivity (else 4).
    eight: bool,
}

impl PixelGrid {
    fn new(pixels: &[Pix], eight: bool) -> Self {
        let r0 = pixels.iter().map(|p| p.r).min().unwrap_or(0);
        let c0 = pixels.iter().map(|p| p.c).min().unwrap_or(0);
        let height = (pixels.iter().map(|p| p.r).max().unwrap_or(0) - r0) as usize + 1;
        let width = (pixels.iter().map(|p| p.c).max().unwrap_or(0) - c0) as usize + 1;
        let mut cells = vec![0u32; width * height];
        for (i, p) in pixels.iter().enumerate() {
            cells[(p.r - r0) as usize * width + (p.c - c0) as usize] = i as u32 + 1;
        }
        Self {
            cells,
            r0,
            c0,
            width,
            height,
            eight,
        }
    }

    /// The indices of the component's pixels next to `p`, row by row from the one above, left
    /// to right (the order decides the order in which searches visit pixels).
    fn neighbours(&self, p: Pix) -> impl Iterator<Item = usize> + '_ {
        let (lr, lc) = ((p.r - self.r0) as i64, (p.c - self.c0) as i64);
        (-1i64..=1)
            .flat_map(|dr| (-1i64..=1).map(move |dc| (dr, dc)))
            .filter(|&(dr, dc)| !((dr == 0 && dc == 0) || (!self.eight && dr != 0 && dc != 0)))
            .filter_map(move |(dr, dc)| {
                let (nr, nc) = (lr + dr, lc + dc);
                if nr < 0 || nc < 0 || nr >= self.height as i64 || nc >= self.width as i64 {
                    return None;
                }
                let g = self.cells[nr as usize * self.width + nc as usize];
                (g != 0).then(|| (g - 1) as usize)
            })
    }
}

/// Multi-threshold deblending of one component (SExtractor, Bertin & Arnouts 1996, §2.6).
pub(super) struct Deblender<'p> {
    pixels: &'p [Pix],
    grid: PixelGrid,
    /// Per-pixel marks for the component search, compared with a generation counter so that the
    /// marks never need clearing between searches.
    stamp: Vec<u32>,
    generation: u32,
    min_area: usize,
    min_flux: f64,
    levels: Vec<f32>,
}

impl<'p> Deblender<'p> {
    pub(super) fn new(pixels: &'p [Pix], cfg: &ClassicalConfig) -> Self {
        let total: f64 = pixels.iter().map(|p| p.filt.max(0.0) as f64).sum();
        let peak = pixels
            .iter()
            .map(|p| p.snr)
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        let t0 = cfg.threshold;
        let n = cfg.deblend_levels;
        let levels = if peak > t0 {
            (1..n)
                .map(|i| (t0 * (peak / t0).powf(i as f64 / n as f64)) as f32)
                .collect()
        } else {
            Vec::new()
        };
        Self {
            pixels,
            grid: PixelGrid::new(pixels, cfg.connectivity == 8),
            stamp: vec![0; pixels.len()],
            generation: 0,
            min_area: cfg.min_area,
            min_flux: cfg.deblend_contrast * total,
            levels,
        }
    }

    /// Pixel groups (indices into `pixels`), one per object; a single group if nothing splits.
    pub(super) fn run(mut self) -> Vec<Vec<u32>> {
        let all: Vec<u32> = (0..self.pixels.len() as u32).collect();
        // A component with a single local maximum cannot split at any level. That is most of
        // them (isolated stars), and checking costs one pass instead of a search per level.
        if self.local_maxima(2) < 2 {
            return vec![all];
        }
        let mut leaves: Vec<Vec<u32>> = Vec::new();
        // (pixels of a branch, index of the level it was found at); explicit stack, no recursion.
        let mut stack = vec![(all.clone(), None::<usize>)];
        while let Some((branch, found_at)) = stack.pop() {
            let start = found_at.map_or(0, |l| l + 1);
            let mut split = false;
            // The search narrows as it climbs: once only one part of the branch is significant
            // at a level, only that part can split higher up (the other parts, and their
            // sub-parts, hold even less flux and fewer pixels), so later levels look at it alone.
            // This keeps deblending a huge saturated star close to linear in its area.
            let mut current = branch.clone();
            for l in start..self.levels.len() {
                let parts = self.components_above(&current, self.levels[l]);
                let mut significant: Vec<Vec<u32>> = parts
                    .into_iter()
                    .filter(|p| p.len() >= self.min_area && self.flux(p) >= self.min_flux)
                    .collect();
                match significant.len() {
                    0 => break,
                    1 => current = significant.pop().expect("one part"),
                    _ => {
                        stack.extend(significant.into_iter().map(|p| (p, Some(l))));
                        split = true;
                        break;
                    }
                }
            }
            if !split {
                leaves.push(branch);
            }
        }
        if leaves.len() < 2 {
            return vec![all];
        }
        self.assign_rest(leaves)
    }

    /// Number of local maxima of the SNR among the component's pixels (a pixel no lower than any
    /// of its neighbours in the component), counting stops at `limit`. Plateaus count more than
    /// once, which only means the full search runs.
    fn local_maxima(&self, limit: usize) -> usize {
        let mut count = 0;
        for &p in self.pixels {
            let pixels = self.pixels;
            let is_max = !self.grid.neighbours(p).any(|n| pixels[n].snr > p.snr);
            if is_max {
                count += 1;
                if count >= limit {
                    break;
                }
            }
        }
        count
    }

    fn flux(&self, group: &[u32]) -> f64 {
        group
            .iter()
            .map(|&i| self.pixels[i as usize].filt.max(0.0) as f64)
            .sum()
    }

    /// Connected components of the pixels of `subset` whose SNR exceeds `level`.
    fn components_above(&mut self, subset: &[u32], level: f32) -> Vec<Vec<u32>> {
        if self.generation > u32::MAX - 4 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 0;
        }
        let active = self.generation + 1;
        let visited = self.generation + 2;
        self.generation += 2;
        for &i in subset {
            if self.pixels[i as usize].snr > level {
                self.stamp[i as usize] = active;
            }
        }
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for &seed in subset {
            if self.stamp[seed as usize] != active {
                continue;
            }
            self.stamp[seed as usize] = visited;
            stack.push(seed);
            let mut comp = Vec::new();
            while let Some(i) = stack.pop() {
                comp.push(i);
                for n in self.grid.neighbours(self.pixels[i as usize]) {
                    if self.stamp[n] == active {
                        self.stamp[n] = visited;
                        stack.push(n as u32);
                    }
                }
            }
            out.push(comp);
        }
        out
    }

    /// Gives every pixel not in a leaf to the leaf whose elliptical Gaussian model (flux, centroid
    /// and second moments of the leaf) predicts the most light there.
    fn assign_rest(&self, mut leaves: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
        let mut owner = vec![u32::MAX; self.pixels.len()];
        // log(amplitude), centroid, inverse covariance.
        let models: Vec<(f64, f64, f64, [f64; 3])> = leaves
            .iter()
            .enumerate()
            .map(|(k, leaf)| {
                let (mut s, mut sr, mut sc) = (0.0, 0.0, 0.0);
                for &i in leaf {
                    owner[i as usize] = k as u32;
                    let p = self.pixels[i as usize];
                    let w = p.filt.max(0.0) as f64 + 1e-12;
                    s += w;
                    sr += w * p.r as f64;
                    sc += w * p.c as f64;
                }
                let (mr, mc) = (sr / s, sc / s);
                let (mut vrr, mut vcc, mut vrc) = (0.0, 0.0, 0.0);
                for &i in leaf {
                    let p = self.pixels[i as usize];
                    let w = p.filt.max(0.0) as f64 + 1e-12;
                    let (dr, dc) = (p.r as f64 - mr, p.c as f64 - mc);
                    vrr += w * dr * dr;
                    vcc += w * dc * dc;
                    vrc += w * dr * dc;
                }
                // A pixel's own extent (1/12) keeps a one-row or one-column leaf non-degenerate.
                let (vrr, vcc, vrc) = (vrr / s + 1.0 / 12.0, vcc / s + 1.0 / 12.0, vrc / s);
                let det = (vrr * vcc - vrc * vrc).max(1e-6);
                let inv = [vcc / det, vrr / det, -vrc / det];
                (s.ln() - 0.5 * det.ln(), mr, mc, inv)
            })
            .collect();
        for (i, p) in self.pixels.iter().enumerate() {
            if owner[i] != u32::MAX {
                continue;
            }
            let best = models
                .iter()
                .enumerate()
                .map(|(k, &(log_amp, mr, mc, inv))| {
                    let (dr, dc) = (p.r as f64 - mr, p.c as f64 - mc);
                    let q = inv[0] * dr * dr + inv[1] * dc * dc + 2.0 * inv[2] * dr * dc;
                    (k, log_amp - 0.5 * q)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(k, _)| k);
            leaves[best].push(i as u32);
        }
        leaves
    }
}

#[cfg(test)]
mod tests {
    use crate::background::Background;
    use crate::classical::{detect_classical, ClassicalConfig};
    use crate::test_util::{add_gaussian, noise};
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    #[test]
    fn deblending_splits_two_blended_sources() {
        let mut rng = Pcg64::seed_from_u64(14);
        let mut img = noise(80, 80, 1.0, &mut rng);
        // Two sources 7 px apart (σ = 1.5 px each), fluxes 3000 and 1500: one isophote at 5σ,
        // and in the filtered image (σ ≈ 1.9 px) a saddle ~45% below the fainter peak. (At 6 px
        // the fainter branch above the saddle has only 4 pixels, below min_area: no split, as in
        // SExtractor.)
        let s = 1.5;
        add_gaussian(&mut img, 40.0, 37.0, s, 3000.0);
        add_gaussian(&mut img, 40.5, 44.0, s, 1500.0);
        let bkg = Background::constant((80, 80), 100.0, 1.0);
        let no = ClassicalConfig {
            deblend: false,
            ..Default::default()
        };
        let merged = detect_classical(img.view(), None, &bkg, &no).unwrap();
        assert_eq!(merged.len(), 1, "{merged:?}");
        let yes = ClassicalConfig {
            deblend: true,
            ..no
        };
        let mut split = detect_classical(img.view(), None, &bkg, &yes).unwrap();
        assert_eq!(split.len(), 2, "{split:?}");
        split.sort_by(|a, b| a.x.total_cmp(&b.x));
        let (a, b) = (&split[0], &split[1]);
        assert!(
            (a.x - 38.0).abs() < 0.3 && (a.y - 41.0).abs() < 0.3,
            "{a:?}"
        );
        assert!(
            (b.x - 45.0).abs() < 0.3 && (b.y - 41.5).abs() < 0.3,
            "{b:?}"
        );
        // Pixels are shared out, so the fluxes add up to the merged object's and keep the ratio.
        assert!((a.flux + b.flux - merged[0].flux).abs() < 1e-6 * merged[0].flux.abs());
        assert_eq!(a.npix + b.npix, merged[0].npix);
        let ratio = a.flux / b.flux;
        assert!(ratio > 1.6 && ratio < 2.5, "flux ratio {ratio}");
        // A contrast of 0.5 forbids the split (the fainter one holds a third).
        let strict = ClassicalConfig {
            deblend_contrast: 0.5,
            ..yes
        };
        assert_eq!(
            detect_classical(img.view(), None, &bkg, &strict)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn bright_single_source_is_not_oversplit() {
        let mut rng = Pcg64::seed_from_u64(15);
        let mut img = noise(128, 128, 1.0, &mut rng);
        add_gaussian(&mut img, 64.3, 63.7, 3.0, 2.0e5);
        let bkg = Background::constant((128, 128), 100.0, 1.0);
        let found = detect_classical(img.view(), None, &bkg, &ClassicalConfig::default()).unwrap();
        assert_eq!(
            found.len(),
            1,
            "{:?}",
            found.iter().map(|d| (d.x, d.y, d.flux)).collect::<Vec<_>>()
        );
        assert!((found[0].x - 64.7).abs() < 0.02 && (found[0].y - 65.3).abs() < 0.02);
        assert!(
            (found[0].flux / 2.0e5 - 1.0).abs() < 0.01,
            "{}",
            found[0].flux
        );
    }
}
