//! Text layout and, for bitmaps, rasterisation with the embedded font.
//!
//! plotters' own `ab_glyph` text path ignores each glyph's left side bearing, which makes
//! letter spacing visibly uneven ("Simula tion"), and it scales glyphs by the ascent-to-descent
//! height rather than by the em. So this module measures text with proper advances and kerning,
//! rasterises it itself for bitmap output, and for SVG output positions plotters' `<text>`
//! elements so that the baseline lands where the bitmap's does.

use std::sync::OnceLock;

use ab_glyph::{point, Font as _, FontRef, PxScale, ScaleFont as _};
use plotters::coord::Shift;
use plotters::element::Text;
use plotters::prelude::{DrawingArea, DrawingBackend};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontFamily, FontStyle, FontTransform, IntoFont, TextStyle};

use crate::draw::Pt;
use crate::error::{BackendResult, DrawError};
use crate::style::{ensure_fonts, Rgb, FONT_FAMILY};

// DejaVu Sans metrics, as fractions of the em: cap height 1493/2048, descender 483/2048.
const CAP: f64 = 0.729;
const DESC: f64 = 0.236;
/// plotters' SVG backend shifts text with `VPos::Top` down by this many em.
const SVG_TOP_DY: f64 = 0.76;

/// A font choice: size, weight, direction, colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Font {
    /// The em size in pixels.
    pub em: f64,
    pub bold: bool,
    /// Rotated by 90° to read bottom to top (y-axis labels).
    pub rotated: bool,
    pub color: Rgb,
}

impl Font {
    pub fn with_color(self, color: Rgb) -> Font {
        Font { color, ..self }
    }
    pub fn rotated(self) -> Font {
        Font {
            rotated: true,
            ..self
        }
    }
}

fn face(bold: bool) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = if bold {
        (&BOLD, dejavu::sans::bold())
    } else {
        (&REGULAR, dejavu::sans::regular())
    };
    cell.get_or_init(|| {
        FontRef::try_from_slice(bytes).expect("the embedded DejaVu Sans is a valid font")
    })
}

fn px_scale(f: &FontRef<'static>, em: f64) -> PxScale {
    // ab_glyph's PxScale is the ascent-to-descent height; convert from the em size.
    let upem = f.units_per_em().unwrap_or(2048.0);
    PxScale::from((em as f32) * f.height_unscaled() / upem)
}

/// Advance width of `s` in pixels, with kerning.
pub(crate) fn width(s: &str, font: &Font) -> f64 {
    let f = face(font.bold);
    let sf = f.as_scaled(px_scale(f, font.em));
    let mut w = 0.0f32;
    let mut prev = None;
    for c in s.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            w += sf.kern(p, id);
        }
        w += sf.h_advance(id);
        prev = Some(id);
    }
    w as f64
}

/// (width, line height) of `s` in pixels, unrotated.
pub(crate) fn size(s: &str, font: &Font) -> (f64, f64) {
    (width(s, font), font.em * (1.0 + DESC - 0.072)) // ≈ cap + descender + a little leading
}

/// Draws `s` with its anchor at `p`. `h` anchors along the text, `v` across it: `Top` puts the
/// top of capitals at the anchor, `Center` centres capitals and digits on it, `Bottom` puts the
/// bottom of descenders on it. For rotated text these apply in the text's own frame.
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    bitmap: bool,
    s: &str,
    p: Pt,
    font: &Font,
    h: HPos,
    v: VPos,
) -> Result<(), DrawError> {
    if s.is_empty() {
        return Ok(());
    }
    // Unit vectors of the text frame in screen pixels: along the text, and "down" across it.
    let (eu, ev) = if font.rotated {
        ((0.0, -1.0), (1.0, 0.0))
    } else {
        ((1.0, 0.0), (0.0, 1.0))
    };
    let voff = match v {
        VPos::Top => CAP * font.em,
        VPos::Center => CAP * font.em / 2.0,
        VPos::Bottom => -DESC * font.em,
    };
    if bitmap {
        let w = width(s, font);
        let hoff = match h {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        let origin = (
            p.0 + eu.0 * hoff + ev.0 * voff,
            p.1 + eu.1 * hoff + ev.1 * voff,
        );
        raster(area, s, font, origin, eu, ev)
    } else {
        ensure_fonts();
        let d = voff - SVG_TOP_DY * font.em;
        let anchor = (p.0 + ev.0 * d, p.1 + ev.1 * d);
        let style = if font.bold {
            FontStyle::Bold
        } else {
            FontStyle::Normal
        };
        let mut desc = FontDesc::new(FontFamily::Name(FONT_FAMILY), font.em * 1.24, style);
        if font.rotated {
            desc = desc.transform(FontTransform::Rotate270);
        }
        let ts: TextStyle = desc
            .into_font()
            .color(&font.color.rgba(1.0))
            .pos(Pos::new(h, VPos::Top));
        let a = (anchor.0.round() as i32, anchor.1.round() as i32);
        area.draw(&Text::new(s.to_string(), a, ts)).backend()
    }
}

/// Anti-aliased glyphs blended into the bitmap, with sub-pixel positioning along the text.
fn raster<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    font: &Font,
    origin: Pt,
    eu: Pt,
    ev: Pt,
) -> Result<(), DrawError> {
    let f = face(font.bold);
    let scale = px_scale(f, font.em);
    let sf = f.as_scaled(scale);
    let (ox, oy) = (origin.0.floor(), origin.1.floor());
    // The fractional part of the origin, expressed in the text frame.
    let (fx, fy) = (origin.0 - ox, origin.1 - oy);
    let fu = fx * eu.0 + fy * eu.1;
    let fv = fx * ev.0 + fy * ev.1;
    let mut x = fu as f32;
    let mut prev = None;
    let mut err = Ok(());
    for c in s.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            x += sf.kern(p, id);
        }
        let g = id.with_scale_and_position(scale, point(x, fv as f32));
        if let Some(og) = f.outline_glyph(g) {
            let b = og.px_bounds();
            og.draw(|gx, gy, cov| {
                if cov < 0.02 || err.is_err() {
                    return;
                }
                let u = (b.min.x + gx as f32) as f64;
                let v = (b.min.y + gy as f32) as f64;
                let sx = ox + eu.0 * u + ev.0 * v;
                let sy = oy + eu.1 * u + ev.1 * v;
                let color = font.color.rgba(cov.min(1.0) as f64);
                err = area.draw_pixel((sx as i32, sy as i32), &color).backend();
            });
        }
        x += sf.h_advance(id);
        prev = Some(id);
    }
    err
}
