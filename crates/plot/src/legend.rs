//! Legends, placed inside the frame where they hide the least data.

use plotters::prelude::DrawingBackend;
use plotters::style::text_anchor::{HPos, VPos};

use crate::draw::{Dash, MarkerShape, Pen, Pt, Rect};
use crate::error::DrawError;
use crate::output::Canvas;
use crate::style::{Rgb, Style};

/// Where a legend goes inside the plot frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendPos {
    /// The corner that covers the fewest data points (as matplotlib's `loc="best"`).
    #[default]
    Best,
    /// Top right corner.
    UpperRight,
    /// Top left corner.
    UpperLeft,
    /// Bottom right corner.
    LowerRight,
    /// Bottom left corner.
    LowerLeft,
    /// Right of the frame, outside it. `Best` falls back to this when every corner inside
    /// would hide data.
    Outside,
    /// No legend.
    Hidden,
}

/// The small picture left of a legend label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A line, with a marker in its middle when the series marks its points.
    Line {
        color: Rgb,
        dash: Dash,
        marker: bool,
    },
    Marker {
        color: Rgb,
        shape: MarkerShape,
    },
    /// A filled box with an outline (filled histograms).
    Patch {
        color: Rgb,
    },
    /// A marker with a vertical error bar (data points).
    ErrorPoint {
        color: Rgb,
    },
}

pub(crate) struct Entry {
    pub label: String,
    pub swatch: Swatch,
}

/// Points along a polyline every `step` pixels, so that legend placement sees lines that only
/// cross a corner between two data points.
pub(crate) fn densify(pts: &[Pt], step: f64, out: &mut Vec<Pt>) {
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
            continue;
        }
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len / step).ceil().max(1.0) as usize;
        for i in 0..n {
            let t = i as f64 / n as f64;
            out.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
        }
    }
    if let Some(&l) = pts.last() {
        out.push(l);
    }
}

/// Legend box size in pixels.
pub(crate) fn legend_size<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    entries: &[Entry],
) -> Result<(f64, f64), DrawError> {
    let font = style.font(style.legend_pt, false);
    let (_, em) = pen.text_size("Ag", &font)?;
    let mut tw: f64 = 0.0;
    for e in entries {
        tw = tw.max(pen.text_size(&e.label, &font)?.0);
    }
    let pad = em * 0.4;
    Ok((
        pad + em * 1.8 + em * 0.4 + tw + pad,
        pad * 2.0 + em * 1.25 * entries.len() as f64,
    ))
}

/// Room to keep right of the frame for an outside legend.
pub(crate) fn outside_space<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    entries: &[Entry],
    pos: LegendPos,
) -> Result<f64, DrawError> {
    if pos != LegendPos::Outside || entries.is_empty() {
        return Ok(0.0);
    }
    Ok(legend_size(pen, style, entries)?.0 + style.px(3.0))
}

/// Draws the legend; `occupied` are data points in pixels used to choose a corner. Returns
/// how many of them the legend covers.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    frame: Rect,
    entries: &[Entry],
    pos: LegendPos,
    occupied: &[Pt],
) -> Result<usize, DrawError> {
    if entries.is_empty() || pos == LegendPos::Hidden {
        return Ok(0);
    }
    let font = style.font(style.legend_pt, false);
    let (_, em) = pen.text_size("Ag", &font)?;
    let row = em * 1.25;
    let pad = em * 0.4;
    let sw = em * 1.8;
    let (bw, bh) = legend_size(pen, style, entries)?;
    let inset = style.px(style.tick_len_pt) + em * 0.2;
    let boxes = |p: LegendPos| -> Rect {
        if p == LegendPos::Outside {
            let x0 = frame.x1 + style.px(3.0);
            return Rect::new(x0, frame.y0, x0 + bw, frame.y0 + bh);
        }
        let (left, top) = match p {
            LegendPos::UpperLeft => (true, true),
            LegendPos::LowerRight => (false, false),
            LegendPos::LowerLeft => (true, false),
            _ => (false, true),
        };
        let x0 = if left {
            frame.x0 + inset
        } else {
            frame.x1 - inset - bw
        };
        let y0 = if top {
            frame.y0 + inset
        } else {
            frame.y1 - inset - bh
        };
        Rect::new(x0, y0, x0 + bw, y0 + bh)
    };
    let covered = |r: &Rect| occupied.iter().filter(|p| r.contains(**p)).count();
    let chosen = if pos == LegendPos::Best {
        let candidates = [
            LegendPos::UpperRight,
            LegendPos::UpperLeft,
            LegendPos::LowerRight,
            LegendPos::LowerLeft,
        ];
        let mut best = (usize::MAX, LegendPos::UpperRight);
        for c in candidates {
            let r = boxes(c);
            let n = covered(&r);
            if n < best.0 {
                best = (n, c);
            }
        }
        best.1
    } else {
        pos
    };
    let b = boxes(chosen);
    let hidden = if chosen == LegendPos::Outside {
        0
    } else {
        covered(&b)
    };
    // A translucent white box: data behind it (if any) stay faintly visible.
    if chosen != LegendPos::Outside {
        pen.fill_rect(b, Rgb::WHITE.rgba(0.85))?;
    }
    let lw = style.px(style.line_pt);
    for (i, e) in entries.iter().enumerate() {
        let cy = b.y0 + pad + row * (i as f64 + 0.5);
        let (sx0, sx1) = (b.x0 + pad, b.x0 + pad + sw);
        let cx = (sx0 + sx1) / 2.0;
        match e.swatch {
            Swatch::Line {
                color,
                dash,
                marker,
            } => {
                pen.line(&[(sx0, cy), (sx1, cy)], color.rgba(1.0), lw, dash)?;
                if marker {
                    pen.marker(
                        MarkerShape::Circle,
                        (cx, cy),
                        style.px(style.marker_pt),
                        color.rgba(1.0),
                    )?;
                }
            }
            Swatch::Marker { color, shape } => pen.marker(
                shape,
                (cx, cy),
                style.px(style.marker_pt) * 1.2,
                color.rgba(1.0),
            )?,
            Swatch::Patch { color } => {
                let r = Rect::new(sx0, cy - em * 0.35, sx1, cy + em * 0.35);
                pen.fill_rect(r, color.rgba(0.3))?;
                pen.stroke_rect(r, color.rgba(1.0), lw)?;
            }
            Swatch::ErrorPoint { color } => {
                pen.line(
                    &[(cx, cy - em * 0.45), (cx, cy + em * 0.45)],
                    color.rgba(1.0),
                    lw,
                    Dash::Solid,
                )?;
                pen.marker(
                    MarkerShape::Circle,
                    (cx, cy),
                    style.px(style.marker_pt) * 1.2,
                    color.rgba(1.0),
                )?;
            }
        }
        pen.text(
            &e.label,
            (sx1 + em * 0.4, cy),
            &font,
            HPos::Left,
            VPos::Center,
        )?;
    }
    Ok(hidden)
}

/// Draws a plot whose legend may have to leave the frame: with [`LegendPos::Best`], a dry run
/// of `render` (a pen that measures but draws nothing) tells whether every corner would hide
/// data, then `render` draws for real with the position chosen.
pub(crate) fn draw_with_legend<DB: DrawingBackend>(
    canvas: &Canvas<'_, DB>,
    pos: LegendPos,
    mut render: impl FnMut(&Pen<'_, DB>, LegendPos) -> Result<usize, DrawError>,
) -> Result<(), DrawError> {
    let pos = resolve(pos, |p, dry| {
        let pen = if dry { canvas.dry_pen() } else { canvas.pen() };
        render(&pen, p)
    })?;
    render(&canvas.pen(), pos).map(drop)
}

/// Where the legend goes: `Best` becomes `Outside` when a dry run of `render` shows that every
/// corner inside the frame would hide data.
pub(crate) fn resolve<F>(pos: LegendPos, mut render: F) -> Result<LegendPos, DrawError>
where
    F: FnMut(LegendPos, bool) -> Result<usize, DrawError>,
{
    if pos != LegendPos::Best {
        return Ok(pos);
    }
    let hidden = render(LegendPos::Best, true)?;
    Ok(if hidden > 0 {
        LegendPos::Outside
    } else {
        LegendPos::Best
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_moves_outside_only_when_every_corner_hides_data() {
        let mut calls = Vec::new();
        let pos = resolve(LegendPos::Best, |p, dry| {
            calls.push((p, dry));
            Ok(3)
        })
        .unwrap();
        assert_eq!(pos, LegendPos::Outside);
        assert_eq!(calls, [(LegendPos::Best, true)]);
        assert_eq!(
            resolve(LegendPos::Best, |_, _| Ok(0)).unwrap(),
            LegendPos::Best
        );
        // An explicit choice is kept without a dry run.
        let pos = resolve(LegendPos::UpperLeft, |_, _| -> Result<usize, DrawError> {
            unreachable!()
        });
        assert_eq!(pos.unwrap(), LegendPos::UpperLeft);
    }

    #[test]
    fn densify_samples_long_segments() {
        let mut out = Vec::new();
        densify(&[(0.0, 0.0), (100.0, 0.0)], 10.0, &mut out);
        assert_eq!(out.len(), 11);
    }
}
