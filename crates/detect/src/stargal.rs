//! Star/galaxy separation against the image's PSF: a point source is a point source at any
//! seeing.
//!
//! The detector's class head learnt what a star looks like from its training PSF, so at a
//! different seeing it calls every star a galaxy (issue 21). This module decides instead by
//! comparing each object with the PSF the image actually has (its FWHM from
//! [`crate::psf::resolve_fwhm`], its shape from [`crate::psf::measure_fwhm`] when measured),
//! in the manner of DES's SPREAD_MODEL (Desai et al. 2012; Mohr et al. 2012).
//!
//! # The statistic
//!
//! Around each object, on the background-subtracted pixels `p` with weights `W = 1/rms²`, two
//! unit-flux models are laid at its position: the PSF `φ` (pixel-integrated Moffat or Gaussian)
//! and a "galaxy" `G`, the same profile widened as if convolved with a Gaussian of FWHM
//! `broadening × FWHM`. The spread is
//!
//! ```text
//! spread = (G·W·p)/(φ·W·p) − (G·W·φ)/(φ·W·φ)
//! ```
//!
//! zero in expectation for a point source (`p = Aφ`) whatever its flux, positive for anything
//! broader than the PSF, negative for anything sharper (cosmic rays). It is a ratio of two linear
//! functions of the pixels, so its noise is known: with `a = G·W·p`, `b = φ·W·p`,
//!
//! ```text
//! σ²(spread) = (G·W·G)/b² + a²(φ·W·φ)/b⁴ − 2a(G·W·φ)/b³
//! ```
//!
//! and `b/sqrt(φ·W·φ)` is the PSF-fit S/N (the matched-filter S/N of the simulator's truth
//! catalogue). Before the sums the position is refined by a PSF fit (amplitude and centre, a
//! few Gauss–Newton steps), because a centre off by δ makes a star look broader; pixels
//! closer to another listed object than to this one are left out.
//!
//! Why this and not a concentration ratio: SPREAD_MODEL weights each pixel by how much it says
//! about the width (an aperture ratio throws that away), its error is exact for the linear
//! estimator, and it is scale-free: for a galaxy whose size is a given fraction of the FWHM it
//! takes the same value at 2 or 6 pixels FWHM, so one threshold serves every seeing.
//!
//! # The decision
//!
//! A PSF model of the right FWHM but not quite the right shape (a Moffat β of 3 for a
//! Kolmogorov PSF) offsets every star's spread by the same small amount. With
//! [`StarGalaxyConfig::calibrate`], that offset is measured as the centre of the stellar locus
//! (the densest clump of spreads at the smallest value among bright objects, as
//! [`crate::psf`] finds the stellar locus of widths) and subtracted. Then, with `σ_tot² =
//! σ²(spread) + spread_floor²`, `z = spread / σ_tot`:
//!
//! - PSF-fit S/N below [`StarGalaxyConfig::min_snr`], or nothing to fit (no positive PSF
//!   flux, fewer usable pixels than a disc of one FWHM radius): `stellar = None`,
//!   `class_star = 0.5`: cannot tell, the caller keeps what it had;
//! - otherwise `stellar = Some(z < k_sigma)` (consistent with a point source at `k_sigma`), and
//!   `class_star = Φ(k_sigma − z)`: 0.5 on the threshold, towards 1 for clean point sources,
//!   towards 0 for resolved ones (the convention of SExtractor's CLASS_STAR, 1 = star).
//!
//! [`relabel`] applies the decision to a class index, moving only between `star` and `galaxy`.
//!
//! ```
//! use ndarray::Array2;
//! use deepsky_detect::background::Background;
//! use deepsky_detect::stargal::{point_source_scores, PsfProfile, StarGalaxyConfig};
//!
//! // A Gaussian star of FWHM 4 px and a Gaussian "galaxy" twice as wide, on a noise-free sky.
//! let psf = PsfProfile::gaussian(4.0);
//! let blob = |x0: f64, y0: f64, fwhm: f64, r: usize, c: usize| {
//!     let s = fwhm / 2.3548;
//!     let (dx, dy) = (c as f64 + 0.5 - x0, r as f64 + 0.5 - y0);
//!     5000.0 * (-(dx * dx + dy * dy) / (2.0 * s * s)).exp() / (2.0 * std::f64::consts::PI * s * s)
//! };
//! let image = Array2::from_shape_fn((64, 96), |(r, c)| {
//!     (blob(30.2, 31.7, 4.0, r, c) + blob(70.6, 30.1, 8.0, r, c)) as f32
//! });
//! let bkg = Background::constant((64, 96), 0.0, 1.0);
//! let cfg = StarGalaxyConfig { calibrate: false, ..Default::default() };
//! let found = point_source_scores(image.view(), &bkg, &[(30.2, 31.7), (70.6, 30.1)], &psf, &cfg);
//! let s = &found.scores;
//! // (Sampled at pixel centres, the star is a little sharper than the pixel-integrated model.)
//! assert!(s[0].spread.abs() < 2e-3 && s[0].stellar == Some(true));
//! assert!(s[1].spread > 0.05 && s[1].stellar == Some(false));
//! ```

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::math::normal_cdf;
use ndarray::ArrayView2;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::background::Background;
use crate::classes::{source_class, SourceClass};
use crate::measure::{MeasuredObject, PointSourceTest};
use crate::psf::{PsfMeasurement, GAUSS_FWHM};
use deepsky_core::math::median;

/// A measured Moffat index at or above this is a Gaussian for our purpose.
const GAUSSIAN_BETA: f64 = 50.0;
/// Bright objects used to find the stellar locus have a PSF-fit S/N of at least this.
const LOCUS_SNR: f64 = 30.0;
/// Fewest bright objects in the stellar locus for a zero point to be measured.
const LOCUS_MIN: usize = 5;
/// Most Gauss–Newton steps of the position refinement.
const FIT_STEPS: usize = 6;
/// The refined centre may move at most this far from the given one, pixels (else the given one
/// is kept: the fit has been pulled away by a neighbour or noise).
const MAX_SHIFT: f64 = 1.5;

/// `[star_galaxy]`: the point-source test against the PSF.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StarGalaxyConfig {
    /// Decide star or galaxy by the point-source test instead of the network's class head.
    pub enabled: bool,
    /// Objects whose PSF-fit S/N is below this are not decided (`stellar = None`): too faint
    /// to tell a compact galaxy from a star.
    pub min_snr: f64,
    /// An object is a point source when its spread is below `k_sigma` times its total error.
    pub k_sigma: f64,
    /// Systematic error of the spread added in quadrature to the statistical one: what a PSF
    /// model that is not exactly the image's PSF (shape, variation over the field) leaves, and
    /// what decides for bright objects.
    pub spread_floor: f64,
    /// Measure the spread of the stellar locus among bright objects and subtract it, so a PSF
    /// model of slightly the wrong shape does not bias the test.
    pub calibrate: bool,
    /// The galaxy model is the PSF widened as if convolved with a Gaussian of this FWHM, in
    /// units of the PSF's FWHM.
    pub broadening: f64,
}

impl Default for StarGalaxyConfig {
    fn default() -> Self {
        StarGalaxyConfig {
            enabled: true,
            min_snr: 10.0,
            k_sigma: 3.0,
            spread_floor: 0.003,
            calibrate: true,
            broadening: 0.5,
        }
    }
}

impl Validate for StarGalaxyConfig {
    /// Range checks, keys relative to the `[star_galaxy]` section.
    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.min_snr >= 0.0, "min_snr", "must be >= 0")?;
        ensure(self.k_sigma > 0.0, "k_sigma", "must be positive")?;
        ensure(self.spread_floor >= 0.0, "spread_floor", "must be >= 0")?;
        ensure(
            self.broadening > 0.0 && self.broadening <= 2.0,
            "broadening",
            "must be in (0, 2]",
        )
    }
}

/// The PSF the objects are compared with: a circular Moffat or Gaussian of known FWHM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PsfProfile {
    /// FWHM before pixelisation, pixels.
    pub fwhm_pixels: f64,
    /// Moffat index β; `None` for a Gaussian.
    pub moffat_beta: Option<f64>,
}

impl PsfProfile {
    /// A Gaussian PSF of `fwhm_pixels`.
    pub fn gaussian(fwhm_pixels: f64) -> Self {
        PsfProfile {
            fwhm_pixels,
            moffat_beta: None,
        }
    }

    /// A Moffat PSF of `fwhm_pixels` and index `beta` (> 1).
    pub fn moffat(fwhm_pixels: f64, beta: f64) -> Self {
        PsfProfile {
            fwhm_pixels,
            moffat_beta: Some(beta),
        }
    }

    /// The PSF [`crate::psf::measure_fwhm`] measured from the image's stars (its median β; a
    /// Gaussian when the fits ran to the Gaussian end of β's range).
    pub fn from_measurement(m: &PsfMeasurement) -> Self {
        if m.moffat_beta >= GAUSSIAN_BETA || !m.moffat_beta.is_finite() {
            Self::gaussian(m.fwhm_pixels)
        } else {
            Self::moffat(m.fwhm_pixels, m.moffat_beta)
        }
    }

    /// When only the FWHM is known (from the configuration or the header): a Moffat of β 3,
    /// the middle of seeing-limited PSFs; the stellar-locus calibration absorbs the rest.
    pub fn from_fwhm(fwhm_pixels: f64) -> Self {
        Self::moffat(fwhm_pixels, 3.0)
    }

    /// Unit-flux profile value at radius² `r2` for this shape at FWHM `w`.
    fn density(&self, w: f64, r2: f64) -> f64 {
        match self.moffat_beta {
            Some(beta) => {
                let alpha2 = w * w / (4.0 * (2f64.powf(1.0 / beta) - 1.0));
                (beta - 1.0) / (std::f64::consts::PI * alpha2) * (1.0 + r2 / alpha2).powf(-beta)
            }
            None => {
                let s2 = (w / GAUSS_FWHM).powi(2);
                (-r2 / (2.0 * s2)).exp() / (2.0 * std::f64::consts::PI * s2)
            }
        }
    }
}

/// The point-source test of one object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PointSourceScore {
    /// SPREAD_MODEL-like width statistic, the stellar locus subtracted: ~0 for point sources,
    /// positive for resolved objects, negative for sharper ones. NaN when nothing could be
    /// fitted (no positive PSF flux, off the image).
    pub spread: f64,
    /// Statistical 1σ error of `spread` (without the floor).
    pub spread_err: f64,
    /// PSF-fit signal-to-noise ratio.
    pub snr: f64,
    /// Φ(k_sigma − spread/σ_tot): > 0.5 consistent with a point source, < 0.5 resolved; 0.5
    /// when undecided.
    pub class_star: f64,
    /// `Some(true)` point source, `Some(false)` resolved (or sharper than the PSF), `None`
    /// too faint to tell.
    pub stellar: Option<bool>,
    /// The PSF-fit centre, continuous 0-based pixels (the given one if the fit did not hold).
    pub position: (f64, f64),
}

/// The scores of a set of objects and the calibration they share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointSourceScores {
    /// One per given position, in order.
    pub scores: Vec<PointSourceScore>,
    /// Spread of the stellar locus, subtracted from every raw spread (0 when not calibrated).
    pub zero_point: f64,
    /// Bright objects in the stellar locus the zero point comes from (0: not calibrated).
    pub locus_objects: usize,
}

/// The point-source test (see the module documentation) of the objects at `positions`
/// (continuous 0-based `(x, y)` pixels) in `image`, with background and noise `bkg`, against
/// `psf`. Pass sources only (not cosmic rays or bad columns), so the stellar locus is found
/// among stars and galaxies.
pub fn point_source_scores(
    image: ArrayView2<f32>,
    bkg: &Background,
    positions: &[(f64, f64)],
    psf: &PsfProfile,
    cfg: &StarGalaxyConfig,
) -> PointSourceScores {
    let neighbours = Neighbours::new(positions, stamp_radius(psf.fwhm_pixels) as f64 * 2.0 + 2.0);
    let raw: Vec<Raw> = (0..positions.len())
        .into_par_iter()
        .map(|i| spread_of(image, bkg, positions, i, &neighbours, psf, cfg))
        .collect();
    let (zero_point, locus_objects) = if cfg.calibrate {
        locus_zero_point(&raw, cfg)
    } else {
        (0.0, 0)
    };
    let scores = raw
        .iter()
        .map(|r| decide(r, zero_point, cfg))
        .collect::<Vec<_>>();
    PointSourceScores {
        scores,
        zero_point,
        locus_objects,
    }
}

/// The class an object should have after the point-source test: `star` ↔ `galaxy` when
/// `score.stellar` decides and the detector has both classes; any other class (saturated
/// stars, cosmic rays, bad columns, unknown names) and undecided objects keep `current`.
pub fn relabel(class_names: &[String], current: usize, score: &PointSourceScore) -> usize {
    let Some(class) = class_names.get(current).and_then(|n| source_class(n)) else {
        return current;
    };
    if !matches!(class, SourceClass::Star | SourceClass::Galaxy) {
        return current;
    }
    let want = match score.stellar {
        Some(true) => SourceClass::Star,
        Some(false) => SourceClass::Galaxy,
        None => return current,
    };
    class_names
        .iter()
        .position(|n| n == want.name())
        .unwrap_or(current)
}

/// The point-source test on measured `objects` that the detector called star or galaxy (the
/// others are left alone and keep no test), relabelling those it decides ([`relabel`]) and
/// recording each test in [`MeasuredObject::point_source`]. Returns the shared calibration.
/// Does nothing when `cfg.enabled` is false.
pub fn apply(
    objects: &mut [MeasuredObject],
    image: ArrayView2<f32>,
    bkg: &Background,
    psf: &PsfProfile,
    class_names: &[String],
    cfg: &StarGalaxyConfig,
) -> Option<PointSourceScores> {
    if !cfg.enabled {
        return None;
    }
    let is_source = |o: &MeasuredObject| {
        class_names
            .get(o.class)
            .and_then(|n| source_class(n))
            .is_some_and(|c| matches!(c, SourceClass::Star | SourceClass::Galaxy))
    };
    let tested: Vec<usize> = (0..objects.len())
        .filter(|&i| is_source(&objects[i]))
        .collect();
    let positions: Vec<(f64, f64)> = tested
        .iter()
        .map(|&i| (objects[i].x, objects[i].y))
        .collect();
    let scores = point_source_scores(image, bkg, &positions, psf, cfg);
    for (&i, sc) in tested.iter().zip(&scores.scores) {
        let o = &mut objects[i];
        o.class = relabel(class_names, o.class, sc);
        o.point_source = Some(PointSourceTest {
            class_star: sc.class_star,
            spread: sc.spread,
            spread_err: sc.spread_err,
        });
    }
    Some(scores)
}

/// Half-side of the stamp the sums run over: two FWHMs, at least 3 pixels.
fn stamp_radius(fwhm: f64) -> usize {
    ((2.0 * fwhm).ceil() as usize + 1).clamp(3, 40)
}

/// Sub-pixel sampling of the models: finer for sharp PSFs.
fn subsampling(fwhm: f64) -> usize {
    if fwhm < 3.0 {
        5
    } else if fwhm < 6.0 {
        3
    } else {
        2
    }
}

/// The spread before calibration.
#[derive(Debug, Clone, Copy)]
struct Raw {
    spread: f64,
    err: f64,
    snr: f64,
    position: (f64, f64),
}

/// Positions sorted by y, for finding an object's neighbours.
struct Neighbours {
    /// `(y, x, index)` sorted by y.
    sorted: Vec<(f64, f64, usize)>,
    reach: f64,
}

impl Neighbours {
    fn new(positions: &[(f64, f64)], reach: f64) -> Self {
        let mut sorted: Vec<(f64, f64, usize)> = positions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.0.is_finite() && p.1.is_finite())
            .map(|(i, &(x, y))| (y, x, i))
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        Neighbours { sorted, reach }
    }

    /// The other positions within `reach` of `(x, y)` in y.
    fn near(&self, x: f64, y: f64, me: usize) -> Vec<(f64, f64)> {
        let lo = self.sorted.partition_point(|p| p.0 < y - self.reach);
        self.sorted[lo..]
            .iter()
            .take_while(|p| p.0 <= y + self.reach)
            .filter(|p| p.2 != me && (p.1 - x).abs() <= self.reach)
            .map(|p| (p.1, p.0))
            .collect()
    }
}

/// The stamp of one object: background-subtracted values and weights of its pixels, offsets of
/// their centres from the stamp's reference pixel.
struct Stamp {
    /// `(dx, dy, value, weight)`, offsets of the pixel centre from `origin`.
    pixels: Vec<(f64, f64, f64, f64)>,
    /// Continuous coordinates of the reference point the offsets are from.
    origin: (f64, f64),
}

/// Cuts the stamp around `(x, y)`: finite pixels with a positive rms, nearer to this object
/// than to any neighbour.
fn cut_stamp(
    image: ArrayView2<f32>,
    bkg: &Background,
    (x, y): (f64, f64),
    neighbours: &[(f64, f64)],
    radius: usize,
) -> Stamp {
    let (h, w) = image.dim();
    let (c0, r0) = (x.floor() as i64, y.floor() as i64);
    let r = radius as i64;
    let mut pixels = Vec::with_capacity((2 * radius + 1).pow(2));
    for row in (r0 - r).max(0)..=(r0 + r).min(h as i64 - 1) {
        for col in (c0 - r).max(0)..=(c0 + r).min(w as i64 - 1) {
            let (ru, cu) = (row as usize, col as usize);
            let v = image[[ru, cu]];
            let rms = bkg.rms[[ru, cu]];
            if !v.is_finite() || !rms.is_finite() || rms <= 0.0 {
                continue;
            }
            let (px, py) = (col as f64 + 0.5, row as f64 + 0.5);
            let d2 = (px - x).powi(2) + (py - y).powi(2);
            if neighbours
                .iter()
                .any(|&(nx, ny)| (px - nx).powi(2) + (py - ny).powi(2) < d2)
            {
                continue;
            }
            let value = (v - bkg.level[[ru, cu]]) as f64;
            let weight = 1.0 / (rms as f64 * rms as f64);
            pixels.push((px - x, py - y, value, weight));
        }
    }
    Stamp {
        pixels,
        origin: (x, y),
    }
}

/// Pixel-averaged unit-flux profile of FWHM `fwhm` centred at `(cx, cy)` (offsets from the
/// stamp's origin), at the pixel whose centre is at offset `(dx, dy)`.
fn model_pixel(psf: &PsfProfile, fwhm: f64, n: usize, cx: f64, cy: f64, dx: f64, dy: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        let y = dy + (i as f64 + 0.5) / n as f64 - 0.5 - cy;
        for j in 0..n {
            let x = dx + (j as f64 + 0.5) / n as f64 - 0.5 - cx;
            s += psf.density(fwhm, x * x + y * y);
        }
    }
    s / (n * n) as f64
}

/// Refines the centre by a weighted least-squares PSF fit of amplitude and position (a few
/// Gauss–Newton steps, derivatives by finite differences); the offset from the stamp's origin,
/// or (0, 0) when the fit fails or moves more than [`MAX_SHIFT`].
fn refine_centre(stamp: &Stamp, psf: &PsfProfile, n: usize) -> (f64, f64) {
    let fwhm = psf.fwhm_pixels;
    let step = 1e-3 * fwhm.max(0.5);
    let (mut cx, mut cy) = (0.0, 0.0);
    for _ in 0..FIT_STEPS {
        let mut jtj = [[0.0f64; 3]; 3];
        let mut jtr = [0.0f64; 3];
        // Amplitude at this centre first, so the residuals are those of the best flux.
        let (mut pp, mut pv) = (0.0, 0.0);
        let models: Vec<(f64, f64, f64)> = stamp
            .pixels
            .iter()
            .map(|&(dx, dy, _, _)| {
                let m = model_pixel(psf, fwhm, n, cx, cy, dx, dy);
                let mx = (model_pixel(psf, fwhm, n, cx + step, cy, dx, dy) - m) / step;
                let my = (model_pixel(psf, fwhm, n, cx, cy + step, dx, dy) - m) / step;
                (m, mx, my)
            })
            .collect();
        for (&(_, _, v, w), &(m, _, _)) in stamp.pixels.iter().zip(&models) {
            pp += w * m * m;
            pv += w * m * v;
        }
        let amp = pv / pp;
        if amp.is_nan() || amp <= 0.0 {
            return (0.0, 0.0);
        }
        for (&(_, _, v, w), &(m, mx, my)) in stamp.pixels.iter().zip(&models) {
            let jac = [m, amp * mx, amp * my];
            let r = v - amp * m;
            for a in 0..3 {
                jtr[a] += w * jac[a] * r;
                for b in 0..3 {
                    jtj[a][b] += w * jac[a] * jac[b];
                }
            }
        }
        let Some(d) = solve3(jtj, jtr) else {
            return (0.0, 0.0);
        };
        let (sx, sy) = (d[1].clamp(-0.5, 0.5), d[2].clamp(-0.5, 0.5));
        cx += sx;
        cy += sy;
        if cx.hypot(cy) > MAX_SHIFT {
            return (0.0, 0.0);
        }
        if sx.hypot(sy) < 1e-3 {
            break;
        }
    }
    (cx, cy)
}

/// Solves a 3×3 linear system by Cramer's rule; None if singular.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.is_nan() || d.abs() <= 1e-300 {
        return None;
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut m = a;
        for (row, &bv) in m.iter_mut().zip(&b) {
            row[k] = bv;
        }
        *xk = det(m) / d;
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The raw spread of object `i`.
fn spread_of(
    image: ArrayView2<f32>,
    bkg: &Background,
    positions: &[(f64, f64)],
    i: usize,
    neighbours: &Neighbours,
    psf: &PsfProfile,
    cfg: &StarGalaxyConfig,
) -> Raw {
    let (x, y) = positions[i];
    let failed = Raw {
        spread: f64::NAN,
        err: f64::NAN,
        snr: f64::NAN,
        position: (x, y),
    };
    if !(x.is_finite() && y.is_finite()) {
        return failed;
    }
    let fwhm = psf.fwhm_pixels;
    let radius = stamp_radius(fwhm);
    let near = neighbours.near(x, y, i);
    let n = subsampling(fwhm);
    let stamp = cut_stamp(image, bkg, (x, y), &near, radius);
    // With fewer usable pixels than a disc of one FWHM radius (the rest given to neighbours or
    // off the image), what is left cannot tell a width (and its error means nothing).
    if (stamp.pixels.len() as f64) < std::f64::consts::PI * fwhm * fwhm {
        return failed;
    }
    let (cx, cy) = refine_centre(&stamp, psf, n);
    let wide = fwhm * (1.0 + cfg.broadening * cfg.broadening).sqrt();
    let (mut a, mut b, mut pp, mut gg, mut gp) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(dx, dy, v, w) in &stamp.pixels {
        let phi = model_pixel(psf, fwhm, n, cx, cy, dx, dy);
        let g = model_pixel(psf, wide, n, cx, cy, dx, dy);
        a += w * g * v;
        b += w * phi * v;
        pp += w * phi * phi;
        gg += w * g * g;
        gp += w * g * phi;
    }
    let position = (stamp.origin.0 + cx, stamp.origin.1 + cy);
    if !(b > 0.0 && pp > 0.0) {
        return Raw { position, ..failed };
    }
    let spread = a / b - gp / pp;
    let var = gg / (b * b) + a * a * pp / b.powi(4) - 2.0 * a * gp / b.powi(3);
    Raw {
        spread,
        err: var.max(0.0).sqrt(),
        snr: b / pp.sqrt(),
        position,
    }
}

/// The spread of the stellar locus among objects of PSF-fit S/N ≥ [`LOCUS_SNR`] (and
/// `min_snr`): the centre of the densest clump of spreads (within ± twice the floor or twice
/// the typical error, whichever is larger), the smallest such centre if a clump at smaller
/// spread is at least 70% as dense (stars are the narrowest sources). `(0, 0)` with fewer than
/// [`LOCUS_MIN`] objects in it.
fn locus_zero_point(raw: &[Raw], cfg: &StarGalaxyConfig) -> (f64, usize) {
    let bright: Vec<&Raw> = raw
        .iter()
        .filter(|r| r.snr >= LOCUS_SNR.max(cfg.min_snr) && r.spread.is_finite())
        .collect();
    if bright.len() < LOCUS_MIN {
        return (0.0, 0);
    }
    let mut errs: Vec<f64> = bright.iter().map(|r| r.err).collect();
    let half = 2.0 * cfg.spread_floor.max(median(&mut errs));
    let spreads: Vec<f64> = bright.iter().map(|r| r.spread).collect();
    let members = |c: f64| -> Vec<f64> {
        spreads
            .iter()
            .copied()
            .filter(|s| (s - c).abs() <= half)
            .collect()
    };
    let counts: Vec<usize> = spreads.iter().map(|&s| members(s).len()).collect();
    let best = counts.iter().copied().max().unwrap_or(0);
    let threshold = (0.7 * best as f64).ceil() as usize;
    let Some(centre) = spreads
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c >= threshold)
        .map(|(&s, _)| s)
        .min_by(f64::total_cmp)
    else {
        return (0.0, 0);
    };
    // Re-centre on the members' median until it settles: the smallest qualifying centre sits
    // at the clump's low edge.
    let mut centre = centre;
    for _ in 0..10 {
        let mut m = members(centre);
        let next = median(&mut m);
        if !next.is_finite() || next == centre {
            break;
        }
        centre = next;
    }
    let k = members(centre).len();
    if k < LOCUS_MIN {
        return (0.0, 0);
    }
    (centre, k)
}

/// The decision for one object given the locus's zero point.
fn decide(r: &Raw, zero_point: f64, cfg: &StarGalaxyConfig) -> PointSourceScore {
    let spread = r.spread - zero_point;
    let undecided = PointSourceScore {
        spread,
        spread_err: r.err,
        snr: r.snr,
        class_star: 0.5,
        stellar: None,
        position: r.position,
    };
    if !(spread.is_finite() && r.err.is_finite() && r.snr >= cfg.min_snr) {
        return undecided;
    }
    let sigma = r.err.hypot(cfg.spread_floor);
    let z = if sigma > 0.0 { spread / sigma } else { 0.0 };
    PointSourceScore {
        class_star: normal_cdf(cfg.k_sigma - z),
        stellar: Some(z < cfg.k_sigma),
        ..undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn relabel_moves_only_between_star_and_galaxy() {
        let names: Vec<String> = ["star", "galaxy", "cosmic_ray", "saturated_star"]
            .map(String::from)
            .to_vec();
        let score = |stellar| PointSourceScore {
            spread: 0.0,
            spread_err: 0.0,
            snr: 50.0,
            class_star: 0.5,
            stellar,
            position: (0.0, 0.0),
        };
        assert_eq!(relabel(&names, 1, &score(Some(true))), 0);
        assert_eq!(relabel(&names, 0, &score(Some(false))), 1);
        assert_eq!(relabel(&names, 0, &score(None)), 0);
        assert_eq!(relabel(&names, 2, &score(Some(true))), 2);
        assert_eq!(relabel(&names, 3, &score(Some(false))), 3);
        // A detector without a galaxy class keeps its star.
        let stars_only = vec!["star".to_string()];
        assert_eq!(relabel(&stars_only, 0, &score(Some(false))), 0);
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(StarGalaxyConfig::default().validate().is_ok());
        let cfg = StarGalaxyConfig {
            k_sigma: 0.0,
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().key, "k_sigma");
    }

    #[test]
    fn noiseless_point_source_has_zero_spread_off_centre() {
        // A pixel-integrated Moffat at a sub-pixel position, started 0.4 px off: the fit finds
        // the centre and the spread vanishes.
        let psf = PsfProfile::moffat(2.0, 3.0);
        let (x0, y0) = (20.3, 19.8);
        let img = Array2::from_shape_fn((40, 40), |(r, c)| {
            let (dx, dy) = (c as f64 + 0.5 - x0, r as f64 + 0.5 - y0);
            (1e4 * model_pixel(&psf, 2.0, 9, 0.0, 0.0, dx, dy)) as f32
        });
        let bkg = Background::constant((40, 40), 0.0, 1.0);
        let cfg = StarGalaxyConfig {
            calibrate: false,
            ..Default::default()
        };
        let s = point_source_scores(img.view(), &bkg, &[(x0 + 0.4, y0 - 0.3)], &psf, &cfg);
        let s = s.scores[0];
        assert!(s.spread.abs() < 1e-3, "{s:?}");
        assert!((s.position.0 - x0).abs() < 0.02 && (s.position.1 - y0).abs() < 0.02);
        assert_eq!(s.stellar, Some(true));
    }
}
