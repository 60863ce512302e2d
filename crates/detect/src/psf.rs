//! The PSF size of an image, so that detection can know the scale of its point sources.
//!
//! [`resolve_fwhm`] decides the FWHM in pixels, in this order:
//!
//! 1. the configuration (`predict.psf_fwhm_pixels`), when the user gave one;
//! 2. the header ([`fwhm_from_header`]): `PSF_FWHM`, `PSFFWHM`, `FWHM_PSF`, `FWHMPSF`, `FWHM` or
//!    `SEEING`, converted to pixels with the pixel scale of the WCS ([`pixel_scale_arcsec`]);
//! 3. the image itself ([`measure_fwhm`]): bright, isolated, unsaturated point sources fitted
//!    with a Moffat profile, the stellar locus separated from galaxies (broader) and cosmic rays
//!    (sharper), as SExtractor's and PSFEx's star selection do.
//!
//! FWHMs here are those of the PSF before pixelisation (the optics and atmosphere), the number
//! a simulator's `PSF_FWHM` or an observatory's seeing gives: the fit integrates its model over
//! each pixel, so a 2-pixel PSF is not reported 5% wider than it is.
//!
//! # Example
//! ```
//! use deepsky_detect::psf::{fwhm_from_header, PsfSource};
//! use deepsky_io::fits::{Card, Header};
//!
//! // Seeing of 0.9 arcsec on 0.3 arcsec pixels.
//! let header = Header::new(vec![
//!     Card::new("PIXSCALE", 0.3, "[arcsec/pixel]"),
//!     Card::new("SEEING", 0.9, "[arcsec] seeing FWHM"),
//! ]);
//! let (fwhm, key) = fwhm_from_header(&header, None).unwrap();
//! assert!((fwhm - 3.0).abs() < 1e-9 && key == "SEEING");
//! ```

use deepsky_core::ConfigError;
use deepsky_io::fits::{CardValue, Header};
use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::background::{estimate_background, snr_image, BackgroundConfig};
use crate::error::{DetectError, Result};

/// The configuration key that sets the PSF FWHM by hand, named in errors.
pub const FWHM_OPTION: &str = "predict.psf_fwhm_pixels";

/// Header keywords holding the PSF FWHM, in the order they are tried. `PSF_FWHM` is what
/// deepsky's simulator writes.
pub const FWHM_KEYWORDS: &[&str] = &[
    "PSF_FWHM", "PSFFWHM", "FWHM_PSF", "FWHMPSF", "FWHM", "SEEING",
];

/// Header keywords holding the saturation level (ADU), in the order they are tried.
pub const SATURATION_KEYWORDS: &[&str] = &["SATURATE", "SATLEVEL", "SATUR"];

/// Fewest point sources a measured FWHM is accepted from.
pub const MIN_STARS: usize = 5;

/// Smallest peak signal-to-noise ratio (above the local background, in units of the background
/// noise) of a star used for measurement: fainter stars give too noisy a width.
const MIN_PEAK_SNR: f32 = 20.0;
/// Local maxima above this S/N count as neighbours that can spoil a star's fit.
const NEIGHBOUR_SNR: f32 = 5.0;
/// A neighbour spoils a star when it is brighter than this fraction of the star's peak.
const NEIGHBOUR_FRACTION: f32 = 0.02;
/// A peak whose four neighbours average less than this fraction of it is a cosmic ray or a hot
/// pixel: even a 1-pixel-FWHM PSF spreads more into its neighbours.
const MIN_NEIGHBOUR_RATIO: f32 = 0.1;
/// Stars at or above this fraction of the saturation level may be non-linear.
const SATURATION_MARGIN: f32 = 0.9;
/// Largest distance from the peak (pixels) the half-maximum area of a first-guess width may
/// reach; a source broader than this is not a point source worth fitting.
const HALF_MAX_RADIUS: usize = 30;
/// At most this many of the brightest candidates are fitted (enough for a 1% median).
const MAX_FITS: usize = 400;
/// A fitted FWHM below this many pixels is a cosmic ray or a hot pixel.
const MIN_FWHM: f64 = 0.8;
/// A source whose moment ellipticity `(a² − b²)/(a² + b²)` exceeds this is a blend or a track.
const MAX_ELLIPTICITY: f64 = 0.5;
/// Range of the fitted Moffat index: 1.2 has very strong wings, 100 is a Gaussian for any
/// practical purpose.
const BETA_RANGE: (f64, f64) = (1.2, 100.0);
/// FWHM of a Gaussian in units of its σ, `2·sqrt(2 ln 2)`.
pub(crate) const GAUSS_FWHM: f64 = 2.354_820_045_030_949_3;

/// The PSF measured from an image's stars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PsfMeasurement {
    /// FWHM of the PSF, pixels: the sigma-clipped median over the stars used.
    pub fwhm_pixels: f64,
    /// Number of stars the median is over.
    pub stars: usize,
    /// Robust scatter (1.4826 × median absolute deviation) of the stars' FWHMs, pixels; a
    /// spread above ~10% of the FWHM means a PSF varying over the field, or few stars.
    pub spread_pixels: f64,
    /// Median Moffat index β of the stars' fits: 2–5 for typical seeing-limited PSFs, the upper
    /// end of its range (100) for a Gaussian.
    pub moffat_beta: f64,
}

/// Where the PSF size used for an image came from, for `report.json` and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PsfSource {
    /// The configuration (`predict.psf_fwhm_pixels`).
    Config,
    /// A header keyword (its name), converted to pixels with the header's pixel scale.
    Header(String),
    /// Measured from the image's point sources.
    Measured {
        /// How many stars the measurement used.
        stars: usize,
    },
}

impl std::fmt::Display for PsfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PsfSource::Config => write!(f, "configuration {FWHM_OPTION}"),
            PsfSource::Header(key) => write!(f, "header keyword {key}"),
            PsfSource::Measured { stars } => write!(f, "measured from {stars} stars"),
        }
    }
}

/// The PSF FWHM in pixels to use for an image, and where it came from: `config` (the value of
/// `predict.psf_fwhm_pixels`) if given, else the header's PSF keywords ([`fwhm_from_header`]),
/// else measured from the image's stars ([`measure_fwhm`], with the header's `SATURATE` level).
///
/// Fails when `config` is not a positive number, or when it has to measure and the image has
/// too few usable stars (the one-line message names `predict.psf_fwhm_pixels`).
pub fn resolve_fwhm(
    config: Option<f64>,
    header: &Header,
    image: ArrayView2<f32>,
) -> Result<(f64, PsfSource)> {
    if let Some(v) = config {
        if !(v.is_finite() && v > 0.0) {
            return Err(DetectError::InvalidConfig(ConfigError::at(
                FWHM_OPTION,
                format!("must be a positive number of pixels, got {v}"),
            )));
        }
        return Ok((v, PsfSource::Config));
    }
    if let Some((fwhm, key)) = fwhm_from_header(header, None) {
        return Ok((fwhm, PsfSource::Header(key)));
    }
    let saturation = SATURATION_KEYWORDS
        .iter()
        .find_map(|k| header.get_f64(k))
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| s as f32);
    let m = measure_fwhm(image, saturation)?;
    Ok((m.fwhm_pixels, PsfSource::Measured { stars: m.stars }))
}

/// The PSF FWHM in pixels from the header, and the keyword it came from.
///
/// Tries [`FWHM_KEYWORDS`] in order and takes the first usable one. The unit is read from the
/// keyword's comment: `[arcsec]`, "arcsec", "asec" or `"` mean arcseconds, `[pix]`, "pixel" or
/// "px" pixels, `[deg]` degrees. Without a unit in the comment the value is taken to be in
/// arcseconds, the convention for seeing (ZTF, DECam and others that write pixels say so in the
/// comment). Angles are converted with `pixel_scale` (arcsec/pixel) if given, else with
/// [`pixel_scale_arcsec`] of the header; an angle with no pixel scale is skipped.
///
/// Values that are not positive (headers often carry `SEEING = -1` or `0` for "unknown"), or
/// that give less than 0.5 or more than 100 pixels, are skipped as placeholders.
pub fn fwhm_from_header(header: &Header, pixel_scale: Option<f64>) -> Option<(f64, String)> {
    let scale = pixel_scale
        .filter(|s| s.is_finite() && *s > 0.0)
        .or_else(|| pixel_scale_arcsec(header));
    for &key in FWHM_KEYWORDS {
        let Some(card) = header.cards().iter().find(|c| c.key == key) else {
            continue;
        };
        let value = match card.value {
            Some(CardValue::Float(v)) => v,
            Some(CardValue::Int(v)) => v as f64,
            _ => continue,
        };
        if !(value.is_finite() && value > 0.0) {
            continue;
        }
        let pixels = match comment_unit(&card.comment) {
            Unit::Pixels => Some(value),
            Unit::Arcsec => scale.map(|s| value / s),
            Unit::Degrees => scale.map(|s| value * 3600.0 / s),
        };
        if let Some(p) = pixels.filter(|p| (0.5..=100.0).contains(p)) {
            return Some((p, key.to_string()));
        }
    }
    None
}

/// The unit a header comment declares for an angular size.
enum Unit {
    Pixels,
    Arcsec,
    Degrees,
}

/// Unit of a width from its keyword comment; arcseconds when the comment names none.
fn comment_unit(comment: &str) -> Unit {
    let c = comment.to_ascii_lowercase();
    if c.contains("arcsec") || c.contains("asec") || c.contains('"') {
        Unit::Arcsec
    } else if c.contains("pix") || c.contains("[px]") || c.contains(" px") || c.starts_with("px") {
        Unit::Pixels
    } else if c.contains("[deg") || c.contains("degree") {
        Unit::Degrees
    } else {
        Unit::Arcsec
    }
}

/// Pixel scale in arcsec/pixel from the header: the geometric mean of the celestial WCS's
/// axes (`sqrt|det CD|`, or `sqrt|CDELT1·CDELT2·det PC|`, in `CUNIT1`, degrees by default),
/// else `PIXSCALE`, `PIXSCAL1`/`PIXSCAL2`, `SECPIX` or `SECPIX1` (arcsec/pixel). None when the
/// header has none of these, or its WCS is not celestial (`CTYPE1` not RA/Dec, galactic,
/// ecliptic, …).
pub fn pixel_scale_arcsec(header: &Header) -> Option<f64> {
    let positive = |v: f64| (v.is_finite() && v > 0.0).then_some(v);
    let celestial = header.get_str("CTYPE1").is_some_and(|t| {
        let t = t.trim().to_ascii_uppercase();
        ["RA", "DEC", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT"]
            .iter()
            .any(|p| t.starts_with(p))
    });
    if celestial {
        let to_arcsec = match header
            .get_str("CUNIT1")
            .map(|u| u.trim().to_ascii_lowercase())
        {
            Some(u) if u == "arcsec" => 1.0,
            Some(u) if u == "arcmin" => 60.0,
            Some(u) if u == "rad" => 180.0 * 3600.0 / std::f64::consts::PI,
            _ => 3600.0,
        };
        let get = |k: &str| header.get_f64(k);
        let cd = ["CD1_1", "CD1_2", "CD2_1", "CD2_2"].map(get);
        if cd.iter().any(Option::is_some) {
            let [a, b, c, d] = cd.map(|v| v.unwrap_or(0.0));
            if let Some(s) = positive((a * d - b * c).abs().sqrt() * to_arcsec) {
                return Some(s);
            }
        } else if let (Some(d1), Some(d2)) = (get("CDELT1"), get("CDELT2")) {
            let [a, b, c, d] = ["PC1_1", "PC1_2", "PC2_1", "PC2_2"].map(get);
            let det = a.unwrap_or(1.0) * d.unwrap_or(1.0) - b.unwrap_or(0.0) * c.unwrap_or(0.0);
            if let Some(s) = positive((d1 * d2 * det).abs().sqrt() * to_arcsec) {
                return Some(s);
            }
        }
    }
    if let Some(s) = ["PIXSCALE", "SECPIX"]
        .iter()
        .find_map(|k| header.get_f64(k).and_then(positive))
    {
        return Some(s);
    }
    let pair = |k1: &str, k2: &str| {
        let s1 = header.get_f64(k1).and_then(positive)?;
        Some(
            header
                .get_f64(k2)
                .and_then(positive)
                .map_or(s1, |s2| (s1 * s2).sqrt()),
        )
    };
    pair("PIXSCAL1", "PIXSCAL2").or_else(|| pair("SECPIX1", "SECPIX2"))
}

/// A candidate star: its peak pixel and brightness above the background.
#[derive(Debug, Clone, Copy)]
struct Peak {
    row: usize,
    col: usize,
    /// Background-subtracted peak value, ADU.
    value: f32,
    snr: f32,
}

/// One star's fit.
#[derive(Debug, Clone, Copy)]
struct StarFit {
    fwhm: f64,
    beta: f64,
}

/// Measures the PSF FWHM (pixels) from the point sources of an image.
///
/// The background and its noise come from [`estimate_background`] (SExtractor's mesh). Stars are
/// the local maxima with a peak S/N of at least 20 that are not saturated (below 90% of
/// `saturation` when given, and no flat top of equal pixels, which marks clipped data when the
/// level is unknown), not cosmic rays (a single sharp pixel), whose fitting window lies inside
/// the image with no NaN, and without a neighbour brighter than 2% of their peak nearby. Each is
/// fitted with a circular Moffat profile (free β, so Gaussian cores fit too) integrated over the
/// pixels, on a free local background; fits that fail, are sharper than 0.8 pixel or
/// elongated are dropped. Galaxies are broader than stars, cosmic rays sharper, so the
/// stellar locus is the densest clump of FWHMs, the smallest if several are nearly as dense;
/// the result is the sigma-clipped median of the stars within ±20% of it.
///
/// Fails with a one-line [`DetectError::Input`] naming `predict.psf_fwhm_pixels` when fewer than
/// [`MIN_STARS`] stars remain, e.g. on an image of pure noise or of galaxies only.
pub fn measure_fwhm(image: ArrayView2<f32>, saturation: Option<f32>) -> Result<PsfMeasurement> {
    let bkg = estimate_background(image, None, &BackgroundConfig::default())?;
    let snr = snr_image(image, None, &bkg)?;
    let sub = Array2::from_shape_fn(image.raw_dim(), |(r, c)| image[[r, c]] - bkg.level[[r, c]]);
    let noise = bkg.global_rms;

    // Every local maximum above the neighbour threshold, sorted by row for range look-ups.
    let maxima = local_maxima(&snr, &sub, NEIGHBOUR_SNR);
    let mut candidates: Vec<(Peak, f64)> = maxima
        .iter()
        .filter(|p| p.snr >= MIN_PEAK_SNR)
        .filter(|p| !saturated(image, p, saturation) && !sharp_pixel(&sub, p))
        .filter_map(|p| half_max_width(&sub, p).map(|w| (*p, w)))
        .collect();
    let too_few = |found: usize| {
        DetectError::Input(format!(
            "cannot measure the PSF: found {found} isolated, unsaturated point sources with \
             peak S/N >= {MIN_PEAK_SNR} (need {MIN_STARS}); set {FWHM_OPTION} to the PSF FWHM \
             in pixels"
        ))
    };
    if candidates.len() < MIN_STARS {
        return Err(too_few(candidates.len()));
    }
    // Brightest first, so that the cap on fits keeps the best-measured stars.
    candidates.sort_by(|a, b| b.0.snr.total_cmp(&a.0.snr));

    // A first guess of the locus from the half-maximum areas sets the fitting window.
    let widths: Vec<f64> = candidates.iter().map(|c| c.1).collect();
    let mut guess = stellar_locus(&widths, 0.15).map_or(f64::NAN, |(mode, _)| mode);
    let mut fits = Vec::new();
    // A second pass refits with the window the fitted locus calls for, when it differs.
    for _pass in 0..2 {
        let radius = fit_radius(guess);
        fits = candidates
            .iter()
            .filter(|(_, w)| *w <= 2.5 * guess)
            .filter(|(p, _)| isolated(p, &maxima, radius + radius / 2))
            .take(MAX_FITS)
            .filter_map(|(p, w)| fit_star(&sub, p, *w, radius, noise))
            .collect::<Vec<StarFit>>();
        let fwhms: Vec<f64> = fits.iter().map(|f| f.fwhm).collect();
        let Some((mode, _)) = stellar_locus(&fwhms, 0.1) else {
            break;
        };
        let again = fit_radius(mode) != radius || 2.5 * guess < 1.5 * mode;
        guess = mode;
        if !again {
            break;
        }
    }

    let fwhms: Vec<f64> = fits.iter().map(|f| f.fwhm).collect();
    let Some((mode, _)) = stellar_locus(&fwhms, 0.1) else {
        return Err(too_few(fits.len()));
    };
    let mut stars: Vec<StarFit> = fits
        .into_iter()
        .filter(|f| (f.fwhm / mode).ln().abs() < 0.2)
        .collect();
    // Sigma-clip (3 × robust σ) around the median until nothing more is removed. With a handful
    // of stars the MAD can be tiny by chance; no cut is tighter than ±5%, the scatter of a
    // faint star's width.
    loop {
        let v: Vec<f64> = stars.iter().map(|f| f.fwhm).collect();
        let (med, mad) = median_mad(&v);
        let before = stars.len();
        let cut = (3.0 * 1.4826 * mad).max(0.05 * med);
        stars.retain(|f| (f.fwhm - med).abs() <= cut);
        if stars.len() == before || stars.len() < MIN_STARS {
            break;
        }
    }
    if stars.len() < MIN_STARS {
        return Err(too_few(stars.len()));
    }
    let v: Vec<f64> = stars.iter().map(|f| f.fwhm).collect();
    let (fwhm, mad) = median_mad(&v);
    let betas: Vec<f64> = stars.iter().map(|f| f.beta).collect();
    Ok(PsfMeasurement {
        fwhm_pixels: fwhm,
        stars: stars.len(),
        spread_pixels: 1.4826 * mad,
        moffat_beta: median_mad(&betas).0,
    })
}

/// Half-side of the fitting window for a PSF of about `fwhm` pixels: two FWHMs, at least 4.
fn fit_radius(fwhm: f64) -> usize {
    if fwhm.is_finite() {
        ((2.0 * fwhm).ceil() as usize + 1).clamp(4, 25)
    } else {
        8
    }
}

/// Local maxima of the S/N image at or above `min_snr` (a pixel above its earlier neighbours in
/// row-major order and not below its later ones, so a flat top gives one maximum), in row order.
fn local_maxima(snr: &Array2<f32>, sub: &Array2<f32>, min_snr: f32) -> Vec<Peak> {
    let (nr, nc) = snr.dim();
    let mut out = Vec::new();
    for r in 0..nr {
        for c in 0..nc {
            let v = snr[[r, c]];
            if v.is_nan() || v < min_snr {
                continue;
            }
            let mut is_max = true;
            'n: for dr in -1i64..=1 {
                for dc in -1i64..=1 {
                    let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                    if (dr, dc) == (0, 0) || rr < 0 || cc < 0 || rr >= nr as i64 || cc >= nc as i64
                    {
                        continue;
                    }
                    let n = snr[[rr as usize, cc as usize]];
                    let earlier = dr < 0 || (dr == 0 && dc < 0);
                    if n > v || (earlier && n == v) {
                        is_max = false;
                        break 'n;
                    }
                }
            }
            if is_max {
                out.push(Peak {
                    row: r,
                    col: c,
                    value: sub[[r, c]],
                    snr: v,
                });
            }
        }
    }
    out
}

/// Whether a peak is saturated: at or above 90% of the saturation level, or a flat top (two or
/// more of its 8 neighbours exactly equal to it, as clipped data are).
fn saturated(image: ArrayView2<f32>, p: &Peak, saturation: Option<f32>) -> bool {
    let v = image[[p.row, p.col]];
    if saturation.is_some_and(|s| v >= SATURATION_MARGIN * s) {
        return true;
    }
    let (nr, nc) = image.dim();
    let mut equal = 0;
    for r in p.row.saturating_sub(1)..(p.row + 2).min(nr) {
        for c in p.col.saturating_sub(1)..(p.col + 2).min(nc) {
            equal += usize::from((r, c) != (p.row, p.col) && image[[r, c]] == v);
        }
    }
    equal >= 2
}

/// Whether a peak is a single sharp pixel (a cosmic ray or hot pixel): its four neighbours
/// average less than 10% of it. Peaks on the image edge count as sharp (they are not used).
fn sharp_pixel(sub: &Array2<f32>, p: &Peak) -> bool {
    let (nr, nc) = sub.dim();
    if p.row == 0 || p.col == 0 || p.row + 1 >= nr || p.col + 1 >= nc {
        return true;
    }
    let n = [
        sub[[p.row - 1, p.col]],
        sub[[p.row + 1, p.col]],
        sub[[p.row, p.col - 1]],
        sub[[p.row, p.col + 1]],
    ];
    let mean = n.iter().sum::<f32>() / 4.0;
    mean.is_nan() || mean < MIN_NEIGHBOUR_RATIO * p.value
}

/// First-guess FWHM from the area of the connected pixels above half the peak,
/// `2·sqrt(area/π)`. None when that area reaches [`HALF_MAX_RADIUS`] or the image edge.
fn half_max_width(sub: &Array2<f32>, p: &Peak) -> Option<f64> {
    let (nr, nc) = sub.dim();
    let half = 0.5 * p.value;
    let side = 2 * HALF_MAX_RADIUS + 1;
    let mut seen = vec![false; side * side];
    let local =
        |r: usize, c: usize| (r + HALF_MAX_RADIUS - p.row) * side + (c + HALF_MAX_RADIUS - p.col);
    let mut stack = vec![(p.row, p.col)];
    seen[local(p.row, p.col)] = true;
    let mut area = 0usize;
    while let Some((r, c)) = stack.pop() {
        area += 1;
        if r == 0 || c == 0 || r + 1 >= nr || c + 1 >= nc {
            return None;
        }
        if r.abs_diff(p.row) >= HALF_MAX_RADIUS || c.abs_diff(p.col) >= HALF_MAX_RADIUS {
            return None;
        }
        for (rr, cc) in [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)] {
            let i = local(rr, cc);
            if !seen[i] && sub[[rr, cc]] >= half {
                seen[i] = true;
                stack.push((rr, cc));
            }
        }
    }
    Some(2.0 * (area as f64 / std::f64::consts::PI).sqrt())
}

/// Whether no other local maximum within `distance` pixels is brighter than 2% of this peak.
fn isolated(p: &Peak, maxima: &[Peak], distance: usize) -> bool {
    let lo = maxima.partition_point(|m| m.row + distance < p.row);
    let limit = NEIGHBOUR_FRACTION * p.value;
    let d2 = (distance * distance) as f64;
    maxima[lo..]
        .iter()
        .take_while(|m| m.row <= p.row + distance)
        .filter(|m| (m.row, m.col) != (p.row, p.col))
        .all(|m| {
            let (dr, dc) = (m.row as f64 - p.row as f64, m.col as f64 - p.col as f64);
            dr * dr + dc * dc > d2 || m.value <= limit
        })
}

/// Fits a star with a pixel-integrated circular Moffat on a constant background, in the window
/// of half-side `radius` around its peak; its FWHM and β, or None when the window leaves the
/// image or holds a NaN, the fit fails, or the source is not a point source (sharper than
/// [`MIN_FWHM`], elongated, or its centre wandered off the peak).
fn fit_star(
    sub: &Array2<f32>,
    p: &Peak,
    width_guess: f64,
    radius: usize,
    noise: f64,
) -> Option<StarFit> {
    let (nr, nc) = sub.dim();
    if p.row < radius || p.col < radius || p.row + radius >= nr || p.col + radius >= nc {
        return None;
    }
    let side = 2 * radius + 1;
    let mut pixels = Vec::with_capacity(side * side);
    for r in p.row - radius..=p.row + radius {
        for c in p.col - radius..=p.col + radius {
            let v = sub[[r, c]] as f64;
            if !v.is_finite() {
                return None;
            }
            let (dy, dx) = (r as f64 - p.row as f64, c as f64 - p.col as f64);
            pixels.push((dx, dy, v));
        }
    }
    // Sub-pixel sampling of the model: finer for sharp PSFs, where integration over the pixel
    // matters most. What it leaves out (a variance of 1/(12 n²) pixel²) is corrected below.
    let n = if width_guess < 3.0 {
        5
    } else if width_guess < 6.0 {
        3
    } else {
        2
    };
    let start = [
        0.0,
        p.value as f64,
        0.0,
        0.0,
        width_guess.max(0.5),
        1.0 / 3.0,
    ];
    let fit = levenberg_marquardt(&pixels, start, n, noise)?;
    let [_, amp, x0, y0, fwhm_fit, u] = fit;
    if amp <= 0.0 || x0.abs() > 1.5 || y0.abs() > 1.5 {
        return None;
    }
    let fwhm2 = fwhm_fit * fwhm_fit - GAUSS_FWHM * GAUSS_FWHM / (12.0 * (n * n) as f64);
    let fwhm = fwhm2.max(0.0).sqrt();
    if fwhm < MIN_FWHM || fwhm > 4.0 * width_guess.max(1.0) {
        return None;
    }
    if ellipticity(&pixels, &fit, fwhm_fit / GAUSS_FWHM) > MAX_ELLIPTICITY {
        return None;
    }
    Some(StarFit {
        fwhm,
        beta: 1.0 / u,
    })
}

/// Moffat profile of FWHM `w` and index `β = 1/u` averaged over `n × n` points of the pixel at
/// offset `(dx, dy)` from the window's centre, and its derivatives by `x0, y0, w, u`.
///
/// Written as `(1 + k·r²)^(−1/u)` with `k = 4(2^u − 1)/w²`, which has FWHM `w` for every `u`
/// and tends to the Gaussian of FWHM `w` as `u → 0`: the width and the shape are separate
/// parameters (unlike Moffat's α and β, which trade off against each other), so the fit
/// converges in a few steps for Gaussian stars too.
fn moffat_pixel(p: &[f64; 6], dx: f64, dy: f64, n: usize) -> (f64, [f64; 4]) {
    let [_, _, x0, y0, w, u] = *p;
    let two_u = u.exp2();
    let k = 4.0 * (two_u - 1.0) / (w * w);
    let dk_du = 4.0 * std::f64::consts::LN_2 * two_u / (w * w);
    let (mut f, mut gx, mut gy, mut gw, mut gu) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let y = dy + (i as f64 + 0.5) / n as f64 - 0.5 - y0;
        for j in 0..n {
            let x = dx + (j as f64 + 0.5) / n as f64 - 0.5 - x0;
            let r2 = x * x + y * y;
            let q = 1.0 + k * r2;
            let lq = q.ln();
            let v = (-lq / u).exp();
            // d ln f / d x0 = 2k·x / (u·q); d ln f / d w = 2k·r² / (u·q·w).
            let common = 2.0 * k * v / (u * q);
            f += v;
            gx += common * x;
            gy += common * y;
            gw += common * r2 / w;
            gu += v * (lq / (u * u) - dk_du * r2 / (u * q));
        }
    }
    let norm = 1.0 / (n * n) as f64;
    (f * norm, [gx * norm, gy * norm, gw * norm, gu * norm])
}

/// Least-squares fit of `B + A·moffat` to the window's pixels (parameters `[B, A, x0, y0,
/// FWHM, 1/β]`, see [`moffat_pixel`]) by Levenberg–Marquardt, with the FWHM and β kept in
/// range. None if it does not converge to
/// finite values. `noise` only scales the sums, so that the damping's thresholds are in units
/// of the data.
fn levenberg_marquardt(
    pixels: &[(f64, f64, f64)],
    start: [f64; 6],
    n: usize,
    noise: f64,
) -> Option<[f64; 6]> {
    let scale = if noise > 0.0 { 1.0 / noise } else { 1.0 };
    let chi2 = |p: &[f64; 6]| -> f64 {
        pixels
            .iter()
            .map(|&(dx, dy, v)| {
                let (f, _) = moffat_pixel(p, dx, dy, n);
                let r = (v - p[0] - p[1] * f) * scale;
                r * r
            })
            .sum()
    };
    let clamp = |p: &mut [f64; 6]| {
        p[4] = p[4].clamp(0.2, 200.0);
        p[5] = p[5].clamp(1.0 / BETA_RANGE.1, 1.0 / BETA_RANGE.0);
    };
    let mut p = start;
    clamp(&mut p);
    let mut current = chi2(&p);
    let mut lambda = 1e-3;
    for _ in 0..100 {
        let mut jtj = [[0.0f64; 6]; 6];
        let mut jtr = [0.0f64; 6];
        for &(dx, dy, v) in pixels {
            let (f, g) = moffat_pixel(&p, dx, dy, n);
            let a = p[1];
            let jac = [1.0, f, a * g[0], a * g[1], a * g[2], a * g[3]].map(|j| j * scale);
            let r = (v - p[0] - a * f) * scale;
            for ((row, t), ji) in jtj.iter_mut().zip(jtr.iter_mut()).zip(jac) {
                *t += ji * r;
                for (cell, jk) in row.iter_mut().zip(jac) {
                    *cell += ji * jk;
                }
            }
        }
        // Raise the damping until a step lowers χ².
        let mut improved = false;
        while lambda < 1e12 {
            let mut m = jtj;
            for (i, row) in m.iter_mut().enumerate() {
                row[i] += lambda * jtj[i][i].max(1e-12);
            }
            let Some(step) = solve6(m, jtr) else {
                lambda *= 10.0;
                continue;
            };
            let mut trial = p;
            for i in 0..6 {
                trial[i] += step[i];
            }
            clamp(&mut trial);
            let c = chi2(&trial);
            if c.is_finite() && c < current {
                let gain = (current - c) / current.max(1e-300);
                p = trial;
                current = c;
                lambda = (lambda * 0.1).max(1e-9);
                improved = true;
                if gain < 1e-8 {
                    return p.iter().all(|v| v.is_finite()).then_some(p);
                }
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            // No step lowers χ²: at the minimum (to rounding).
            break;
        }
    }
    p.iter().all(|v| v.is_finite()).then_some(p)
}

/// Solves a 6×6 linear system by Gaussian elimination with partial pivoting; None if singular.
fn solve6(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> Option<[f64; 6]> {
    for col in 0..6 {
        let pivot = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        let size = a[pivot][col].abs();
        if size.is_nan() || size <= 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..6 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 6];
    for row in (0..6).rev() {
        let s: f64 = (row + 1..6).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Ellipticity `(a² − b²)/(a² + b²)` of the background-subtracted window from its second
/// moments, weighted by a circular Gaussian of width `sigma` at the fitted centre.
fn ellipticity(pixels: &[(f64, f64, f64)], fit: &[f64; 6], sigma: f64) -> f64 {
    let [b, _, x0, y0, _, _] = *fit;
    let s2 = 2.0 * (sigma * sigma).max(0.25);
    let (mut w0, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0);
    for &(dx, dy, v) in pixels {
        let (x, y) = (dx - x0, dy - y0);
        let w = (-(x * x + y * y) / s2).exp() * (v - b);
        w0 += w;
        xx += w * x * x;
        yy += w * y * y;
        xy += w * x * y;
    }
    if w0.is_nan() || w0 <= 0.0 {
        return f64::INFINITY;
    }
    let (xx, yy, xy) = (xx / w0, yy / w0, xy / w0);
    let trace = xx + yy;
    if trace.is_nan() || trace <= 0.0 {
        return f64::INFINITY;
    }
    ((xx - yy).powi(2) + 4.0 * xy * xy).sqrt() / trace
}

/// The stellar locus of a set of widths: the centre of the densest clump (widths within
/// `±half_width` in log of it), the smallest such centre if a clump of smaller widths is at
/// least 70% as dense (galaxies are broader than stars, and spread over sizes), and the indices
/// in that clump. None for an empty set.
fn stellar_locus(widths: &[f64], half_width: f64) -> Option<(f64, Vec<usize>)> {
    let logs: Vec<f64> = widths
        .iter()
        .map(|w| if *w > 0.0 { w.ln() } else { f64::NAN })
        .collect();
    let members = |centre: f64| -> Vec<usize> {
        (0..logs.len())
            .filter(|&j| (logs[j] - centre).abs() <= half_width)
            .collect()
    };
    let counts: Vec<usize> = logs
        .iter()
        .map(|&l| if l.is_finite() { members(l).len() } else { 0 })
        .collect();
    let best = *counts.iter().max()?;
    if best == 0 {
        return None;
    }
    let threshold = (0.7 * best as f64).ceil() as usize;
    let (i, _) = logs
        .iter()
        .enumerate()
        .filter(|&(i, _)| counts[i] >= threshold)
        .min_by(|a, b| a.1.total_cmp(b.1))?;
    // The clump's centre: the median of its members, steadier than one member's width.
    let m = members(logs[i]);
    let v: Vec<f64> = m.iter().map(|&j| widths[j]).collect();
    Some((median_mad(&v).0, m))
}

/// Median and median absolute deviation of a non-empty slice (NaN for an empty one).
fn median_mad(values: &[f64]) -> (f64, f64) {
    use deepsky_core::math::median;
    let mut v = values.to_vec();
    let med = median(&mut v);
    let mut dev: Vec<f64> = values.iter().map(|x| (x - med).abs()).collect();
    (med, median(&mut dev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsky_io::fits::Card;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    use rand_pcg::Pcg64;

    /// Star profiles the tests draw, by their FWHM in pixels.
    #[derive(Clone, Copy, Debug)]
    enum Profile {
        Gaussian,
        Moffat(f64),
    }

    /// Unit-peak profile value at radius² `r2` for a PSF of `fwhm` pixels.
    fn profile(kind: Profile, fwhm: f64, r2: f64) -> f64 {
        match kind {
            Profile::Gaussian => {
                let s = fwhm / GAUSS_FWHM;
                (-r2 / (2.0 * s * s)).exp()
            }
            Profile::Moffat(beta) => {
                let alpha = fwhm / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
                (1.0 + r2 / (alpha * alpha)).powf(-beta)
            }
        }
    }

    /// Adds a source of total `flux` at (row, col), integrated over each pixel on a 7×7 grid,
    /// whose unit-peak radial profile is `f(r²)`, drawn out to `extent` pixels.
    fn add_source(
        img: &mut Array2<f32>,
        row: f64,
        col: f64,
        flux: f64,
        extent: f64,
        f: impl Fn(f64) -> f64,
    ) {
        let (nr, nc) = img.dim();
        let k = 7;
        let mut stamp = Vec::new();
        let rad = extent.ceil() as i64;
        let (r0, c0) = (row.round() as i64, col.round() as i64);
        let mut total = 0.0;
        for r in r0 - rad..=r0 + rad {
            for c in c0 - rad..=c0 + rad {
                let mut s = 0.0;
                for i in 0..k {
                    for j in 0..k {
                        let y = r as f64 + (i as f64 + 0.5) / k as f64 - 0.5 - row;
                        let x = c as f64 + (j as f64 + 0.5) / k as f64 - 0.5 - col;
                        s += f(x * x + y * y);
                    }
                }
                total += s;
                stamp.push((r, c, s));
            }
        }
        for (r, c, s) in stamp {
            if r >= 0 && c >= 0 && (r as usize) < nr && (c as usize) < nc {
                img[[r as usize, c as usize]] += (flux * s / total) as f32;
            }
        }
    }

    /// A 512×512 field on a background of 1000 with noise σ = 10: `stars` (at most 30) of the given
    /// profile (peak S/N 25 to 2000), 15 exponential galaxies three times as wide (mildly
    /// elliptical), 6 cosmic-ray pixels and one star clipped at the saturation level 60000.
    fn field(kind: Profile, fwhm: f64, seed: u64, stars: usize) -> Array2<f32> {
        let mut rng = Pcg64::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 10.0).unwrap();
        let mut img = Array2::from_shape_fn((512, 512), |_| 1000.0 + noise.sample(&mut rng));
        // Flux giving a unit peak, from the profile's integral on a fine grid.
        let unit = {
            let mut probe = Array2::<f32>::zeros((201, 201));
            add_source(&mut probe, 100.0, 100.0, 1.0, 99.0, |r2| {
                profile(kind, fwhm, r2)
            });
            1.0 / probe[[100, 100]] as f64
        };
        let extent = (8.0 * fwhm).min(60.0);
        let mut slots: Vec<(f64, f64)> = (0..7)
            .flat_map(|i| (0..7).map(move |j| (40.0 + 72.0 * i as f64, 40.0 + 72.0 * j as f64)))
            .collect();
        // Shuffle which grid slots get stars and which galaxies.
        for i in (1..slots.len()).rev() {
            slots.swap(i, rng.random_range(0..=i));
        }
        for (n, &(r, c)) in slots.iter().enumerate() {
            let (row, col) = (r + rng.random::<f64>(), c + rng.random::<f64>());
            if n < stars {
                let peak_snr = 25.0 * 80f64.powf(rng.random::<f64>());
                add_source(&mut img, row, col, peak_snr * 10.0 * unit, extent, |r2| {
                    profile(kind, fwhm, r2)
                });
            } else if n < 30 {
                continue;
            } else if n < 45 {
                // Exponential disc with FWHM 3× the star's, axis ratio 0.6–1.
                let h = 3.0 * fwhm / (2.0 * std::f64::consts::LN_2);
                let q = 0.6 + 0.4 * rng.random::<f64>();
                let theta = std::f64::consts::PI * rng.random::<f64>();
                let (ct, st) = (theta.cos(), theta.sin());
                let flux = 20.0
                    * 10.0
                    * (2.0 * std::f64::consts::PI * h * h)
                    * 10f64.powf(rng.random::<f64>());
                let mut gal = Array2::<f32>::zeros((512, 512));
                let (rr, cc) = (row.round(), col.round());
                // Draw the elliptical disc directly (pixel centres suffice at these sizes).
                let ext = (10.0 * h).min(36.0) as i64;
                for dr in -ext..=ext {
                    for dc in -ext..=ext {
                        let (y, x) = (rr + dr as f64 - row, cc + dc as f64 - col);
                        let (u, v) = (x * ct + y * st, (-x * st + y * ct) / q);
                        let (pr, pc) = (rr as i64 + dr, cc as i64 + dc);
                        if pr >= 0 && pc >= 0 && pr < 512 && pc < 512 {
                            gal[[pr as usize, pc as usize]] += (flux
                                / (2.0 * std::f64::consts::PI * h * h * q)
                                * (-(u * u + v * v).sqrt() / h).exp())
                                as f32;
                        }
                    }
                }
                img += &gal;
            } else if n < 48 {
                // Cosmic rays: two single hot pixels in the slot.
                for k in 0..2 {
                    let (pr, pc) = (row as usize + 3 * k, col as usize);
                    img[[pr, pc]] += 3000.0 + 5000.0 * rng.random::<f32>();
                }
            } else {
                add_source(&mut img, row, col, 1e4 * 10.0 * unit, extent, |r2| {
                    profile(kind, fwhm, r2)
                });
            }
        }
        img.mapv_inplace(|v| v.min(60000.0));
        img
    }

    #[test]
    fn measures_gaussian_and_moffat_stars_among_galaxies() {
        for (k, kind) in [Profile::Gaussian, Profile::Moffat(3.0)]
            .into_iter()
            .enumerate()
        {
            for (s, fwhm) in [2.0, 3.5, 6.0].into_iter().enumerate() {
                let img = field(kind, fwhm, 10 * k as u64 + s as u64, 30);
                let m = measure_fwhm(img.view(), Some(60000.0)).unwrap();
                let err = m.fwhm_pixels / fwhm - 1.0;
                eprintln!(
                    "{kind:?} FWHM {fwhm}: measured {:.3} ({:+.1}%), {} stars, spread {:.3}, β {:.1}",
                    m.fwhm_pixels,
                    100.0 * err,
                    m.stars,
                    m.spread_pixels,
                    m.moffat_beta
                );
                assert!(err.abs() < 0.1, "{kind:?} FWHM {fwhm}: {m:?}");
                assert!(
                    m.stars >= 15 && m.stars <= 31,
                    "{kind:?} FWHM {fwhm}: {m:?}"
                );
            }
        }
    }

    #[test]
    fn noise_only_image_names_the_option() {
        let mut rng = Pcg64::seed_from_u64(3);
        let noise = Normal::new(0.0f32, 10.0).unwrap();
        let img = Array2::from_shape_fn((256, 256), |_| 500.0 + noise.sample(&mut rng));
        let err = measure_fwhm(img.view(), None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DetectError::Input(_)), "{err:?}");
        assert!(
            msg.contains("predict.psf_fwhm_pixels") && !msg.contains('\n'),
            "{msg}"
        );
        // The same through resolve_fwhm with an empty header.
        let err = resolve_fwhm(None, &Header::new(vec![]), img.view()).unwrap_err();
        assert!(err.to_string().contains("predict.psf_fwhm_pixels"));
    }

    #[test]
    fn galaxies_only_image_is_an_error() {
        // The discs, cosmic rays and the saturated star of `field`, without its stars.
        let img = field(Profile::Moffat(3.0), 3.0, 7, 0);
        let err = measure_fwhm(img.view(), Some(60000.0)).unwrap_err();
        assert!(err.to_string().contains(FWHM_OPTION), "{err}");
    }

    #[test]
    fn seeing_in_arcsec_with_cd_matrix() {
        // 0.25 arcsec pixels, rotated 30°: SEEING 1.1 arcsec = 4.4 pixels.
        let s = 0.25 / 3600.0;
        let (c, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let header = Header::new(vec![
            Card::new("CTYPE1", "RA---TAN", ""),
            Card::new("CTYPE2", "DEC--TAN", ""),
            Card::new("CD1_1", -s * c, ""),
            Card::new("CD1_2", -s * sn, ""),
            Card::new("CD2_1", -s * sn, ""),
            Card::new("CD2_2", s * c, ""),
            Card::new("SEEING", 1.1, "seeing FWHM"),
        ]);
        assert!((pixel_scale_arcsec(&header).unwrap() - 0.25).abs() < 1e-12);
        let (fwhm, key) = fwhm_from_header(&header, None).unwrap();
        assert!((fwhm - 4.4).abs() < 1e-9, "{fwhm}");
        assert_eq!(key, "SEEING");
        let img = Array2::<f32>::zeros((8, 8));
        let (fwhm, source) = resolve_fwhm(None, &header, img.view()).unwrap();
        assert!((fwhm - 4.4).abs() < 1e-9);
        assert_eq!(source, PsfSource::Header("SEEING".into()));
        // The configuration wins over the header.
        let (fwhm, source) = resolve_fwhm(Some(3.0), &header, img.view()).unwrap();
        assert_eq!((fwhm, source), (3.0, PsfSource::Config));
        let err = resolve_fwhm(Some(-1.0), &header, img.view()).unwrap_err();
        assert!(err.to_string().contains("predict.psf_fwhm_pixels"), "{err}");
    }

    #[test]
    fn header_units_and_placeholders() {
        let cdelt = |cards: Vec<Card>| {
            let mut all = vec![
                Card::new("CTYPE1", "RA---TAN", ""),
                Card::new("CDELT1", -0.5 / 3600.0, ""),
                Card::new("CDELT2", 0.5 / 3600.0, ""),
            ];
            all.extend(cards);
            Header::new(all)
        };
        // FWHM in pixels by its comment, whatever the pixel scale.
        let h = cdelt(vec![Card::new("FWHM", 3.2, "[pix] median FWHM")]);
        assert_eq!(fwhm_from_header(&h, None), Some((3.2, "FWHM".into())));
        // A placeholder SEEING is skipped in favour of the next usable keyword... and an
        // earlier keyword in the list wins over a later one.
        let h = cdelt(vec![
            Card::new("SEEING", -1.0, "[arcsec]"),
            Card::new("PSFFWHM", 1.5, "arcsec"),
        ]);
        assert_eq!(fwhm_from_header(&h, None), Some((3.0, "PSFFWHM".into())));
        let h = cdelt(vec![Card::new("SEEING", 0.0, "")]);
        assert_eq!(fwhm_from_header(&h, None), None);
        // An angle without any pixel scale cannot be converted; a given scale is used.
        let h = Header::new(vec![Card::new("SEEING", 1.2, "")]);
        assert_eq!(fwhm_from_header(&h, None), None);
        assert_eq!(
            fwhm_from_header(&h, Some(0.4)).map(|f| f.1),
            Some("SEEING".into())
        );
        // A non-celestial CDELT is not a pixel scale.
        let h = Header::new(vec![
            Card::new("CTYPE1", "WAVE", ""),
            Card::new("CDELT1", 1.0, ""),
            Card::new("CDELT2", 1.0, ""),
        ]);
        assert_eq!(pixel_scale_arcsec(&h), None);
    }

    #[test]
    fn bundled_field_header_and_measurement_agree() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let (image, header) = crate::catalog::read_image(&data.join("sky_field.fits"), "").unwrap();
        // deepsky's simulator writes PSF_FWHM (arcsec) and a CD matrix: 1.0" / 0.4" = 2.5 px.
        let (fwhm, source) = resolve_fwhm(None, &header, image.view()).unwrap();
        assert_eq!(source, PsfSource::Header("PSF_FWHM".into()));
        assert!((fwhm - 2.5).abs() < 1e-6, "{fwhm}");
        let m = measure_fwhm(image.view(), Some(60000.0)).unwrap();
        eprintln!("bundled field: {m:?}");
        assert!((m.fwhm_pixels / 2.5 - 1.0).abs() < 0.1, "{m:?}");
    }

    /// The Python of the test venv (as the integration tests find it).
    fn python() -> std::path::PathBuf {
        std::env::var("DEEPSKY_PYTHON").map_or_else(
            |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
            std::path::PathBuf::from,
        )
    }

    /// A field drawn by astropy (not by deepsky): pixel-integrated Moffat stars (FWHM 4.2 px,
    /// β 2.5) and Gaussian galaxies three times as wide on a sky of 200 ADU with Poisson-like
    /// noise, written by astropy.io.fits, no WCS nor PSF keywords.
    #[test]
    fn measures_an_astropy_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("astropy_field.fits");
        let code = r#"
import sys
import numpy as np
from astropy.io import fits
from astropy.modeling.models import Moffat2D, Gaussian2D
from astropy.convolution import discretize_model
rng = np.random.default_rng(5)
n = 400
img = np.full((n, n), 200.0)
fwhm, beta = 4.2, 2.5
alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
for i in range(60):
    x, y = rng.uniform(30, n - 30, 2)
    x0, y0 = int(x), int(y)
    half = 25
    box = ((x0 - half, x0 + half + 1), (y0 - half, y0 + half + 1))
    if i < 40:
        amp = 10 ** rng.uniform(2.0, 3.5)
        m = Moffat2D(amplitude=amp, x_0=x, y_0=y, gamma=alpha, alpha=beta)
    else:
        s = 3 * fwhm / 2.3548
        m = Gaussian2D(amplitude=10 ** rng.uniform(1.5, 2.5), x_mean=x, y_mean=y,
                       x_stddev=s, y_stddev=s * rng.uniform(0.6, 1.0), theta=rng.uniform(0, 3))
    stamp = discretize_model(m, box[0], box[1], mode="oversample", factor=8)
    ys, xs = slice(max(y0 - half, 0), min(y0 + half + 1, n)), slice(max(x0 - half, 0), min(x0 + half + 1, n))
    sy = slice(ys.start - (y0 - half), ys.stop - (y0 - half))
    sx = slice(xs.start - (x0 - half), xs.stop - (x0 - half))
    img[ys, xs] += stamp[sy, sx]
img = rng.poisson(img).astype(np.float32) + rng.normal(0, 3, img.shape).astype(np.float32)
fits.PrimaryHDU(img).writeto(sys.argv[1])
"#;
        let out = std::process::Command::new(python())
            .arg("-c")
            .arg(code)
            .arg(&path)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "python failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (image, header) = crate::catalog::read_image(&path, "").unwrap();
        assert_eq!(fwhm_from_header(&header, None), None);
        let (fwhm, source) = resolve_fwhm(None, &header, image.view()).unwrap();
        eprintln!("astropy field: {fwhm:.3} px from {source}");
        assert!(matches!(source, PsfSource::Measured { stars } if stars >= MIN_STARS));
        assert!((fwhm / 4.2 - 1.0).abs() < 0.1, "{fwhm}");
    }
}
