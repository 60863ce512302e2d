//! Your own labelled images: a real image and a catalogue of the sources in it (from a deeper
//! coadd, a spectroscopic survey, a list made by hand) turned into the truth objects that
//! training and scoring use, exactly as they use a simulated field's truth catalogue.
//!
//! - [`CatalogColumns`]: which columns of the catalogue hold the positions (pixel `x`/`y` in
//!   the FITS convention, or RA/Dec in degrees), the class and the size; a configuration
//!   section, every column found by its usual names when not given.
//! - [`read_user_catalog`]: the catalogue (FITS binary or ASCII table, CSV, Parquet) as
//!   [`UserSource`]s, RA/Dec converted to pixels with the image's WCS.
//! - [`labelled_truth`]: their boxes and S/N, measured on the image: the simulator's box rule
//!   (half-size `1.5·FWHM` for stars, `3·sqrt(r_half² + (FWHM/2)²)` for galaxies, with
//!   `r_half` from the catalogue or measured) and a matched-filter S/N, so that scores per S/N
//!   bin mean what they mean on simulated fields.
//! - [`labelled_truth_from_files`]: the three steps from file names, the PSF FWHM found as
//!   `detect predict` finds it ([`crate::psf::resolve_fwhm`]).
//!
//! The bundled field and its truth catalogue, read as any user's catalogue would be: `x`, `y`,
//! `class` and the galaxies' half-light radius `r_half` are found by name, and the boxes come
//! out as the simulator drew them.
//!
//! ```
//! use std::path::Path;
//! use deepsky_detect::labelled::{labelled_truth_from_files, CatalogColumns};
//! use deepsky_sim::sky::SourceClass;
//!
//! let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
//! let classes: Vec<String> = SourceClass::ALL.iter().map(|c| c.name().to_string()).collect();
//! let (image, _header, truth) = labelled_truth_from_files(
//!     &data.join("sky_field.fits"),
//!     "",
//!     &data.join("sky_field_truth.fits"),
//!     &CatalogColumns::default(),
//!     &classes,
//!     None, // the FWHM from the header's PSF_FWHM
//! )?;
//! let sim = deepsky_detect::catalog::read_truth(&data.join("sky_field_truth.fits"), "", &classes)?;
//! let galaxy = truth.iter().position(|t| t.class == 1).unwrap();
//! let same = sim.iter().find(|s| s.x == truth[galaxy].x && s.y == truth[galaxy].y).unwrap();
//! assert_eq!(truth[galaxy].bbox, same.bbox);
//! assert!(truth[galaxy].snr.is_finite() && image.dim() == (256, 256));
//! # Ok::<(), deepsky_detect::DetectError>(())
//! ```

use std::path::Path;

use deepsky_core::config::{ConfigError, Validate};
use deepsky_core::pixel::{from_fits, to_fits};
use deepsky_io::fits::Header;
use deepsky_io::wcs::Wcs;
use ndarray::{Array2, ArrayView2};
use polars::prelude::*;
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::background::{estimate_background, Background, BackgroundConfig};
use crate::catalog::{column_f64, read_image, read_table};
use crate::classes::{source_class, SourceClass};
use crate::error::{DetectError, Result};
use crate::metrics::TruthObject;
use crate::psf::GAUSS_FWHM;

/// The configuration prefix of [`CatalogColumns`]' keys, named in error messages.
pub const COLUMNS_OPTION: &str = "columns";

/// Names tried (case-insensitively, in this order) for a column that is not given.
pub const X_NAMES: &[&str] = &["x", "xwin_image", "x_image", "x_pix", "xcentroid", "xpos"];
/// See [`X_NAMES`].
pub const Y_NAMES: &[&str] = &["y", "ywin_image", "y_image", "y_pix", "ycentroid", "ypos"];
/// See [`X_NAMES`].
pub const RA_NAMES: &[&str] = &[
    "ra",
    "alphawin_j2000",
    "alpha_j2000",
    "raj2000",
    "ra_deg",
    "ra_icrs",
];
/// See [`X_NAMES`].
pub const DEC_NAMES: &[&str] = &[
    "dec",
    "deltawin_j2000",
    "delta_j2000",
    "dej2000",
    "dec_deg",
    "de_icrs",
];
/// See [`X_NAMES`]. (SExtractor's `CLASS_STAR` is a stellarity in [0, 1], not a class.)
pub const CLASS_NAMES: &[&str] = &["class", "class_id", "type", "class_name"];
/// See [`X_NAMES`]: the half-light radius column of deepsky's own truth catalogues.
pub const SIZE_NAMES: &[&str] = &["r_half"];

/// Box half-size of a point source, in units of the PSF FWHM (the simulator's rule).
pub const STAR_HALF_FWHM: f64 = 1.5;
/// Largest box half-size of an extended source whose size is measured, in FWHM.
pub const MAX_HALF_FWHM: f64 = 12.0;

/// Which columns of a user's catalogue hold what (the `columns` section of a configuration).
///
/// Each column left unset is looked for by its usual names, case-insensitively: [`X_NAMES`],
/// [`Y_NAMES`], [`RA_NAMES`], [`DEC_NAMES`], [`CLASS_NAMES`], [`SIZE_NAMES`]. Pixel positions
/// win over sky positions when a catalogue has both, unless `ra`/`dec` are given and `x`/`y`
/// are not.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogColumns {
    /// Column of the x pixel position, FITS convention (the centre of the first pixel is 1.0,
    /// as SExtractor's `X_IMAGE` and DS9 count).
    pub x: Option<String>,
    /// Column of the y pixel position, FITS convention.
    pub y: Option<String>,
    /// Column of the right ascension, degrees (converted with the image's WCS).
    pub ra: Option<String>,
    /// Column of the declination, degrees.
    pub dec: Option<String>,
    /// Column of the class: a name of the detector's classes (any case, e.g. `star`,
    /// `GALAXY`) or its index in the detector's class list. Empty values take
    /// `default_class`; without a class column every row does.
    pub class: Option<String>,
    /// Column of the intrinsic (before PSF convolution) half-light radius along the major
    /// axis, pixels, as the simulator's `r_half`. Sets the boxes of extended sources; where it
    /// is missing, not positive or not finite the size is measured on the image.
    pub size: Option<String>,
    /// Class of rows without one (no class column, or an empty value); unset: the first of the
    /// detector's classes.
    pub default_class: Option<String>,
    /// HDU of a FITS catalogue (an index or an EXTNAME); empty: the first extension. Ignored
    /// for CSV and Parquet.
    pub hdu: String,
}

impl Validate for CatalogColumns {
    /// Given column names must not be empty; keys relative to the section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let named = [
            ("x", &self.x),
            ("y", &self.y),
            ("ra", &self.ra),
            ("dec", &self.dec),
            ("class", &self.class),
            ("size", &self.size),
            ("default_class", &self.default_class),
        ];
        for (key, value) in named {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError::at(
                    key,
                    "must name a column (leave it out to look the column up by its usual names)",
                ));
            }
        }
        Ok(())
    }
}

impl CatalogColumns {
    /// The class of rows without one: `default_class`, else the first of `classes`.
    pub fn default_class_or<'a>(&'a self, classes: &'a [String]) -> &'a str {
        self.default_class
            .as_deref()
            .or(classes.first().map(String::as_str))
            .unwrap_or("")
    }
}

/// One source of a user's catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserSource {
    /// Row of the catalogue, 0-based.
    pub row: usize,
    /// Centre, continuous 0-based pixels (the crate's convention: FITS x − 0.5).
    pub x: f64,
    /// Centre, continuous 0-based pixels.
    pub y: f64,
    /// Index in the detector's class list.
    pub class: usize,
    /// Intrinsic half-light radius along the major axis, pixels (see [`CatalogColumns::size`]).
    pub size: Option<f64>,
}

fn input(message: String) -> DetectError {
    DetectError::Input(message)
}

fn column_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The column of `df` named `name`: exactly, else ignoring case.
fn lookup(df: &DataFrame, name: &str) -> Option<String> {
    let names = column_names(df);
    names
        .iter()
        .find(|n| n.as_str() == name)
        .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(name)))
        .cloned()
}

/// The column for key `key`: the one given (an error when the file lacks it), else the first
/// of `candidates` the file has, else None.
fn resolve(
    path: &Path,
    df: &DataFrame,
    key: &str,
    given: Option<&str>,
    candidates: &[&str],
) -> Result<Option<String>> {
    match given {
        Some(name) => lookup(df, name).map(Some).ok_or_else(|| {
            input(format!(
                "{}: no column `{name}` (set as {COLUMNS_OPTION}.{key}); the file has: {}",
                path.display(),
                column_names(df).join(", ")
            ))
        }),
        None => Ok(candidates.iter().find_map(|c| lookup(df, c))),
    }
}

/// Where the positions come from.
enum Positions {
    Pixel(String, String),
    Sky(String, String),
}

fn positions(path: &Path, df: &DataFrame, cols: &CatalogColumns) -> Result<Positions> {
    let sky_given =
        (cols.ra.is_some() || cols.dec.is_some()) && cols.x.is_none() && cols.y.is_none();
    let pair = |kx: &str, gx: &Option<String>, nx: &[&str], ky: &str, gy: &Option<String>, ny| {
        Ok::<_, DetectError>((
            resolve(path, df, kx, gx.as_deref(), nx)?,
            resolve(path, df, ky, gy.as_deref(), ny)?,
        ))
    };
    let half = |found: &str, missing: &str, names: &[&str]| {
        input(format!(
            "{}: column `{found}` but no {missing} column (looked for {}); set {COLUMNS_OPTION}.{missing}",
            path.display(),
            names.join(", ")
        ))
    };
    let pixel = if sky_given {
        (None, None)
    } else {
        pair("x", &cols.x, X_NAMES, "y", &cols.y, Y_NAMES)?
    };
    let pixel_given = cols.x.is_some() || cols.y.is_some();
    let sky = if pixel_given {
        (None, None)
    } else {
        pair("ra", &cols.ra, RA_NAMES, "dec", &cols.dec, DEC_NAMES)?
    };
    match (pixel, sky) {
        ((Some(x), Some(y)), _) => Ok(Positions::Pixel(x, y)),
        (_, (Some(ra), Some(dec))) => Ok(Positions::Sky(ra, dec)),
        ((Some(x), None), _) => Err(half(&x, "y", Y_NAMES)),
        ((None, Some(y)), _) => Err(half(&y, "x", X_NAMES)),
        (_, (Some(ra), None)) => Err(half(&ra, "dec", DEC_NAMES)),
        (_, (None, Some(dec))) => Err(half(&dec, "ra", RA_NAMES)),
        _ => Err(input(format!(
            "{}: no x/y or RA/Dec columns (looked for {}; {}; {}; {}; the file has: {}); set \
             {COLUMNS_OPTION}.x/{COLUMNS_OPTION}.y or {COLUMNS_OPTION}.ra/{COLUMNS_OPTION}.dec",
            path.display(),
            X_NAMES.join(", "),
            Y_NAMES.join(", "),
            RA_NAMES.join(", "),
            DEC_NAMES.join(", "),
            column_names(df).join(", ")
        ))),
    }
}

/// The class index of each row: names (any case) or indices of `classes`; empty values and a
/// missing column give `default`.
fn class_indices(
    path: &Path,
    df: &DataFrame,
    column: Option<&str>,
    classes: &[String],
    default: usize,
) -> Result<Vec<usize>> {
    let n = df.height();
    let Some(name) = column else {
        return Ok(vec![default; n]);
    };
    let listed = || classes.join(", ");
    let by_index = |v: f64, row: usize| -> Result<usize> {
        if v.fract() == 0.0 && v >= 0.0 && (v as usize) < classes.len() {
            Ok(v as usize)
        } else {
            Err(input(format!(
                "{}: row {}: class {v} in column `{name}` is not an index of the classes ({}: 0 to {})",
                path.display(),
                row + 1,
                listed(),
                classes.len() - 1
            )))
        }
    };
    let col = df.column(name).expect("resolved column");
    if let Ok(names) = col.str() {
        return names
            .iter()
            .enumerate()
            .map(|(row, v)| {
                let v = v.unwrap_or("").trim();
                if v.is_empty() {
                    return Ok(default);
                }
                if let Some(i) = classes.iter().position(|c| c.eq_ignore_ascii_case(v)) {
                    return Ok(i);
                }
                match v.parse::<f64>() {
                    Ok(id) => by_index(id, row),
                    Err(_) => Err(input(format!(
                        "{}: row {}: class `{v}` in column `{name}` is not one of the classes ({})",
                        path.display(),
                        row + 1,
                        listed()
                    ))),
                }
            })
            .collect();
    }
    column_f64(path, df, &[name])?
        .into_iter()
        .enumerate()
        .map(|(row, v)| {
            if v.is_nan() {
                Ok(default)
            } else {
                by_index(v, row)
            }
        })
        .collect()
}

/// Read a user's catalogue of the sources in an image: FITS binary or ASCII table (HDU
/// `cols.hdu`), CSV (`.csv`, with a header row) or Parquet.
///
/// Positions come from pixel columns (FITS convention) or from RA/Dec in degrees, converted
/// with the WCS of `header_of_image` (an error when it has none). The class of each row is a
/// name or an index of `classes`; rows without one get `default_class` (which must be one of
/// `classes`). Rows whose position is not finite (or whose RA/Dec the WCS cannot place) are
/// skipped, with a warning saying how many. Sources off the image are kept here; see
/// [`labelled_truth`].
pub fn read_user_catalog(
    path: &Path,
    header_of_image: &Header,
    cols: &CatalogColumns,
    classes: &[String],
    default_class: &str,
) -> Result<Vec<UserSource>> {
    cols.validate()
        .map_err(|e| DetectError::InvalidConfig(e.within(COLUMNS_OPTION)))?;
    if classes.is_empty() {
        return Err(DetectError::InvalidArgument("no classes given".into()));
    }
    let default = classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(default_class))
        .ok_or_else(|| {
            input(format!(
                "the default class `{default_class}` is not one of the classes ({}); set \
                 {COLUMNS_OPTION}.default_class",
                classes.join(", ")
            ))
        })?;
    let df = read_table(path, &cols.hdu)?;
    let pos = positions(path, &df, cols)?;
    let class_col = resolve(path, &df, "class", cols.class.as_deref(), CLASS_NAMES)?;
    let size_col = resolve(path, &df, "size", cols.size.as_deref(), SIZE_NAMES)?;
    let class = class_indices(path, &df, class_col.as_deref(), classes, default)?;
    let size = match &size_col {
        Some(c) => column_f64(path, &df, &[c.as_str()])?,
        None => vec![f64::NAN; df.height()],
    };
    // FITS 1-based pixel positions.
    let (xs, ys): (Vec<f64>, Vec<f64>) = match &pos {
        Positions::Pixel(x, y) => (
            column_f64(path, &df, &[x.as_str()])?,
            column_f64(path, &df, &[y.as_str()])?,
        ),
        Positions::Sky(ra, dec) => {
            let wcs = Wcs::from_header(header_of_image).map_err(|e| {
                input(format!(
                    "{}: positions are RA/Dec (columns `{ra}`, `{dec}`) but the image header has \
                     no usable WCS ({e}); give pixel columns ({COLUMNS_OPTION}.x/{COLUMNS_OPTION}.y) \
                     or an image with a WCS",
                    path.display()
                ))
            })?;
            let ra = column_f64(path, &df, &[ra.as_str()])?;
            let dec = column_f64(path, &df, &[dec.as_str()])?;
            ra.iter()
                .zip(&dec)
                .map(|(&a, &d)| {
                    (a.is_finite() && d.is_finite())
                        .then(|| wcs.world_to_pixel(a, d))
                        .flatten()
                        .unwrap_or((f64::NAN, f64::NAN))
                })
                .unzip()
        }
    };
    let sources: Vec<UserSource> = (0..df.height())
        .filter(|&i| xs[i].is_finite() && ys[i].is_finite())
        .map(|i| UserSource {
            row: i,
            x: from_fits(xs[i]),
            y: from_fits(ys[i]),
            class: class[i],
            size: (size[i].is_finite() && size[i] > 0.0).then_some(size[i]),
        })
        .collect();
    let skipped = df.height() - sources.len();
    if skipped > 0 {
        tracing::warn!(
            "{}: {skipped} of {} rows skipped: their position is not finite{}",
            path.display(),
            df.height(),
            match pos {
                Positions::Sky(..) => " or the WCS cannot place it",
                Positions::Pixel(..) => "",
            }
        );
    }
    Ok(sources)
}

/// 1-based inclusive box of the pixels whose centres lie within `half` of the FITS position
/// `(x, y)`, clipped to a `w×h` image (the simulator's rule, so boxes match its truth).
fn fits_box(x: f64, y: f64, half: f64, w: usize, h: usize) -> [i64; 4] {
    [
        ((x - half).ceil() as i64).max(1),
        ((y - half).ceil() as i64).max(1),
        ((x + half).floor() as i64).min(w as i64),
        ((y + half).floor() as i64).min(h as i64),
    ]
}

/// Eigen-decomposition of the symmetric 2×2 matrix `[[a, b], [b, c]]`: the eigenvalues
/// (larger first) and the angle of the first eigenvector.
fn eigen2(a: f64, b: f64, c: f64) -> (f64, f64, f64) {
    let mean = 0.5 * (a + c);
    let r = (0.25 * (a - c) * (a - c) + b * b).sqrt();
    (mean + r, mean - r, 0.5 * (2.0 * b).atan2(a - c))
}

/// The background-subtracted image at continuous 0-based `(u, v)`, interpolated bilinearly
/// between pixel centres; None off the image or next to a pixel that is not finite.
fn interpolated(image: ArrayView2<f32>, bkg: &Background, u: f64, v: f64) -> Option<f64> {
    let (h, w) = image.dim();
    let (fx, fy) = (u - 0.5, v - 0.5);
    let (c0, r0) = (fx.floor(), fy.floor());
    if c0 < 0.0 || r0 < 0.0 || c0 + 1.0 >= w as f64 || r0 + 1.0 >= h as f64 {
        return None;
    }
    let (tx, ty) = (fx - c0, fy - r0);
    let (c0, r0) = (c0 as usize, r0 as usize);
    let at = |r: usize, c: usize| (image[[r, c]] - bkg.level[[r, c]]) as f64;
    let v = (1.0 - ty) * ((1.0 - tx) * at(r0, c0) + tx * at(r0, c0 + 1))
        + ty * ((1.0 - tx) * at(r0 + 1, c0) + tx * at(r0 + 1, c0 + 1));
    v.is_finite().then_some(v)
}

/// The background-subtracted value of pixel `(r, c)` made symmetric about the source centre
/// `(x, y)`: the mean of the pixel and its mirror image through the centre, or the smaller
/// of the two where they differ by more than the noise allows (3σ). Stars and galaxies are
/// point-symmetric and their neighbours, cosmic rays and bleed trails mostly are not, so this
/// takes the neighbours' light out of a source's measurement (the templates of the SDSS
/// deblender). A value more than 5σ below the background is a dead pixel, not light: the other
/// one is taken. None where neither is usable or the mirror is off the image.
fn symmetric(
    image: ArrayView2<f32>,
    bkg: &Background,
    (x, y): (f64, f64),
    r: usize,
    c: usize,
) -> Option<f64> {
    let rms = bkg.rms[[r, c]] as f64;
    // Far below the sky is no light at all but a dead pixel or column.
    let usable = |v: f64| v.is_finite() && v > -5.0 * rms;
    let a = (image[[r, c]] - bkg.level[[r, c]]) as f64;
    let b = interpolated(
        image,
        bkg,
        2.0 * x - (c as f64 + 0.5),
        2.0 * y - (r as f64 + 0.5),
    )?;
    match (usable(a), usable(b)) {
        (true, true) if (a - b).abs() > 3.0 * std::f64::consts::SQRT_2 * rms => Some(a.min(b)),
        (true, true) => Some(0.5 * (a + b)),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => None,
    }
}

/// What [`measure_shape`] finds.
struct Shape {
    /// Covariance `[xx, xy, yy]` (pixels²) of the Gaussian matched to the source; None when
    /// the weighted flux is not positive (a source lost in the noise).
    cov: Option<[f64; 3]>,
    /// Matched-filter S/N with that Gaussian as the filter.
    snr: f64,
}

/// Shape and S/N of the source at continuous 0-based `(x, y)` from adaptive second moments
/// (Bernstein & Jarvis 2002) of the [`symmetric`] background-subtracted image: the weight, an
/// elliptical Gaussian, is iterated to twice the weighted moments, which for a Gaussian source
/// converges to the source's own covariance; the weight confines the measurement to the
/// source. A local pedestal (the median of the image between 4 and 6 weight σ: the background map's error
/// there, faint neighbours' light) is subtracted first: left in, it makes the weight grow
/// without end around a faint source. Axis variances are kept within `[s_min², s_max²]`.
///
/// The S/N is that of the flux estimated with the final weight as a matched filter,
/// `Σ w·v / sqrt(Σ w²·(rms² + v/gain))` (the source's Poisson noise when `gain`, electrons per
/// ADU, is known): for a Gaussian source, the optimal S/N the simulator's truth catalogue
/// gives.
fn measure_shape(
    image: ArrayView2<f32>,
    bkg: &Background,
    (x, y): (f64, f64),
    s_min: f64,
    s_max: f64,
    gain: Option<f64>,
) -> Shape {
    let (h, w) = image.dim();
    let s0 = s_min.max(1.0);
    let mut cov = [s0 * s0, 0.0, s0 * s0];
    let mut annulus: Vec<f32> = Vec::new();
    let mut snr = f64::NAN;
    for _ in 0..50 {
        let det = cov[0] * cov[2] - cov[1] * cov[1];
        let inv = [cov[2] / det, -cov[1] / det, cov[0] / det];
        let reach = 6.0 * eigen2(cov[0], cov[1], cov[2]).0.sqrt();
        let lo = |c: f64| (c - reach).floor().max(0.0) as usize;
        let (r0, r1) = (lo(y), ((y + reach).ceil().max(0.0) as usize).min(h));
        let (c0, c1) = (lo(x), ((x + reach).ceil().max(0.0) as usize).min(w));
        let q_at = |r: usize, c: usize| {
            let (dx, dy) = (c as f64 + 0.5 - x, r as f64 + 0.5 - y);
            (
                dx,
                dy,
                dx * dx * inv[0] + 2.0 * dx * dy * inv[1] + dy * dy * inv[2],
            )
        };
        annulus.clear();
        for r in r0..r1 {
            for c in c0..c1 {
                let v = image[[r, c]] - bkg.level[[r, c]];
                if (16.0..36.0).contains(&q_at(r, c).2) && v.is_finite() {
                    annulus.push(v);
                }
            }
        }
        let pedestal = if annulus.len() >= 8 {
            let mid = annulus.len() / 2;
            *annulus.select_nth_unstable_by(mid, f32::total_cmp).1 as f64
        } else {
            0.0
        };
        let (mut s, mut sxx, mut sxy, mut syy, mut var) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for r in r0..r1 {
            for c in c0..c1 {
                let (dx, dy, q) = q_at(r, c);
                if q > 16.0 {
                    continue;
                }
                let Some(v) = symmetric(image, bkg, (x, y), r, c) else {
                    continue;
                };
                let wt = (-0.5 * q).exp();
                let wv = wt * (v - pedestal);
                s += wv;
                sxx += wv * dx * dx;
                sxy += wv * dx * dy;
                syy += wv * dy * dy;
                let poisson = gain.map_or(0.0, |g| (v - pedestal).max(0.0) / g);
                var += wt * wt * ((bkg.rms[[r, c]] as f64).powi(2) + poisson);
            }
        }
        snr = s / var.sqrt();
        if s.is_nan() || s <= 0.0 {
            return Shape { cov: None, snr };
        }
        let (l1, l2, angle) = eigen2(2.0 * sxx / s, 2.0 * sxy / s, 2.0 * syy / s);
        let clamp = |l: f64| {
            if l.is_finite() {
                l.clamp(s_min * s_min, s_max * s_max)
            } else {
                s_min * s_min
            }
        };
        let (l1, l2) = (clamp(l1), clamp(l2));
        let (cs, sn) = (angle.cos(), angle.sin());
        let next = [
            l1 * cs * cs + l2 * sn * sn,
            (l1 - l2) * cs * sn,
            l1 * sn * sn + l2 * cs * cs,
        ];
        let change = (0..3).map(|k| (next[k] - cov[k]).abs()).fold(0.0, f64::max);
        cov = next;
        if change < 1e-4 * (cov[0] + cov[2]) {
            break;
        }
    }
    Shape {
        cov: Some(cov),
        snr,
    }
}

/// Box half-size (pixels) and S/N of a source of class `kind`. Half-sizes: `1.5·FWHM` for
/// point sources (stars, saturated stars); for the others `3·sqrt(r_half² + (FWHM/2)²)` with
/// `r_half` the given size, else `3·r` with `r = sqrt(2 ln 2)·σ` the half-light radius of the
/// Gaussian matched by [`measure_shape`] along the major axis (the same number for a Gaussian
/// galaxy seen through a Gaussian PSF), within `[1.5, 12]·FWHM`.
fn box_and_snr(
    image: ArrayView2<f32>,
    bkg: &Background,
    source: &UserSource,
    kind: Option<SourceClass>,
    fwhm: f64,
    gain: Option<f64>,
) -> (f64, f64) {
    let star = STAR_HALF_FWHM * fwhm;
    let max = MAX_HALF_FWHM * fwhm;
    // 3·r_half = 3·(GAUSS_FWHM / 2)·σ: σ from that of half the star box to that of the largest.
    let per_sigma = 1.5 * GAUSS_FWHM;
    let (s_min, s_max) = (0.5 * star / per_sigma, max / per_sigma);
    let shape = measure_shape(image, bkg, (source.x, source.y), s_min, s_max, gain);
    let half = if matches!(kind, Some(SourceClass::Star | SourceClass::SaturatedStar)) {
        star
    } else if let Some(r) = source.size {
        3.0 * (r * r + 0.25 * fwhm * fwhm).sqrt()
    } else {
        match shape.cov {
            Some(c) => (per_sigma * eigen2(c[0], c[1], c[2]).0.sqrt()).clamp(star, max),
            None => star,
        }
    };
    (half, shape.snr)
}

/// Truth objects for training and evaluation from the sources of a user's catalogue on its
/// image, in the order of `sources`, those centred off the image left out.
///
/// - Boxes follow the simulator's rule (see [`SkyCatalog::bbox_xmin`]): half-size
///   `1.5·FWHM` for stars and saturated stars; `3·sqrt(r_half² + (FWHM/2)²)` for every other
///   class, with `r_half` the catalogue's size when it has one, else measured on the image by
///   adaptive second moments and kept within `[1.5, 12]·FWHM`. A box holds the pixels whose
///   centres are inside, clipped to the image.
/// - Both are measured on the image made symmetric about each source (a pixel and its mirror
///   image through the centre averaged, the fainter taken where they differ by more than the
///   noise allows), which takes most of the neighbours' light, cosmic rays and bleed trails
///   out; the background is estimated once over the image ([`estimate_background`], default
///   settings) and a local pedestal around each source subtracted.
/// - S/N: that of the flux estimated with the Gaussian matched by the adaptive moments as the
///   filter, `Σ w·v / sqrt(Σ w²·(rms² + v/gain))`, with the source's Poisson noise when
///   `gain` (electrons per ADU) is given: an estimate of the optimal S/N that the simulator's
///   truth catalogues give (on simulated fields, within a factor 2 for 95 % of the sources
///   above S/N 10, median ratio about 0.9), so that scores per S/N bin mean the same on both.
/// - Whether an object is an artefact and how it is matched follow its class name
///   ([`crate::classes`]).
///
/// Fails for a FWHM that is not positive, or an image with no valid pixel.
///
/// [`SkyCatalog::bbox_xmin`]: deepsky_sim::sky::SkyCatalog::bbox_xmin
pub fn labelled_truth(
    image: ArrayView2<f32>,
    sources: &[UserSource],
    psf_fwhm_pixels: f64,
    classes: &[String],
    gain: Option<f64>,
) -> Result<Vec<TruthObject>> {
    let fwhm = psf_fwhm_pixels;
    if !(fwhm.is_finite() && fwhm > 0.0) {
        return Err(DetectError::InvalidArgument(format!(
            "PSF FWHM {fwhm} pixels: must be positive and finite"
        )));
    }
    let bkg = estimate_background(image, None, &BackgroundConfig::default())?;
    let (h, w) = image.dim();
    let inside: Vec<&UserSource> = sources
        .iter()
        .filter(|s| (0.0..w as f64).contains(&s.x) && (0.0..h as f64).contains(&s.y))
        .collect();
    Ok(inside
        .par_iter()
        .map(|s| {
            let kind = classes.get(s.class).and_then(|n| source_class(n));
            let (half, snr) = box_and_snr(image, &bkg, s, kind, fwhm, gain);
            let (xf, yf) = (to_fits(s.x), to_fits(s.y));
            let bbox = fits_box(xf, yf, half, w, h);
            TruthObject::from_catalog((xf, yf), bbox, s.class, kind, snr)
        })
        .collect())
}

/// An image and the truth objects of a user's catalogue of it, from files: the image is HDU
/// `hdu` of `image_path` ([`read_image`]), the catalogue read with [`read_user_catalog`]
/// (rows without a class get [`CatalogColumns::default_class_or`]), the PSF FWHM
/// `psf_fwhm_pixels` or, when None, the header's or the image's ([`crate::psf::resolve_fwhm`]),
/// the gain the header's `GAIN` (as the measurement step takes it), and the truth made by
/// [`labelled_truth`].
pub fn labelled_truth_from_files(
    image_path: &Path,
    hdu: &str,
    catalog_path: &Path,
    cols: &CatalogColumns,
    classes: &[String],
    psf_fwhm_pixels: Option<f64>,
) -> Result<(Array2<f32>, Header, Vec<TruthObject>)> {
    let (image, header) = read_image(image_path, hdu)?;
    let default_class = cols.default_class_or(classes);
    let sources = read_user_catalog(catalog_path, &header, cols, classes, default_class)?;
    let (fwhm, _) = crate::psf::resolve_fwhm(psf_fwhm_pixels, &header, image.view())?;
    let gain = crate::measure::MeasureConfig::default().effective_gain(&header);
    let truth = labelled_truth(image.view(), &sources, fwhm, classes, gain)?;
    Ok((image, header, truth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_hold_the_pixels_whose_centres_are_inside() {
        // Centre on FITS 10.0: half 1.5 takes pixels 9..=11; half 1.49 too; 2.0 takes 8..=12.
        assert_eq!(fits_box(10.0, 10.0, 1.5, 64, 64), [9, 9, 11, 11]);
        assert_eq!(fits_box(10.0, 10.2, 2.0, 64, 64), [8, 9, 12, 12]);
        assert_eq!(fits_box(1.2, 63.9, 3.0, 64, 64), [1, 61, 4, 64]);
    }

    #[test]
    fn adaptive_moments_recover_an_elliptical_gaussian_and_its_snr() {
        let (h, w) = (64, 64);
        let (sx, sy) = (3.0f64, 1.5f64);
        let img = Array2::from_shape_fn((h, w), |(r, c)| {
            let (dx, dy) = (c as f64 + 0.5 - 30.3, r as f64 + 0.5 - 33.6);
            (10.0 + 500.0 * (-0.5 * (dx * dx / (sx * sx) + dy * dy / (sy * sy))).exp()) as f32
        });
        let bkg = Background::constant((h, w), 10.0, 1.0);
        let shape = measure_shape(img.view(), &bkg, (30.3, 33.6), 0.5, 20.0, None);
        let cov = shape.cov.unwrap();
        assert!((cov[0] / 9.0 - 1.0).abs() < 0.05, "{cov:?}");
        assert!((cov[2] / 2.25 - 1.0).abs() < 0.05, "{cov:?}");
        assert!(cov[1].abs() < 0.01, "{cov:?}");
        // Optimal S/N of a Gaussian of peak A in unit noise: A·sqrt(π·σx·σy).
        let optimal = 500.0 * (std::f64::consts::PI * sx * sy).sqrt();
        assert!(
            (shape.snr / optimal - 1.0).abs() < 0.05,
            "{} vs {optimal}",
            shape.snr
        );
        let flat = Array2::from_elem((h, w), 10.0f32);
        assert!(
            measure_shape(flat.view(), &bkg, (30.0, 30.0), 0.5, 20.0, None)
                .cov
                .is_none()
        );
    }
}
