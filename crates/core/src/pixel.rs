//! The pixel convention: continuous 0-based coordinates inside deepsky, FITS 1-based outside.
//!
//! Inside deepsky, pixel `(row, col)` of an array covers `[col, col + 1) × [row, row + 1)`, so
//! its centre is `(col + 0.5, row + 0.5)` and a box's edges are plain numbers. Every file and
//! tool a user meets counts the FITS way (FITS standard §8.2, SExtractor's `X_IMAGE`, DS9,
//! WCS `CRPIX`): the centre of the first pixel is 1.0. The two differ by half a pixel; this
//! module is the only place that adds or removes it, so a catalogue, a region file and a WCS
//! lookup cannot disagree.
//!
//! ```
//! use deepsky_core::pixel::{from_fits, to_fits, fits_index_edges};
//! assert_eq!(to_fits(10.5), 11.0); // centre of array column 10 is FITS x = 11
//! assert_eq!(from_fits(to_fits(3.25)), 3.25);
//! // FITS pixels 10..=12 (1-based, inclusive) span [9, 12) in continuous coordinates.
//! assert_eq!(fits_index_edges(10, 12), (9.0, 12.0));
//! ```

/// Half a pixel: FITS 1-based coordinate = continuous 0-based coordinate + `HALF_PIXEL`.
pub const HALF_PIXEL: f64 = 0.5;

/// The FITS 1-based coordinate of a continuous 0-based one.
pub fn to_fits(x: f64) -> f64 {
    x + HALF_PIXEL
}

/// The continuous 0-based coordinate of a FITS 1-based one.
pub fn from_fits(x: f64) -> f64 {
    x - HALF_PIXEL
}

/// The continuous edges `[lo, hi)` of the FITS 1-based inclusive pixel range `min..=max`
/// (a truth catalogue's `bbox_*` columns, SExtractor's `XMIN_IMAGE..XMAX_IMAGE`): pixel `i`
/// spans `[i - 1, i)`.
pub fn fits_index_edges(min: i64, max: i64) -> (f64, f64) {
    ((min - 1) as f64, max as f64)
}

/// The FITS 1-based coordinates of the outer edges of the inclusive pixel range `min..=max`
/// (1-based indices): `min - 0.5` and `max + 0.5`, as DS9 and SExtractor draw them.
pub fn fits_index_outer_edges(min: f64, max: f64) -> (f64, f64) {
    (min - HALF_PIXEL, max + HALF_PIXEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pixel_centre_and_round_trip() {
        assert_eq!(to_fits(0.5), 1.0);
        assert_eq!(from_fits(1.0), 0.5);
        for x in [-3.25, 0.0, 17.75, 4095.5] {
            assert_eq!(from_fits(to_fits(x)), x);
        }
    }

    #[test]
    fn inclusive_index_ranges() {
        assert_eq!(fits_index_edges(1, 1), (0.0, 1.0));
        assert_eq!(fits_index_edges(10, 12), (9.0, 12.0));
        assert_eq!(fits_index_outer_edges(10.0, 12.0), (9.5, 12.5));
        // The outer FITS edges of a range are its continuous edges plus half a pixel.
        let (lo, hi) = fits_index_edges(10, 12);
        assert_eq!(
            (to_fits(lo), to_fits(hi)),
            fits_index_outer_edges(10.0, 12.0)
        );
    }
}
