//! Measuring the objects of a component: isophotal flux and its error, peak, area, bounding
//! box, and the windowed centroid started from the filtered barycentre.

use ndarray::ArrayView2;

use super::deblend::Deblender;
use super::label::{RowRuns, Run};
use super::{ClassicalConfig, Detection};
use crate::background::Background;
use crate::measure::{windowed_centroid, CentroidConfig, PixelFrame, Window};

/// One pixel of a component with what deblending and measurement need.
#[derive(Clone, Copy)]
pub(super) struct Pix {
    pub(super) r: u32,
    pub(super) c: u32,
    pub(super) snr: f32,
    /// Filtered (renormalised) value, ADU.
    pub(super) filt: f32,
}

/// Everything a component's processing reads.
pub(super) struct Measure<'a> {
    pub(super) image: ArrayView2<'a, f32>,
    pub(super) mask: Option<ArrayView2<'a, bool>>,
    pub(super) bkg: &'a Background,
    pub(super) cfg: &'a ClassicalConfig,
}

impl Measure<'_> {
    /// Deblends (if configured) and measures one connected component.
    pub(super) fn component(&self, runs: &[Run], rows: &[RowRuns]) -> Vec<Detection> {
        let pixels: Vec<Pix> = runs
            .iter()
            .flat_map(|run| {
                let row = &rows[run.row as usize];
                (run.c0..run.c1).map(move |c| {
                    let i = (run.first + c - run.c0) as usize;
                    Pix {
                        r: run.row,
                        c,
                        snr: row.snr[i],
                        filt: row.value[i],
                    }
                })
            })
            .collect();
        let groups = if self.cfg.deblend && pixels.len() >= 2 * self.cfg.min_area {
            Deblender::new(&pixels, self.cfg).run()
        } else {
            vec![(0..pixels.len() as u32).collect()]
        };
        let owners = (groups.len() > 1).then(|| Owners::new(&pixels, &groups));
        groups
            .iter()
            .enumerate()
            .filter_map(|(k, g)| self.measure(&pixels, g, owners.as_ref().map(|o| (o, k as u32))))
            .collect()
    }

    /// The windowed centroid `(row, col)` of an object, in array indices, with a window of the
    /// filter's σ; pixels owned by a deblended sibling are left out so that a neighbour does not
    /// pull it. `None` when it does not converge within a FWHM of `start`.
    fn windowed_centroid(
        &self,
        start: (f64, f64),
        exclude: Option<(&Owners, u32)>,
    ) -> Option<(f64, f64)> {
        let cfg = CentroidConfig {
            sigma: self.cfg.fwhm / (8.0f64 * 2.0f64.ln()).sqrt(),
            window: Window::Separable,
            frame: PixelFrame::Index,
            max_iter: 20,
            tolerance: 1e-4,
            // Wandering off by more than a FWHM means the window lost the object (noise or a
            // neighbour dominates): keep the isophotal estimate.
            max_shift: self.cfg.fwhm.max(1.0),
        };
        let skip = |r: usize, c: usize| {
            self.mask.as_ref().is_some_and(|m| m[[r, c]])
                || exclude.is_some_and(|(o, me)| o.owned_by_other(r, c, me))
        };
        windowed_centroid(self.image, self.bkg, (start.1, start.0), &cfg, skip).map(|(x, y)| (y, x))
    }

    /// Measurements of the pixels `group` of `pixels` (`owners`: the deblended siblings' pixels
    /// and this group's index); `None` if none of them is valid.
    fn measure(
        &self,
        pixels: &[Pix],
        group: &[u32],
        owners: Option<(&Owners, u32)>,
    ) -> Option<Detection> {
        let (mut flux, mut var, mut peak, mut n_masked) =
            (0.0f64, 0.0f64, f64::NEG_INFINITY, 0usize);
        let (mut sw, mut swx, mut swy) = (0.0f64, 0.0f64, 0.0f64);
        let (mut rmin, mut rmax, mut cmin, mut cmax) = (u32::MAX, 0u32, u32::MAX, 0u32);
        let mut peak_snr = f32::NEG_INFINITY;
        for &i in group {
            let p = pixels[i as usize];
            let (r, c) = (p.r as usize, p.c as usize);
            rmin = rmin.min(p.r);
            rmax = rmax.max(p.r);
            cmin = cmin.min(p.c);
            cmax = cmax.max(p.c);
            peak_snr = peak_snr.max(p.snr);
            // Barycentre of the filtered image over the isophote: the starting point (and the
            // fallback) of the windowed centroid. The filtered image is smooth and positive
            // there, so single noisy pixels at the isophote's edge do not pull it.
            let w = p.filt.max(0.0) as f64;
            sw += w;
            swx += w * c as f64;
            swy += w * r as f64;
            let v = self.image[[r, c]];
            if !v.is_finite() || self.mask.as_ref().is_some_and(|m| m[[r, c]]) {
                n_masked += 1;
                continue;
            }
            let d = (v - self.bkg.level[[r, c]]) as f64;
            flux += d;
            peak = peak.max(d);
            let s = self.bkg.rms[[r, c]] as f64;
            var += s * s;
        }
        if n_masked == group.len() || sw <= 0.0 {
            return None;
        }
        let flux_err = var.sqrt();
        let bary = (swy / sw, swx / sw);
        let (cy, cx) = self.windowed_centroid(bary, owners).unwrap_or(bary);
        // Array indices count pixel centres from 0, FITS from 1: one whole pixel apart.
        Some(Detection {
            x: cx + 1.0,
            y: cy + 1.0,
            xmin: cmin as usize + 1,
            ymin: rmin as usize + 1,
            xmax: cmax as usize + 1,
            ymax: rmax as usize + 1,
            flux,
            flux_err,
            peak,
            npix: group.len(),
            snr: if flux_err > 0.0 { flux / flux_err } else { 0.0 },
            peak_snr: peak_snr as f64,
            n_masked,
        })
    }
}

/// Which deblended object owns each pixel of a component's bounding box.
struct Owners {
    r0: usize,
    c0: usize,
    width: usize,
    height: usize,
    owner: Vec<u32>,
}

impl Owners {
    fn new(pixels: &[Pix], groups: &[Vec<u32>]) -> Self {
        let r0 = pixels.iter().map(|p| p.r).min().unwrap_or(0) as usize;
        let c0 = pixels.iter().map(|p| p.c).min().unwrap_or(0) as usize;
        let height = pixels.iter().map(|p| p.r).max().unwrap_or(0) as usize + 1 - r0;
        let width = pixels.iter().map(|p| p.c).max().unwrap_or(0) as usize + 1 - c0;
        let mut owner = vec![u32::MAX; width * height];
        for (k, g) in groups.iter().enumerate() {
            for &i in g {
                let p = pixels[i as usize];
                owner[(p.r as usize - r0) * width + (p.c as usize - c0)] = k as u32;
            }
        }
        Self {
            r0,
            c0,
            width,
            height,
            owner,
        }
    }

    fn owned_by_other(&self, r: usize, c: usize, me: u32) -> bool {
        if r < self.r0 || c < self.c0 || r - self.r0 >= self.height || c - self.c0 >= self.width {
            return false;
        }
        let o = self.owner[(r - self.r0) * self.width + (c - self.c0)];
        o != u32::MAX && o != me
    }
}
