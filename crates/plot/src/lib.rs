//! Publication plots for deepsky, in one house style, as PNG, SVG and vector PDF.
//!
//! Every pipeline plots through this crate, so that a reader learns one look: the same font,
//! sizes, colours, tick style and legend placement in a loss curve as in a sky image.
//!
//! # Plot kinds
//!
//! Each kind is a plain data struct that implements [`Plot`]; fill in its fields (most have
//! defaults) and call [`Plot::save`] or [`save_all`]:
//!
//! | struct | shows |
//! | --- | --- |
//! | [`Hist1d`] | 1-D histograms of several samples with √Σw² error bars, optional ratio panel |
//! | [`Heatmap`] | 2-D histograms and heat maps with colour bar, optional log colour scale |
//! | [`Curves`] | loss and metric curves against epoch or step |
//! | [`Roc`] | ROC curves with the AUC in the legend (computed by `deepsky_core::metrics`) |
//! | [`Scatter`] | points coloured and shaped by category, with a legend |
//! | [`SkyImage`] | an astronomical image: zscale or percentile interval, asinh or other stretch, colour bar, boxes, circles and labels |
//! | [`Gallery`] | a grid of image stamps with titles |
//!
//! # Output
//!
//! [`save`] picks the format from the extension (`.png`, `.svg`, `.pdf`); [`save_all`] writes
//! all three from a stem and [`save_formats`] the formats a configuration lists. Files are
//! written to a temporary name and renamed, so readers never see half a plot; errors name the
//! file. PDF pages are vector graphics, with text as glyph outlines (so no font is needed to
//! view them); only the pixels of sky images and stamps are raster images, never
//! interpolated.
//!
//! # Style
//!
//! [`Style::default`] is a figure 3.5 × 2.5 inches (1050 × 750 px at 300 dpi), the width of one
//! journal column, so that text sized 8–9 pt prints at 8–9 pt without scaling. The font is
//! DejaVu Sans, embedded in the binary: no system fonts or fontconfig are needed anywhere.
//! Colours follow the Okabe–Ito palette, safe for colour-blind readers; scatter categories
//! also differ in marker shape; heat maps use viridis. Ticks point inwards on all four sides.
//! Legends go to the corner where they hide no data, or right of the frame if every corner
//! would ([`LegendPos::Best`]).
//!
//! # Image conventions
//!
//! Sky images are `Array2<f32>` indexed `[[row, col]]` with row 0 drawn at the bottom, as FITS
//! images are displayed. Overlay positions are 1-based FITS pixel coordinates: the centre of
//! `data[[r, c]]` is at `(c + 1, r + 1)`. NaN pixels are shown in a colour outside the colour
//! map. See [`SkyImage`] and [`Overlay`].
//!
//! # Example
//!
//! ```
//! use deepsky_plot::{save_all, Curves, Dash, Plot, Series};
//!
//! let curves = Curves {
//!     x_label: "Epoch".into(),
//!     y_label: "Loss".into(),
//!     series: vec![
//!         Series::epochs("train", vec![1.0, 0.6, 0.4, 0.3]),
//!         Series::epochs("validation", vec![1.1, 0.7, 0.55, 0.5]).with_dash(Dash::Dashed),
//!     ],
//!     log_y: true,
//!     ..Default::default()
//! };
//! let dir = tempfile::tempdir().unwrap();
//! curves.save(dir.path().join("loss.pdf"))?; // one format, from the extension
//! let written = save_all(&curves, dir.path().join("loss"))?; // loss.png, loss.svg, loss.pdf
//! assert_eq!(written.len(), 3);
//! # Ok::<(), deepsky_plot::Error>(())
//! ```
#![warn(missing_docs)]

mod axes;
mod curves;
mod draw;
mod error;
mod heatmap;
mod hist;
mod legend;
mod output;
mod scatter;
mod sky;
mod style;
mod text;

pub use curves::{Curves, Roc, RocCurve, Series};
pub use draw::{Dash, MarkerShape};
pub use error::{DrawError, Error, Result};
pub use heatmap::Heatmap;
pub use hist::{
    histogram, log_edges, uniform_edges, Binned, Hist1d, HistData, HistSample, HistStyle,
};
pub use legend::LegendPos;
pub use output::{
    render_pdf, render_png, render_svg, save, save_all, save_formats, save_with_style, Canvas,
    Format, Plot, RgbImage,
};
pub use scatter::Scatter;
pub use sky::{
    zscale, zscale_with, Gallery, Interval, Overlay, SkyImage, Stamp, Stretch, ZScaleParams,
};
pub use style::{Colormap, Rgb, Style, FONT_FAMILY, OKABE_ITO};
