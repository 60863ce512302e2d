//! Astronomical images: display intervals (zscale, percentiles), stretches (asinh, ...),
//! overlays, and galleries of stamps.
//!
//! Conventions, as astronomers display FITS images:
//! - `data[[row, col]]`; row 0 is drawn at the **bottom**.
//! - Overlay coordinates are FITS pixel coordinates, **1-based**: the centre of `data[[r, c]]`
//!   is at `(x, y) = (c + 1, r + 1)`, and that pixel covers `x ∈ [c + 0.5, c + 1.5]`. A box
//!   around pixels 10 to 20 (inclusive) in x therefore runs from 9.5 to 20.5. Subtract 1 from
//!   astropy/photutils (0-based) positions, or add 1 to 0-based indices, before passing them.

use ndarray::Array2;
use plotters::prelude::DrawingBackend;
use plotters::style::text_anchor::{HPos, VPos};

use crate::axes::{
    colorbar_space, draw_axes, draw_colorbar, layout, AxesDecor, Frame, Layout, Scale,
};
use crate::draw::{rect_sides, Dash, Pen, Pt, Rect};
use crate::error::DrawError;
use crate::output::{Canvas, Plot, RgbImage};
use crate::style::{Colormap, Rgb, Style, OKABE_ITO};

/// Parameters of the zscale algorithm, with astropy's `ZScaleInterval` defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZScaleParams {
    /// Number of pixels sampled (evenly spaced through the finite values).
    pub n_samples: usize,
    /// Scaling of the fitted slope; smaller values widen the interval.
    pub contrast: f64,
    /// Largest fraction of samples that may be rejected before the fit is abandoned.
    pub max_reject: f64,
    /// Fewest samples the fit must keep.
    pub min_npixels: usize,
    /// Rejection threshold in standard deviations of the residuals.
    pub krej: f64,
    /// Maximum number of fit-and-reject rounds.
    pub max_iterations: usize,
}

impl Default for ZScaleParams {
    fn default() -> Self {
        ZScaleParams {
            n_samples: 1000,
            contrast: 0.25,
            max_reject: 0.5,
            min_npixels: 5,
            krej: 2.5,
            max_iterations: 5,
        }
    }
}

/// IRAF's zscale display interval with default parameters, as astropy's `ZScaleInterval`.
/// Non-finite values are ignored; `(0, 1)` when there are none.
pub fn zscale(values: &[f64]) -> (f64, f64) {
    zscale_with(values, &ZScaleParams::default())
}

/// IRAF's zscale, step for step as astropy's `ZScaleInterval.get_limits`: take evenly spaced
/// samples, sort them, fit a line to sorted value against rank with iterative k-sigma
/// rejection (growing the rejected set by 1 % of the samples), and return the median ± the
/// slope divided by the contrast, within the samples' range.
pub fn zscale_with(values: &[f64], p: &ZScaleParams) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let stride = ((finite.len() as f64 / p.n_samples.max(1) as f64) as usize).max(1);
    let mut s: Vec<f64> = finite
        .iter()
        .copied()
        .step_by(stride)
        .take(p.n_samples.max(1))
        .collect();
    s.sort_by(f64::total_cmp);
    let npix = s.len();
    let (mut vmin, mut vmax) = (s[0], s[npix - 1]);
    let minpix = p.min_npixels.max((npix as f64 * p.max_reject) as usize);
    let mut ngood = npix;
    let mut last_ngood = npix + 1;
    let mut bad = vec![false; npix];
    let ngrow = ((npix as f64 * 0.01) as usize).max(1);
    let mut slope = 0.0;
    for _ in 0..p.max_iterations {
        if ngood >= last_ngood || ngood < minpix {
            break;
        }
        // Least-squares line through the good samples (polyfit with 0/1 weights).
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in s.iter().enumerate() {
            if !bad[i] {
                let x = i as f64;
                n += 1.0;
                sx += x;
                sy += v;
                sxx += x * x;
                sxy += x * v;
            }
        }
        let den = n * sxx - sx * sx;
        slope = if den != 0.0 {
            (n * sxy - sx * sy) / den
        } else {
            0.0
        };
        let icpt = (sy - slope * sx) / n;
        let flat: Vec<f64> = s
            .iter()
            .enumerate()
            .map(|(i, v)| v - (icpt + slope * i as f64))
            .collect();
        let good: Vec<f64> = flat
            .iter()
            .zip(&bad)
            .filter(|(_, b)| !**b)
            .map(|(f, _)| *f)
            .collect();
        let mean = good.iter().sum::<f64>() / good.len() as f64;
        let std = (good.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / good.len() as f64).sqrt();
        let threshold = p.krej * std;
        for (b, f) in bad.iter_mut().zip(&flat) {
            if *f < -threshold || *f > threshold {
                *b = true;
            }
        }
        // Dilation as numpy.convolve(bad, ones(ngrow), mode="same").
        let (lo, hi) = (ngrow / 2, (ngrow - 1) / 2);
        let grown: Vec<bool> = (0..npix)
            .map(|i| {
                bad[i.saturating_sub(lo)..(i + hi + 1).min(npix)]
                    .iter()
                    .any(|b| *b)
            })
            .collect();
        bad = grown;
        last_ngood = ngood;
        ngood = bad.iter().filter(|b| !**b).count();
    }
    if ngood >= minpix {
        if p.contrast > 0.0 {
            slope /= p.contrast;
        }
        let center = (npix - 1) / 2;
        let median = if npix % 2 == 1 {
            s[npix / 2]
        } else {
            (s[npix / 2 - 1] + s[npix / 2]) / 2.0
        };
        vmin = vmin.max(median - (center as f64 - 1.0) * slope);
        vmax = vmax.min(median + (npix - center) as f64 * slope);
    }
    (vmin, vmax)
}

/// The `q`-th percentile (0..=100) with numpy's default linear interpolation.
fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    let pos = (q / 100.0).clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let i = pos.floor() as usize;
    let f = pos - i as f64;
    if i + 1 < s.len() {
        s[i] + (s[i + 1] - s[i]) * f
    } else {
        s[i]
    }
}

/// Which range of values maps onto the colour map (before the stretch), as astropy's
/// interval classes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Interval {
    /// The finite values' minimum and maximum.
    MinMax,
    /// The central `p` percent of the finite values (astropy's `PercentileInterval(p)`,
    /// computed on all values rather than a random subsample).
    Percentile(f64),
    /// IRAF zscale with default parameters ([`zscale`]).
    #[default]
    ZScale,
    /// Fixed limits.
    Manual {
        /// Value shown at the bottom of the colour map.
        vmin: f64,
        /// Value shown at the top.
        vmax: f64,
    },
}

impl Interval {
    /// The display limits for `values` (non-finite values ignored).
    pub fn limits(&self, values: &[f64]) -> (f64, f64) {
        match *self {
            Interval::Manual { vmin, vmax } => (vmin, vmax),
            Interval::ZScale => zscale(values),
            Interval::MinMax | Interval::Percentile(_) => {
                let mut s: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
                if s.is_empty() {
                    return (0.0, 1.0);
                }
                s.sort_by(f64::total_cmp);
                match *self {
                    Interval::Percentile(p) => {
                        let lo = (100.0 - p) / 2.0;
                        (percentile_sorted(&s, lo), percentile_sorted(&s, 100.0 - lo))
                    }
                    _ => (s[0], s[s.len() - 1]),
                }
            }
        }
    }
}

/// How normalised values (0..=1 after the interval) map to colour-map positions, as astropy's
/// stretch classes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Stretch {
    /// y = x.
    #[default]
    Linear,
    /// y = √x.
    Sqrt,
    /// y = asinh(x / a) / asinh(1 / a): linear near zero, logarithmic for bright values.
    /// astropy's default is a = 0.1 ([`Stretch::ASINH`]).
    Asinh {
        /// Transition from linear to logarithmic behaviour, in normalised units.
        a: f64,
    },
    /// y = log(a x + 1) / log(a + 1); astropy's default is a = 1000.
    Log {
        /// Strength of the stretch.
        a: f64,
    },
}

impl Stretch {
    /// Asinh stretch with astropy's default a = 0.1.
    pub const ASINH: Stretch = Stretch::Asinh { a: 0.1 };

    /// Applies the stretch to `x`, clipped to 0..=1 first (as astropy does by default).
    pub fn apply(&self, x: f64) -> f64 {
        let x = x.clamp(0.0, 1.0);
        match *self {
            Stretch::Linear => x,
            Stretch::Sqrt => x.sqrt(),
            Stretch::Asinh { a } => (x / a).asinh() / (1.0 / a).asinh(),
            Stretch::Log { a } => (a * x + 1.0).ln() / (a + 1.0).ln(),
        }
    }
}

/// Something drawn over an image, in 1-based FITS pixel coordinates (see the module notes).
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// A rectangle between two corners.
    Box {
        /// Left edge.
        x0: f64,
        /// Bottom edge.
        y0: f64,
        /// Right edge.
        x1: f64,
        /// Top edge.
        y1: f64,
        /// Colour; Okabe–Ito orange when `None`.
        color: Option<Rgb>,
        /// Text written above the box's top left corner.
        label: Option<String>,
    },
    /// A circle.
    Circle {
        /// Centre x.
        x: f64,
        /// Centre y.
        y: f64,
        /// Radius in pixels.
        r: f64,
        /// Colour; Okabe–Ito orange when `None`.
        color: Option<Rgb>,
        /// Text written above the circle.
        label: Option<String>,
    },
    /// Text centred on a position.
    Text {
        /// Centre x.
        x: f64,
        /// Centre y.
        y: f64,
        /// The text.
        text: String,
        /// Colour; white when `None`.
        color: Option<Rgb>,
    },
}

impl Overlay {
    /// A box from `(x0, y0)` to `(x1, y1)`.
    pub fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Overlay {
        Overlay::Box {
            x0,
            y0,
            x1,
            y1,
            color: None,
            label: None,
        }
    }

    /// A circle of radius `r` around `(x, y)`.
    pub fn circle(x: f64, y: f64, r: f64) -> Overlay {
        Overlay::Circle {
            x,
            y,
            r,
            color: None,
            label: None,
        }
    }

    /// Text centred on `(x, y)`.
    pub fn text(x: f64, y: f64, text: impl Into<String>) -> Overlay {
        Overlay::Text {
            x,
            y,
            text: text.into(),
            color: None,
        }
    }

    /// Sets the label (boxes and circles) or replaces the text.
    pub fn with_label(mut self, l: impl Into<String>) -> Overlay {
        match &mut self {
            Overlay::Box { label, .. } | Overlay::Circle { label, .. } => *label = Some(l.into()),
            Overlay::Text { text, .. } => *text = l.into(),
        }
        self
    }

    /// Sets the colour.
    pub fn with_color(mut self, c: Rgb) -> Overlay {
        match &mut self {
            Overlay::Box { color, .. }
            | Overlay::Circle { color, .. }
            | Overlay::Text { color, .. } => *color = Some(c),
        }
        self
    }
}

const OVERLAY_COLOR: Rgb = OKABE_ITO[3];

/// Inward ticks must show against the image's background, which is the colour map's low end
/// for sky images.
fn tick_color(cmap: Colormap) -> Rgb {
    let Rgb(r, g, b) = cmap.at(0.0);
    let luma = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
    if luma < 128.0 {
        Rgb::WHITE
    } else {
        Rgb::BLACK
    }
}

/// Colour for NaN pixels when none is given: one that the colour map never produces.
fn default_nan_color(cmap: Colormap) -> Rgb {
    match cmap {
        Colormap::Gray | Colormap::GrayInverted => OKABE_ITO[4], // reddish purple
        _ => Rgb(200, 200, 200),
    }
}

/// Maps an image to colours; returns the raster (top row first) and the interval used.
fn colorize(
    data: &Array2<f32>,
    interval: &Interval,
    stretch: &Stretch,
    cmap: Colormap,
    nan: Rgb,
) -> (RgbImage, f64, f64) {
    let (ny, nx) = data.dim();
    let values: Vec<f64> = data.iter().map(|v| *v as f64).collect();
    let (vmin, vmax) = interval.limits(&values);
    let span = vmax - vmin;
    let mut out = Vec::with_capacity(nx * ny * 3);
    for r in (0..ny).rev() {
        for c in 0..nx {
            let v = data[[r, c]] as f64;
            let col = if v.is_finite() {
                let t = if span > 0.0 { (v - vmin) / span } else { 0.5 };
                cmap.at(stretch.apply(t))
            } else {
                nan
            };
            out.extend_from_slice(&[col.0, col.1, col.2]);
        }
    }
    (
        RgbImage {
            width: nx as u32,
            height: ny as u32,
            data: out,
        },
        vmin,
        vmax,
    )
}

/// Draws overlays in frame `f` (whose scales are FITS pixel coordinates).
fn draw_overlays<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &Style,
    f: &Frame,
    overlays: &[Overlay],
) -> Result<(), DrawError> {
    let lw = style.px(style.line_pt);
    let font = style.font(style.legend_pt, false);
    let (_, em) = pen.text_size("Ag", &font)?;
    let label = |text: &str, anchor: Pt, color: Rgb, below: Pt| -> Result<(), DrawError> {
        // Above the shape if it fits inside the frame, else below it; on a dark translucent
        // backdrop so that it reads on bright and faint parts of the image alike.
        let (w, _) = pen.text_size(text, &font)?;
        let pad = em * 0.15;
        let (x, mut y_bottom) = (anchor.0, anchor.1 - pad);
        if y_bottom - em < f.rect.y0 {
            y_bottom = below.1 + pad + em;
        }
        let x = x.clamp(f.rect.x0, (f.rect.x1 - w - 2.0 * pad).max(f.rect.x0));
        let back = Rect::new(x, y_bottom - em, x + w + 2.0 * pad, y_bottom);
        if let Some(b) = back.clip(&f.rect) {
            pen.fill_rect(b, Rgb::BLACK.rgba(0.55))?;
        }
        pen.text(
            text,
            (x + pad, y_bottom - em / 2.0),
            &font.with_color(color),
            HPos::Left,
            VPos::Center,
        )
    };
    for o in overlays {
        match o {
            Overlay::Box {
                x0,
                y0,
                x1,
                y1,
                color,
                label: l,
            } => {
                let c = color.unwrap_or(OVERLAY_COLOR);
                let (a, b) = (f.px(*x0, *y0), f.px(*x1, *y1));
                for side in rect_sides(Rect::new(a.0, a.1, b.0, b.1), lw) {
                    pen.line_clipped(&side, &f.rect, c.rgba(1.0), lw, Dash::Solid)?;
                }
                if let Some(l) = l {
                    label(
                        l,
                        (a.0.min(b.0), a.1.min(b.1)),
                        c,
                        (a.0.min(b.0), a.1.max(b.1)),
                    )?;
                }
            }
            Overlay::Circle {
                x,
                y,
                r,
                color,
                label: l,
            } => {
                let c = color.unwrap_or(OVERLAY_COLOR);
                let centre = f.px(*x, *y);
                let rp = (f.px_x(x + r) - f.px_x(*x)).abs();
                // A polygon rather than a circle element, so it can be clipped at the frame.
                let pts: Vec<Pt> = (0..=72)
                    .map(|i| {
                        let t = i as f64 / 72.0 * std::f64::consts::TAU;
                        (centre.0 + rp * t.cos(), centre.1 + rp * t.sin())
                    })
                    .collect();
                pen.line_clipped(&pts, &f.rect, c.rgba(1.0), lw, Dash::Solid)?;
                if let Some(l) = l {
                    label(
                        l,
                        (centre.0 - rp, centre.1 - rp),
                        c,
                        (centre.0 - rp, centre.1 + rp),
                    )?;
                }
            }
            Overlay::Text { x, y, text, color } => {
                let p = f.px(*x, *y);
                if f.rect.contains(p) {
                    pen.text(
                        text,
                        p,
                        &font.with_color(color.unwrap_or(Rgb::WHITE)),
                        HPos::Center,
                        VPos::Center,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// An astronomical image with a colour bar and overlays.
///
/// ```
/// use deepsky_plot::{Interval, Overlay, SkyImage, Stretch};
/// let data = ndarray::Array2::from_shape_fn((32, 48), |(r, c)| ((r * c) % 7) as f32);
/// let img = SkyImage {
///     stretch: Stretch::ASINH,
///     interval: Interval::Percentile(99.5),
///     overlays: vec![Overlay::rect(9.5, 9.5, 20.5, 16.5).with_label("galaxy")],
///     ..SkyImage::new(data)
/// };
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("field.pdf");
/// deepsky_plot::save(&img, &path)?;
/// # Ok::<(), deepsky_plot::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SkyImage {
    /// Title above the image; none when empty.
    pub title: String,
    /// Pixel values, `[[row, col]]`, row 0 drawn at the bottom. NaN pixels are allowed.
    pub data: Array2<f32>,
    /// Display interval; zscale by default.
    pub interval: Interval,
    /// Stretch applied after the interval; linear by default.
    pub stretch: Stretch,
    /// Colour map; grey by default.
    pub colormap: Colormap,
    /// Draw a colour bar.
    pub colorbar: bool,
    /// Colour-bar label (quantity and unit).
    pub color_label: String,
    /// Boxes, circles and text drawn over the image.
    pub overlays: Vec<Overlay>,
    /// Draw pixel-coordinate axes; without them only a thin frame is drawn.
    pub axes: bool,
    /// Colour of NaN pixels; one the colour map never produces when `None`.
    pub nan_color: Option<Rgb>,
}

impl SkyImage {
    /// An image with the defaults: zscale, linear stretch, grey, colour bar, pixel axes.
    pub fn new(data: Array2<f32>) -> SkyImage {
        SkyImage {
            title: String::new(),
            data,
            interval: Interval::ZScale,
            stretch: Stretch::Linear,
            colormap: Colormap::Gray,
            colorbar: true,
            color_label: String::new(),
            overlays: Vec::new(),
            axes: true,
            nan_color: None,
        }
    }
}

impl Plot for SkyImage {
    fn size(&self, style: &Style) -> (u32, u32) {
        // As tall as the image needs at the style's width with square pixels, estimating the
        // margins with the same text metrics the layout uses; between 0.4 and 1.6 times the
        // width, beyond which the image is centred in its space instead.
        let (ny, nx) = self.data.dim();
        if nx == 0 || ny == 0 {
            return (style.width, style.height);
        }
        let tick = style.font(style.tick_pt, false);
        let label = style.font(style.label_pt, false);
        let (_, th) = crate::text::size("0", &tick);
        let (_, lh) = crate::text::size("Ag", &label);
        let gap = style.px(style.tick_pt * 0.45);
        let pad = style.px(4.0);
        let mut left = pad;
        let mut right = pad + th * 1.2;
        let mut top = pad + th * 0.6;
        let mut bottom = pad;
        if self.axes {
            left += gap + crate::text::width(&ny.to_string(), &tick) + gap + lh;
            bottom += gap + th + gap + lh;
        }
        if !self.title.is_empty() {
            top = pad
                + crate::text::size(&self.title, &style.font(style.title_pt, true)).1
                + style.px(4.0);
        }
        if self.colorbar {
            right += style.px(5.0) + style.px(7.0) + gap + crate::text::width("0000", &tick) + gap;
            if !self.color_label.is_empty() {
                right += lh + gap;
            }
        }
        let w = style.width as f64;
        let img_w = (w - left - right).max(50.0);
        let h = (top + img_w * ny as f64 / nx as f64 + bottom).clamp(0.4 * w, 1.6 * w);
        (style.width, h.round() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        let style = canvas.style();
        let pen = canvas.pen();
        let (ny, nx) = self.data.dim();
        if nx == 0 || ny == 0 {
            return Err(DrawError::data("image has no pixels"));
        }
        let nan = self
            .nan_color
            .unwrap_or_else(|| default_nan_color(self.colormap));
        let (raster, vmin, vmax) = colorize(
            &self.data,
            &self.interval,
            &self.stretch,
            self.colormap,
            nan,
        );
        let cscale = Scale::new(vmin, vmax, false);
        let tick_font = style.font(style.tick_pt, false);
        let cticks = cscale.ticks_fitting(&pen, &tick_font, canvas.size().1 as f64 * 0.7, false)?;
        let (bar_gap, bar_w, cb_total) = if self.colorbar {
            colorbar_space(&pen, style, &cticks, &self.color_label)?
        } else {
            (0.0, 0.0, 0.0)
        };
        let x = Scale::new(0.5, nx as f64 + 0.5, false);
        let y = Scale::new(0.5, ny as f64 + 0.5, false);
        let (x_label, y_label) = if self.axes {
            ("x [pixel]", "y [pixel]")
        } else {
            ("", "")
        };
        // Without axes the layout reserves room for the title and colour bar only.
        let (yl, ys) = ([y_label], [(y, 1.0)]);
        let n = usize::from(self.axes);
        let (avail, _, _) = layout(
            &pen,
            style,
            canvas.size(),
            &Layout {
                title: &self.title,
                x_label,
                y_labels: &yl[..n],
                y_scales: &ys[..n],
                right_extra: bar_gap + cb_total,
            },
        )?;
        // Square pixels: fit the image's aspect ratio into the space, centred.
        let scale = (avail.w() / nx as f64).min(avail.h() / ny as f64);
        let (w, h) = ((nx as f64 * scale).floor(), (ny as f64 * scale).floor());
        let x0 = (avail.x0 + (avail.w() - w) / 2.0).round();
        let y0 = (avail.y0 + (avail.h() - h) / 2.0).round();
        let rect = Rect::new(x0, y0, x0 + w, y0 + h);
        let f = Frame { rect, x, y };
        canvas.draw_image(x0 as i32, y0 as i32, w as u32, h as u32, &raster)?;
        draw_overlays(&pen, style, &f, &self.overlays)?;
        if self.axes {
            let xticks = x.ticks_fitting(&pen, &tick_font, rect.w(), true)?;
            let yt = y.ticks_fitting(&pen, &tick_font, rect.h(), false)?;
            draw_axes(
                &pen,
                style,
                &f,
                &AxesDecor {
                    x_ticks: &xticks,
                    y_ticks: &yt,
                    x_label,
                    y_label,
                    x_tick_labels: true,
                    y_tick_labels: true,
                    y_label_x: None,
                    tick_color: tick_color(self.colormap),
                },
            )?;
        } else {
            pen.stroke_rect(rect, Rgb::BLACK.rgba(1.0), style.px(style.axis_pt))?;
        }
        if self.colorbar {
            let bar = Rect::new(
                rect.x1 + bar_gap,
                rect.y0,
                rect.x1 + bar_gap + bar_w,
                rect.y1,
            );
            let cticks = cscale.ticks_fitting(&pen, &tick_font, rect.h(), false)?;
            let (cmap, stretch) = (self.colormap, self.stretch);
            let span = vmax - vmin;
            let color_of = move |v: f64| {
                cmap.at(stretch.apply(if span > 0.0 { (v - vmin) / span } else { 0.5 }))
            };
            draw_colorbar(
                &pen,
                style,
                bar,
                &cscale,
                &cticks,
                &color_of,
                &self.color_label,
            )?;
        }
        Ok(())
    }
}

/// One image of a [`Gallery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// Pixel values, `[[row, col]]`, row 0 at the bottom.
    pub data: Array2<f32>,
    /// Title above the stamp; shortened with "…" if wider than the stamp.
    pub title: String,
    /// Overlays in the stamp's own pixel coordinates.
    pub overlays: Vec<Overlay>,
}

impl Stamp {
    /// A stamp with a title.
    pub fn new(data: Array2<f32>, title: impl Into<String>) -> Stamp {
        Stamp {
            data,
            title: title.into(),
            overlays: Vec::new(),
        }
    }
}

/// A grid of image stamps with titles: cut-outs of detections, generated samples, ...
/// Each stamp gets its own display interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    /// Title above the grid; none when empty.
    pub title: String,
    /// The stamps, filled in row by row.
    pub stamps: Vec<Stamp>,
    /// Stamps per row; about the square root of their number when 0.
    pub columns: usize,
    /// Display interval, applied to each stamp separately.
    pub interval: Interval,
    /// Stretch after the interval.
    pub stretch: Stretch,
    /// Colour map.
    pub colormap: Colormap,
    /// Colour of NaN pixels; one the colour map never produces when `None`.
    pub nan_color: Option<Rgb>,
}

impl Default for Gallery {
    fn default() -> Self {
        Gallery {
            title: String::new(),
            stamps: Vec::new(),
            columns: 0,
            interval: Interval::ZScale,
            stretch: Stretch::Linear,
            colormap: Colormap::Gray,
            nan_color: None,
        }
    }
}

impl Gallery {
    fn grid(&self) -> (usize, usize) {
        let n = self.stamps.len().max(1);
        let cols = if self.columns == 0 {
            (n as f64).sqrt().ceil() as usize
        } else {
            self.columns
        }
        .clamp(1, n);
        (cols, n.div_ceil(cols))
    }

    /// (pad, gap between cells, cell side, stamp-title height, figure-title height)
    fn metrics(&self, style: &Style) -> (f64, f64, f64, f64, f64) {
        let (cols, _) = self.grid();
        let pad = style.px(4.0);
        let gap = style.px(4.0);
        let cell = (style.width as f64 - 2.0 * pad - gap * (cols as f64 - 1.0)) / cols as f64;
        let stamp_title = style.px(style.legend_pt) * 1.35;
        let title = if self.title.is_empty() {
            0.0
        } else {
            style.px(style.title_pt) * 1.6
        };
        (pad, gap, cell, stamp_title, title)
    }
}

/// `s` shortened with an ellipsis to fit `w` pixels.
fn fit_text<DB: DrawingBackend>(
    pen: &Pen<DB>,
    s: &str,
    font: &crate::text::Font,
    w: f64,
) -> Result<String, DrawError> {
    if pen.text_size(s, font)?.0 <= w {
        return Ok(s.to_string());
    }
    let chars: Vec<char> = s.chars().collect();
    for n in (0..chars.len()).rev() {
        let t: String = chars[..n].iter().collect::<String>() + "…";
        if pen.text_size(&t, font)?.0 <= w {
            return Ok(t);
        }
    }
    Ok(String::new())
}

impl Plot for Gallery {
    fn size(&self, style: &Style) -> (u32, u32) {
        let (_, rows) = self.grid();
        let (pad, gap, cell, st, title) = self.metrics(style);
        let h = 2.0 * pad + title + rows as f64 * (st + cell) + (rows as f64 - 1.0) * gap;
        (style.width, h.ceil() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        let style = canvas.style();
        let pen = canvas.pen();
        let (cols, _) = self.grid();
        let (pad, gap, cell, st, title_h) = self.metrics(style);
        let w = canvas.size().0 as f64;
        if !self.title.is_empty() {
            pen.text(
                &self.title,
                (w / 2.0, pad),
                &style.font(style.title_pt, true),
                HPos::Center,
                VPos::Top,
            )?;
        }
        let font = style.font(style.legend_pt, false);
        let nan = self
            .nan_color
            .unwrap_or_else(|| default_nan_color(self.colormap));
        // Images first: in SVG and PDF they lie below all vector content anyway.
        let mut frames = Vec::with_capacity(self.stamps.len());
        for (k, s) in self.stamps.iter().enumerate() {
            let (ny, nx) = s.data.dim();
            let (row, col) = (k / cols, k % cols);
            let cx0 = pad + col as f64 * (cell + gap);
            let cy0 = pad + title_h + row as f64 * (st + cell + gap) + st;
            if nx == 0 || ny == 0 {
                frames.push(None);
                continue;
            }
            let scale = (cell / nx as f64).min(cell / ny as f64);
            let (iw, ih) = ((nx as f64 * scale).floor(), (ny as f64 * scale).floor());
            let x0 = (cx0 + (cell - iw) / 2.0).round();
            let y0 = (cy0 + (cell - ih) / 2.0).round();
            let (raster, _, _) =
                colorize(&s.data, &self.interval, &self.stretch, self.colormap, nan);
            canvas.draw_image(x0 as i32, y0 as i32, iw as u32, ih as u32, &raster)?;
            let rect = Rect::new(x0, y0, x0 + iw, y0 + ih);
            frames.push(Some((
                Frame {
                    rect,
                    x: Scale::new(0.5, nx as f64 + 0.5, false),
                    y: Scale::new(0.5, ny as f64 + 0.5, false),
                },
                cx0,
                cy0,
            )));
        }
        for (s, fr) in self.stamps.iter().zip(&frames) {
            let Some((f, cx0, cy0)) = fr else { continue };
            draw_overlays(&pen, style, f, &s.overlays)?;
            pen.stroke_rect(f.rect, Rgb::BLACK.rgba(1.0), style.px(style.axis_pt))?;
            let t = fit_text(&pen, &s.title, &font, cell)?;
            pen.text(
                &t,
                (cx0 + cell / 2.0, f.rect.y0.min(*cy0) - st * 0.15),
                &font,
                HPos::Center,
                VPos::Bottom,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator used to make the astropy reference values (see `zscale_matches_astropy`).
    fn lcg_image(ny: usize, nx: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        let mut next = || {
            x = (1664525 * x + 1013904223) % (1 << 32);
            x
        };
        (0..ny * nx)
            .map(|_| {
                let s: f64 = (0..4).map(|_| next() as f64 / 4294967296.0).sum();
                let mut v = 100.0 + 10.0 * (s - 2.0);
                if (next() >> 24) % 50 == 0 {
                    v += 1000.0;
                }
                v as f32 as f64
            })
            .collect()
    }

    #[test]
    fn zscale_matches_astropy() {
        // astropy 8.0.2: ZScaleInterval().get_limits(a) and PercentileInterval(99.5) on the
        // same arrays, generated by the same LCG in Python.
        let cases = [
            (
                64,
                64,
                1,
                83.596435546875,
                137.17152049320455,
                84.34937629699706,
                1107.8122848510743,
            ),
            (
                20,
                30,
                7,
                83.5761489868164,
                133.08068110894632,
                85.44723655700683,
                1108.569880371094,
            ),
            (
                300,
                200,
                3,
                83.90294647216797,
                135.2059728652801,
                84.9972804069519,
                1107.4788830566406,
            ),
        ];
        for (ny, nx, seed, zlo, zhi, plo, phi) in cases {
            let a = lcg_image(ny, nx, seed);
            let (lo, hi) = zscale(&a);
            assert!(
                (lo - zlo).abs() < 1e-9 * zlo.abs() && (hi - zhi).abs() < 1e-9 * zhi.abs(),
                "{ny}x{nx}: {lo} {hi}"
            );
            let (lo, hi) = Interval::Percentile(99.5).limits(&a);
            assert!(
                (lo - plo).abs() < 1e-9 * plo && (hi - phi).abs() < 1e-9 * phi,
                "{ny}x{nx}: {lo} {hi}"
            );
        }
    }

    #[test]
    fn zscale_brackets_the_median_and_ignores_nan() {
        let mut a = lcg_image(50, 50, 11);
        a[3] = f64::NAN;
        a[7] = f64::INFINITY;
        let (lo, hi) = zscale(&a);
        let mut s: Vec<f64> = a.iter().copied().filter(|v| v.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        assert!(lo < median && median < hi);
        assert!(lo >= s[0] && hi <= s[s.len() - 1]);
        assert_eq!(zscale(&[f64::NAN]), (0.0, 1.0));
    }

    #[test]
    fn asinh_matches_astropy() {
        // astropy AsinhStretch()([0, 0.01, 0.1, 0.5, 1])
        let expect = [
            0.0,
            0.0332977502187707,
            0.2939653260048424,
            0.7712696419200371,
            1.0,
        ];
        for (x, e) in [0.0, 0.01, 0.1, 0.5, 1.0].iter().zip(expect) {
            assert!((Stretch::ASINH.apply(*x) - e).abs() < 1e-12);
        }
        assert_eq!(Stretch::Linear.apply(2.0), 1.0);
    }

    #[test]
    fn image_row_zero_is_at_the_bottom() {
        let mut d = Array2::<f32>::zeros((2, 1));
        d[[0, 0]] = 1.0;
        let (img, _, _) = colorize(
            &d,
            &Interval::MinMax,
            &Stretch::Linear,
            Colormap::Gray,
            Rgb::BLACK,
        );
        assert_eq!(&img.data, &[0, 0, 0, 255, 255, 255]);
    }
}
