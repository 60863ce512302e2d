//! The one plotting style: figure size, fonts, line widths, colours and colour maps.
//!
//! Sizes are given in typographic points (1 pt = 1/72 in) and turned into pixels with the
//! figure's dots per inch, so that a figure keeps its proportions whatever resolution it is
//! rendered at. The default figure is 1050 × 750 px at 300 dpi, that is 3.5 × 2.5 in: the
//! width of one column in A&A, ApJ, MNRAS and most physics journals. At that size an 8 pt tick
//! label prints at 8 pt, the smallest size journals accept, without any rescaling.

use std::sync::Once;

use plotters::style::{FontStyle, RGBAColor};

use crate::text::Font;

/// The family name under which the embedded DejaVu Sans font is registered.
///
/// SVG files name this family first, with common fallbacks after it; PDF files embed a subset
/// of the font itself, and PNG files are rasterised with it, so neither needs system fonts.
pub const FONT_FAMILY: &str = "DejaVu Sans";

static REGISTER_FONTS: Once = Once::new();

/// Registers the embedded DejaVu Sans (regular and bold) with plotters' `ab_glyph` text
/// renderer. plotters keeps a process-wide font table, so this only has to happen once; every
/// entry point that draws calls it.
pub(crate) fn ensure_fonts() {
    REGISTER_FONTS.call_once(|| {
        // The bytes are a valid TrueType file shipped inside the `dejavu` crate: a failure here
        // would be a packaging bug, not a run-time condition a caller could handle.
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans is not a valid font"));
        plotters::style::register_font(FONT_FAMILY, FontStyle::Bold, dejavu::sans::bold())
            .unwrap_or_else(|_| panic!("embedded DejaVu Sans Bold is not a valid font"));
    });
}

/// An opaque sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Black.
    pub const BLACK: Rgb = Rgb(0, 0, 0);
    /// White.
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    /// The neutral grey used for reference lines (ratio = 1, the ROC diagonal).
    pub const GREY: Rgb = Rgb(0x88, 0x88, 0x88);

    /// A colour from a `0xRRGGBB` literal.
    pub const fn hex(rgb: u32) -> Rgb {
        Rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
    }

    /// Linear interpolation towards `other` by `t` in 0..=1 (in sRGB, which is good enough
    /// between the close neighbours of a colour-map table).
    pub fn mix(self, other: Rgb, t: f64) -> Rgb {
        let t = t.clamp(0.0, 1.0);
        let f = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
        Rgb(f(self.0, other.0), f(self.1, other.1), f(self.2, other.2))
    }

    /// As `#RRGGBB`.
    pub fn to_hex_string(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }

    pub(crate) fn rgba(self, alpha: f64) -> RGBAColor {
        RGBAColor(self.0, self.1, self.2, alpha)
    }
}

/// The Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable under
/// the common forms of colour blindness. The order puts the two most different hues first and
/// yellow, which is faint on white, late; black is last and is a good choice for "data".
pub const OKABE_ITO: [Rgb; 8] = [
    Rgb::hex(0x0072B2), // blue
    Rgb::hex(0xD55E00), // vermillion
    Rgb::hex(0x009E73), // bluish green
    Rgb::hex(0xE69F00), // orange
    Rgb::hex(0xCC79A7), // reddish purple
    Rgb::hex(0x56B4E9), // sky blue
    Rgb::hex(0xF0E442), // yellow
    Rgb::hex(0x000000), // black
];

/// A colour map for heat maps and images: a function from 0..=1 to a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// matplotlib's viridis: perceptually uniform, colour-blind safe, readable in greyscale.
    #[default]
    Viridis,
    /// matplotlib's magma: perceptually uniform, black to pale yellow; good for faint sources.
    Magma,
    /// Black to white, the usual display of astronomical images.
    Gray,
    /// White to black (dark = bright), as printed finding charts are.
    GrayInverted,
}

// Tables sampled from matplotlib 3.10 at 33 evenly spaced points; linear interpolation between
// them differs from matplotlib's 256-entry tables by at most one or two levels of 255.
const VIRIDIS: [[u8; 3]; 33] = [
    [68, 1, 84],
    [71, 13, 96],
    [72, 24, 106],
    [72, 35, 116],
    [71, 45, 123],
    [69, 55, 129],
    [66, 64, 134],
    [62, 73, 137],
    [59, 82, 139],
    [55, 91, 141],
    [51, 99, 141],
    [47, 107, 142],
    [44, 114, 142],
    [41, 122, 142],
    [38, 130, 142],
    [35, 137, 142],
    [33, 145, 140],
    [31, 152, 139],
    [31, 160, 136],
    [34, 167, 133],
    [40, 174, 128],
    [50, 182, 122],
    [63, 188, 115],
    [78, 195, 107],
    [94, 201, 98],
    [112, 207, 87],
    [132, 212, 75],
    [152, 216, 62],
    [173, 220, 48],
    [194, 223, 35],
    [216, 226, 25],
    [236, 229, 27],
    [253, 231, 37],
];
const MAGMA: [[u8; 3]; 33] = [
    [0, 0, 4],
    [3, 3, 18],
    [10, 8, 34],
    [19, 13, 52],
    [29, 17, 71],
    [41, 17, 90],
    [54, 16, 107],
    [68, 15, 118],
    [81, 18, 124],
    [93, 23, 127],
    [106, 28, 129],
    [118, 33, 129],
    [131, 38, 129],
    [144, 42, 129],
    [156, 46, 127],
    [170, 51, 125],
    [183, 55, 121],
    [196, 60, 117],
    [208, 65, 111],
    [220, 72, 105],
    [231, 82, 99],
    [239, 93, 94],
    [245, 107, 92],
    [249, 121, 93],
    [252, 137, 97],
    [253, 152, 105],
    [254, 167, 114],
    [254, 182, 124],
    [254, 196, 136],
    [254, 211, 149],
    [253, 226, 163],
    [252, 240, 178],
    [252, 253, 191],
];

impl Colormap {
    /// The colour at `t`, clamped to 0..=1. NaN maps to the low end; callers that want NaN
    /// shown differently test for it first.
    pub fn at(self, t: f64) -> Rgb {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let table = match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
            Colormap::Gray => {
                let v = (t * 255.0).round() as u8;
                return Rgb(v, v, v);
            }
            Colormap::GrayInverted => {
                let v = 255 - (t * 255.0).round() as u8;
                return Rgb(v, v, v);
            }
        };
        let pos = t * (table.len() - 1) as f64;
        let i = (pos.floor() as usize).min(table.len() - 2);
        let [r0, g0, b0] = table[i];
        let [r1, g1, b1] = table[i + 1];
        Rgb(r0, g0, b0).mix(Rgb(r1, g1, b1), pos - i as f64)
    }
}

/// The shared style. [`Style::default`] is the house style; change a copy only where a figure
/// truly needs it (a full-width figure, a poster), so that all pipelines look alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Figure width in pixels.
    pub width: u32,
    /// Figure height in pixels.
    pub height: u32,
    /// Resolution: pixels per inch. Fixes the printed size of PNG (written into its pHYs
    /// chunk) and PDF pages, and converts the point sizes below into pixels.
    pub dpi: f64,
    /// Title font size, in points.
    pub title_pt: f64,
    /// Axis-label font size, in points.
    pub label_pt: f64,
    /// Tick-label font size, in points. Journals ask for at least 8 pt in print.
    pub tick_pt: f64,
    /// Legend and annotation font size, in points.
    pub legend_pt: f64,
    /// Data line width, in points.
    pub line_pt: f64,
    /// Axes frame and tick width, in points.
    pub axis_pt: f64,
    /// Major tick length, in points (minor ticks are half as long).
    pub tick_len_pt: f64,
    /// Marker radius, in points.
    pub marker_pt: f64,
    /// Colours given in turn to samples, series and categories.
    pub palette: Vec<Rgb>,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            width: 1050,
            height: 750,
            dpi: 300.0,
            title_pt: 9.0,
            label_pt: 9.0,
            tick_pt: 8.0,
            legend_pt: 8.0,
            line_pt: 1.0,
            axis_pt: 0.6,
            tick_len_pt: 3.0,
            marker_pt: 1.6,
            palette: OKABE_ITO.to_vec(),
        }
    }
}

impl Style {
    /// Points to pixels at this style's resolution.
    pub fn px(&self, pt: f64) -> f64 {
        pt * self.dpi / 72.0
    }

    /// The `i`-th palette colour, cycling.
    pub fn color(&self, i: usize) -> Rgb {
        if self.palette.is_empty() {
            return OKABE_ITO[i % OKABE_ITO.len()];
        }
        self.palette[i % self.palette.len()]
    }

    /// The embedded font at `pt` points, black.
    pub(crate) fn font(&self, pt: f64, bold: bool) -> Font {
        Font {
            em: self.px(pt),
            bold,
            rotated: false,
            color: Rgb::BLACK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_match_matplotlib() {
        assert_eq!(Colormap::Viridis.at(0.0), Rgb(68, 1, 84));
        assert_eq!(Colormap::Viridis.at(1.0), Rgb(253, 231, 37));
        assert_eq!(Colormap::Magma.at(f64::NAN), Rgb(0, 0, 4));
        assert_eq!(Colormap::Gray.at(0.5), Rgb(128, 128, 128));
        assert_eq!(Colormap::GrayInverted.at(1.0), Rgb(0, 0, 0));
    }

    #[test]
    fn default_fonts_are_at_least_8pt() {
        let s = Style::default();
        for pt in [s.title_pt, s.label_pt, s.tick_pt, s.legend_pt] {
            assert!(pt >= 8.0);
        }
        assert!((s.width as f64 / s.dpi - 3.5).abs() < 1e-9);
    }
}
