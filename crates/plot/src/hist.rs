//! One-dimensional histograms: several samples overlaid, error bars, optional ratio panel.

use plotters::prelude::DrawingBackend;

use crate::axes::{draw_axes, layout, AxesDecor, Frame, Layout, Scale};
use crate::draw::{Dash, MarkerShape, Pen, Pt, Rect};
use crate::error::{DrawError, Error, Result};
use crate::legend::{
    densify, draw_legend, draw_with_legend, outside_space, Entry, LegendPos, Swatch,
};
use crate::output::{Canvas, Plot};
use crate::style::Rgb;

/// Bin contents and their uncertainties.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    /// Sum of weights in each bin.
    pub counts: Vec<f64>,
    /// Uncertainty of each bin: √(Σ w²), the Poisson error for unit weights.
    pub errors: Vec<f64>,
}

/// `n` equal bins from `lo` to `hi`: `n + 1` edges.
pub fn uniform_edges(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect()
}

/// `n` bins equal in log from `lo` to `hi` (both > 0).
pub fn log_edges(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..=n)
        .map(|i| (a + (b - a) * i as f64 / n as f64).exp())
        .collect()
}

fn check_edges(edges: &[f64]) -> Result<()> {
    if edges.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "a histogram needs at least 2 bin edges, got {}",
            edges.len()
        )));
    }
    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[1] <= w[0]) {
        return Err(Error::InvalidInput(
            "bin edges must be finite and strictly increasing".into(),
        ));
    }
    Ok(())
}

/// Fills a histogram. Bins are half-open `[e_i, e_{i+1})` except the last, which includes its
/// upper edge (as numpy does); values outside the edges and NaN values are not counted.
/// Errors are √(Σ w²) per bin.
pub fn histogram(values: &[f64], weights: Option<&[f64]>, edges: &[f64]) -> Result<Binned> {
    check_edges(edges)?;
    if let Some(w) = weights {
        if w.len() != values.len() {
            return Err(Error::InvalidInput(format!(
                "{} weights for {} values",
                w.len(),
                values.len()
            )));
        }
    }
    let n = edges.len() - 1;
    let mut counts = vec![0.0; n];
    let mut sumw2 = vec![0.0; n];
    let (lo, hi) = (edges[0], edges[n]);
    for (i, &v) in values.iter().enumerate() {
        if !(v >= lo && v <= hi) {
            continue;
        }
        let bin = (edges.partition_point(|&e| e <= v) - 1).min(n - 1);
        let w = weights.map_or(1.0, |w| w[i]);
        counts[bin] += w;
        sumw2[bin] += w * w;
    }
    Ok(Binned {
        counts,
        errors: sumw2.into_iter().map(f64::sqrt).collect(),
    })
}

impl Binned {
    /// Bins with Poisson errors √|n|, for counts that were filled elsewhere.
    pub fn poisson(counts: Vec<f64>) -> Binned {
        let errors = counts.iter().map(|c| c.abs().sqrt()).collect();
        Binned { counts, errors }
    }

    /// `self / den` bin by bin, with Gaussian error propagation for independent samples:
    /// σ_r² = (σ_n / d)² + (n σ_d / d²)². Bins where `den` is zero get NaN (not drawn).
    pub fn ratio(&self, den: &Binned) -> Binned {
        let mut counts = Vec::with_capacity(self.counts.len());
        let mut errors = Vec::with_capacity(self.counts.len());
        for i in 0..self.counts.len().min(den.counts.len()) {
            let (n, sn, d, sd) = (self.counts[i], self.errors[i], den.counts[i], den.errors[i]);
            if d == 0.0 || !d.is_finite() {
                counts.push(f64::NAN);
                errors.push(f64::NAN);
            } else {
                counts.push(n / d);
                errors.push(((sn / d).powi(2) + (n * sd / (d * d)).powi(2)).sqrt());
            }
        }
        Binned { counts, errors }
    }

    /// Scaled to unit area over `edges` (a probability density): each bin divided by the total
    /// and by its width. Empty histograms stay zero.
    pub fn density(&self, edges: &[f64]) -> Binned {
        let total: f64 = self.counts.iter().sum();
        if total == 0.0 || !total.is_finite() {
            return self.clone();
        }
        let mut counts = Vec::with_capacity(self.counts.len());
        let mut errors = Vec::with_capacity(self.counts.len());
        for (i, e) in edges.windows(2).enumerate().take(self.counts.len()) {
            let k = 1.0 / (total * (e[1] - e[0]));
            counts.push(self.counts[i] * k);
            errors.push(self.errors[i] * k);
        }
        Binned { counts, errors }
    }
}

/// The data of one histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub enum HistData {
    /// Unbinned values, optionally weighted; binned with the plot's edges.
    Values {
        /// The values.
        values: Vec<f64>,
        /// One weight per value; unit weights when `None`.
        weights: Option<Vec<f64>>,
    },
    /// Already binned, one count per bin of the plot's edges.
    Binned {
        /// Bin contents.
        counts: Vec<f64>,
        /// Uncertainties; √|count| when `None`.
        errors: Option<Vec<f64>>,
    },
}

/// How a sample is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistStyle {
    /// Outline of the bins, error bars at the bin centres.
    #[default]
    Step,
    /// Translucent filled bins with an outline and error bars.
    Filled,
    /// Markers with error bars at the bin centres (the usual look of measured data).
    Points,
}

/// One sample of a [`Hist1d`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistSample {
    /// Legend label.
    pub label: String,
    /// The values or the bin contents.
    pub data: HistData,
    /// How to draw it.
    pub style: HistStyle,
    /// Colour; the palette's next colour when `None`.
    pub color: Option<Rgb>,
    /// Draw error bars.
    pub error_bars: bool,
}

impl HistSample {
    /// A sample of unweighted values, drawn as a step outline.
    pub fn values(label: impl Into<String>, values: Vec<f64>) -> Self {
        Self::new(
            label,
            HistData::Values {
                values,
                weights: None,
            },
        )
    }

    /// A sample of weighted values.
    pub fn weighted(label: impl Into<String>, values: Vec<f64>, weights: Vec<f64>) -> Self {
        Self::new(
            label,
            HistData::Values {
                values,
                weights: Some(weights),
            },
        )
    }

    /// A sample already binned; `errors` default to √|count|.
    pub fn binned(label: impl Into<String>, counts: Vec<f64>, errors: Option<Vec<f64>>) -> Self {
        Self::new(label, HistData::Binned { counts, errors })
    }

    fn new(label: impl Into<String>, data: HistData) -> Self {
        HistSample {
            label: label.into(),
            data,
            style: HistStyle::Step,
            color: None,
            error_bars: true,
        }
    }

    /// Sets the drawing style.
    pub fn with_style(mut self, style: HistStyle) -> Self {
        self.style = style;
        self
    }

    /// Sets the colour.
    pub fn with_color(mut self, color: Rgb) -> Self {
        self.color = Some(color);
        self
    }

    /// The bin contents over `edges`, before any density scaling.
    pub fn bin(&self, edges: &[f64]) -> Result<Binned> {
        match &self.data {
            HistData::Values { values, weights } => histogram(values, weights.as_deref(), edges),
            HistData::Binned { counts, errors } => {
                check_edges(edges)?;
                if counts.len() != edges.len() - 1 {
                    return Err(Error::InvalidInput(format!(
                        "sample '{}' has {} bin contents for {} bins",
                        self.label,
                        counts.len(),
                        edges.len() - 1
                    )));
                }
                match errors {
                    None => Ok(Binned::poisson(counts.clone())),
                    Some(e) if e.len() == counts.len() => Ok(Binned {
                        counts: counts.clone(),
                        errors: e.clone(),
                    }),
                    Some(e) => Err(Error::InvalidInput(format!(
                        "sample '{}' has {} errors for {} bins",
                        self.label,
                        e.len(),
                        counts.len()
                    ))),
                }
            }
        }
    }
}

/// A 1-D histogram of one or more samples, optionally with a ratio panel below.
///
/// ```
/// use deepsky_plot::{Hist1d, HistSample, HistStyle, uniform_edges};
/// let h = Hist1d {
///     x_label: "Energy [GeV]".into(),
///     edges: uniform_edges(0.0, 10.0, 20),
///     samples: vec![
///         HistSample::values("simulation", vec![1.0, 2.5, 2.7, 4.0]),
///         HistSample::values("data", vec![1.2, 2.4, 4.4]).with_style(HistStyle::Points),
///     ],
///     ratio_to: Some(0),
///     ..Default::default()
/// };
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("energy.png");
/// deepsky_plot::save(&h, &path)?;
/// # Ok::<(), deepsky_plot::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hist1d {
    /// Title above the plot; none when empty.
    pub title: String,
    /// x-axis label, with unit.
    pub x_label: String,
    /// y-axis label; "Entries" (or "Density") when empty.
    pub y_label: String,
    /// Bin edges, strictly increasing, shared by all samples.
    pub edges: Vec<f64>,
    /// The samples, drawn in order (the first at the bottom).
    pub samples: Vec<HistSample>,
    /// Logarithmic x axis (use [`log_edges`]).
    pub log_x: bool,
    /// Logarithmic y axis; empty bins are then not drawn.
    pub log_y: bool,
    /// Normalise each sample to unit area.
    pub density: bool,
    /// Index of the sample that other samples are divided by in a ratio panel below.
    pub ratio_to: Option<usize>,
    /// Label of the ratio panel's y axis; "Ratio" when empty.
    pub ratio_label: String,
    /// Legend placement.
    pub legend: LegendPos,
}

impl Hist1d {
    /// The bin contents of every sample as drawn (after density scaling).
    pub fn binned(&self) -> Result<Vec<Binned>> {
        check_edges(&self.edges)?;
        self.samples
            .iter()
            .map(|s| {
                let b = s.bin(&self.edges)?;
                Ok(if self.density {
                    b.density(&self.edges)
                } else {
                    b
                })
            })
            .collect()
    }
}

fn y_range(binned: &[Binned], log: bool) -> (f64, f64) {
    let mut hi = f64::NEG_INFINITY;
    let mut lo = f64::INFINITY;
    let mut min_pos = f64::INFINITY;
    for b in binned {
        for (c, e) in b.counts.iter().zip(&b.errors) {
            if c.is_finite() {
                let e = if e.is_finite() { *e } else { 0.0 };
                hi = hi.max(c + e);
                lo = lo.min(c - e);
                if *c > 0.0 {
                    min_pos = min_pos.min(*c);
                }
            }
        }
    }
    if !hi.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let lo = if min_pos.is_finite() {
            min_pos * 0.5
        } else {
            0.1
        };
        let hi = hi.max(lo * 10.0);
        // Headroom of 40 % of the decades shown, for the legend.
        (lo, hi * (hi / lo).powf(0.4))
    } else {
        let lo = lo.min(0.0);
        (lo, hi + (hi - lo) * 0.3)
    }
}

impl Plot for Hist1d {
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        draw_with_legend(canvas, self.legend, |pen, pos| {
            self.render(canvas, pen, pos)
        })
    }
}

impl Hist1d {
    fn render<DB: DrawingBackend>(
        &self,
        canvas: &Canvas<'_, DB>,
        pen: &Pen<'_, DB>,
        legend: LegendPos,
    ) -> Result<usize, DrawError> {
        let style = canvas.style();
        let binned = self.binned().map_err(|e| DrawError::data(e.to_string()))?;
        if let Some(r) = self.ratio_to {
            if r >= self.samples.len() {
                return Err(DrawError::data(format!(
                    "ratio_to = {r} but there are {} samples",
                    self.samples.len()
                )));
            }
        }
        let edges = &self.edges;
        let n = edges.len() - 1;
        let (xlo, xhi) = (edges[0], edges[n]);
        let x = Scale::new(xlo, xhi, self.log_x);
        let (ylo, yhi) = y_range(&binned, self.log_y);
        let y = Scale::new(ylo, yhi, self.log_y);
        let y_label = if !self.y_label.is_empty() {
            self.y_label.as_str()
        } else if self.density {
            "Density"
        } else {
            "Entries"
        };

        // The ratio panel, if any: ratios of all other samples to the reference.
        let ratios: Vec<(usize, Binned)> = match self.ratio_to {
            Some(r) => (0..binned.len())
                .filter(|&i| i != r)
                .map(|i| (i, binned[i].ratio(&binned[r])))
                .collect(),
            None => vec![],
        };
        let ratio_scale = {
            let (mut lo, mut hi) = (1.0f64, 1.0f64);
            for (_, b) in &ratios {
                for (c, e) in b.counts.iter().zip(&b.errors) {
                    if c.is_finite() && e.is_finite() {
                        lo = lo.min(c - e);
                        hi = hi.max(c + e);
                    }
                }
            }
            // Outliers (a bin with 3 events) should not squash the panel: clamp to 0..3.
            let (lo, hi) = (lo.max(0.0), hi.min(3.0));
            let m = (hi - lo).max(0.1) * 0.12;
            Scale::new((lo - m).max(0.0), hi + m, false)
        };
        let ratio_label = if self.ratio_label.is_empty() {
            "Ratio"
        } else {
            self.ratio_label.as_str()
        };
        let has_ratio = self.ratio_to.is_some();
        let entries: Vec<Entry> = self
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.label.is_empty())
            .map(|(k, s)| {
                let color = s.color.unwrap_or_else(|| style.color(k));
                let swatch = match s.style {
                    HistStyle::Step => Swatch::Line {
                        color,
                        dash: Dash::Solid,
                        marker: false,
                    },
                    HistStyle::Filled => Swatch::Patch { color },
                    HistStyle::Points => Swatch::ErrorPoint { color },
                };
                Entry {
                    label: s.label.clone(),
                    swatch,
                }
            })
            .collect();
        let right = outside_space(&pen, style, &entries, legend)?;
        let scales: Vec<(Scale, f64)> = if has_ratio {
            vec![(y, 0.7), (ratio_scale, 0.3)]
        } else {
            vec![(y, 1.0)]
        };
        let labels: Vec<&str> = if has_ratio {
            vec![y_label, ratio_label]
        } else {
            vec![y_label]
        };
        let (outer, yticks, y_label_x) = layout(
            &pen,
            style,
            canvas.size(),
            &Layout {
                title: &self.title,
                x_label: &self.x_label,
                y_labels: &labels,
                y_scales: &scales,
                right_extra: right,
            },
        )?;
        let gap = if has_ratio { style.px(3.0) } else { 0.0 };
        let main_h = if has_ratio {
            (outer.h() - gap) * 0.7
        } else {
            outer.h()
        };
        let main = Frame {
            rect: Rect::new(outer.x0, outer.y0, outer.x1, outer.y0 + main_h),
            x,
            y,
        };
        let tick_font = style.font(style.tick_pt, false);
        let xticks = x.ticks_fitting(&pen, &tick_font, outer.w(), true)?;

        let lw = style.px(style.line_pt);
        let clip = main.rect;
        let base = main.rect.y1;
        let mut occupied: Vec<Pt> = Vec::new();
        let centre = |i: usize| -> f64 {
            if self.log_x {
                (edges[i] * edges[i + 1]).sqrt()
            } else {
                (edges[i] + edges[i + 1]) / 2.0
            }
        };
        let ypx = |v: f64| -> f64 {
            let p = main.px_y(v);
            if p.is_finite() {
                p
            } else {
                base + 10.0 // log axis, v <= 0: below the frame, clipped away
            }
        };
        for (k, (s, b)) in self.samples.iter().zip(&binned).enumerate() {
            let color = s.color.unwrap_or_else(|| style.color(k));
            let mut outline: Vec<Pt> = vec![(main.px_x(edges[0]), base)];
            for i in 0..n {
                let yy = if b.counts[i].is_finite() {
                    ypx(b.counts[i])
                } else {
                    base
                };
                outline.push((main.px_x(edges[i]), yy));
                outline.push((main.px_x(edges[i + 1]), yy));
            }
            outline.push((main.px_x(edges[n]), base));
            match s.style {
                HistStyle::Step | HistStyle::Filled => {
                    if s.style == HistStyle::Filled {
                        let poly: Vec<Pt> = outline
                            .iter()
                            .map(|&(px, py)| (px, py.clamp(clip.y0, clip.y1)))
                            .collect();
                        pen.fill_polygon(&poly, color.rgba(0.3))?;
                    }
                    pen.line_clipped(&outline, &clip, color.rgba(1.0), lw, Dash::Solid)?;
                    densify(&outline, lw * 4.0, &mut occupied);
                }
                HistStyle::Points => {}
            }
            let r = style.px(style.marker_pt);
            for i in 0..n {
                let (c, e) = (b.counts[i], b.errors[i]);
                if !c.is_finite() || (c == 0.0 && e == 0.0) {
                    continue;
                }
                let px = main.px_x(centre(i));
                if s.error_bars && e > 0.0 && e.is_finite() {
                    let bar = [(px, ypx(c - e)), (px, ypx(c + e))];
                    pen.line_clipped(&bar, &clip, color.rgba(1.0), lw * 0.8, Dash::Solid)?;
                    densify(&bar, lw * 4.0, &mut occupied);
                }
                if s.style == HistStyle::Points {
                    let p = (px, ypx(c));
                    if clip.contains(p) {
                        pen.marker(MarkerShape::Circle, p, r, color.rgba(1.0))?;
                        occupied.push(p);
                    }
                }
            }
        }
        draw_axes(
            &pen,
            style,
            &main,
            &AxesDecor {
                x_ticks: &xticks,
                y_ticks: &yticks[0],
                x_label: if has_ratio { "" } else { &self.x_label },
                y_label,
                x_tick_labels: !has_ratio,
                y_tick_labels: true,
                y_label_x: Some(y_label_x),
                tick_color: Rgb::BLACK,
            },
        )?;
        let hidden = draw_legend(&pen, style, main.rect, &entries, legend, &occupied)?;

        if has_ratio {
            let rf = Frame {
                rect: Rect::new(outer.x0, main.rect.y1 + gap, outer.x1, outer.y1),
                x,
                y: ratio_scale,
            };
            let one = [(rf.rect.x0, rf.px_y(1.0)), (rf.rect.x1, rf.px_y(1.0))];
            pen.line_clipped(&one, &rf.rect, Rgb::GREY.rgba(1.0), lw * 0.8, Dash::Dashed)?;
            let nr = ratios.len();
            for (j, (i, b)) in ratios.iter().enumerate() {
                let s = &self.samples[*i];
                let color = s.color.unwrap_or_else(|| style.color(*i));
                for bin in 0..n {
                    let (c, e) = (b.counts[bin], b.errors[bin]);
                    if !c.is_finite() {
                        continue;
                    }
                    // Several samples side by side within the bin, so error bars do not hide
                    // each other.
                    let w = rf.px_x(edges[bin + 1]) - rf.px_x(edges[bin]);
                    let dodge = if nr > 1 {
                        (j as f64 - (nr as f64 - 1.0) / 2.0) * w * 0.5 / nr as f64
                    } else {
                        0.0
                    };
                    let px = rf.px_x(centre(bin)) + dodge;
                    if e.is_finite() && e > 0.0 {
                        pen.line_clipped(
                            &[(px, rf.px_y(c - e)), (px, rf.px_y(c + e))],
                            &rf.rect,
                            color.rgba(1.0),
                            lw * 0.8,
                            Dash::Solid,
                        )?;
                    }
                    let p = (px, rf.px_y(c));
                    if rf.rect.contains(p) {
                        pen.marker(
                            MarkerShape::Circle,
                            p,
                            style.px(style.marker_pt),
                            color.rgba(1.0),
                        )?;
                    }
                }
            }
            draw_axes(
                &pen,
                style,
                &rf,
                &AxesDecor::labelled(&xticks, &yticks[1], &self.x_label, ratio_label, y_label_x),
            )?;
        }
        Ok(hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_errors_are_root_sum_of_squares() {
        let b = histogram(
            &[0.5, 0.5, 1.5, 2.0, 7.0, f64::NAN],
            Some(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            &[0.0, 1.0, 2.0],
        )
        .unwrap();
        assert_eq!(b.counts, [3.0, 7.0]); // 2.0 is the last bin's inclusive upper edge
        assert!((b.errors[0] - 5f64.sqrt()).abs() < 1e-12);
        assert!((b.errors[1] - 25f64.sqrt()).abs() < 1e-12);
        let u = histogram(&[0.1, 0.2, 0.3, 1.1], None, &[0.0, 1.0, 2.0]).unwrap();
        assert_eq!(u.errors, [3f64.sqrt(), 1.0]);
    }

    #[test]
    fn ratio_propagates_both_errors() {
        let num = Binned {
            counts: vec![4.0, 0.0, 1.0],
            errors: vec![2.0, 1.0, 1.0],
        };
        let den = Binned {
            counts: vec![2.0, 4.0, 0.0],
            errors: vec![1.0, 2.0, 0.0],
        };
        let r = num.ratio(&den);
        assert_eq!(r.counts[0], 2.0);
        // σ_r = r √((2/4)² + (1/2)²) = 2 · √0.5
        assert!((r.errors[0] - 2.0 * 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.counts[1], 0.0);
        assert!((r.errors[1] - 0.25).abs() < 1e-12);
        assert!(r.counts[2].is_nan());
    }

    #[test]
    fn density_has_unit_area() {
        let edges = [0.0, 1.0, 3.0];
        let b = Binned {
            counts: vec![2.0, 4.0],
            errors: vec![1.0, 2.0],
        }
        .density(&edges);
        let area: f64 = b.counts[0] * 1.0 + b.counts[1] * 2.0;
        assert!((area - 1.0).abs() < 1e-12);
        assert!((b.errors[0] / b.counts[0] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_edges_and_lengths_are_reported() {
        assert!(histogram(&[1.0], None, &[0.0]).is_err());
        assert!(histogram(&[1.0], None, &[1.0, 0.0]).is_err());
        assert!(histogram(&[1.0], Some(&[1.0, 2.0]), &[0.0, 2.0]).is_err());
        let s = HistSample::binned("x", vec![1.0, 2.0], None);
        let e = s.bin(&[0.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
    }
}
