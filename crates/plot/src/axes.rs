//! Axis scales, tick placement and labelling, frames and colour bars.

use plotters::prelude::DrawingBackend;
use plotters::style::text_anchor::{HPos, VPos};

use crate::draw::{Dash, Pen, Pt, Rect};
use crate::error::DrawError;
use crate::style::{Rgb, Style};
use crate::text::Font;

/// A linear or logarithmic mapping from data values to 0..=1 along an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl Scale {
    /// A scale over `lo..hi`, repaired so that it is never empty and, when logarithmic, stays
    /// positive: plots of degenerate data (one value, all zeros) still get drawn.
    pub fn new(lo: f64, hi: f64, log: bool) -> Scale {
        let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = if log { (0.1, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            if hi <= 0.0 {
                hi = 10.0;
            }
            if lo <= 0.0 {
                lo = hi * 1e-3;
            }
            if hi / lo < 1.0 + 1e-9 {
                lo /= 3.0;
                hi *= 3.0;
            }
        } else if hi - lo <= f64::EPSILON * hi.abs().max(1e-300) {
            let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            lo -= d;
            hi += d;
        }
        Scale { lo, hi, log }
    }

    /// Position of `v` as a fraction of the axis; NaN where undefined (v ≤ 0 on a log axis).
    pub fn frac(&self, v: f64) -> f64 {
        if self.log {
            if v <= 0.0 {
                return f64::NAN;
            }
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// The value at fraction `f` of the axis.
    pub fn value(&self, f: f64) -> f64 {
        if self.log {
            10f64.powf(self.lo.log10() + f * (self.hi.log10() - self.lo.log10()))
        } else {
            self.lo + f * (self.hi - self.lo)
        }
    }

    /// Tick marks and labels aiming at about `target` labelled ticks.
    pub fn ticks(&self, target: usize) -> Ticks {
        let target = target.max(2);
        if self.log {
            log_ticks(self.lo, self.hi, target)
        } else {
            linear_ticks(self.lo, self.hi, target)
        }
    }

    /// Ticks whose labels do not collide along an axis `len_px` long.
    pub fn ticks_fitting<DB: DrawingBackend>(
        &self,
        pen: &Pen<DB>,
        font: &Font,
        len_px: f64,
        horizontal: bool,
    ) -> Result<Ticks, DrawError> {
        let (_, em) = pen.text_size("0", font)?;
        let mut target =
            ((len_px / (em * if horizontal { 2.2 } else { 1.8 })) as usize).clamp(2, 10);
        loop {
            let t = self.ticks(target);
            if target <= 2 || t.fits(pen, font, self, len_px, horizontal)? {
                return Ok(t);
            }
            target -= 1;
        }
    }
}

/// Tick positions and their labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ticks {
    pub major: Vec<f64>,
    pub labels: Vec<String>,
    pub minor: Vec<f64>,
    /// Labels are in units of 10^exponent; the axis label says so.
    pub exponent: Option<i32>,
}

impl Ticks {
    fn fits<DB: DrawingBackend>(
        &self,
        pen: &Pen<DB>,
        font: &Font,
        scale: &Scale,
        len_px: f64,
        horizontal: bool,
    ) -> Result<bool, DrawError> {
        let (_, em) = pen.text_size("0", font)?;
        let mut prev: Option<(f64, f64)> = None; // (position, half extent)
        for (v, l) in self.major.iter().zip(&self.labels) {
            let pos = scale.frac(*v) * len_px;
            let half = if horizontal {
                pen.text_size(l, font)?.0 / 2.0
            } else {
                em * 0.5
            };
            let gap = if horizontal { em * 0.8 } else { em * 0.5 };
            if let Some((p, h)) = prev {
                if pos - p < h + half + gap {
                    return Ok(false);
                }
            }
            prev = Some((pos, half));
        }
        Ok(true)
    }

    /// The axis label with the common factor of the tick labels, if any.
    pub fn axis_label(&self, label: &str) -> String {
        match self.exponent {
            Some(e) if label.is_empty() => format!("×10{}", superscript(e)),
            Some(e) => format!("{label} (×10{})", superscript(e)),
            None => label.to_string(),
        }
    }
}

/// `i` in Unicode superscript digits (DejaVu Sans has them all).
pub(crate) fn superscript(i: i32) -> String {
    i.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

/// `m·10^e` computed through decimal text, so that 3 × 0.1 is exactly 0.3 and labels print
/// without binary noise.
fn decimal(m: f64, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(m * 10f64.powi(e))
}

/// Smallest number of decimals that shows `step` exactly.
fn decimals_for(step: f64) -> usize {
    (0..12)
        .find(|&d| {
            let s = step * 10f64.powi(d as i32);
            (s - s.round()).abs() < 1e-6 * s.abs().max(1.0)
        })
        .unwrap_or(6)
}

fn linear_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let raw = (hi - lo) / target as f64;
    let mag = raw.log10().floor() as i32;
    let m = raw / 10f64.powi(mag);
    let (nice, minor_div) = match m {
        m if m <= 1.0 => (1.0, 5.0),
        m if m <= 2.0 => (2.0, 4.0),
        m if m <= 2.5 => (2.5, 5.0),
        m if m <= 5.0 => (5.0, 5.0),
        _ => (10.0, 5.0),
    };
    let step = decimal(nice, mag);
    let eps = 1e-9 * (hi - lo);
    let k0 = ((lo - eps) / step).ceil() as i64;
    let k1 = ((hi + eps) / step).floor() as i64;
    let major: Vec<f64> = (k0..=k1).map(|k| decimal(k as f64 * nice, mag)).collect();
    let mstep = step / minor_div;
    let j0 = ((lo - eps) / mstep).ceil() as i64;
    let j1 = ((hi + eps) / mstep).floor() as i64;
    let minor = (j0..=j1)
        .map(|j| j as f64 * mstep)
        .filter(|v| major.iter().all(|m| (m - v).abs() > mstep * 0.1))
        .collect();

    // Very large or very small numbers get a common power of ten, stated in the axis label.
    let amax = lo.abs().max(hi.abs());
    let exponent = if amax >= 1e5 || (amax < 1e-3 && amax > 0.0) {
        Some(amax.log10().floor() as i32)
    } else {
        None
    };
    let scale = exponent.map_or(1.0, |e| 10f64.powi(-e));
    let decimals = decimals_for(step * scale);
    let labels = major
        .iter()
        .map(|&v| {
            let v = if v.abs() < step * 1e-6 {
                0.0
            } else {
                v * scale
            };
            // A true minus sign (U+2212), as typeset mathematics has, not a hyphen.
            format!("{v:.decimals$}").replace('-', "\u{2212}")
        })
        .collect();
    Ticks {
        major,
        labels,
        minor,
        exponent,
    }
}

fn log_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (a, b) = (lo.log10(), hi.log10());
    let eps = 1e-9;
    let d0 = (a - eps).ceil() as i32;
    let d1 = (b + eps).floor() as i32;
    let in_range = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    if d1 - d0 + 1 >= 3 {
        // Powers of ten, thinned to every n-th decade when there are too many. With fewer
        // than three in range, 1-2-5 labels below say more (a loss from 0.05 to 1).
        let n = (d1 - d0 + 1) as usize;
        let every = n.div_ceil(target).max(1) as i32;
        let mut major = Vec::new();
        let mut labels = Vec::new();
        let mut minor = Vec::new();
        for d in (a.floor() as i32)..=(b.ceil() as i32) {
            let v = decimal(1.0, d);
            if d.rem_euclid(every) == 0 {
                if in_range(v) {
                    major.push(v);
                    labels.push(format!("10{}", superscript(d)));
                }
            } else if in_range(v) {
                minor.push(v);
            }
            if every == 1 && n <= 12 {
                minor.extend(
                    (2..10)
                        .map(|k| decimal(k as f64, d))
                        .filter(|&v| in_range(v)),
                );
            }
        }
        return Ticks {
            major,
            labels,
            minor,
            exponent: None,
        };
    }
    // Less than three decades: 1-2-5 (or 1..9) mantissas, labelled as plain numbers.
    let all: Vec<f64> = ((a.floor() as i32)..=(b.ceil() as i32))
        .flat_map(|d| (1..10).map(move |k| decimal(k as f64, d)))
        .filter(|&v| in_range(v))
        .collect();
    let pick = |ms: &[f64]| -> Vec<f64> {
        all.iter()
            .copied()
            .filter(|v| {
                let m = v / 10f64.powi(v.log10().floor() as i32);
                ms.iter().any(|x| (m - x).abs() < 1e-6)
            })
            .collect()
    };
    let mut major = pick(&[1.0, 2.0, 5.0]);
    if major.len() > target {
        major = pick(&[1.0, 5.0]);
    }
    if major.len() > target {
        major = pick(&[1.0]);
    }
    if major.len() < 2 {
        major = all.clone();
        if major.len() > target {
            let every = major.len().div_ceil(target);
            major = major.into_iter().step_by(every).collect();
        }
    }
    let minor = all.into_iter().filter(|v| !major.contains(v)).collect();
    let labels = major
        .iter()
        .map(|&v| {
            let d = (-(v.log10().floor() as i32)).max(0) as usize;
            format!("{v:.d$}")
        })
        .collect();
    Ticks {
        major,
        labels,
        minor,
        exponent: None,
    }
}

/// One plot panel: a rectangle in pixels and the scales of its two axes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub rect: Rect,
    pub x: Scale,
    pub y: Scale,
}

impl Frame {
    /// Data to pixel coordinates (NaN where a log axis gets v ≤ 0).
    pub fn px(&self, x: f64, y: f64) -> Pt {
        (
            self.rect.x0 + self.x.frac(x) * self.rect.w(),
            self.rect.y1 - self.y.frac(y) * self.rect.h(),
        )
    }
    pub fn px_x(&self, x: f64) -> f64 {
        self.rect.x0 + self.x.frac(x) * self.rect.w()
    }
    pub fn px_y(&self, y: f64) -> f64 {
        self.rect.y1 - self.y.frac(y) * self.rect.h()
    }
}

/// What to draw around a frame.
pub(crate) struct AxesDecor<'a> {
    pub x_ticks: &'a Ticks,
    pub y_ticks: &'a Ticks,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_tick_labels: bool,
    pub y_tick_labels: bool,
    /// Where the y label's right edge goes, to align the labels of stacked panels.
    pub y_label_x: Option<f64>,
    /// Tick colour: black, or white over dark images where black ticks would vanish.
    pub tick_color: Rgb,
}

impl<'a> AxesDecor<'a> {
    /// The usual decoration of a panel: both axes labelled with their tick labels, black ticks,
    /// the y label's right edge at `y_label_x` (from [`layout`]).
    pub fn labelled(
        x_ticks: &'a Ticks,
        y_ticks: &'a Ticks,
        x_label: &'a str,
        y_label: &'a str,
        y_label_x: f64,
    ) -> AxesDecor<'a> {
        AxesDecor {
            x_ticks,
            y_ticks,
            x_label,
            y_label,
            x_tick_labels: true,
            y_tick_labels: true,
            y_label_x: Some(y_label_x),
            tick_color: Rgb::BLACK,
        }
    }
}

/// Space the decorations need outside the frame, in pixels: (left, bottom).
pub(crate) fn decor_space<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    y_ticks: &Ticks,
    x_label: &str,
    y_label: &str,
) -> Result<(f64, f64), DrawError> {
    let tick_font = style.font(style.tick_pt, false);
    let label_font = style.font(style.label_pt, false);
    let gap = style.px(style.tick_pt * 0.45);
    let mut ytw: f64 = 0.0;
    for l in &y_ticks.labels {
        ytw = ytw.max(pen.text_size(l, &tick_font)?.0);
    }
    let (_, th) = pen.text_size("0", &tick_font)?;
    let (_, lh) = pen.text_size("Ag", &label_font)?;
    let left = gap + ytw + if y_label.is_empty() { 0.0 } else { gap + lh };
    let bottom = gap + th + if x_label.is_empty() { 0.0 } else { gap + lh };
    Ok((left, bottom))
}

/// Frame, inward ticks on all four sides, tick labels and axis labels.
pub(crate) fn draw_axes<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    f: &Frame,
    d: &AxesDecor,
) -> Result<(), DrawError> {
    let black = Rgb::BLACK.rgba(1.0);
    let tc = d.tick_color.rgba(1.0);
    let aw = style.px(style.axis_pt);
    let major = style.px(style.tick_len_pt);
    let minor = major * 0.5;
    let r = f.rect;
    let tick_font = style.font(style.tick_pt, false);
    let label_font = style.font(style.label_pt, false);
    let gap = style.px(style.tick_pt * 0.45);

    for (vals, len) in [(&d.x_ticks.major, major), (&d.x_ticks.minor, minor)] {
        for &v in vals.iter() {
            let x = f.px_x(v);
            if !x.is_finite() || x < r.x0 - 0.5 || x > r.x1 + 0.5 {
                continue;
            }
            pen.line(&[(x, r.y1), (x, r.y1 - len)], tc, aw, Dash::Solid)?;
            pen.line(&[(x, r.y0), (x, r.y0 + len)], tc, aw, Dash::Solid)?;
        }
    }
    for (vals, len) in [(&d.y_ticks.major, major), (&d.y_ticks.minor, minor)] {
        for &v in vals.iter() {
            let y = f.px_y(v);
            if !y.is_finite() || y < r.y0 - 0.5 || y > r.y1 + 0.5 {
                continue;
            }
            pen.line(&[(r.x0, y), (r.x0 + len, y)], tc, aw, Dash::Solid)?;
            pen.line(&[(r.x1, y), (r.x1 - len, y)], tc, aw, Dash::Solid)?;
        }
    }
    pen.stroke_rect(r, black, aw)?;

    let (_, th) = pen.text_size("0", &tick_font)?;
    if d.x_tick_labels {
        for (v, l) in d.x_ticks.major.iter().zip(&d.x_ticks.labels) {
            pen.text(
                l,
                (f.px_x(*v), r.y1 + gap),
                &tick_font,
                HPos::Center,
                VPos::Top,
            )?;
        }
    }
    let mut ytw: f64 = 0.0;
    if d.y_tick_labels {
        for (v, l) in d.y_ticks.major.iter().zip(&d.y_ticks.labels) {
            ytw = ytw.max(pen.text_size(l, &tick_font)?.0);
            pen.text(
                l,
                (r.x0 - gap, f.px_y(*v)),
                &tick_font,
                HPos::Right,
                VPos::Center,
            )?;
        }
    }
    let xl = d.x_ticks.axis_label(d.x_label);
    if !xl.is_empty() {
        let y = r.y1 + gap + if d.x_tick_labels { th + gap } else { 0.0 };
        pen.text(
            &xl,
            ((r.x0 + r.x1) / 2.0, y),
            &label_font,
            HPos::Center,
            VPos::Top,
        )?;
    }
    let yl = d.y_ticks.axis_label(d.y_label);
    if !yl.is_empty() {
        let x = d
            .y_label_x
            .unwrap_or(r.x0 - gap - if d.y_tick_labels { ytw + gap } else { 0.0 });
        draw_vertical_label(pen, style, &yl, (x, (r.y0 + r.y1) / 2.0), true)?;
    }
    Ok(())
}

/// A label rotated to read bottom-to-top, centred vertically on `p.1`. With `right_aligned`
/// its descender side lies on `x = p.0` (a y label left of tick labels); otherwise its cap
/// side does (a colour-bar label right of tick labels).
pub(crate) fn draw_vertical_label<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    text: &str,
    p: Pt,
    right_aligned: bool,
) -> Result<(), DrawError> {
    let font = style.font(style.label_pt, false).rotated();
    let v = if right_aligned {
        VPos::Bottom
    } else {
        VPos::Top
    };
    pen.text(text, p, &font, HPos::Center, v)
}

/// A vertical colour bar in `rect` with ticks and labels on its right.
pub(crate) fn draw_colorbar<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    rect: Rect,
    scale: &Scale,
    ticks: &Ticks,
    color_of: &dyn Fn(f64) -> Rgb,
    label: &str,
) -> Result<(), DrawError> {
    // Vector bands rather than an image, so the bar stays sharp in SVG and PDF. Each band
    // overlaps the next by a pixel to avoid hairline seams in anti-aliasing viewers.
    let n = 128;
    for i in 0..n {
        let f0 = i as f64 / n as f64;
        let f1 = (i + 1) as f64 / n as f64;
        let c = color_of(scale.value((f0 + f1) / 2.0));
        let y1 = rect.y1 - f0 * rect.h();
        let y0 = (rect.y1 - f1 * rect.h() - 1.0).max(rect.y0);
        pen.fill_rect(Rect::new(rect.x0, y0, rect.x1, y1), c.rgba(1.0))?;
    }
    let black = Rgb::BLACK.rgba(1.0);
    let aw = style.px(style.axis_pt);
    let len = style.px(style.tick_len_pt);
    let tick_font = style.font(style.tick_pt, false);
    let gap = style.px(style.tick_pt * 0.45);
    let frame = Frame {
        rect,
        x: Scale::new(0.0, 1.0, false),
        y: *scale,
    };
    let mut tw: f64 = 0.0;
    for (vals, l) in [(&ticks.major, len), (&ticks.minor, len * 0.5)] {
        for &v in vals.iter() {
            let y = frame.px_y(v);
            if y.is_finite() && y >= rect.y0 - 0.5 && y <= rect.y1 + 0.5 {
                pen.line(&[(rect.x1, y), (rect.x1 - l, y)], black, aw, Dash::Solid)?;
                pen.line(&[(rect.x0, y), (rect.x0 + l, y)], black, aw, Dash::Solid)?;
            }
        }
    }
    for (v, l) in ticks.major.iter().zip(&ticks.labels) {
        tw = tw.max(pen.text_size(l, &tick_font)?.0);
        pen.text(
            l,
            (rect.x1 + gap, frame.px_y(*v)),
            &tick_font,
            HPos::Left,
            VPos::Center,
        )?;
    }
    pen.stroke_rect(rect, black, aw)?;
    let label = ticks.axis_label(label);
    if !label.is_empty() {
        draw_vertical_label(
            pen,
            style,
            &label,
            (rect.x1 + gap + tw + gap, (rect.y0 + rect.y1) / 2.0),
            false,
        )?;
    }
    Ok(())
}

/// Width a colour bar needs right of the plot: gap, bar, tick labels, label.
pub(crate) fn colorbar_space<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    ticks: &Ticks,
    label: &str,
) -> Result<(f64, f64, f64), DrawError> {
    let tick_font = style.font(style.tick_pt, false);
    let gap = style.px(style.tick_pt * 0.45);
    let bar_gap = style.px(5.0);
    let bar_w = style.px(7.0);
    let mut tw: f64 = 0.0;
    for l in &ticks.labels {
        tw = tw.max(pen.text_size(l, &tick_font)?.0);
    }
    let label = ticks.axis_label(label);
    let lh = if label.is_empty() {
        0.0
    } else {
        pen.text_size("Ag", &style.font(style.label_pt, false))?.1 + gap
    };
    Ok((bar_gap, bar_w, bar_w + gap + tw + gap + lh))
}

/// What a figure's layout has to make room for.
#[derive(Clone, Copy)]
pub(crate) struct Layout<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    /// One label per panel, top to bottom.
    pub y_labels: &'a [&'a str],
    /// Each panel's y scale and share of the height.
    pub y_scales: &'a [(Scale, f64)],
    /// Pixels kept free right of the frame (colour bar, outside legend).
    pub right_extra: f64,
}

/// Lays out a figure with one column of panels: title on top, y labels left, x labels below,
/// `right_extra` pixels kept free on the right (for a colour bar). `y_scales` are the panels'
/// y scales with their share of the height; ticks are chosen for each.
pub(crate) fn layout<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    size: (u32, u32),
    spec: &Layout,
) -> Result<(Rect, Vec<Ticks>, f64), DrawError> {
    let Layout {
        title,
        x_label,
        y_labels,
        y_scales,
        right_extra,
    } = *spec;
    let (w, h) = (size.0 as f64, size.1 as f64);
    let pad = style.px(4.0);
    let tick_font = style.font(style.tick_pt, false);
    let (_, em) = pen.text_size("0", &tick_font)?;
    let mut top = pad;
    let title_font = style.font(style.title_pt, true);
    if !title.is_empty() {
        let (_, th) = pen.text_size(title, &title_font)?;
        top += th + style.px(4.0);
    } else {
        // Room for the top half of the highest y tick label.
        top += em * 0.6;
    }
    let est_h = h - top - pad - em * 4.0;
    let mut ticks = Vec::new();
    let mut left: f64 = 0.0;
    let mut bottom: f64 = 0.0;
    for (i, (scale, share)) in y_scales.iter().enumerate() {
        let t = scale.ticks_fitting(pen, &tick_font, est_h * share, false)?;
        let label = t.axis_label(y_labels.get(i).copied().unwrap_or(""));
        let (l, b) = decor_space(pen, style, &t, x_label, &label)?;
        left = left.max(l);
        bottom = bottom.max(b);
        ticks.push(t);
    }
    let right = pad + em * 1.2 + right_extra;
    let rect = Rect::new(pad + left, top, w - right, h - pad - bottom);
    // Centred over the frame, as matplotlib does, unless that would push it off the figure.
    let tw = pen.text_size(title, &title_font)?.0;
    let cx =
        ((rect.x0 + rect.x1) / 2.0).clamp(tw / 2.0 + pad, (w - tw / 2.0 - pad).max(tw / 2.0 + pad));
    pen.text(title, (cx, pad), &title_font, HPos::Center, VPos::Top)?;
    let label_font = style.font(style.label_pt, false);
    let (_, lh) = pen.text_size("Ag", &label_font)?;
    Ok((rect, ticks, pad + lh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_numbers() {
        let t = Scale::new(0.0, 1.0, false).ticks(5);
        assert_eq!(t.labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = Scale::new(-3.3, 17.1, false).ticks(5);
        assert_eq!(t.major, [0.0, 5.0, 10.0, 15.0]);
        assert_eq!(t.labels, ["0", "5", "10", "15"]);
        let t = Scale::new(0.0, 2.0e6, false).ticks(4);
        assert_eq!(t.exponent, Some(6));
        assert_eq!(t.labels, ["0.0", "0.5", "1.0", "1.5", "2.0"]);
        assert_eq!(t.axis_label("Counts"), "Counts (×10⁶)");
    }

    #[test]
    fn log_ticks_are_decades() {
        let t = Scale::new(1e-3, 1e2, true).ticks(6);
        assert_eq!(t.labels, ["10⁻³", "10⁻²", "10⁻¹", "10⁰", "10¹", "10²"]);
        assert!(t.minor.contains(&0.02));
        let t = Scale::new(1e-12, 1e6, true).ticks(5);
        assert!(t.major.len() <= 6, "{:?}", t.major);
        let t = Scale::new(2.0, 30.0, true).ticks(6);
        assert_eq!(t.labels, ["2", "5", "10", "20"]);
        let t = Scale::new(0.03, 1.5, true).ticks(6);
        assert_eq!(t.labels, ["0.05", "0.1", "0.2", "0.5", "1"]);
    }

    #[test]
    fn degenerate_scales_are_repaired() {
        let s = Scale::new(5.0, 5.0, false);
        assert!(s.hi > s.lo);
        let s = Scale::new(0.0, 0.0, true);
        assert!(s.lo > 0.0 && s.hi > s.lo);
        assert!(Scale::new(1.0, 10.0, true).frac(-1.0).is_nan());
    }
}
