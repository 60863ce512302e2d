//! 2-D histograms and heat maps with a colour bar.

use std::cmp::Ordering;

use ndarray::Array2;
use plotters::prelude::DrawingBackend;

use crate::axes::{
    colorbar_space, draw_axes, draw_colorbar, layout, AxesDecor, Frame, Layout, Scale,
};
use crate::draw::Rect;
use crate::error::{DrawError, Error, Result};
use crate::output::{Canvas, Plot};
use crate::style::Colormap;

/// A heat map of `data` over a grid of bins, with a colour bar.
///
/// `data[[i, j]]` is the value of the bin from `x_edges[i]` to `x_edges[i + 1]` and from
/// `y_edges[j]` to `y_edges[j + 1]`: the first index runs along x, as numpy's `histogram2d`
/// returns it. NaN bins are left white, as are bins ≤ 0 with a logarithmic colour scale.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Title above the plot; none when empty.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Bin values, shape (number of x bins, number of y bins).
    pub data: Array2<f64>,
    /// x bin edges, one more than x bins; bin indices 0..n when empty.
    pub x_edges: Vec<f64>,
    /// y bin edges, one more than y bins; bin indices 0..n when empty.
    pub y_edges: Vec<f64>,
    /// Logarithmic colour scale.
    pub log_color: bool,
    /// Colour-bar label (what the colour measures, with unit).
    pub color_label: String,
    /// Colour map; viridis by default.
    pub colormap: Colormap,
    /// Value range of the colour scale; the data's range when `None`.
    pub color_range: Option<(f64, f64)>,
}

impl Heatmap {
    /// A heat map of `data` on bin-index axes.
    pub fn new(data: Array2<f64>) -> Heatmap {
        Heatmap {
            data,
            ..Default::default()
        }
    }

    /// Fills a 2-D histogram: the array has shape `(x_edges.len() - 1, y_edges.len() - 1)`.
    /// Bins are half-open except the last in each direction; points outside are dropped.
    pub fn histogram2d(
        x: &[f64],
        y: &[f64],
        weights: Option<&[f64]>,
        x_edges: &[f64],
        y_edges: &[f64],
    ) -> Result<Array2<f64>> {
        if x.len() != y.len() || weights.is_some_and(|w| w.len() != x.len()) {
            return Err(Error::InvalidInput(
                "x, y and weights must have the same length".into(),
            ));
        }
        for e in [x_edges, y_edges] {
            if e.len() < 2
                || e.windows(2)
                    .any(|w| w[1].partial_cmp(&w[0]) != Some(Ordering::Greater))
            {
                return Err(Error::InvalidInput(
                    "bin edges must be at least two, strictly increasing".into(),
                ));
            }
        }
        let (nx, ny) = (x_edges.len() - 1, y_edges.len() - 1);
        let mut h = Array2::zeros((nx, ny));
        let bin = |e: &[f64], v: f64| -> Option<usize> {
            let n = e.len() - 1;
            (v >= e[0] && v <= e[n]).then(|| (e.partition_point(|&b| b <= v) - 1).min(n - 1))
        };
        for k in 0..x.len() {
            if let (Some(i), Some(j)) = (bin(x_edges, x[k]), bin(y_edges, y[k])) {
                h[[i, j]] += weights.map_or(1.0, |w| w[k]);
            }
        }
        Ok(h)
    }

    fn edges(given: &[f64], n: usize, axis: &str) -> Result<Vec<f64>, DrawError> {
        if given.is_empty() {
            return Ok((0..=n).map(|i| i as f64).collect());
        }
        if given.len() != n + 1 {
            return Err(DrawError::data(format!(
                "{axis} edges: {} for {n} bins",
                given.len()
            )));
        }
        if given
            .windows(2)
            .any(|w| w[1].partial_cmp(&w[0]) != Some(Ordering::Greater))
        {
            return Err(DrawError::data(format!(
                "{axis} edges must be strictly increasing"
            )));
        }
        Ok(given.to_vec())
    }
}

impl Plot for Heatmap {
    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<'_, DB>) -> Result<(), DrawError> {
        let style = canvas.style();
        let pen = canvas.pen();
        let (nx, ny) = self.data.dim();
        if nx == 0 || ny == 0 {
            return Err(DrawError::data("heat map has no bins"));
        }
        let xe = Self::edges(&self.x_edges, nx, "x")?;
        let ye = Self::edges(&self.y_edges, ny, "y")?;
        let usable = |v: f64| v.is_finite() && (!self.log_color || v > 0.0);
        let (cmin, cmax) = self.color_range.unwrap_or_else(|| {
            self.data
                .iter()
                .filter(|v| usable(**v))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                })
        });
        let cscale = Scale::new(cmin, cmax, self.log_color);
        let tick_font = style.font(style.tick_pt, false);
        let est_h = canvas.size().1 as f64 * 0.75;
        let cticks = cscale.ticks_fitting(&pen, &tick_font, est_h, false)?;
        let (bar_gap, bar_w, cb_total) = colorbar_space(&pen, style, &cticks, &self.color_label)?;
        let x = Scale::new(xe[0], xe[nx], false);
        let y = Scale::new(ye[0], ye[ny], false);
        let (rect, yticks, y_label_x) = layout(
            &pen,
            style,
            canvas.size(),
            &Layout {
                title: &self.title,
                x_label: &self.x_label,
                y_labels: &[&self.y_label],
                y_scales: &[(y, 1.0)],
                right_extra: bar_gap + cb_total,
            },
        )?;
        let f = Frame { rect, x, y };
        let xticks = x.ticks_fitting(&pen, &tick_font, rect.w(), true)?;

        let cmap = self.colormap;
        let color_of = |v: f64| cmap.at(cscale.frac(v));
        for i in 0..nx {
            let (x0, x1) = (f.px_x(xe[i]), f.px_x(xe[i + 1]));
            for j in 0..ny {
                let v = self.data[[i, j]];
                if !usable(v) {
                    continue;
                }
                // One pixel of overlap into the next cell hides anti-aliasing seams in viewers.
                let (y0, y1) = (f.px_y(ye[j + 1]), f.px_y(ye[j]));
                let cell = Rect::new(x0, y0 - 1.0, x1 + 1.0, y1);
                if let Some(c) = cell.clip(&rect) {
                    pen.fill_rect(c, color_of(v).rgba(1.0))?;
                }
            }
        }
        draw_axes(
            &pen,
            style,
            &f,
            &AxesDecor::labelled(&xticks, &yticks[0], &self.x_label, &self.y_label, y_label_x),
        )?;
        let bar = Rect::new(
            rect.x1 + bar_gap,
            rect.y0,
            rect.x1 + bar_gap + bar_w,
            rect.y1,
        );
        let cticks = cscale.ticks_fitting(&pen, &tick_font, rect.h(), false)?;
        draw_colorbar(
            &pen,
            style,
            bar,
            &cscale,
            &cticks,
            &color_of,
            &self.color_label,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram2d_indexes_x_first() {
        let h = Heatmap::histogram2d(
            &[0.5, 1.5, 1.5, 3.0],
            &[0.5, 0.5, 2.5, 0.0],
            None,
            &[0.0, 1.0, 2.0],
            &[0.0, 1.0, 2.0, 3.0],
        )
        .unwrap();
        assert_eq!(h.dim(), (2, 3));
        assert_eq!(h[[0, 0]], 1.0);
        assert_eq!(h[[1, 0]], 1.0);
        assert_eq!(h[[1, 2]], 1.0);
        assert_eq!(h.sum(), 3.0); // x = 3.0 is outside
    }
}
