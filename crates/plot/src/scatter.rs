//! Scatter plots coloured by category.

use plotters::prelude::DrawingBackend;

use crate::axes::{draw_axes, layout, AxesDecor, Frame, Layout, Scale};
use crate::draw::{MarkerShape, Pen, Pt};
use crate::error::DrawError;
use crate::legend::{draw_legend, draw_with_legend, outside_space, Entry, LegendPos, Swatch};
use crate::output::{Canvas, Plot};

/// Points coloured and shaped by category, with a legend of category names.
///
/// Each category gets a palette colour *and* a marker shape, so categories stay distinct in
/// greyscale print. Points are drawn in the order given, so no category systematically hides
/// another; shuffle the input if it is sorted by category.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// Title above the plot; none when empty.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// x coordinates.
    pub x: Vec<f64>,
    /// y coordinates, as many as x.
    pub y: Vec<f64>,
    /// Category index of each point, as many as x; empty means all category 0.
    pub category: Vec<usize>,
    /// Legend names by category index; "class i" where missing.
    pub category_names: Vec<String>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Marker radius in points; the style's when `None`. Use smaller markers for many points.
    pub marker_pt: Option<f64>,
    /// Marker opacity, 0..=1; below 1 shows where points pile up.
    pub opacity: f64,
    /// Legend placement.
    pub legend: LegendPos,
}

impl Default for Scatter {
    fn default() -> Self {
        Scatter {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x: Vec::new(),
            y: Vec::new(),
            category: Vec::new(),
            category_names: Vec::new(),
            log_x: false,
            log_y: false,
            marker_pt: None,
            opacity: 0.75,
            legend: LegendPos::Best,
        }
    }
}

fn range(v: &[f64], log: bool) -> (f64, f64) {
    let (lo, hi) = v
        .iter()
        .copied()
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        let d = ((b - a) * 0.05).max(0.05);
        (10f64.powf(a - d), 10f64.powf(b + d))
    } else {
        let d = ((hi - lo) * 0.05).max(1e-12);
        (lo - d, hi + d)
    }
}

impl Plot for Scatter {
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        draw_with_legend(canvas, self.legend, |pen, pos| {
            self.render(canvas, pen, pos)
        })
    }
}

impl Scatter {
    fn render<DB: DrawingBackend>(
        &self,
        canvas: &Canvas<'_, DB>,
        pen: &Pen<'_, DB>,
        legend: LegendPos,
    ) -> Result<usize, DrawError> {
        let style = canvas.style();
        if self.x.len() != self.y.len() {
            return Err(DrawError::data(format!(
                "{} x and {} y values",
                self.x.len(),
                self.y.len()
            )));
        }
        if !self.category.is_empty() && self.category.len() != self.x.len() {
            return Err(DrawError::data(format!(
                "{} categories for {} points",
                self.category.len(),
                self.x.len()
            )));
        }
        let cat = |i: usize| self.category.get(i).copied().unwrap_or(0);
        let mut used = Vec::new();
        for i in 0..self.x.len() {
            let c = cat(i);
            if used.len() <= c {
                used.resize(c + 1, false);
            }
            used[c] = true;
        }
        let entries: Vec<Entry> = used
            .iter()
            .enumerate()
            .filter(|(_, u)| **u)
            .map(|(c, _)| Entry {
                label: self
                    .category_names
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| format!("class {c}")),
                swatch: Swatch::Marker {
                    color: style.color(c),
                    shape: MarkerShape::CYCLE[c % MarkerShape::CYCLE.len()],
                },
            })
            .collect();
        let right = outside_space(&pen, style, &entries, legend)?;
        let (xlo, xhi) = range(&self.x, self.log_x);
        let (ylo, yhi) = range(&self.y, self.log_y);
        let x = Scale::new(xlo, xhi, self.log_x);
        let y = Scale::new(ylo, yhi, self.log_y);
        let (rect, yticks, y_label_x) = layout(
            &pen,
            style,
            canvas.size(),
            &Layout {
                title: &self.title,
                x_label: &self.x_label,
                y_labels: &[&self.y_label],
                y_scales: &[(y, 1.0)],
                right_extra: right,
            },
        )?;
        let f = Frame { rect, x, y };
        let xticks = x.ticks_fitting(&pen, &style.font(style.tick_pt, false), rect.w(), true)?;
        let r = style.px(self.marker_pt.unwrap_or(style.marker_pt));
        let alpha = self.opacity.clamp(0.05, 1.0);
        let mut occupied: Vec<Pt> = Vec::with_capacity(self.x.len());
        for i in 0..self.x.len() {
            let c = cat(i);
            let p = f.px(self.x[i], self.y[i]);
            if !rect.contains(p) {
                continue;
            }
            let shape = MarkerShape::CYCLE[c % MarkerShape::CYCLE.len()];
            pen.marker(shape, p, r, style.color(c).rgba(alpha))?;
            occupied.push(p);
        }
        draw_axes(
            &pen,
            style,
            &f,
            &AxesDecor::labelled(&xticks, &yticks[0], &self.x_label, &self.y_label, y_label_x),
        )?;
        draw_legend(&pen, style, rect, &entries, legend, &occupied)
    }
}
