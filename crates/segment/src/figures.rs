//! The overlay plot of `deepsky segment predict`: the image (central crop for large ones) with
//! a box around each connected region of each artefact plane, one colour per plane, so a user
//! sees at a glance what was masked.

use deepsky_core::mask::MaskPlane;
use deepsky_plot::{Overlay, SkyImage, OKABE_ITO};
use ndarray::{s, Array2, ArrayView2};

/// The most boxes drawn (a field full of hot pixels stays readable).
pub const MAX_BOXES: usize = 3000;

/// Colour of a plane in plots.
pub fn plane_color(p: MaskPlane) -> deepsky_plot::Rgb {
    OKABE_ITO[(p.bit_number() as usize + 1) % OKABE_ITO.len()]
}

/// Bounding boxes `(r0, c0, r1, c1)` (inclusive) of the 8-connected regions of `mask`.
pub fn regions(mask: ArrayView2<bool>) -> Vec<(usize, usize, usize, usize)> {
    let (h, w) = mask.dim();
    let mut seen = Array2::from_elem((h, w), false);
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for r in 0..h {
        for c in 0..w {
            if !mask[[r, c]] || seen[[r, c]] {
                continue;
            }
            let mut b = (r, c, r, c);
            seen[[r, c]] = true;
            stack.push((r, c));
            while let Some((y, x)) = stack.pop() {
                b = (b.0.min(y), b.1.min(x), b.2.max(y), b.3.max(x));
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xx in x.saturating_sub(1)..(x + 2).min(w) {
                        if mask[[yy, xx]] && !seen[[yy, xx]] {
                            seen[[yy, xx]] = true;
                            stack.push((yy, xx));
                        }
                    }
                }
            }
            out.push(b);
        }
    }
    out
}

/// The image with boxes around the regions of `planes` in `bits`.
pub fn overlay(
    image: ArrayView2<f32>,
    bits: &Array2<u32>,
    planes: &[MaskPlane],
    max_side: usize,
) -> SkyImage {
    let (h, w) = image.dim();
    let (ch, cw) = (h.min(max_side), w.min(max_side));
    let (r0, c0) = ((h - ch) / 2, (w - cw) / 2);
    let crop = image.slice(s![r0..r0 + ch, c0..c0 + cw]).to_owned();
    let mut img = SkyImage::new(crop);
    let names: Vec<&str> = planes.iter().map(|p| p.name()).collect();
    img.title = if (ch, cw) == (h, w) {
        format!("masks: {}", names.join(", "))
    } else {
        format!("masks: {} (central {cw}×{ch} pixels)", names.join(", "))
    };
    img.color_label = "ADU".into();
    let bits = bits.slice(s![r0..r0 + ch, c0..c0 + cw]);
    for &p in planes {
        let mask = bits.mapv(|b| p.is_set(b));
        for (y0, x0, y1, x1) in regions(mask.view()) {
            if img.overlays.len() >= MAX_BOXES {
                break;
            }
            // FITS 1-based pixel edges of the crop.
            img.overlays.push(
                Overlay::rect(
                    x0 as f64 + 0.5,
                    y0 as f64 + 0.5,
                    x1 as f64 + 1.5,
                    y1 as f64 + 1.5,
                )
                .with_color(plane_color(p)),
            );
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_eight_connected() {
        let mut m = Array2::from_elem((6, 6), false);
        m[[0, 0]] = true;
        m[[1, 1]] = true; // diagonal: same region
        m[[4, 4]] = true;
        m[[4, 5]] = true;
        let r = regions(m.view());
        assert_eq!(r, vec![(0, 0, 1, 1), (4, 4, 4, 5)]);
    }
}
