//! Drawing primitives in pixel space, shared by all plot kinds.
//!
//! plotters does not clip elements to a drawing area, and its chart builder places axis
//! decorations in ways that are hard to control at 300 dpi. So this crate lays out every figure
//! itself, in floating-point pixels, and uses plotters only as a backend abstraction (bitmap or
//! SVG) and for text. Points are rounded to whole pixels at the last moment; at 300 dpi a pixel
//! is 0.085 mm, below what print or screen shows.

use plotters::coord::Shift;
use plotters::element::{Circle, PathElement, Polygon, Rectangle};
use plotters::prelude::{DrawingArea, DrawingBackend};
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::{RGBAColor, ShapeStyle};

use crate::error::{BackendResult, DrawError};
use crate::text::{self, Font};

/// A point in pixels, y down.
pub(crate) type Pt = (f64, f64);

/// An axis-aligned rectangle in pixels, `y0` at the top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Rect {
        Rect {
            x0: x0.min(x1),
            y0: y0.min(y1),
            x1: x0.max(x1),
            y1: y0.max(y1),
        }
    }
    pub fn w(&self) -> f64 {
        self.x1 - self.x0
    }
    pub fn h(&self) -> f64 {
        self.y1 - self.y0
    }
    pub fn contains(&self, p: Pt) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }
    /// The intersection, or `None` when empty.
    pub fn clip(&self, o: &Rect) -> Option<Rect> {
        let r = Rect {
            x0: self.x0.max(o.x0),
            y0: self.y0.max(o.y0),
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
        };
        (r.x1 > r.x0 && r.y1 > r.y0).then_some(r)
    }
}

/// Line dash pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dash {
    /// A continuous line.
    #[default]
    Solid,
    /// Long dashes.
    Dashed,
    /// Dots.
    Dotted,
    /// Alternating dash and dot.
    DashDot,
}

/// Marker shapes, used in turn for scatter categories so that categories stay apart in
/// greyscale print and for readers who cannot tell the colours apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarkerShape {
    /// A filled disc.
    #[default]
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle pointing up.
    TriangleUp,
    /// A filled diamond.
    Diamond,
    /// A filled triangle pointing down.
    TriangleDown,
    /// An upright cross, stroked.
    Plus,
    /// A diagonal cross, stroked.
    Cross,
}

impl MarkerShape {
    /// The shapes in the order categories receive them.
    pub const CYCLE: [MarkerShape; 7] = [
        MarkerShape::Circle,
        MarkerShape::Square,
        MarkerShape::TriangleUp,
        MarkerShape::Diamond,
        MarkerShape::TriangleDown,
        MarkerShape::Plus,
        MarkerShape::Cross,
    ];
}

/// The four sides of a rectangle as separate segments, each extended by half the line width
/// at both ends so that corners are square. (One closed path would leave a notch at its
/// start, and drawing a side twice makes plotters' bitmap polygon fill cancel it out.)
pub(crate) fn rect_sides(r: Rect, width: f64) -> [[Pt; 2]; 4] {
    let e = width / 2.0;
    [
        [(r.x0 - e, r.y0), (r.x1 + e, r.y0)],
        [(r.x1, r.y0 - e), (r.x1, r.y1 + e)],
        [(r.x1 + e, r.y1), (r.x0 - e, r.y1)],
        [(r.x0, r.y1 + e), (r.x0, r.y0 - e)],
    ]
}

fn ip(p: Pt) -> (i32, i32) {
    (p.0.round() as i32, p.1.round() as i32)
}

fn stroke_style(color: RGBAColor, width: f64) -> ShapeStyle {
    ShapeStyle {
        color,
        filled: false,
        stroke_width: width.round().max(1.0) as u32,
    }
}

fn fill_style(color: RGBAColor) -> ShapeStyle {
    ShapeStyle {
        color,
        filled: true,
        stroke_width: 1,
    }
}

/// Splits a polyline into dashes; lengths scale with the line width so that patterns look the
/// same at any resolution.
fn dashes(pts: &[Pt], dash: Dash, width: f64) -> Vec<Vec<Pt>> {
    let w = width.max(1.0);
    let pattern: &[f64] = match dash {
        Dash::Solid => return vec![pts.to_vec()],
        Dash::Dashed => &[4.0 * w, 2.5 * w],
        Dash::Dotted => &[1.0 * w, 1.6 * w],
        Dash::DashDot => &[4.0 * w, 1.6 * w, 1.0 * w, 1.6 * w],
    };
    let mut out = Vec::new();
    let mut cur: Vec<Pt> = Vec::new();
    let (mut k, mut left) = (0usize, pattern[0]);
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let mut t = 0.0;
        while len - t > 1e-9 {
            let step = left.min(len - t);
            let p0 = (a.0 + (b.0 - a.0) * t / len, a.1 + (b.1 - a.1) * t / len);
            t += step;
            let p1 = (a.0 + (b.0 - a.0) * t / len, a.1 + (b.1 - a.1) * t / len);
            left -= step;
            if k % 2 == 0 {
                if cur.is_empty() {
                    cur.push(p0);
                }
                cur.push(p1);
            }
            if left <= 1e-9 {
                if k % 2 == 0 && cur.len() > 1 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
                k = (k + 1) % pattern.len();
                left = pattern[k];
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// Liang–Barsky clipping of one segment; `None` when it lies outside.
fn clip_segment(a: Pt, b: Pt, r: &Rect) -> Option<(Pt, Pt)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r.x0),
        (dx, r.x1 - a.0),
        (-dy, a.1 - r.y0),
        (dy, r.y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// Clips a polyline to a rectangle, splitting it where it leaves. Non-finite points break it.
pub(crate) fn clip_polyline(pts: &[Pt], r: &Rect) -> Vec<Vec<Pt>> {
    let mut out: Vec<Vec<Pt>> = Vec::new();
    let mut cur: Vec<Pt> = Vec::new();
    let finite = |p: &Pt| p.0.is_finite() && p.1.is_finite();
    for seg in pts.windows(2) {
        if !finite(&seg[0]) || !finite(&seg[1]) {
            if cur.len() > 1 {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            continue;
        }
        match clip_segment(seg[0], seg[1], r) {
            Some((p, q)) => {
                let joined = cur
                    .last()
                    .is_some_and(|l| (l.0 - p.0).abs() < 1e-6 && (l.1 - p.1).abs() < 1e-6);
                if !joined {
                    if cur.len() > 1 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur = vec![p];
                }
                cur.push(q);
            }
            None => {
                if cur.len() > 1 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// The pixel drawing helpers for one drawing area.
pub(crate) struct Pen<'a, DB: DrawingBackend> {
    pub area: &'a DrawingArea<DB, Shift>,
    /// Bitmap output: text is rasterised here rather than written as text elements.
    pub bitmap: bool,
    /// Lay out only, draw nothing: used for a first pass that decides where the legend goes.
    pub dry: bool,
}

/// Drops points closer than `tol` pixels to the previously kept one (the last point is always
/// kept): a 100 000-step loss curve or ROC curve then costs a few thousand SVG coordinates
/// instead of megabytes, with no visible change.
fn decimate(pts: &[Pt], tol: f64) -> Vec<Pt> {
    let mut out: Vec<Pt> = Vec::with_capacity(pts.len().min(4096));
    for (i, &p) in pts.iter().enumerate() {
        match out.last() {
            Some(l) if i + 1 < pts.len() && (p.0 - l.0).abs() < tol && (p.1 - l.1).abs() < tol => {}
            _ => out.push(p),
        }
    }
    out
}

impl<DB: DrawingBackend> Pen<'_, DB> {
    /// A polyline, unclipped.
    pub fn line(
        &self,
        pts: &[Pt],
        color: RGBAColor,
        width: f64,
        dash: Dash,
    ) -> Result<(), DrawError> {
        if self.dry {
            return Ok(());
        }
        let pts = if pts.len() > 64 {
            decimate(pts, 0.7)
        } else {
            pts.to_vec()
        };
        for part in dashes(&pts, dash, width) {
            let p: Vec<(i32, i32)> = part.iter().map(|&p| ip(p)).collect();
            self.area
                .draw(&PathElement::new(p, stroke_style(color, width)))
                .backend()?;
        }
        Ok(())
    }

    /// A polyline clipped to `clip`.
    pub fn line_clipped(
        &self,
        pts: &[Pt],
        clip: &Rect,
        color: RGBAColor,
        width: f64,
        dash: Dash,
    ) -> Result<(), DrawError> {
        for part in clip_polyline(pts, clip) {
            self.line(&part, color, width, dash)?;
        }
        Ok(())
    }

    pub fn fill_rect(&self, r: Rect, color: RGBAColor) -> Result<(), DrawError> {
        if self.dry {
            return Ok(());
        }
        let (a, b) = (ip((r.x0, r.y0)), ip((r.x1, r.y1)));
        if a.0 == b.0 || a.1 == b.1 {
            return Ok(());
        }
        self.area
            .draw(&Rectangle::new([a, b], fill_style(color)))
            .backend()
    }

    pub fn stroke_rect(&self, r: Rect, color: RGBAColor, width: f64) -> Result<(), DrawError> {
        for side in rect_sides(r, width) {
            self.line(&side, color, width, Dash::Solid)?;
        }
        Ok(())
    }

    pub fn fill_polygon(&self, pts: &[Pt], color: RGBAColor) -> Result<(), DrawError> {
        if self.dry {
            return Ok(());
        }
        let p: Vec<(i32, i32)> = pts.iter().map(|&p| ip(p)).collect();
        self.area
            .draw(&Polygon::new(p, fill_style(color)))
            .backend()
    }

    pub fn circle(
        &self,
        c: Pt,
        r: f64,
        color: RGBAColor,
        filled: bool,
        width: f64,
    ) -> Result<(), DrawError> {
        if self.dry {
            return Ok(());
        }
        let style = if filled {
            fill_style(color)
        } else {
            stroke_style(color, width)
        };
        self.area
            .draw(&Circle::new(ip(c), r.round().max(1.0) as u32, style))
            .backend()
    }

    /// A marker of radius `r` centred on `c`.
    pub fn marker(
        &self,
        shape: MarkerShape,
        c: Pt,
        r: f64,
        color: RGBAColor,
    ) -> Result<(), DrawError> {
        let (x, y) = c;
        match shape {
            MarkerShape::Circle => self.circle(c, r, color, true, 1.0),
            MarkerShape::Square => {
                let s = r * 0.89; // equal area to the disc
                self.fill_rect(Rect::new(x - s, y - s, x + s, y + s), color)
            }
            MarkerShape::Diamond => {
                let s = r * 1.25;
                self.fill_polygon(&[(x, y - s), (x + s, y), (x, y + s), (x - s, y)], color)
            }
            MarkerShape::TriangleUp | MarkerShape::TriangleDown => {
                let s = r * 1.35;
                let d = if shape == MarkerShape::TriangleUp {
                    1.0
                } else {
                    -1.0
                };
                let h = s * 0.866;
                self.fill_polygon(
                    &[
                        (x, y - d * s),
                        (x + h, y + d * s * 0.5),
                        (x - h, y + d * s * 0.5),
                    ],
                    color,
                )
            }
            MarkerShape::Plus | MarkerShape::Cross => {
                let s = r * 1.2;
                let w = (r * 0.45).max(1.0);
                let (a, b) = if shape == MarkerShape::Plus {
                    ([(x - s, y), (x + s, y)], [(x, y - s), (x, y + s)])
                } else {
                    let s = s * 0.8;
                    (
                        [(x - s, y - s), (x + s, y + s)],
                        [(x - s, y + s), (x + s, y - s)],
                    )
                };
                self.line(&a, color, w, Dash::Solid)?;
                self.line(&b, color, w, Dash::Solid)
            }
        }
    }

    /// Text anchored at `p` by `h` and `v` (see [`text::draw`]).
    pub fn text(&self, s: &str, p: Pt, font: &Font, h: HPos, v: VPos) -> Result<(), DrawError> {
        if self.dry {
            return Ok(());
        }
        text::draw(self.area, self.bitmap, s, p, font, h, v)
    }

    /// Width and line height of `s` in pixels (unrotated).
    pub fn text_size(&self, s: &str, font: &Font) -> Result<(f64, f64), DrawError> {
        Ok(text::size(s, font))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_splits_a_line_that_leaves_and_returns() {
        let r = Rect::new(0.0, 0.0, 10.0, 10.0);
        let parts = clip_polyline(
            &[
                (-5.0, 5.0),
                (5.0, 5.0),
                (5.0, 20.0),
                (8.0, 20.0),
                (8.0, 5.0),
            ],
            &r,
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], vec![(0.0, 5.0), (5.0, 5.0), (5.0, 10.0)]);
        assert_eq!(parts[1], vec![(8.0, 10.0), (8.0, 5.0)]);
    }

    #[test]
    fn decimation_keeps_ends_and_corners_apart() {
        let pts: Vec<Pt> = (0..1000).map(|i| (i as f64 * 0.01, 0.0)).collect();
        let d = decimate(&pts, 0.7);
        assert_eq!(d.first(), pts.first());
        assert_eq!(d.last(), pts.last());
        assert!(d.len() < 20, "{}", d.len());
    }

    #[test]
    fn nan_breaks_a_line() {
        let r = Rect::new(0.0, 0.0, 10.0, 10.0);
        let parts = clip_polyline(
            &[
                (1.0, 1.0),
                (2.0, 2.0),
                (f64::NAN, 3.0),
                (4.0, 4.0),
                (5.0, 5.0),
            ],
            &r,
        );
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn dashes_cover_about_the_on_fraction() {
        let parts = dashes(&[(0.0, 0.0), (1000.0, 0.0)], Dash::Dashed, 2.0);
        let on: f64 = parts.iter().map(|p| p.last().unwrap().0 - p[0].0).sum();
        assert!((on / 1000.0 - 8.0 / 13.0).abs() < 0.02, "{on}");
    }
}
