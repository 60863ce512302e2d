//! The plots of `deepsky detect`, as deepsky-plot figures for the caller to save in the formats
//! it wants: the detections over the image ([`overlay`]) and completeness and purity against
//! S/N ([`snr_curves`]).
//!
//! ```
//! use ndarray::Array2;
//! use deepsky_detect::figures::overlay;
//!
//! let image = Array2::<f32>::zeros((1000, 800));
//! let plot = overlay(image.view(), &[], &[], 512);
//! assert_eq!(plot.title, "0 detections (central 512×512 pixels shown)");
//! ```

use deepsky_core::pixel::to_fits;
use deepsky_plot::{Curves, Dash, Overlay, Rgb, Series, SkyImage, OKABE_ITO};
use ndarray::{s, ArrayView2};

use crate::measure::MeasuredObject;
use crate::metrics::{Evaluation, TruthObject};

/// Colour of class `c` in plots: Okabe–Ito without the blue (image colour maps) first.
pub fn class_color(c: usize) -> Rgb {
    OKABE_ITO[(c + 1) % OKABE_ITO.len()]
}

/// The detections' boxes (coloured by class) and the `missed` truth sources (red circles) over
/// the image; images larger than `max_side` show their central crop of at most that size (a
/// 4k×4k overlay is unreadable).
pub fn overlay(
    image: ArrayView2<f32>,
    rows: &[MeasuredObject],
    missed: &[TruthObject],
    max_side: usize,
) -> SkyImage {
    let (h, w) = image.dim();
    let (ch, cw) = (h.min(max_side), w.min(max_side));
    let (r0, c0) = ((h - ch) / 2, (w - cw) / 2);
    let crop = image.slice(s![r0..r0 + ch, c0..c0 + cw]).to_owned();
    let mut img = SkyImage::new(crop);
    img.title = if (ch, cw) == (h, w) {
        format!("{} detections", rows.len())
    } else {
        format!("{} detections (central {cw}×{ch} pixels shown)", rows.len())
    };
    img.color_label = "ADU".into();
    let (dx, dy) = (c0 as f64, r0 as f64);
    for r in rows {
        let b = r.bbox;
        if (b.x1 as f64) < dx
            || (b.x0 as f64) > dx + cw as f64
            || (b.y1 as f64) < dy
            || (b.y0 as f64) > dy + ch as f64
        {
            continue;
        }
        img.overlays.push(
            Overlay::rect(
                to_fits(b.x0 as f64) - dx,
                to_fits(b.y0 as f64) - dy,
                to_fits(b.x1 as f64) - dx,
                to_fits(b.y1 as f64) - dy,
            )
            .with_color(class_color(r.class)),
        );
    }
    for t in missed {
        let (x, y) = (to_fits(t.x as f64) - dx, to_fits(t.y as f64) - dy);
        if x < 0.0 || y < 0.0 || x > cw as f64 || y > ch as f64 {
            continue;
        }
        img.overlays
            .push(Overlay::circle(x, y, 4.0).with_color(Rgb(255, 40, 40)));
    }
    img
}

/// Completeness against truth S/N and purity against measured S/N, one curve per labelled
/// evaluation (the first solid, the others dashed), as `(file stem, plot)`:
/// `completeness_vs_snr` and `purity_vs_snr`. A plot none of whose evaluations has a value in
/// any bin (a catalogue without fluxes has no measured S/N) is left out.
pub fn snr_curves(evals: &[(&str, &Evaluation)]) -> Vec<(&'static str, Curves)> {
    let mut plots = Vec::new();
    for (stem, completeness) in [("completeness_vs_snr", true), ("purity_vs_snr", false)] {
        let mut series = Vec::new();
        for (k, (name, e)) in evals.iter().enumerate() {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for b in &e.snr_bins {
                let v = if completeness {
                    b.completeness
                } else {
                    b.purity
                };
                if let Some(v) = v {
                    // Bin centre on a log axis; the open last bin at 1.5× its edge.
                    let x = match b.hi {
                        Some(hi) if b.lo > 0.0 => (b.lo * hi).sqrt(),
                        Some(hi) => hi / 2.0,
                        None => b.lo * 1.5,
                    };
                    xs.push(x);
                    ys.push(v);
                }
            }
            if xs.is_empty() {
                continue;
            }
            let mut s = Series::new(*name, xs, ys)
                .with_markers()
                .with_color(OKABE_ITO[k % OKABE_ITO.len()]);
            if k > 0 {
                s = s.with_dash(Dash::Dashed);
            }
            series.push(s);
        }
        if series.is_empty() {
            continue;
        }
        let plot = Curves {
            x_label: if completeness {
                "Truth S/N".into()
            } else {
                "Measured S/N".into()
            },
            y_label: if completeness {
                "Completeness".into()
            } else {
                "Purity".into()
            },
            series,
            log_x: true,
            y_range: Some((0.0, 1.05)),
            ..Default::default()
        };
        plots.push((stem, plot));
    }
    plots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BBox;
    use crate::metrics::{evaluate, DetectedObject, EvalConfig};
    use ndarray::Array2;

    fn object(x: f32, class: usize) -> MeasuredObject {
        MeasuredObject {
            x: x as f64,
            y: 10.0,
            ra: f64::NAN,
            dec: f64::NAN,
            bbox: BBox::new(x - 2.0, 8.0, x + 2.0, 12.0),
            class,
            score: 0.5,
            flux: 100.0,
            flux_err: 10.0,
            point_source: None,
            aperture_masked: 0,
        }
    }

    #[test]
    fn overlay_draws_what_lies_in_the_crop() {
        let image = Array2::<f32>::zeros((100, 300));
        let missed = [TruthObject::from_catalog(
            (151.0, 51.0),
            [149, 49, 153, 53],
            0,
            None,
            5.0,
        )];
        // The crop is columns 100..200 of the full height.
        let plot = overlay(
            image.view(),
            &[object(20.0, 0), object(150.0, 1)],
            &missed,
            100,
        );
        assert_eq!(plot.title, "2 detections (central 100×100 pixels shown)");
        assert_eq!(plot.overlays.len(), 2);
        assert_eq!(
            plot.overlays[0],
            Overlay::rect(48.5, 8.5, 52.5, 12.5).with_color(class_color(1))
        );
        assert_eq!(
            plot.overlays[1],
            Overlay::circle(51.0, 51.0, 4.0).with_color(Rgb(255, 40, 40))
        );
        let whole = overlay(image.view(), &[], &[], 512);
        assert_eq!(
            (whole.title.as_str(), whole.overlays.len()),
            ("0 detections", 0)
        );
    }

    #[test]
    fn snr_curves_plot_the_filled_bins() {
        let truth: Vec<TruthObject> = (0..4)
            .map(|i| {
                let x = 10 + 20 * i;
                let bbox = [x - 2, 8, x + 2, 12];
                TruthObject::from_catalog((x as f64, 10.0), bbox, 0, None, 4.0 + 10.0 * i as f64)
            })
            .collect();
        let dets: Vec<DetectedObject> = truth[..2]
            .iter()
            .map(|t| DetectedObject::from(&object(t.x, 0)))
            .collect();
        let names = vec!["star".to_string()];
        let e = evaluate(&dets, &truth, &names, &EvalConfig::default());
        let plots = snr_curves(&[("a", &e), ("b", &e)]);
        let stems: Vec<&str> = plots.iter().map(|(s, _)| *s).collect();
        assert_eq!(stems, ["completeness_vs_snr", "purity_vs_snr"]);
        let c = &plots[0].1;
        assert_eq!(c.series.len(), 2);
        // Truth at S/N 4, 14, 24, 34 fill the bins [3, 5), [10, 20), [20, 50).
        assert_eq!(c.series[0].y, vec![1.0, 1.0, 0.0]);
        assert!((c.series[0].x[0] - 15f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.series[1].dash, Dash::Dashed);
        // Without measured S/N there is no purity plot.
        let blind: Vec<DetectedObject> = dets
            .iter()
            .map(|d| DetectedObject {
                snr: f64::NAN,
                ..*d
            })
            .collect();
        let e = evaluate(&blind, &truth, &names, &EvalConfig::default());
        assert_eq!(snr_curves(&[("a", &e)]).len(), 1);
    }
}
