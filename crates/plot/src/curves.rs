//! Line plots: loss and metric curves, and ROC curves.

use plotters::prelude::DrawingBackend;

use crate::axes::{draw_axes, layout, AxesDecor, Frame, Layout, Scale};
use crate::draw::{Dash, MarkerShape, Pen, Pt};
use crate::error::{DrawError, Error, Result};
use crate::legend::{
    densify, draw_legend, draw_with_legend, outside_space, Entry, LegendPos, Swatch,
};
use crate::output::{Canvas, Plot};
use crate::style::Rgb;

/// One line of a [`Curves`] plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend label; not listed when empty.
    pub label: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values, as many as x. Non-finite values (and values ≤ 0 on a log axis) break the line.
    pub y: Vec<f64>,
    /// Colour; the palette's next colour when `None`.
    pub color: Option<Rgb>,
    /// Dash pattern.
    pub dash: Dash,
    /// Mark each point.
    pub markers: bool,
}

impl Series {
    /// A series of points.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Series {
        Series {
            label: label.into(),
            x,
            y,
            ..Default::default()
        }
    }

    /// One value per epoch, at x = 1, 2, ...
    pub fn epochs(label: impl Into<String>, y: Vec<f64>) -> Series {
        let x = (1..=y.len()).map(|i| i as f64).collect();
        Series::new(label, x, y)
    }

    /// Sets the dash pattern (for instance dashed for validation curves).
    pub fn with_dash(mut self, dash: Dash) -> Series {
        self.dash = dash;
        self
    }

    /// Sets the colour.
    pub fn with_color(mut self, color: Rgb) -> Series {
        self.color = Some(color);
        self
    }

    /// Marks each point.
    pub fn with_markers(mut self) -> Series {
        self.markers = true;
        self
    }
}

/// Loss and metric curves: several series against a common x axis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    /// Title above the plot; none when empty.
    pub title: String,
    /// x-axis label ("Epoch", "Step").
    pub x_label: String,
    /// y-axis label ("Loss").
    pub y_label: String,
    /// The lines, drawn in order.
    pub series: Vec<Series>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis (usual for losses).
    pub log_y: bool,
    /// x range; the data's when `None`.
    pub x_range: Option<(f64, f64)>,
    /// y range; the data's, with a margin, when `None`.
    pub y_range: Option<(f64, f64)>,
    /// Legend placement.
    pub legend: LegendPos,
}

fn data_range(vals: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (lo, hi) = vals
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}

/// A margin of `m` of the span on both sides (in log space for log axes).
fn padded((lo, hi): (f64, f64), log: bool, m: f64) -> (f64, f64) {
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        let d = ((b - a) * m).max(0.05);
        (10f64.powf(a - d), 10f64.powf(b + d))
    } else {
        let d = (hi - lo) * m;
        (lo - d, hi + d)
    }
}

/// Legend entries for labelled series.
fn series_entries(canvas_style: &crate::style::Style, series: &[(&Series, String)]) -> Vec<Entry> {
    series
        .iter()
        .enumerate()
        .filter(|(_, (_, l))| !l.is_empty())
        .map(|(k, (s, label))| {
            let color = s.color.unwrap_or_else(|| canvas_style.color(k));
            let swatch = if s.markers && s.x.len() < 2 {
                Swatch::Marker {
                    color,
                    shape: MarkerShape::Circle,
                }
            } else {
                Swatch::Line {
                    color,
                    dash: s.dash,
                    marker: s.markers,
                }
            };
            Entry {
                label: label.clone(),
                swatch,
            }
        })
        .collect()
}

/// Draws lines into a frame; returns the pixels the data cover.
fn draw_series<DB: DrawingBackend>(
    pen: &Pen<DB>,
    style: &crate::style::Style,
    f: &Frame,
    series: &[(&Series, String)],
) -> Result<Vec<Pt>, DrawError> {
    let lw = style.px(style.line_pt);
    let mut occupied = Vec::new();
    for (k, (s, _)) in series.iter().enumerate() {
        if s.x.len() != s.y.len() {
            return Err(DrawError::data(format!(
                "series '{}' has {} x and {} y values",
                s.label,
                s.x.len(),
                s.y.len()
            )));
        }
        let color = s.color.unwrap_or_else(|| style.color(k));
        let pts: Vec<Pt> = s.x.iter().zip(&s.y).map(|(&x, &y)| f.px(x, y)).collect();
        pen.line_clipped(&pts, &f.rect, color.rgba(1.0), lw, s.dash)?;
        if s.markers {
            for &p in &pts {
                if f.rect.contains(p) {
                    pen.marker(
                        MarkerShape::Circle,
                        p,
                        style.px(style.marker_pt),
                        color.rgba(1.0),
                    )?;
                }
            }
        }
        densify(&pts, lw * 4.0, &mut occupied);
    }
    Ok(occupied)
}

impl Plot for Curves {
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        draw_with_legend(canvas, self.legend, |pen, pos| {
            self.render(canvas, pen, pos)
        })
    }
}

impl Curves {
    fn render<DB: DrawingBackend>(
        &self,
        canvas: &Canvas<'_, DB>,
        pen: &Pen<'_, DB>,
        legend: LegendPos,
    ) -> Result<usize, DrawError> {
        let style = canvas.style();
        let labelled: Vec<(&Series, String)> =
            self.series.iter().map(|s| (s, s.label.clone())).collect();
        let entries = series_entries(style, &labelled);
        let right = outside_space(&pen, style, &entries, legend)?;
        let xr = self
            .x_range
            .or_else(|| {
                data_range(
                    self.series.iter().flat_map(|s| s.x.iter().copied()),
                    self.log_x,
                )
            })
            .ok_or_else(|| DrawError::data("curves have no finite x values"))?;
        let yr = match self.y_range {
            Some(r) => r,
            None => padded(
                data_range(
                    self.series.iter().flat_map(|s| s.y.iter().copied()),
                    self.log_y,
                )
                .ok_or_else(|| DrawError::data("curves have no finite y values"))?,
                self.log_y,
                0.05,
            ),
        };
        let x = Scale::new(xr.0, xr.1, self.log_x);
        let y = Scale::new(yr.0, yr.1, self.log_y);
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
        let occupied = draw_series(&pen, style, &f, &labelled)?;
        draw_axes(
            &pen,
            style,
            &f,
            &AxesDecor::labelled(&xticks, &yticks[0], &self.x_label, &self.y_label, y_label_x),
        )?;
        draw_legend(&pen, style, rect, &entries, legend, &occupied)
    }
}

/// One classifier's ROC curve.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RocCurve {
    /// Legend label; the AUC is appended.
    pub label: String,
    /// False-positive rates (background efficiency), increasing.
    pub fpr: Vec<f64>,
    /// True-positive rates (signal efficiency).
    pub tpr: Vec<f64>,
    /// Area under the curve.
    pub auc: f64,
}

impl RocCurve {
    /// A computed ROC curve under a legend label.
    pub fn new(label: impl Into<String>, roc: deepsky_core::metrics::Roc) -> RocCurve {
        RocCurve {
            label: label.into(),
            fpr: roc.fpr,
            tpr: roc.tpr,
            auc: roc.auc,
        }
    }

    /// The ROC curve of `scores` against true `labels`
    /// ([`deepsky_core::metrics::roc_curve`]).
    pub fn from_scores(
        label: impl Into<String>,
        scores: &[f64],
        labels: &[bool],
    ) -> Result<RocCurve> {
        let roc = deepsky_core::metrics::roc_curve(scores, labels)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(RocCurve::new(label, roc))
    }
}

/// ROC curves of one or more classifiers, with each AUC in the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    /// Title above the plot; none when empty.
    pub title: String,
    /// The classifiers.
    pub curves: Vec<RocCurve>,
    /// Logarithmic false-positive-rate axis, to show the low-background region.
    pub log_x: bool,
    /// Draw the diagonal of a random classifier.
    pub diagonal: bool,
    /// Legend placement.
    pub legend: LegendPos,
}

impl Default for Roc {
    fn default() -> Self {
        Roc {
            title: String::new(),
            curves: Vec::new(),
            log_x: false,
            diagonal: true,
            legend: LegendPos::Best,
        }
    }
}

impl Plot for Roc {
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        draw_with_legend(canvas, self.legend, |pen, pos| {
            self.render(canvas, pen, pos)
        })
    }
}

impl Roc {
    fn render<DB: DrawingBackend>(
        &self,
        canvas: &Canvas<'_, DB>,
        pen: &Pen<'_, DB>,
        legend: LegendPos,
    ) -> Result<usize, DrawError> {
        let style = canvas.style();
        let series: Vec<Series> = self
            .curves
            .iter()
            .map(|c| Series::new(c.label.clone(), c.fpr.clone(), c.tpr.clone()))
            .collect();
        let labelled: Vec<(&Series, String)> = series
            .iter()
            .zip(&self.curves)
            .map(|(s, c)| {
                let l = if c.label.is_empty() {
                    format!("AUC = {:.3}", c.auc)
                } else {
                    format!("{} (AUC = {:.3})", c.label, c.auc)
                };
                (s, l)
            })
            .collect();
        let entries = series_entries(style, &labelled);
        let right = outside_space(&pen, style, &entries, legend)?;
        let (x_label, y_label) = ("False positive rate", "True positive rate");
        let xlo = if self.log_x {
            let m = self
                .curves
                .iter()
                .flat_map(|c| c.fpr.iter().copied())
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            if m.is_finite() {
                10f64.powf(m.log10().floor())
            } else {
                1e-4
            }
        } else {
            0.0
        };
        let x = Scale::new(xlo, 1.0, self.log_x);
        let y = Scale::new(0.0, 1.0, false);
        let (rect, yticks, y_label_x) = layout(
            &pen,
            style,
            canvas.size(),
            &Layout {
                title: &self.title,
                x_label,
                y_labels: &[y_label],
                y_scales: &[(y, 1.0)],
                right_extra: right,
            },
        )?;
        let f = Frame { rect, x, y };
        let xticks = x.ticks_fitting(&pen, &style.font(style.tick_pt, false), rect.w(), true)?;
        if self.diagonal {
            // On a log axis the diagonal is a curve; sample it.
            let diag: Vec<Pt> = (0..=200)
                .map(|i| x.value(i as f64 / 200.0))
                .map(|v| f.px(v, v))
                .collect();
            pen.line_clipped(
                &diag,
                &rect,
                Rgb::GREY.rgba(1.0),
                style.px(style.line_pt) * 0.8,
                Dash::Dashed,
            )?;
        }
        let occupied = draw_series(&pen, style, &f, &labelled)?;
        draw_axes(
            &pen,
            style,
            &f,
            &AxesDecor::labelled(&xticks, &yticks[0], x_label, y_label, y_label_x),
        )?;
        draw_legend(&pen, style, rect, &entries, legend, &occupied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_curve_from_scores_keeps_label_points_and_area() {
        // Positives 0.8 and 0.4, negatives 0.6 and 0.2: 3 of 4 pairs ordered correctly.
        let c = RocCurve::from_scores("net", &[0.8, 0.6, 0.4, 0.2], &[true, false, true, false])
            .unwrap();
        assert_eq!(c.label, "net");
        assert_eq!(c.fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(c.tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(c.auc, 0.75);
        assert!(RocCurve::from_scores("one class", &[0.1, 0.2], &[true, true]).is_err());
    }
}
