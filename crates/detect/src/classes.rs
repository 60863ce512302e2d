//! What a detector's class names mean for measurement and evaluation.
//!
//! A model card names its classes by strings (`"star"`, `"cosmic_ray"`, …); these are the
//! simulator's [`SourceClass`] names. Whether a class is an artefact of the camera (no centre
//! to refine, not a source to count) or has a well-defined centre is decided here, from the
//! enum, once.
//!
//! ```
//! use deepsky_detect::classes::{is_artefact, source_class};
//! use deepsky_sim::sky::SourceClass;
//!
//! assert_eq!(source_class("cosmic_ray"), Some(SourceClass::CosmicRay));
//! assert!(is_artefact(SourceClass::BadColumn) && !is_artefact(SourceClass::SaturatedStar));
//! assert_eq!(source_class("asteroid"), None);
//! ```

pub use deepsky_sim::sky::SourceClass;

/// The simulator's class named `name` (as in a model card or a truth catalogue's `class`
/// column); `None` for a name it does not know.
pub fn source_class(name: &str) -> Option<SourceClass> {
    SourceClass::ALL.into_iter().find(|c| c.name() == name)
}

/// Whether objects of this class are artefacts of the detector (cosmic-ray hits, bad
/// columns) rather than sources on the sky: they have no profile to centre on and do not count
/// in a source completeness.
pub fn is_artefact(class: SourceClass) -> bool {
    matches!(class, SourceClass::CosmicRay | SourceClass::BadColumn)
}

/// Whether objects of this class have a well-defined centre (stars and galaxies), so that a
/// detection is matched to them by the distance between centres; the others (saturated stars
/// with bleed trails, artefacts) are matched by the distance to their box.
pub fn has_centre(class: SourceClass) -> bool {
    matches!(class, SourceClass::Star | SourceClass::Galaxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_name() {
        for c in SourceClass::ALL {
            assert_eq!(source_class(c.name()), Some(c));
        }
        let artefacts: Vec<&str> = SourceClass::ALL
            .into_iter()
            .filter(|&c| is_artefact(c))
            .map(SourceClass::name)
            .collect();
        assert_eq!(artefacts, ["cosmic_ray", "bad_column"]);
        let centred: Vec<&str> = SourceClass::ALL
            .into_iter()
            .filter(|&c| has_centre(c))
            .map(SourceClass::name)
            .collect();
        assert_eq!(centred, ["star", "galaxy"]);
        assert_eq!(source_class("Star"), None);
    }
}
