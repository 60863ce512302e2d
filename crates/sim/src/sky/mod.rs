//! Simulated optical sky fields with a truth catalogue.
//!
//! [`simulate_sky`] renders a CCD-like image of stars and galaxies seen through the atmosphere,
//! adds sky background, photon and read noise and optional detector artefacts, and returns the
//! image with a catalogue of everything it put in ([`SkyCatalog`]), per-pixel truth masks
//! ([`TruthMasks`]) and its TAN WCS ([`TanWcs`]).
//!
//! # Model
//!
//! * **PSF** ([`Psf`]): a circular Gaussian or Moffat profile, FWHM in arcsec. The Moffat is
//!   truncated where it encloses 99.5 % of its light (at most 6 FWHM) and renormalised, because
//!   its power-law wings would otherwise need unbounded stamps for β close to 1.
//! * **Stars** are the PSF integrated over each pixel: exactly with `erf` for the Gaussian, by
//!   adaptive sub-pixel sampling (finer in the core) for the Moffat.
//! * **Galaxies** are elliptical Sérsic profiles `I(ρ) ∝ exp(-b_n (ρ/r_s)^(1/n))` with
//!   `ρ² = u² + (v/q)²` in the frame of the major axis, `q = 1 - ellipticity` and `b_n` from the
//!   Ciotti & Bertin (1999) expansion, Newton-polished ([`sersic_b`]). Profiles are cut at
//!   `ρ = 6 r_half`, and the scale radius `r_s` is solved for so that the *truncated* profile
//!   still has exactly the catalogue's half-light radius. The profile is integrated over the
//!   cells of a grid oversampled 2–16× (2 cells per Gaussian σ of the PSF at least), with up to
//!   16×16 sub-samples in cells near the centre; the light of the innermost ellipse (semi-minor
//!   axis half a cell), where an n = 4 cusp smaller than a pixel keeps much of its light, is put
//!   in exactly from the incomplete gamma function as thin rings. The grid is convolved with the
//!   PSF sampled on the same grid (by FFT, large enough that nothing wraps) and binned to
//!   pixels.
//! * Every rendered source is then renormalised so that the light in its stamp is exactly its
//!   catalogue flux. The discretisation error this removes is below 0.5 % even for an n = 4
//!   galaxy 0.3 pixel across (unit-tested before renormalisation), so it makes the truth exact
//!   without changing the picture.
//! * **Magnitudes** follow power-law number counts `dN/dm ∝ 10^(slope·m)` between `min` and `max`
//!   ([`MagnitudeDistribution`]; equivalently `dN/dF ∝ F^-(1 + 2.5·slope)`), and
//!   `flux [ADU] = exposure_time · 10^(-0.4 (m - zeropoint))`: the zeropoint is the magnitude of a
//!   source giving 1 ADU/s.
//! * **Detector**: the expected image in electrons is `sky_level + gain · model`; it gets Poisson
//!   noise, then cosmic-ray charge, then charge bleeding (below), then Gaussian read noise, and is
//!   converted to ADU (`e- / gain`) and clipped at `saturation`. No bias level is added and the
//!   sky is not subtracted: the mean of an empty image is `sky_level / gain` ADU.
//! * **Artefacts** ([`ArtefactConfig`]), each catalogued with its own class: cosmic rays (charge
//!   deposited along short straight tracks, or single pixels, never PSF-convolved); saturation
//!   bleeding (charge above the full well `saturation · gain` spills half up, half down its
//!   column into the nearest pixels with room, which conserves charge except off the chip);
//!   `saturated_stars` bright enough for that to happen; and bad columns (dead: 0 ADU, or hot:
//!   a constant excess) from a random row to the chip edge. Off by default, and not
//!   catalogued (a new class would change [`SourceClass::ALL`]): `hot_pixels` (isolated, 5–50
//!   background sigma) and `trails` (satellite or aircraft lines across the image with a
//!   Gaussian cross-section, [`TrailModel`], added to the light before photon noise). With
//!   `cosmic_ray_model = "physical"` ([`PhysicalCosmicRays`]) hits are muon tracks through the
//!   depletion layer (isotropic flux, Moyal charge per µm), curved worms and compact spots,
//!   spread by charge diffusion; `cosmic_ray_rate` (hits/cm²/s) makes their number Poisson.
//!
//! # Truth masks
//!
//! [`simulate_sky`] always fills [`SkyField::masks`] (the image does not depend on it). With
//! σ the background noise of a pixel (`sqrt(sky_level + read_noise²) / gain` ADU: Poisson sky
//! and read noise, whether or not noise is enabled) and the thresholds of [`ArtefactConfig`]:
//!
//! * `CosmicRay`, `Trail`, `BadColumn` (bad columns and hot pixels): the signal that artefact
//!   added (for a dead column, removed) exceeds `truth_threshold_sigma · σ` (default 0.5).
//! * `Saturated`: pixels clipped at the saturation level or at the full well once charge has
//!   bled, plus pixels that received more than `truth_threshold_sigma · σ` of bled charge.
//! * `Detected`: the noiseless light of the stars, galaxies and saturated stars exceeds
//!   `footprint_threshold_sigma · σ` (default 1); there [`TruthMasks::segmentation`] holds
//!   1 + the catalogue row index (the `id` column) of the source with the most light in the
//!   pixel, elsewhere 0.
//!
//! `NoData` is never set. Trails are masked but have no catalogue rows.
//!
//! # Conventions
//!
//! * `image[[row, col]]`, row = y, shape `(height, width)`, values in ADU.
//! * Catalogue `x, y` and bounding boxes use the **FITS 1-based** convention: the centre of the
//!   first pixel `image[[0, 0]]` is `(x, y) = (1.0, 1.0)`, and a pixel covers `x ± 0.5`. A source
//!   at `(x, y)` is centred on the array index `[y - 1, x - 1]`.
//! * Sizes in the configuration (FWHM, half-light radii) are in **arcsec**; sizes in the
//!   catalogue (`r_half`) are in **pixels**. Position angles are in degrees, counter-clockwise
//!   from the +x pixel axis towards +y.
//! * Ellipticity is `1 - b/a`.
//!
//! # Determinism
//!
//! Every source and artefact draws from its own stream ([`crate::rng::stream_rng`]:
//! `"sky.star"`, `"sky.galaxy"`, `"sky.saturated_star"`, `"sky.cosmic_ray"`,
//! `"sky.physical_cosmic_ray"`, `"sky.bad_column"`, `"sky.hot_pixel"`, `"sky.trail"`,
//! index = number within its kind; `"sky.cosmic_ray_count"` for a rate's Poisson count), and noise from one stream per image row (`"sky.noise"`,
//! `"sky.read_noise"`). Stamps are rendered in parallel and added in catalogue order, so the
//! image is bit-identical for a seed whatever the number of threads. Changing the number of
//! galaxies does not move the stars.
//!
//! # Example
//!
//! ```
//! use deepsky_sim::sky::{simulate_sky, SkyConfig};
//!
//! let cfg = SkyConfig { width: 64, height: 48, n_stars: 3, n_galaxies: 4, seed: 7, ..SkyConfig::default() };
//! let field = simulate_sky(&cfg, &()).unwrap();
//! assert_eq!(field.image.dim(), (48, 64)); // (height, width)
//! let cat = &field.catalog;
//! // The reference pixel maps to the reference sky position.
//! let (ra, dec) = field.wcs.pixel_to_world(field.wcs.crpix[0], field.wcs.crpix[1]);
//! assert_eq!((ra, dec), (cfg.crval[0], cfg.crval[1]));
//! for (name, _unit, _description, data) in cat.columns() {
//!     assert_eq!(data.len(), cat.len(), "column {name}");
//! }
//! ```

// One file per piece: the settings and their checks (config), the TAN projection (wcs), the
// PSF in pixel units (psf), Sérsic profiles (sersic), stamps and PSF convolution on an
// oversampled grid (render, fft), detector noise and artefacts shared with the cutouts
// (detector), physical cosmic rays and trails (artefacts), the truth catalogue (catalog), and
// the simulation that puts them together with the truth masks (simulate).
pub(crate) mod artefacts;
pub(crate) mod catalog;
pub(crate) mod config;
pub(crate) mod detector;
pub(crate) mod fft;
pub(crate) mod psf;
pub(crate) mod render;
pub(crate) mod sersic;
pub(crate) mod simulate;
pub(crate) mod wcs;

/// The header-card and table-column types of the writers, also reachable from here.
pub use crate::output::{Card, CardValue, Column, ColumnData};
pub use catalog::{SkyCatalog, SourceClass};
pub use config::{
    ArtefactConfig, CosmicRayModel, GalaxyModel, Injection, MagnitudeDistribution, NoiseConfig,
    PhysicalCosmicRays, Psf, SkyConfig, TrailModel,
};
pub use sersic::sersic_b;
pub use simulate::{simulate_sky, SkyField, TruthMasks};
pub use wcs::TanWcs;
