//! Source instances from the `DETECTED` plane: SExtractor's segmentation map (CHECKIMAGE_TYPE
//! SEGMENTATION), 0 for sky and the source's number elsewhere, with touching sources
//! deblended.
//!
//! Deblending is a watershed with a prominence rule (topological persistence): footprint
//! pixels are visited from the brightest down (background-subtracted, 3×3-smoothed, so a
//! single noise spike is not a peak); a pixel joins the basin of its already-visited
//! neighbours; where two basins meet, the fainter one stays a source of its own only if its
//! peak rises at least `prominence` noise σ above that saddle, and is otherwise merged into
//! the brighter. Sources are numbered in reading order of their centroids (by row, then
//! column), and [`Source`] gives each one's centroid, area and isophotal flux, so that the
//! numbers in the map are rows of a catalogue.

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_detect::background::Background;
use ndarray::{Array2, ArrayView2};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Deblending settings (`[deblend]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeblendConfig {
    /// A peak is a source of its own when it rises this many noise σ (of the 3×3-smoothed
    /// image, i.e. the pixel noise / 3) above the saddle joining it to a brighter one.
    pub prominence: f32,
    /// Footprints with fewer pixels are dropped (noise, or a sliver at the image edge).
    pub min_area: usize,
}

impl Default for DeblendConfig {
    fn default() -> Self {
        DeblendConfig {
            prominence: 5.0,
            min_area: 4,
        }
    }
}

impl Validate for DeblendConfig {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(self.prominence >= 0.0, "prominence", "must be >= 0")?;
        ensure(self.min_area >= 1, "min_area", "must be at least 1")
    }
}

/// One source of the segmentation map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// Its number in the map (1-based).
    pub number: i32,
    /// Flux-weighted centroid, FITS 1-based pixels.
    pub x: f64,
    /// Flux-weighted centroid, FITS 1-based pixels.
    pub y: f64,
    /// Pixels in the footprint.
    pub area: usize,
    /// Sum of background-subtracted pixel values over the footprint, ADU.
    pub flux: f64,
    /// Highest background-subtracted pixel value, ADU.
    pub peak: f64,
}

/// The segmentation map of `image` over the footprint pixels `detected`, and its sources.
/// Non-finite pixels are never in a footprint.
pub fn segment_sources(
    image: ArrayView2<f32>,
    bkg: &Background,
    detected: ArrayView2<bool>,
    cfg: &DeblendConfig,
) -> (Array2<i32>, Vec<Source>) {
    let (h, w) = image.dim();
    let sub = |r: usize, c: usize| {
        let v = image[[r, c]];
        if v.is_finite() {
            v - bkg.level[[r, c]]
        } else {
            0.0
        }
    };
    // 3×3 mean, for ranking pixels: one noisy pixel is not a peak.
    let mut smooth = Array2::<f32>::zeros((h, w));
    let mut pixels: Vec<(usize, usize)> = Vec::new();
    for r in 0..h {
        for c in 0..w {
            if !detected[[r, c]] || !image[[r, c]].is_finite() {
                continue;
            }
            let (mut s, mut n) = (0.0f32, 0.0f32);
            for rr in r.saturating_sub(1)..(r + 2).min(h) {
                for cc in c.saturating_sub(1)..(c + 2).min(w) {
                    s += sub(rr, cc);
                    n += 1.0;
                }
            }
            smooth[[r, c]] = s / n;
            pixels.push((r, c));
        }
    }
    pixels.sort_by(|a, b| {
        smooth[[b.0, b.1]]
            .total_cmp(&smooth[[a.0, a.1]])
            .then(a.cmp(b))
    });

    // Union-find over basins; `peak` of a root is its basin's highest smoothed value.
    let mut label = Array2::<u32>::from_elem((h, w), u32::MAX);
    let mut parent: Vec<u32> = Vec::new();
    let mut peak: Vec<f32> = Vec::new();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    let mut roots: Vec<u32> = Vec::with_capacity(8);
    for &(r, c) in &pixels {
        let v = smooth[[r, c]];
        roots.clear();
        for rr in r.saturating_sub(1)..(r + 2).min(h) {
            for cc in c.saturating_sub(1)..(c + 2).min(w) {
                let l = label[[rr, cc]];
                if l != u32::MAX {
                    let root = find(&mut parent, l);
                    if !roots.contains(&root) {
                        roots.push(root);
                    }
                }
            }
        }
        let own = match roots.len() {
            0 => {
                parent.push(parent.len() as u32);
                peak.push(v);
                (parent.len() - 1) as u32
            }
            1 => roots[0],
            _ => {
                roots.sort_by(|&a, &b| peak[b as usize].total_cmp(&peak[a as usize]));
                let main = roots[0];
                let sigma = bkg.rms[[r, c]].max(f32::MIN_POSITIVE) / 3.0;
                for &other in &roots[1..] {
                    if peak[other as usize] - v < cfg.prominence * sigma {
                        parent[other as usize] = main;
                    }
                }
                main
            }
        };
        label[[r, c]] = own;
    }

    // Final basins: root, pixels, centroid.
    struct Acc {
        area: usize,
        flux: f64,
        sx: f64,
        sy: f64,
        wsum: f64,
        peak: f64,
        first: (usize, usize),
    }
    let mut acc: std::collections::HashMap<u32, Acc> = std::collections::HashMap::new();
    for &(r, c) in &pixels {
        let root = find(&mut parent, label[[r, c]]);
        label[[r, c]] = root;
        let v = sub(r, c) as f64;
        let a = acc.entry(root).or_insert(Acc {
            area: 0,
            flux: 0.0,
            sx: 0.0,
            sy: 0.0,
            wsum: 0.0,
            peak: f64::MIN,
            first: (r, c),
        });
        a.area += 1;
        a.flux += v;
        let wgt = v.max(0.0);
        a.sx += wgt * c as f64;
        a.sy += wgt * r as f64;
        a.wsum += wgt;
        a.peak = a.peak.max(v);
    }
    let mut sources: Vec<(u32, Source)> = acc
        .into_iter()
        .filter(|(_, a)| a.area >= cfg.min_area)
        .map(|(root, a)| {
            // Weights are the positive pixel values; a footprint with none keeps its first
            // (brightest) pixel as its position.
            let (x, y) = if a.wsum > 0.0 {
                (a.sx / a.wsum, a.sy / a.wsum)
            } else {
                (a.first.1 as f64, a.first.0 as f64)
            };
            (
                root,
                Source {
                    number: 0,
                    x: x + 1.0,
                    y: y + 1.0,
                    area: a.area,
                    flux: a.flux,
                    peak: a.peak,
                },
            )
        })
        .collect();
    sources.sort_by(|a, b| a.1.y.total_cmp(&b.1.y).then(a.1.x.total_cmp(&b.1.x)));
    let mut number_of: std::collections::HashMap<u32, i32> = std::collections::HashMap::new();
    for (k, (root, s)) in sources.iter_mut().enumerate() {
        s.number = k as i32 + 1;
        number_of.insert(*root, s.number);
    }
    let map = label.mapv(|l| {
        if l == u32::MAX {
            0
        } else {
            number_of.get(&l).copied().unwrap_or(0)
        }
    });
    (map, sources.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauss(h: usize, w: usize, stars: &[(f32, f32, f32)]) -> Array2<f32> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            stars
                .iter()
                .map(|&(x, y, a)| {
                    let d2 = (c as f32 - x).powi(2) + (r as f32 - y).powi(2);
                    a * (-d2 / (2.0 * 2.0f32.powi(2))).exp()
                })
                .sum()
        })
    }

    #[test]
    fn touching_stars_are_split_and_a_shoulder_is_not() {
        let (h, w) = (40, 60);
        // Two bright stars 9 px apart (their footprints touch) and one far away.
        let img = gauss(
            h,
            w,
            &[
                (20.0, 20.0, 500.0),
                (29.0, 20.0, 300.0),
                (50.0, 10.0, 200.0),
            ],
        );
        let bkg = Background::constant((h, w), 0.0, 1.0);
        let detected = img.mapv(|v| v > 3.0);
        let (map, src) =
            segment_sources(img.view(), &bkg, detected.view(), &DeblendConfig::default());
        assert_eq!(src.len(), 3, "{src:?}");
        // Reading order: the far star (row 10) first.
        assert!(
            (src[0].x - 51.0).abs() < 0.2 && (src[0].y - 11.0).abs() < 0.2,
            "{:?}",
            src[0]
        );
        let a = map[[20, 20]];
        let b = map[[20, 29]];
        assert!(a > 0 && b > 0 && a != b);
        assert_eq!(map[[0, 0]], 0);
        // Every footprint pixel has a number; the numbers are the sources'.
        assert_eq!(
            map.iter().filter(|&&v| v > 0).count(),
            detected.iter().filter(|&&d| d).count()
        );
        let total: usize = src.iter().map(|s| s.area).sum();
        assert_eq!(total, detected.iter().filter(|&&d| d).count());
        // With a huge prominence the pair merges into one source.
        let cfg = DeblendConfig {
            prominence: 1e6,
            ..Default::default()
        };
        let (_, merged) = segment_sources(img.view(), &bkg, detected.view(), &cfg);
        assert_eq!(merged.len(), 2);
    }
}
