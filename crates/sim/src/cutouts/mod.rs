//! Galaxy cutout sets with rare labelled classes, for representation learning and anomaly
//! detection.
//!
//! [`simulate_cutouts`] makes `n` square stamps, each centred (within `max_offset` pixels) on
//! one Sérsic galaxy drawn from [`GalaxyModel`](crate::sky::GalaxyModel), PSF-convolved and with sky, Poisson and read
//! noise, using the same renderer as [`crate::sky`]. A fraction `rare_fraction` of the stamps
//! belongs to rare classes, split among them by `rare_weights`:
//!
//! | label | name | content |
//! |---|---|---|
//! | 0 | `normal` | one galaxy |
//! | 1 | `lens` | a bright singular-isothermal-sphere (SIS) lens galaxy (n = 3–4.5) with a background Sérsic source lensed into arcs or an Einstein ring |
//! | 2 | `merger` | two galaxies 1–2 half-light radii apart (a close pair or blend) |
//! | 3 | `artefact` | a normal galaxy plus a cosmic ray, a satellite trail or hot pixels |
//!
//! # Model
//!
//! * **Lensing**: the SIS lens equation `β = θ - θ_E θ/|θ|` maps each image-plane position θ
//!   (relative to the lens centre) to the source plane. Surface brightness is conserved, so
//!   the lensed image is the source's surface brightness at β(θ), sampled by shooting several
//!   rays per cell of the oversampled grid and then convolved with the PSF like every other
//!   light. The magnification is the ratio of lensed to unlensed source flux measured on that
//!   grid. The source sits at `|β| <= source_offset_max · θ_E` from the lens axis
//!   (uniform over the disc), which gives rings near the centre and arcs and counter-images
//!   further out.
//! * **Mergers**: the companion's shape comes from the same galaxy model, its flux is
//!   `flux_ratio` times the primary's, and it lies at `separation` × max(r_half of either, PSF
//!   FWHM) in a random direction.
//! * **Artefacts** (one kind per stamp, equally likely): a cosmic ray as in [`crate::sky`]
//!   (sharp, deposited after photon noise); a straight satellite trail across the stamp (a line
//!   with a Gaussian cross-section of σ = 0.5 pixel, PSF-convolved, with a peak of 3–30
//!   background σ); or 1–5 hot pixels of 20–200 background σ.
//! * Noise as in [`crate::sky`]: Poisson on `sky_level + gain · model` electrons, then read
//!   noise, then ADU = e-/gain. With `subtract_sky` the expected sky level is subtracted, so an
//!   empty pixel has mean 0.
//!
//! Units and conventions follow [`crate::sky`]: sizes in the configuration in arcsec, sizes in
//! the output columns in pixels, `flux = exposure_time · 10^(-0.4 (mag - zeropoint))` ADU,
//! position angles in degrees from +x towards +y, ellipticity `1 - b/a`. Images are indexed
//! `[stamp, row (y), column (x)]`; the stamp centre is at 0-based pixel position
//! `((size - 1)/2, (size - 1)/2)`, between the middle pixels for even sizes.
//!
//! # Determinism
//!
//! Stamp `i` draws everything from `stream_rng(seed, "cutouts", i)`. Which stamps are rare is
//! decided by a seeded shuffle (`"cutouts.labels"`) of exactly `round(n · rare_fraction)` rare
//! labels, apportioned among the rare classes by largest remainder. Stamps render in parallel
//! and the result is bit-identical for any number of threads.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::cutouts::{label_names, simulate_cutouts, CutoutConfig};
//!
//! let cfg = CutoutConfig { n: 12, size: 32, rare_fraction: 0.25, seed: 1, ..CutoutConfig::default() };
//! let set = simulate_cutouts(&cfg, &()).unwrap();
//! assert_eq!(set.images.dim(), (12, 32, 32));
//! assert_eq!(set.labels.iter().filter(|&&l| l != 0).count(), 3); // round(12 · 0.25)
//! assert_eq!(label_names()[1], "lens");
//! ```

// The settings and their checks (config), the output set and its labels (set), strong
// lensing of a background source (lens), and the simulation of the stamps (simulate).
pub(crate) mod config;
pub(crate) mod lens;
pub(crate) mod set;
pub(crate) mod simulate;

pub use config::{CutoutConfig, LensModel, MergerModel};
pub use set::{
    label_names, CutoutParams, CutoutSet, LABEL_ARTEFACT, LABEL_LENS, LABEL_MERGER, LABEL_NORMAL,
};
pub use simulate::simulate_cutouts;
