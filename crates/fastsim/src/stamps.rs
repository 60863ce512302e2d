//! Generated image stamps against the training stamps: per-stamp summaries (total flux, peak,
//! concentration) compared with χ² separation and Wasserstein-1, histograms, and a gallery.
//!
//! ```
//! use deepsky_fastsim::stamps::compare_stamps;
//! use ndarray::Array3;
//!
//! let data = Array3::from_shape_fn((50, 8, 8), |(i, r, c)| (i + r * c) as f32);
//! let same = compare_stamps(&data, &data, 10);
//! assert_eq!(same[0].name, "flux");
//! assert_eq!(same[0].comparison.chi2, 0.0);
//! ```

use deepsky_plot::{Gallery, Hist1d, HistSample, HistStyle, Interval, Stamp};
use ndarray::{s, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::metrics::{binning, chi2_separation, wasserstein1};
use crate::validate::mean;

/// One per-stamp summary over a stack of stamps.
#[derive(Debug, Clone, PartialEq)]
pub struct StampSummary {
    /// `flux`, `peak` or `concentration`.
    pub name: &'static str,
    /// Axis label.
    pub label: &'static str,
    /// One value per stamp.
    pub values: Vec<f64>,
}

/// Total flux, brightest pixel, and the fraction of the flux in the central quarter of the
/// stamp (the concentration; 0 for a stamp without flux), of every stamp of an (N, H, W) stack.
pub fn stamp_summaries(images: &Array3<f32>) -> [StampSummary; 3] {
    let (h, w) = (images.shape()[1], images.shape()[2]);
    let (r0, c0) = (h * 3 / 8, w * 3 / 8);
    let (r1, c1) = (h - r0, w - c0);
    let mut flux = Vec::new();
    let mut peak = Vec::new();
    let mut conc = Vec::new();
    for img in images.axis_iter(Axis(0)) {
        let total: f64 = img.iter().map(|&v| v as f64).sum();
        let centre: f64 = img
            .slice(s![r0..r1, c0..c1])
            .iter()
            .map(|&v| v as f64)
            .sum();
        flux.push(total);
        peak.push(img.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64);
        conc.push(if total.abs() > 0.0 {
            centre / total
        } else {
            0.0
        });
    }
    let summary = |name, label, values| StampSummary {
        name,
        label,
        values,
    };
    [
        summary("flux", "total flux per stamp [ADU]", flux),
        summary("peak", "brightest pixel [ADU]", peak),
        summary(
            "concentration",
            "flux fraction in the central quarter",
            conc,
        ),
    ]
}

/// The numbers of one summary's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampComparison {
    /// χ² separation power of the generated stamps against the training stamps.
    pub chi2: f64,
    /// Wasserstein-1 distance.
    pub w1: f64,
    /// Mean over the training stamps.
    pub data_mean: f64,
    /// Mean over the generated stamps.
    pub generated_mean: f64,
}

/// One summary of both stacks, its binning and its comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryComparison {
    /// Summary name.
    pub name: &'static str,
    /// The training stamps' summary.
    pub data: StampSummary,
    /// The generated stamps' values.
    pub generated: Vec<f64>,
    /// Shared bin edges.
    pub edges: Vec<f64>,
    /// χ², W1, means.
    pub comparison: StampComparison,
}

impl SummaryComparison {
    /// Normalised histograms of both stacks with their ratio.
    pub fn histogram(&self) -> Hist1d {
        Hist1d {
            x_label: self.data.label.into(),
            edges: self.edges.clone(),
            samples: vec![
                HistSample::values("Training stamps", self.data.values.clone())
                    .with_style(HistStyle::Filled),
                HistSample::values("GAN", self.generated.clone()).with_style(HistStyle::Points),
            ],
            density: true,
            ratio_to: Some(0),
            ..Default::default()
        }
    }
}

/// Every summary of `generated` against `data`, in `bins` bins.
pub fn compare_stamps(
    data: &Array3<f32>,
    generated: &Array3<f32>,
    bins: usize,
) -> Vec<SummaryComparison> {
    stamp_summaries(data)
        .into_iter()
        .zip(stamp_summaries(generated))
        .map(|(data, gen)| {
            let edges = binning(&data.values, &gen.values, bins, false);
            let comparison = StampComparison {
                chi2: chi2_separation(&gen.values, &data.values, &edges),
                w1: wasserstein1(&gen.values, &data.values),
                data_mean: mean(&data.values),
                generated_mean: mean(&gen.values),
            };
            SummaryComparison {
                name: data.name,
                data,
                generated: gen.values,
                edges,
                comparison,
            }
        })
        .collect()
}

/// Up to 8 training stamps in the top rows and as many generated ones below.
pub fn gallery(data: &Array3<f32>, generated: &Array3<f32>) -> Gallery {
    let k = 8.min(data.shape()[0]).min(generated.shape()[0]);
    let row = |stack: &Array3<f32>, name: &str| {
        (0..k)
            .map(|i| {
                Stamp::new(
                    stack.index_axis(Axis(0), i).to_owned(),
                    format!("{name} {i}"),
                )
            })
            .collect::<Vec<_>>()
    };
    Gallery {
        title: "Training stamps (top) and generated (bottom)".into(),
        stamps: [row(data, "data"), row(generated, "GAN")].concat(),
        columns: k.div_ceil(2).max(1),
        interval: Interval::Percentile(99.5),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_measure_flux_peak_and_concentration() {
        // An 8×8 stamp with 3 in the centre pixel and 1 in a corner: the central quarter is
        // rows and columns 3..5.
        let mut img = Array3::<f32>::zeros((2, 8, 8));
        img[[0, 4, 4]] = 3.0;
        img[[0, 0, 0]] = 1.0;
        let [flux, peak, conc] = stamp_summaries(&img);
        assert_eq!(flux.values, [4.0, 0.0]);
        assert_eq!(peak.values, [3.0, 0.0]);
        assert_eq!(conc.values, [0.75, 0.0]);
    }

    #[test]
    fn brighter_generated_stamps_separate_and_the_gallery_pairs_rows() {
        let data = Array3::from_shape_fn((40, 8, 8), |(i, r, c)| ((i % 5) + r + c) as f32);
        let brighter = data.mapv(|v| 3.0 * v + 10.0);
        let c = compare_stamps(&data, &brighter, 10);
        assert!(c[0].comparison.chi2 > 0.9, "{:?}", c[0].comparison);
        assert!(
            (c[0].comparison.generated_mean - (3.0 * c[0].comparison.data_mean + 640.0)).abs()
                < 1e-6
        );
        assert_eq!(c[0].histogram().samples.len(), 2);
        let g = gallery(&data, &brighter.slice(s![..3, .., ..]).to_owned());
        assert_eq!((g.stamps.len(), g.columns), (6, 2));
        assert_eq!(g.stamps[3].title, "GAN 0");
    }
}
