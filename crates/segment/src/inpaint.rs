//! Inpainting: masked pixels (cosmic-ray hits) replaced by an estimate from their neighbours,
//! as LACosmic's cleaned image does — the median of the unmasked, finite pixels in the
//! smallest square window around the pixel (radius 1, 2, … up to `max_radius`) that holds at
//! least `min_neighbours` of them. A median, not a mean: the neighbours of a hit often include
//! a faint halo of its charge that escaped the mask.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Fewest unmasked neighbours a median is taken over.
pub const MIN_NEIGHBOURS: usize = 5;
/// Largest window radius searched; pixels with fewer unmasked neighbours within it keep their
/// value.
pub const MAX_RADIUS: usize = 6;

/// `image` with the pixels where `replace` is true set to the median of their nearest
/// unmasked, finite neighbours (pixels in `replace` or `avoid` are never used as neighbours).
pub fn inpaint_median(
    image: ArrayView2<f32>,
    replace: ArrayView2<bool>,
    avoid: ArrayView2<bool>,
) -> Array2<f32> {
    let (h, w) = image.dim();
    let mut out = image.to_owned();
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut row)| {
            let mut values: Vec<f32> = Vec::with_capacity((2 * MAX_RADIUS + 1).pow(2));
            for c in 0..w {
                if !replace[[r, c]] {
                    continue;
                }
                for radius in 1..=MAX_RADIUS {
                    values.clear();
                    for rr in r.saturating_sub(radius)..(r + radius + 1).min(h) {
                        for cc in c.saturating_sub(radius)..(c + radius + 1).min(w) {
                            let v = image[[rr, cc]];
                            if !replace[[rr, cc]] && !avoid[[rr, cc]] && v.is_finite() {
                                values.push(v);
                            }
                        }
                    }
                    if values.len() >= MIN_NEIGHBOURS {
                        values.sort_by(f32::total_cmp);
                        let n = values.len();
                        row[c] = if n % 2 == 1 {
                            values[n / 2]
                        } else {
                            0.5 * (values[n / 2 - 1] + values[n / 2])
                        };
                        break;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_on_a_gradient_is_replaced_by_its_neighbours_median() {
        let mut img = Array2::from_shape_fn((20, 20), |(r, c)| 100.0 + r as f32 + 0.5 * c as f32);
        let clean = img.clone();
        let mut hit = Array2::from_elem((20, 20), false);
        for c in 5..9 {
            img[[10, c]] += 5000.0;
            hit[[10, c]] = true;
        }
        let none = Array2::from_elem((20, 20), false);
        let out = inpaint_median(img.view(), hit.view(), none.view());
        for c in 5..9 {
            // A symmetric window on a plane gives the plane's value back.
            assert!(
                (out[[10, c]] - clean[[10, c]]).abs() < 0.51,
                "{} vs {}",
                out[[10, c]],
                clean[[10, c]]
            );
        }
        // Other pixels are untouched.
        assert_eq!(out[[3, 3]], img[[3, 3]]);
        // A NaN neighbourhood is skipped, not propagated.
        let mut nan = img.clone();
        nan[[9, 6]] = f32::NAN;
        let out = inpaint_median(nan.view(), hit.view(), none.view());
        assert!(out[[10, 6]].is_finite());
    }
}
