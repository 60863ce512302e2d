//! World coordinates of FITS images: the header's WCS keywords handed to the `wcs` crate.
//!
//! Pixel positions here follow the FITS convention that DS9 and SExtractor use: 1-based, the
//! centre of the first pixel is (1.0, 1.0).

use serde_json::{Map, Value};

use crate::fits::{CardValue, Header};

/// Keywords the `wcs` crate understands (it ignores the rest).
const WCS_KEYS: &[&str] = &[
    "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "ZNAXIS1", "ZNAXIS2", "CTYPE1", "CTYPE2",
    "CTYPE3", "CRPIX1", "CRPIX2", "CRPIX3", "CRVAL1", "CRVAL2", "CRVAL3", "CD1_1", "CD1_2",
    "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2", "CDELT3", "CROTA1",
    "CROTA2", "CUNIT1", "CUNIT2", "LONPOLE", "LATPOLE", "EQUINOX", "RADESYS", "RADECSYS", "PV1_0",
    "PV1_1", "PV1_2", "PV2_0", "PV2_1", "PV2_2", "PV2_3", "A_ORDER", "B_ORDER", "AP_ORDER",
    "BP_ORDER",
];

/// A celestial WCS of a 2-D image.
pub struct Wcs {
    inner: wcs::WCS,
}

impl std::fmt::Debug for Wcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wcs").finish_non_exhaustive()
    }
}

// The `wcs` crate takes pixel positions in the FITS convention itself (checked against astropy
// in the round-trip tests); the offset is kept explicit so the convention stays visible.
const FITS_TO_CRATE: f64 = 0.0;

impl Wcs {
    /// Build from a header; the error says which keyword is missing or wrong.
    pub fn from_header(header: &Header) -> std::result::Result<Wcs, String> {
        let mut map = Map::new();
        for card in header.cards() {
            let key = card.key.as_str();
            let upper_sip = key.starts_with("A_")
                || key.starts_with("B_")
                || key.starts_with("AP_")
                || key.starts_with("BP_");
            if !(WCS_KEYS.contains(&key) || upper_sip) || map.contains_key(key) {
                continue;
            }
            let value = match &card.value {
                Some(CardValue::Str(s)) => Value::from(s.clone()),
                Some(CardValue::Int(i)) => Value::from(*i),
                Some(CardValue::Float(f)) => Value::from(*f),
                _ => continue,
            };
            map.insert(key.to_string(), value);
        }
        // Tile-compressed images keep their image size in ZNAXISn.
        for i in 1..=2 {
            if let Some(z) = map.get(&format!("ZNAXIS{i}")).cloned() {
                map.insert(format!("NAXIS{i}"), z);
            }
        }
        map.insert("NAXIS".into(), Value::from(2));
        if !map.contains_key("CTYPE1") {
            return Err("no WCS: CTYPE1 is missing".into());
        }
        let params: wcs::WCSParams = serde_json::from_value(Value::Object(map))
            .map_err(|e| format!("invalid WCS keywords: {e}"))?;
        let inner = wcs::WCS::new(&params).map_err(|e| format!("invalid WCS: {e}"))?;
        Ok(Wcs { inner })
    }

    /// Sky position (RA, Dec or the header's longitude/latitude, degrees) of a pixel position
    /// in the FITS convention. None where the projection is undefined.
    pub fn pixel_to_world(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let p = wcs::ImgXY::new(x + FITS_TO_CRATE, y + FITS_TO_CRATE);
        self.inner.unproj(&p).map(|ll| {
            let lon = ll.lon().to_degrees().rem_euclid(360.0);
            (lon, ll.lat().to_degrees())
        })
    }

    /// Pixel position (FITS convention) of a sky position in degrees.
    ///
    /// Solved by Newton's method on [`Wcs::pixel_to_world`]: the `wcs` crate's own inverse
    /// disagrees with astropy when the CD matrix has off-diagonal terms, while its forward
    /// transform agrees to 1e-9 degrees. Converges to 1e-10 pixel in a few steps.
    pub fn world_to_pixel(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        let ll = wcs::LonLat::new(lon.to_radians(), lat.to_radians());
        let (mut x, mut y) = self
            .inner
            .proj(&ll)
            .map(|p| (p.x() - FITS_TO_CRATE, p.y() - FITS_TO_CRATE))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .unwrap_or((1.0, 1.0));
        // Offsets on the sky in degrees, with RA differences scaled by cos(Dec).
        let offset = |x: f64, y: f64| -> Option<(f64, f64)> {
            let (l, b) = self.pixel_to_world(x, y)?;
            let dl = ((l - lon + 540.0).rem_euclid(360.0) - 180.0) * lat.to_radians().cos();
            Some((dl, b - lat))
        };
        let h = 1e-3;
        for _ in 0..50 {
            let (f0, g0) = offset(x, y)?;
            let (fx, gx) = offset(x + h, y)?;
            let (fy, gy) = offset(x, y + h)?;
            let (a, b, c, d) = ((fx - f0) / h, (fy - f0) / h, (gx - g0) / h, (gy - g0) / h);
            let det = a * d - b * c;
            if det == 0.0 || !det.is_finite() {
                return None;
            }
            let dx = (d * f0 - b * g0) / det;
            let dy = (a * g0 - c * f0) / det;
            x -= dx;
            y -= dy;
            if dx.abs() < 1e-10 && dy.abs() < 1e-10 {
                return Some((x, y));
            }
        }
        None
    }
}
