//! Axis-aligned boxes, IoU and non-maximum suppression.
//!
//! Coordinates are continuous 0-based pixel coordinates of the array: pixel `(row, col)` covers
//! `[col, col+1) × [row, row+1)`, so its centre is `(col + 0.5, row + 0.5)`. FITS 1-based pixel
//! coordinates (SExtractor's and DS9's) are these plus 0.5: see [`deepsky_core::pixel`].

use deepsky_core::pixel::fits_index_edges;
use serde::{Deserialize, Serialize};

/// A box `[x0, y0, x1, y1]` with `x0 <= x1`, `y0 <= y1`, in continuous 0-based pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BBox {
    /// Left edge.
    pub x0: f32,
    /// Bottom edge (smallest row).
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
}

impl BBox {
    /// A box from its edges.
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox { x0, y0, x1, y1 }
    }

    /// The box of FITS 1-based inclusive pixel indices `xmin..=xmax`, `ymin..=ymax` (a truth
    /// catalogue's `bbox_*` columns): pixel `i` (1-based) spans `[i-1, i)`.
    pub fn from_fits_pixels(xmin: i64, ymin: i64, xmax: i64, ymax: i64) -> BBox {
        let ((x0, x1), (y0, y1)) = (fits_index_edges(xmin, xmax), fits_index_edges(ymin, ymax));
        BBox::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32)
    }

    /// Width.
    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    /// Height.
    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    /// Area.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre `(x, y)`.
    pub fn centre(&self) -> (f32, f32) {
        (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))
    }

    /// Shifted by `(dx, dy)`.
    pub fn shifted(&self, dx: f32, dy: f32) -> BBox {
        BBox::new(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)
    }

    /// Clipped to `[0, w] × [0, h]`.
    pub fn clipped(&self, w: f32, h: f32) -> BBox {
        BBox::new(
            self.x0.clamp(0.0, w),
            self.y0.clamp(0.0, h),
            self.x1.clamp(0.0, w),
            self.y1.clamp(0.0, h),
        )
    }

    /// Whether the point lies inside (edges included).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }

    /// Intersection over union (0 for disjoint or empty boxes).
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let ih = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// A scored, classified box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The box.
    pub bbox: BBox,
    /// Class index.
    pub class: usize,
    /// Confidence in [0, 1].
    pub score: f32,
}

/// Greedy non-maximum suppression, class-agnostic: a sky position holds one source, so a
/// star box and a galaxy box on the same spot are duplicates, not two objects. Keeps the
/// highest-scoring box and drops every box overlapping a kept one by more than `iou`. Boxes
/// are bucketed on a grid so that a 4k×4k field with tens of thousands of boxes costs
/// O(n·neighbours), not O(n²). Returns the kept boxes by decreasing score (ties by position,
/// so the result does not depend on the input order).
pub fn nms(mut boxes: Vec<Scored>, iou: f32) -> Vec<Scored> {
    boxes.retain(|b| b.score.is_finite() && b.bbox.area() >= 0.0);
    boxes.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.bbox.x0.total_cmp(&b.bbox.x0))
            .then(a.bbox.y0.total_cmp(&b.bbox.y0))
            .then(a.class.cmp(&b.class))
    });
    const CELL: f32 = 32.0;
    let mut grid: std::collections::HashMap<(i32, i32), Vec<usize>> = Default::default();
    let cells = |b: &BBox| {
        let (cx0, cy0) = ((b.x0 / CELL).floor() as i32, (b.y0 / CELL).floor() as i32);
        let (cx1, cy1) = ((b.x1 / CELL).floor() as i32, (b.y1 / CELL).floor() as i32);
        (cx0, cy0, cx1, cy1)
    };
    let mut kept: Vec<Scored> = Vec::new();
    for b in boxes {
        let (cx0, cy0, cx1, cy1) = cells(&b.bbox);
        let mut suppressed = false;
        'outer: for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                if let Some(list) = grid.get(&(cx, cy)) {
                    for &k in list {
                        if kept[k].bbox.iou(&b.bbox) > iou {
                            suppressed = true;
                            break 'outer;
                        }
                    }
                }
            }
        }
        if suppressed {
            continue;
        }
        let k = kept.len();
        kept.push(b);
        for cy in cy0..=cy1 {
            for cx in cx0..=cx1 {
                grid.entry((cx, cy)).or_default().push(k);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsky_core::pixel::to_fits;

    fn s(x0: f32, y0: f32, x1: f32, y1: f32, score: f32) -> Scored {
        Scored {
            bbox: BBox::new(x0, y0, x1, y1),
            class: 0,
            score,
        }
    }

    #[test]
    fn iou_of_known_overlaps() {
        let a = BBox::new(0.0, 0.0, 2.0, 2.0);
        assert_eq!(a.iou(&a), 1.0);
        // Half overlap: intersection 2, union 6.
        let b = BBox::new(1.0, 0.0, 3.0, 2.0);
        assert!((a.iou(&b) - 2.0 / 6.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(5.0, 5.0, 6.0, 6.0)), 0.0);
    }

    #[test]
    fn fits_pixel_boxes_and_centres() {
        // FITS pixels 10..=12 in x: centre 11.0 in FITS, 10.5 continuous.
        let b = BBox::from_fits_pixels(10, 20, 12, 20);
        assert_eq!((b.x0, b.x1, b.y0, b.y1), (9.0, 12.0, 19.0, 20.0));
        let (cx, cy) = b.centre();
        assert_eq!((to_fits(cx as f64), to_fits(cy as f64)), (11.0, 20.0));
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_all_disjoint() {
        let boxes = vec![
            s(0.0, 0.0, 10.0, 10.0, 0.8),
            s(1.0, 1.0, 11.0, 11.0, 0.9), // overlaps the first with IoU 0.68
            s(100.0, 100.0, 110.0, 110.0, 0.3),
            s(60.0, 0.0, 61.0, 200.0, 0.5), // a long bad column spanning many grid cells
            s(60.0, 150.0, 61.0, 190.0, 0.4), // inside the column: IoU 0.2, kept at 0.5
        ];
        let kept = nms(boxes.clone(), 0.5);
        let scores: Vec<f32> = kept.iter().map(|b| b.score).collect();
        assert_eq!(scores, vec![0.9, 0.5, 0.4, 0.3]);
        let kept = nms(boxes, 0.1);
        let scores: Vec<f32> = kept.iter().map(|b| b.score).collect();
        assert_eq!(scores, vec![0.9, 0.5, 0.3]);
    }
}
