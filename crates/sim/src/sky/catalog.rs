//! The truth catalogue of a sky field: one row per source or artefact, written as a table.

use serde::{Deserialize, Serialize};

use super::wcs::TanWcs;
use crate::output::{Column, ColumnData};

/// Kind of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceClass {
    /// An unsaturated point source.
    Star,
    /// A Sérsic galaxy.
    Galaxy,
    /// A cosmic-ray hit.
    CosmicRay,
    /// A point source whose noiseless peak pixel plus sky exceeds the saturation level; its
    /// charge bleeds along its columns.
    SaturatedStar,
    /// A dead or hot partial column.
    BadColumn,
}

impl SourceClass {
    /// All classes, in `class_id` order.
    pub const ALL: [SourceClass; 5] = [
        SourceClass::Star,
        SourceClass::Galaxy,
        SourceClass::CosmicRay,
        SourceClass::SaturatedStar,
        SourceClass::BadColumn,
    ];

    /// Name in the catalogue's `class` column.
    pub fn name(self) -> &'static str {
        match self {
            SourceClass::Star => "star",
            SourceClass::Galaxy => "galaxy",
            SourceClass::CosmicRay => "cosmic_ray",
            SourceClass::SaturatedStar => "saturated_star",
            SourceClass::BadColumn => "bad_column",
        }
    }

    /// Number in the catalogue's `class_id` column (0–4, the order of [`SourceClass::ALL`]).
    pub fn id(self) -> i64 {
        self as i64
    }
}

/// Truth catalogue of a simulated field, one `Vec` per column, one row per source or artefact:
/// random stars, random galaxies, saturated stars, injected sources, cosmic rays, bad columns,
/// in that order. `NaN` marks values that do not apply to a class.
#[derive(Debug, Clone, Default)]
pub struct SkyCatalog {
    /// Row number, 1-based.
    pub id: Vec<i64>,
    /// Class of the entry.
    pub class: Vec<SourceClass>,
    /// Centre x, FITS 1-based pixels (centre of the first pixel = 1.0; array column = x - 1).
    /// Cosmic rays: track midpoint. Bad columns: the column.
    pub x: Vec<f64>,
    /// Centre y, FITS 1-based pixels (array row = y - 1). Bad columns: middle of the bad span.
    pub y: Vec<f64>,
    /// Right ascension of (x, y), degrees (ICRS).
    pub ra: Vec<f64>,
    /// Declination of (x, y), degrees (ICRS).
    pub dec: Vec<f64>,
    /// Total noiseless flux, ADU, including light falling off the image (cosmic rays:
    /// deposited charge / gain; bad columns: NaN).
    pub flux: Vec<f64>,
    /// The part of `flux` that lands on the image, ADU.
    pub flux_in_image: Vec<f64>,
    /// Magnitude, `zeropoint - 2.5 log10(flux / exposure_time)` (NaN for artefacts).
    pub mag: Vec<f64>,
    /// Optimal (matched-filter) signal-to-noise ratio of the noiseless source alone:
    /// `snr = sqrt(Σ_i s_i² / V_i)` with `V_i = (s_i + b)/g + (σ_rn/g)²`, where the sum runs
    /// over the on-image pixels `i` of the source's stamp with `s_i > 0`, `s_i` is the source's
    /// noiseless expected value in pixel `i` (ADU, before saturation and bleeding), `b =
    /// sky_level/gain` the sky in ADU, `g` the gain and `σ_rn` the read noise in electrons. This
    /// is the S/N of the flux estimated by fitting the known profile on an otherwise empty sky;
    /// it ignores neighbours and does not depend on `noise.enabled`. NaN for bad columns.
    pub snr: Vec<f64>,
    /// Whether the noiseless peak pixel plus the sky exceeds the saturation level.
    pub saturated: Vec<bool>,
    /// Whether the entry comes from [`SkyConfig::injections`](super::SkyConfig::injections).
    pub injected: Vec<bool>,
    /// Bounding box, smallest x, 1-based inclusive pixel index, clipped to the image. Boxes
    /// are centred on (x, y) with half-size `3·sqrt(r_half² + (FWHM/2)²)` for galaxies and
    /// `1.5·FWHM` for stars, and hold the pixels whose centres are inside. Saturated stars'
    /// boxes are extended along y over their bleed trails; cosmic rays' and bad columns' boxes
    /// are the pixels they touch. (For a source centred off the image the box may be empty,
    /// `xmin > xmax`.)
    pub bbox_xmin: Vec<i64>,
    /// Bounding box, smallest y (see `bbox_xmin`).
    pub bbox_ymin: Vec<i64>,
    /// Bounding box, largest x (see `bbox_xmin`).
    pub bbox_xmax: Vec<i64>,
    /// Bounding box, largest y (see `bbox_xmin`).
    pub bbox_ymax: Vec<i64>,
    /// Sérsic index (galaxies only).
    pub sersic_n: Vec<f64>,
    /// Half-light semi-major axis before PSF convolution, pixels (galaxies only).
    pub r_half: Vec<f64>,
    /// Ellipticity `1 - b/a` (galaxies only).
    pub ellipticity: Vec<f64>,
    /// Position angle, degrees counter-clockwise from +x towards +y, in [0, 180): major axis
    /// of galaxies, track direction of cosmic rays (NaN otherwise).
    pub position_angle: Vec<f64>,
}

impl SkyCatalog {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Number of rows of class `class`.
    pub fn count(&self, class: SourceClass) -> usize {
        self.class.iter().filter(|&&c| c == class).count()
    }

    /// The columns as (name, unit, description, data), in table order, for writers.
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let b = |v: &Vec<bool>| I64(v.iter().map(|&x| x as i64).collect());
        vec![
            ("id", "", "row number, 1-based", I64(self.id.clone())),
            (
                "class",
                "",
                "star, galaxy, cosmic_ray, saturated_star or bad_column",
                Str(self.class.iter().map(|c| c.name().to_string()).collect()),
            ),
            (
                "class_id",
                "",
                "0 star, 1 galaxy, 2 cosmic_ray, 3 saturated_star, 4 bad_column",
                I64(self.class.iter().map(|c| c.id()).collect()),
            ),
            (
                "x",
                "pixel",
                "centre x, FITS 1-based (first pixel centre = 1)",
                F64(self.x.clone()),
            ),
            (
                "y",
                "pixel",
                "centre y, FITS 1-based (first pixel centre = 1)",
                F64(self.y.clone()),
            ),
            (
                "ra",
                "deg",
                "right ascension of (x, y), ICRS",
                F64(self.ra.clone()),
            ),
            (
                "dec",
                "deg",
                "declination of (x, y), ICRS",
                F64(self.dec.clone()),
            ),
            (
                "flux",
                "adu",
                "total noiseless flux, on and off the image",
                F64(self.flux.clone()),
            ),
            (
                "flux_in_image",
                "adu",
                "noiseless flux landing on the image",
                F64(self.flux_in_image.clone()),
            ),
            (
                "mag",
                "mag",
                "zeropoint - 2.5 log10(flux / exptime)",
                F64(self.mag.clone()),
            ),
            (
                "snr",
                "",
                "matched-filter S/N: sqrt(sum s^2/((s+sky)/gain+(rdnoise/gain)^2))",
                F64(self.snr.clone()),
            ),
            (
                "saturated",
                "",
                "1 if noiseless peak + sky exceeds saturation",
                b(&self.saturated),
            ),
            (
                "injected",
                "",
                "1 if placed by the injection list",
                b(&self.injected),
            ),
            (
                "bbox_xmin",
                "pixel",
                "bounding box min x, 1-based inclusive",
                I64(self.bbox_xmin.clone()),
            ),
            (
                "bbox_ymin",
                "pixel",
                "bounding box min y, 1-based inclusive",
                I64(self.bbox_ymin.clone()),
            ),
            (
                "bbox_xmax",
                "pixel",
                "bounding box max x, 1-based inclusive",
                I64(self.bbox_xmax.clone()),
            ),
            (
                "bbox_ymax",
                "pixel",
                "bounding box max y, 1-based inclusive",
                I64(self.bbox_ymax.clone()),
            ),
            (
                "sersic_n",
                "",
                "Sersic index (galaxies)",
                F64(self.sersic_n.clone()),
            ),
            (
                "r_half",
                "pixel",
                "half-light semi-major axis before PSF (galaxies)",
                F64(self.r_half.clone()),
            ),
            (
                "ellipticity",
                "",
                "1 - b/a (galaxies)",
                F64(self.ellipticity.clone()),
            ),
            (
                "position_angle",
                "deg",
                "major axis or cosmic-ray track, from +x towards +y",
                F64(self.position_angle.clone()),
            ),
        ]
    }

    pub(super) fn push(&mut self, e: Entry, wcs: &TanWcs) {
        let (x, y) = (e.x + 1.0, e.y + 1.0);
        let (ra, dec) = wcs.pixel_to_world(x, y);
        self.id.push(self.id.len() as i64 + 1);
        self.class.push(e.class);
        self.x.push(x);
        self.y.push(y);
        self.ra.push(ra);
        self.dec.push(dec);
        self.flux.push(e.flux);
        self.flux_in_image.push(e.flux_in_image);
        self.mag.push(e.mag);
        self.snr.push(e.snr);
        self.saturated.push(e.saturated);
        self.injected.push(e.injected);
        self.bbox_xmin.push(e.bbox[0]);
        self.bbox_ymin.push(e.bbox[1]);
        self.bbox_xmax.push(e.bbox[2]);
        self.bbox_ymax.push(e.bbox[3]);
        self.sersic_n.push(e.sersic_n);
        self.r_half.push(e.r_half);
        self.ellipticity.push(e.ellipticity);
        self.position_angle.push(e.position_angle);
    }
}

/// One catalogue row while it is being built; `x, y` are 0-based.
pub(super) struct Entry {
    pub(super) class: SourceClass,
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) flux: f64,
    pub(super) flux_in_image: f64,
    pub(super) mag: f64,
    pub(super) snr: f64,
    pub(super) saturated: bool,
    pub(super) injected: bool,
    pub(super) bbox: [i64; 4],
    pub(super) sersic_n: f64,
    pub(super) r_half: f64,
    pub(super) ellipticity: f64,
    pub(super) position_angle: f64,
}

/// 1-based inclusive box of the pixels whose centres lie within `half` of 0-based `(x, y)`,
/// clipped to a `w×h` image.
pub(super) fn bbox_around(x: f64, y: f64, half: f64, w: usize, h: usize) -> [i64; 4] {
    let (x1, y1) = (x + 1.0, y + 1.0);
    [
        ((x1 - half).ceil() as i64).max(1),
        ((y1 - half).ceil() as i64).max(1),
        ((x1 + half).floor() as i64).min(w as i64),
        ((y1 + half).floor() as i64).min(h as i64),
    ]
}
