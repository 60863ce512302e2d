//! Bitmask images in FITS: an integer image whose bits are mask planes, named by `MP_<PLANE> =
//! <bit>` header cards (LSST's convention, [`deepsky_core::mask::MaskPlane`]).
//!
//! deepsky writes its planes with their own bit numbers; a mask written by another program is
//! read by the names in its header, whatever bits it uses, so `detect predict --mask` works
//! with any tool that follows the convention.
//!
//! ```
//! use deepsky_core::mask::MaskPlane;
//! use deepsky_io::fits::FitsWriter;
//! use deepsky_io::mask::{read_mask, write_mask_hdu};
//! use ndarray::Array2;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("mask.fits");
//! let mut bits = Array2::<u32>::zeros((4, 5));
//! bits[[1, 2]] = MaskPlane::CosmicRay.bit() | MaskPlane::Detected.bit();
//! let mut w = FitsWriter::create(&path)?;
//! write_mask_hdu(&mut w, "MASK", &bits, &[])?;
//! w.finish()?;
//!
//! let mask = read_mask(&path, "MASK")?;
//! assert_eq!(mask.bits, bits);
//! let cr = mask.plane(MaskPlane::CosmicRay).unwrap();
//! assert!(cr[[1, 2]] && !cr[[0, 0]]);
//! # Ok::<(), deepsky_io::IoError>(())
//! ```

use std::path::Path;

use deepsky_core::mask::MaskPlane;
use ndarray::{Array2, Ix2};

use crate::fits::{Card, CardValue, FitsReader, FitsWriter, HduSelector};
use crate::{ErrorKind, IoError, NdData, Result};

/// A bitmask image and the planes its header names.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskImage {
    /// The mask, `(height, width)`, as stored.
    pub bits: Array2<u32>,
    /// Every `MP_<NAME> = <bit>` card of the header, in header order (names upper-case,
    /// without the prefix), including planes deepsky does not know.
    pub planes: Vec<(String, u32)>,
}

impl MaskImage {
    /// The bit number this file uses for `plane`, if its header names it.
    pub fn bit_of(&self, plane: MaskPlane) -> Option<u32> {
        self.planes
            .iter()
            .find(|(n, _)| n == plane.name())
            .map(|&(_, b)| b)
    }

    /// Pixels with `plane` set (`None` when the header does not name the plane).
    pub fn plane(&self, plane: MaskPlane) -> Option<Array2<bool>> {
        let bit = self.bit_of(plane)?;
        Some(self.bits.mapv(|v| (v >> bit) & 1 == 1))
    }

    /// Pixels with any of `planes` set; planes the header does not name are skipped.
    pub fn any_of(&self, planes: &[MaskPlane]) -> Array2<bool> {
        let want: u32 = planes
            .iter()
            .filter_map(|&p| self.bit_of(p))
            .fold(0, |m, b| m | (1 << b));
        self.bits.mapv(|v| v & want != 0)
    }

    /// The mask in deepsky's own bit numbers (planes it does not know are dropped).
    pub fn to_deepsky_bits(&self) -> Array2<u32> {
        let map: Vec<(u32, u32)> = MaskPlane::ALL
            .iter()
            .filter_map(|&p| self.bit_of(p).map(|b| (b, p.bit())))
            .collect();
        self.bits.mapv(|v| {
            map.iter()
                .filter(|(from, _)| (v >> from) & 1 == 1)
                .fold(0, |m, &(_, to)| m | to)
        })
    }
}

/// The `MP_<PLANE> = <bit>` cards of deepsky's planes.
pub fn plane_cards() -> Vec<Card> {
    MaskPlane::ALL
        .iter()
        .map(|p| {
            Card::new(
                &p.card_key(),
                CardValue::Int(p.bit_number() as i64),
                &format!("mask bit: {}", p.description()),
            )
        })
        .collect()
}

/// Write `bits` as a 32-bit integer image HDU called `extname`, with the plane cards and then
/// `extra` (e.g. the input's WCS). Bits above 30 are not used by deepsky, so the signed FITS
/// integer holds every mask value.
pub fn write_mask_hdu(
    w: &mut FitsWriter,
    extname: &str,
    bits: &Array2<u32>,
    extra: &[Card],
) -> Result<()> {
    let data = bits.mapv(|v| v as i32).into_dyn();
    let mut cards = plane_cards();
    cards.extend_from_slice(extra);
    w.write_image(Some(extname), &NdData::I32(data), &cards)
}

/// Read the bitmask image of HDU `hdu` (an index or EXTNAME; empty: `MASK` if present, else
/// the first image) of `path`. It must be an integer image with at least one `MP_` card.
pub fn read_mask(path: &Path, hdu: &str) -> Result<MaskImage> {
    let mut f = FitsReader::open(path)?;
    let sel = if hdu.is_empty() {
        let named = HduSelector::Name("MASK".into());
        if f.hdu_info(&named).is_ok() {
            named
        } else {
            let first = f.hdu_info(&HduSelector::Index(0))?;
            HduSelector::Index(if first.shape.len() >= 2 { 0 } else { 1 })
        }
    } else {
        hdu.parse().expect("infallible")
    };
    let header = f.header(&sel)?;
    let bad = |m: String| IoError::new(path, ErrorKind::InvalidInput, m);
    let mut planes = Vec::new();
    for card in header.cards() {
        // Long names come back as `HIERARCH MP_COSMIC_RAY`.
        let key = card
            .key
            .strip_prefix("HIERARCH ")
            .unwrap_or(&card.key)
            .trim();
        if let Some(name) = key.strip_prefix("MP_") {
            let bit = match card.value {
                Some(CardValue::Int(b)) if (0..32).contains(&b) => b as u32,
                _ => return Err(bad(format!("{}: not a bit number in 0..32", card.key))),
            };
            planes.push((name.to_ascii_uppercase(), bit));
        }
    }
    if planes.is_empty() {
        return Err(bad(
            "no MP_<PLANE> cards in the header: not a bitmask image (deepsky segment writes one in mask.fits)".into(),
        ));
    }
    let data = f.read_image(&sel)?;
    let to_u32 = |v: i64| {
        u32::try_from(v).map_err(|_| bad(format!("mask value {v} is negative or above 32 bits")))
    };
    macro_rules! conv {
        ($a:expr) => {{
            let mut out = Vec::with_capacity($a.len());
            for &v in $a.iter() {
                out.push(to_u32(v as i64)?);
            }
            (out, $a.shape().to_vec())
        }};
    }
    let (values, shape) = match &data {
        NdData::U8(a) => conv!(a),
        NdData::I8(a) => conv!(a),
        NdData::U16(a) => conv!(a),
        NdData::I16(a) => conv!(a),
        NdData::U32(a) => conv!(a),
        NdData::I32(a) => conv!(a),
        NdData::I64(a) => conv!(a),
        _ => return Err(bad("a bitmask must be an integer image".into())),
    };
    // (1, h, w) cubes are common; drop leading axes of length 1 only.
    let mut dims = shape.clone();
    while dims.len() > 2 && dims[0] == 1 {
        dims.remove(0);
    }
    if dims.len() != 2 {
        return Err(bad(format!(
            "the mask is {shape:?} pixels; expected a 2-D image"
        )));
    }
    let bits = Array2::from_shape_vec((dims[0], dims[1]), values)
        .map_err(|e| bad(e.to_string()))?
        .into_dimensionality::<Ix2>()
        .expect("2-D");
    Ok(MaskImage { bits, planes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_bit_numbers_are_read_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsst.fits");
        // LSST's numbering: BAD 0, SAT 1, CR 3 (names differ except where they match ours).
        let bits = Array2::from_shape_vec((1, 3), vec![1u32 << 3, 1 << 1, 0]).unwrap();
        let mut w = FitsWriter::create(&path).unwrap();
        let cards = vec![
            Card::new("MP_BAD", CardValue::Int(0), ""),
            Card::new("MP_SATURATED", CardValue::Int(1), ""),
            Card::new("MP_COSMIC_RAY", CardValue::Int(3), ""),
        ];
        w.write_image(
            Some("MASK"),
            &NdData::I32(bits.mapv(|v| v as i32).into_dyn()),
            &cards,
        )
        .unwrap();
        w.finish().unwrap();
        let m = read_mask(&path, "").unwrap();
        assert_eq!(m.planes.len(), 3);
        let cr = m.plane(MaskPlane::CosmicRay).unwrap();
        assert_eq!(cr.iter().filter(|&&b| b).count(), 1);
        assert!(cr[[0, 0]]);
        let ours = m.to_deepsky_bits();
        assert_eq!(ours[[0, 0]], MaskPlane::CosmicRay.bit());
        assert_eq!(ours[[0, 1]], MaskPlane::Saturated.bit());
        assert!(m.plane(MaskPlane::Trail).is_none());
        assert_eq!(
            m.any_of(&[MaskPlane::Saturated, MaskPlane::Trail])
                .iter()
                .filter(|&&b| b)
                .count(),
            1
        );
    }

    #[test]
    fn long_keywords_are_hierarch_cards_with_their_full_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.fits");
        let bits = Array2::<u32>::zeros((2, 2));
        let long = Card::new(
            "TH_BAD_COLUMN",
            CardValue::Float(0.360_522_001_981_735_23),
            "probability threshold of the plane, with a comment too long to fit the card",
        );
        let mut w = FitsWriter::create(&path).unwrap();
        write_mask_hdu(&mut w, "MASK", &bits, &[long]).unwrap();
        w.finish().unwrap();
        let mut f = FitsReader::open(&path).unwrap();
        let h = f.header(&HduSelector::Name("MASK".into())).unwrap();
        let v = h
            .cards()
            .iter()
            .find(|c| c.key.ends_with("TH_BAD_COLUMN"))
            .and_then(|c| c.value.clone());
        assert_eq!(v, Some(CardValue::Float(0.360_522_001_981_735_23)));
        assert_eq!(
            read_mask(&path, "MASK").unwrap().planes.len(),
            MaskPlane::ALL.len()
        );
    }

    #[test]
    fn a_float_image_or_one_without_planes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.fits");
        let mut w = FitsWriter::create(&path).unwrap();
        w.write_image(
            None,
            &NdData::F32(Array2::<f32>::zeros((2, 2)).into_dyn()),
            &[],
        )
        .unwrap();
        w.finish().unwrap();
        let e = read_mask(&path, "").unwrap_err().to_string();
        assert!(e.contains("img.fits") && e.contains("MP_"), "{e}");
    }
}
