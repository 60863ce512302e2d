//! The gnomonic (TAN) world coordinate system of a sky field.

use serde::{Deserialize, Serialize};

use crate::output::{card, Card, CardValue};

/// Gnomonic (TAN) world coordinate system in the FITS convention (Calabretta & Greisen 2002):
/// pixel coordinates are 1-based, `(ξ, η) = CD · (x - CRPIX1, y - CRPIX2)` are the intermediate
/// world coordinates in degrees, and LONPOLE = 180°.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TanWcs {
    /// (RA, Dec) of the reference point, degrees.
    pub crval: [f64; 2],
    /// Reference pixel (x, y), FITS 1-based.
    pub crpix: [f64; 2],
    /// Linear transformation `[[CD1_1, CD1_2], [CD2_1, CD2_2]]`, degrees per pixel.
    pub cd: [[f64; 2]; 2],
}

impl TanWcs {
    /// WCS with square pixels of `pixel_scale` arcsec, RA increasing to the left (-x) and Dec
    /// upwards (+y) when `rotation_deg` (CROTA2) is 0.
    pub fn from_pixel_scale(
        crval: [f64; 2],
        crpix: [f64; 2],
        pixel_scale: f64,
        rotation_deg: f64,
    ) -> Self {
        let s = pixel_scale / 3600.0;
        let (sin, cos) = rotation_deg.to_radians().sin_cos();
        // FITS Paper II eq. 189 with CDELT1 = -s, CDELT2 = +s.
        TanWcs {
            crval,
            crpix,
            cd: [[-s * cos, -s * sin], [-s * sin, s * cos]],
        }
    }

    /// Sky position (RA in [0, 360), Dec), degrees, of the 1-based pixel position `(x, y)`.
    /// The reference pixel gives `crval` exactly.
    pub fn pixel_to_world(&self, x: f64, y: f64) -> (f64, f64) {
        let dx = x - self.crpix[0];
        let dy = y - self.crpix[1];
        let xi = (self.cd[0][0] * dx + self.cd[0][1] * dy).to_radians();
        let eta = (self.cd[1][0] * dx + self.cd[1][1] * dy).to_radians();
        let (sd0, cd0) = self.crval[1].to_radians().sin_cos();
        let den = cd0 - eta * sd0;
        let dra = xi.atan2(den);
        // Dec as an offset from CRVAL2 (rather than atan2 of sin/cos of Dec), so that the
        // reference point returns CRVAL2 bit for bit instead of after a degree-radian round trip.
        let perp = (xi * xi + den * den).sqrt();
        let num = sd0 + eta * cd0; // sin(dec)·ρ with ρ = sqrt(1 + ξ² + η²)
        let sin_dd = num * cd0 - perp * sd0; // sin(dec - dec0)·ρ
        let cos_dd = perp * cd0 + num * sd0; // cos(dec - dec0)·ρ
        let ddec = sin_dd.atan2(cos_dd);
        let mut ra = (self.crval[0] + dra.to_degrees()).rem_euclid(360.0);
        if ra >= 360.0 {
            // rem_euclid of a tiny negative number rounds up to 360.
            ra -= 360.0;
        }
        (ra, self.crval[1] + ddec.to_degrees())
    }

    /// 1-based pixel position of the sky position `(ra, dec)` in degrees, or `None` for points
    /// 90° or more from the reference point, which the gnomonic projection cannot show.
    pub fn world_to_pixel(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        let (sd0, cd0) = self.crval[1].to_radians().sin_cos();
        let (sd, cdc) = dec.to_radians().sin_cos();
        let (sda, cda) = (ra - self.crval[0]).to_radians().sin_cos();
        let cos_c = sd0 * sd + cd0 * cdc * cda;
        if cos_c.is_nan() || cos_c <= 0.0 {
            return None;
        }
        let xi = (cdc * sda / cos_c).to_degrees();
        let eta = ((cd0 * sd - sd0 * cdc * cda) / cos_c).to_degrees();
        let [[a, b], [c, d]] = self.cd;
        let det = a * d - b * c;
        let dx = (d * xi - b * eta) / det;
        let dy = (-c * xi + a * eta) / det;
        Some((self.crpix[0] + dx, self.crpix[1] + dy))
    }

    /// The WCS as FITS header cards: WCSAXES, CTYPE1/2 = 'RA---TAN'/'DEC--TAN', CUNIT1/2,
    /// CRVAL1/2, CRPIX1/2, CD1_1, CD1_2, CD2_1, CD2_2, LONPOLE, RADESYS = 'ICRS', EQUINOX = 2000.
    pub fn header_cards(&self) -> Vec<Card> {
        use CardValue::*;
        vec![
            card("WCSAXES", Int(2), "number of WCS axes"),
            card(
                "CTYPE1",
                Str("RA---TAN".into()),
                "gnomonic projection, right ascension",
            ),
            card(
                "CTYPE2",
                Str("DEC--TAN".into()),
                "gnomonic projection, declination",
            ),
            card("CUNIT1", Str("deg".into()), "unit of CRVAL1 and CD1_*"),
            card("CUNIT2", Str("deg".into()), "unit of CRVAL2 and CD2_*"),
            card(
                "CRVAL1",
                Float(self.crval[0]),
                "[deg] RA of the reference pixel",
            ),
            card(
                "CRVAL2",
                Float(self.crval[1]),
                "[deg] Dec of the reference pixel",
            ),
            card(
                "CRPIX1",
                Float(self.crpix[0]),
                "reference pixel x (1-based)",
            ),
            card(
                "CRPIX2",
                Float(self.crpix[1]),
                "reference pixel y (1-based)",
            ),
            card("CD1_1", Float(self.cd[0][0]), "[deg/pixel] dRA/dx"),
            card("CD1_2", Float(self.cd[0][1]), "[deg/pixel] dRA/dy"),
            card("CD2_1", Float(self.cd[1][0]), "[deg/pixel] dDec/dx"),
            card("CD2_2", Float(self.cd[1][1]), "[deg/pixel] dDec/dy"),
            card(
                "LONPOLE",
                Float(180.0),
                "[deg] native longitude of the celestial pole",
            ),
            card("RADESYS", Str("ICRS".into()), "celestial reference frame"),
            card("EQUINOX", Float(2000.0), "equinox of the coordinates"),
        ]
    }
}
