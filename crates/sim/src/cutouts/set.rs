//! A simulated cutout set ([`CutoutSet`]): stamps, labels and the truth of each stamp.

use ndarray::Array3;

use super::config::CutoutConfig;
use crate::output::{card, seed_card, Card, CardValue, Column, ColumnData};
use crate::sky::config::imaging_cards;

/// Label of a stamp with one ordinary galaxy.
pub const LABEL_NORMAL: i32 = 0;
/// Label of a strong gravitational lens.
pub const LABEL_LENS: i32 = 1;
/// Label of a close galaxy pair (merger or blend).
pub const LABEL_MERGER: i32 = 2;
/// Label of a galaxy stamp with a detector or sky artefact.
pub const LABEL_ARTEFACT: i32 = 3;

/// Names of the labels, indexed by label: `["normal", "lens", "merger", "artefact"]`.
pub fn label_names() -> [&'static str; 4] {
    ["normal", "lens", "merger", "artefact"]
}

/// Per-stamp truth parameters, one `Vec` per column; NaN where not applicable.
#[derive(Debug, Clone, Default)]
pub struct CutoutParams {
    /// Total flux of the primary galaxy (the lens galaxy for lenses), ADU.
    pub flux: Vec<f64>,
    /// Magnitude of the primary galaxy.
    pub mag: Vec<f64>,
    /// Sérsic index of the primary galaxy.
    pub sersic_n: Vec<f64>,
    /// Half-light semi-major axis of the primary galaxy before PSF convolution, pixels.
    pub r_half: Vec<f64>,
    /// Ellipticity `1 - b/a` of the primary galaxy.
    pub ellipticity: Vec<f64>,
    /// Position angle of the primary's major axis, degrees from +x towards +y.
    pub position_angle: Vec<f64>,
    /// x of the primary's centre minus the stamp centre, pixels.
    pub x_offset: Vec<f64>,
    /// y of the primary's centre minus the stamp centre, pixels.
    pub y_offset: Vec<f64>,
    /// Noiseless astronomical light inside the stamp (primary, lensed source, companion;
    /// no artefacts), ADU.
    pub stamp_flux: Vec<f64>,
    /// Matched-filter S/N of the noiseless astronomical light in the stamp, defined as for
    /// [`crate::sky::SkyCatalog::snr`]: `sqrt(Σ s_i² / ((s_i + sky)/gain + (read_noise/gain)²))`.
    pub snr: Vec<f64>,
    /// Einstein radius, pixels (lenses only).
    pub einstein_radius: Vec<f64>,
    /// Total magnification of the lensed source (lenses only).
    pub magnification: Vec<f64>,
    /// Unlensed magnitude of the lensed source (lenses only).
    pub source_mag: Vec<f64>,
    /// Distance of the source from the lens axis in the source plane, pixels (lenses only).
    pub source_offset: Vec<f64>,
    /// Magnitude of the companion (mergers only).
    pub companion_mag: Vec<f64>,
    /// Distance between primary and companion centres, pixels (mergers only).
    pub companion_separation: Vec<f64>,
    /// Artefact kind: `cosmic_ray`, `satellite_trail`, `hot_pixels`, or empty.
    pub artefact: Vec<String>,
}

impl CutoutParams {
    /// The columns as (name, unit, description, data), for writers.
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let f = |v: &Vec<f64>| F64(v.clone());
        vec![
            (
                "flux",
                "adu",
                "total flux of the primary (lens) galaxy",
                f(&self.flux),
            ),
            (
                "mag",
                "mag",
                "magnitude of the primary galaxy",
                f(&self.mag),
            ),
            (
                "sersic_n",
                "",
                "Sersic index of the primary",
                f(&self.sersic_n),
            ),
            (
                "r_half",
                "pixel",
                "half-light semi-major axis of the primary, before PSF",
                f(&self.r_half),
            ),
            (
                "ellipticity",
                "",
                "1 - b/a of the primary",
                f(&self.ellipticity),
            ),
            (
                "position_angle",
                "deg",
                "major axis of the primary, from +x towards +y",
                f(&self.position_angle),
            ),
            (
                "x_offset",
                "pixel",
                "primary centre x minus stamp centre",
                f(&self.x_offset),
            ),
            (
                "y_offset",
                "pixel",
                "primary centre y minus stamp centre",
                f(&self.y_offset),
            ),
            (
                "stamp_flux",
                "adu",
                "noiseless astronomical light inside the stamp",
                f(&self.stamp_flux),
            ),
            (
                "snr",
                "",
                "matched-filter S/N: sqrt(sum s^2/((s+sky)/gain+(rdnoise/gain)^2))",
                f(&self.snr),
            ),
            (
                "einstein_radius",
                "pixel",
                "SIS Einstein radius (lenses)",
                f(&self.einstein_radius),
            ),
            (
                "magnification",
                "",
                "total magnification of the source (lenses)",
                f(&self.magnification),
            ),
            (
                "source_mag",
                "mag",
                "unlensed source magnitude (lenses)",
                f(&self.source_mag),
            ),
            (
                "source_offset",
                "pixel",
                "source distance from the lens axis (lenses)",
                f(&self.source_offset),
            ),
            (
                "companion_mag",
                "mag",
                "companion magnitude (mergers)",
                f(&self.companion_mag),
            ),
            (
                "companion_separation",
                "pixel",
                "primary-companion distance (mergers)",
                f(&self.companion_separation),
            ),
            (
                "artefact",
                "",
                "cosmic_ray, satellite_trail, hot_pixels or empty",
                Str(self.artefact.clone()),
            ),
        ]
    }

    pub(super) fn push(&mut self, p: StampTruth) {
        self.flux.push(p.flux);
        self.mag.push(p.mag);
        self.sersic_n.push(p.sersic_n);
        self.r_half.push(p.r_half);
        self.ellipticity.push(p.ellipticity);
        self.position_angle.push(p.position_angle);
        self.x_offset.push(p.x_offset);
        self.y_offset.push(p.y_offset);
        self.stamp_flux.push(p.stamp_flux);
        self.snr.push(p.snr);
        self.einstein_radius.push(p.einstein_radius);
        self.magnification.push(p.magnification);
        self.source_mag.push(p.source_mag);
        self.source_offset.push(p.source_offset);
        self.companion_mag.push(p.companion_mag);
        self.companion_separation.push(p.companion_separation);
        self.artefact.push(p.artefact.to_string());
    }
}

/// A simulated cutout set.
#[derive(Debug, Clone)]
pub struct CutoutSet {
    /// Stamps in ADU (sky-subtracted if `subtract_sky`), shape `(n, size, size)`, indexed
    /// `[stamp, row (y), column (x)]`.
    pub images: Array3<f32>,
    /// Label of each stamp, see [`label_names`].
    pub labels: Vec<i32>,
    /// Stamp number, 1-based.
    pub ids: Vec<i64>,
    /// Truth parameters of each stamp.
    pub params: CutoutParams,
    /// Configuration used.
    pub config: CutoutConfig,
}

impl CutoutSet {
    /// Number of stamps.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no stamps.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of stamps with each label.
    pub fn label_counts(&self) -> [usize; 4] {
        let mut c = [0; 4];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// All per-stamp columns: `id`, `label`, `label_name`, then [`CutoutParams::columns`].
    pub fn columns(&self) -> Vec<Column> {
        use ColumnData::*;
        let names = label_names();
        let mut cols: Vec<Column> = vec![
            ("id", "", "stamp number, 1-based", I64(self.ids.clone())),
            (
                "label",
                "",
                "0 normal, 1 lens, 2 merger, 3 artefact",
                I64(self.labels.iter().map(|&l| l as i64).collect()),
            ),
            (
                "label_name",
                "",
                "normal, lens, merger or artefact",
                Str(self
                    .labels
                    .iter()
                    .map(|&l| names[l as usize].to_string())
                    .collect()),
            ),
        ];
        cols.extend(self.params.columns());
        cols
    }

    /// FITS header cards describing the set: observing parameters, PSF, seed, label names
    /// (`LABEL0`..`LABEL3`) and counts (`NLABEL0`..`NLABEL3`).
    pub fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        let c = &self.config;
        let mut cards = vec![
            card("BUNIT", Str("adu".into()), "pixel unit"),
            card("NSTAMP", Int(self.len() as i64), "number of stamps"),
            card("STAMPSZ", Int(c.size as i64), "[pixel] stamp side"),
            card("EXPTIME", Float(c.exposure_time), "[s] exposure time"),
            card("GAIN", Float(c.noise.gain), "[e-/adu] gain"),
            card("RDNOISE", Float(c.noise.read_noise), "[e-] read noise"),
            card(
                "SKYLEVEL",
                Float(c.noise.sky_level),
                "[e-/pixel] sky background",
            ),
            card(
                "SKYSUB",
                Bool(c.subtract_sky),
                "expected sky level subtracted",
            ),
        ];
        cards.extend(imaging_cards(&c.noise, c.zeropoint, c.pixel_scale, &c.psf));
        cards.push(card("SEED", seed_card(c.seed), "simulation seed"));
        cards.push(card(
            "RAREFRAC",
            Float(c.rare_fraction),
            "configured rare fraction",
        ));
        let counts = self.label_counts();
        for (k, name) in label_names().iter().enumerate() {
            cards.push(card(
                &format!("LABEL{k}"),
                Str(name.to_string()),
                "name of this label",
            ));
            cards.push(card(
                &format!("NLABEL{k}"),
                Int(counts[k] as i64),
                "stamps with this label",
            ));
        }
        cards
    }
}

/// Everything known about one stamp.
pub(super) struct StampTruth {
    pub(super) flux: f64,
    pub(super) mag: f64,
    pub(super) sersic_n: f64,
    pub(super) r_half: f64,
    pub(super) ellipticity: f64,
    pub(super) position_angle: f64,
    pub(super) x_offset: f64,
    pub(super) y_offset: f64,
    pub(super) stamp_flux: f64,
    pub(super) snr: f64,
    pub(super) einstein_radius: f64,
    pub(super) magnification: f64,
    pub(super) source_mag: f64,
    pub(super) source_offset: f64,
    pub(super) companion_mag: f64,
    pub(super) companion_separation: f64,
    pub(super) artefact: &'static str,
}
