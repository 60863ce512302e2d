//! The mask planes of deepsky's bitmask images: one bit per kind of pixel that detection and
//! photometry must treat specially, named in the FITS header by `MP_<PLANE> = <bit>` cards
//! (the convention of LSST's pipelines), so that any reader can find a plane by name.
//!
//! The simulator's truth masks, `deepsky segment`'s `mask.fits` and `detect predict --mask`
//! all use these bits.
//!
//! ```
//! use deepsky_core::mask::MaskPlane;
//!
//! let bits = MaskPlane::CosmicRay.bit() | MaskPlane::Trail.bit();
//! assert!(MaskPlane::CosmicRay.is_set(bits));
//! assert!(!MaskPlane::Saturated.is_set(bits));
//! assert_eq!(MaskPlane::from_name("cosmic_ray"), Some(MaskPlane::CosmicRay));
//! assert_eq!(MaskPlane::CosmicRay.card_key(), "MP_COSMIC_RAY");
//! ```

/// One mask plane. The discriminant is the bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MaskPlane {
    /// Charge deposited by a cosmic-ray particle (tracks, worms, spots).
    CosmicRay = 0,
    /// A saturated pixel, or one filled by charge bleeding along its column from one.
    Saturated = 1,
    /// A dead or hot column, or a hot pixel.
    BadColumn = 2,
    /// A satellite or aircraft trail.
    Trail = 3,
    /// A pixel of a source's footprint (star or galaxy light above the footprint threshold).
    Detected = 4,
    /// No data: NaN (or BLANK) in the input image.
    NoData = 5,
}

impl MaskPlane {
    /// Every plane, in bit order.
    pub const ALL: [MaskPlane; 6] = [
        MaskPlane::CosmicRay,
        MaskPlane::Saturated,
        MaskPlane::BadColumn,
        MaskPlane::Trail,
        MaskPlane::Detected,
        MaskPlane::NoData,
    ];

    /// The planes a segmentation network predicts (every plane but `NO_DATA`, which is read
    /// off the image).
    pub const LEARNED: [MaskPlane; 5] = [
        MaskPlane::CosmicRay,
        MaskPlane::Saturated,
        MaskPlane::BadColumn,
        MaskPlane::Trail,
        MaskPlane::Detected,
    ];

    /// Bit number.
    pub fn bit_number(self) -> u32 {
        self as u32
    }

    /// The plane's bit as a mask value.
    pub fn bit(self) -> u32 {
        1 << self.bit_number()
    }

    /// Whether `value` has this plane's bit set.
    pub fn is_set(self, value: u32) -> bool {
        value & self.bit() != 0
    }

    /// Upper-case name, as in `MP_<NAME>` cards and `EXTNAME`s (`COSMIC_RAY`, …).
    pub fn name(self) -> &'static str {
        match self {
            MaskPlane::CosmicRay => "COSMIC_RAY",
            MaskPlane::Saturated => "SATURATED",
            MaskPlane::BadColumn => "BAD_COLUMN",
            MaskPlane::Trail => "TRAIL",
            MaskPlane::Detected => "DETECTED",
            MaskPlane::NoData => "NO_DATA",
        }
    }

    /// The header keyword naming this plane's bit: `MP_<NAME>`.
    pub fn card_key(self) -> String {
        format!("MP_{}", self.name())
    }

    /// What the plane means, for header comments and the README.
    pub fn description(self) -> &'static str {
        match self {
            MaskPlane::CosmicRay => "cosmic-ray hit",
            MaskPlane::Saturated => "saturated or bled into",
            MaskPlane::BadColumn => "dead/hot column or hot pixel",
            MaskPlane::Trail => "satellite or aircraft trail",
            MaskPlane::Detected => "source footprint",
            MaskPlane::NoData => "no data (NaN in the input)",
        }
    }

    /// The plane called `name` (case-insensitive, with or without the `MP_` prefix).
    pub fn from_name(name: &str) -> Option<MaskPlane> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("MP_").unwrap_or(&upper);
        MaskPlane::ALL.into_iter().find(|p| p.name() == bare)
    }
}

impl std::fmt::Display for MaskPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_and_names_round_trip() {
        let mut seen = 0u32;
        for p in MaskPlane::ALL {
            assert_eq!(seen & p.bit(), 0, "{p} shares a bit");
            seen |= p.bit();
            assert_eq!(MaskPlane::from_name(&p.card_key()), Some(p));
            assert_eq!(MaskPlane::from_name(&p.name().to_lowercase()), Some(p));
        }
        assert_eq!(seen, 0b11_1111);
        assert_eq!(MaskPlane::from_name("CR"), None);
    }
}
