//! The sky simulator's truth masks against the image itself: with noise off, a pixel is in an
//! artefact's plane exactly where adding that artefact changed the image by more than the
//! truth threshold, and the segmentation names the catalogue rows.

use deepsky_core::mask::MaskPlane;
use deepsky_sim::sky::{
    simulate_sky, ArtefactConfig, CosmicRayModel, Injection, NoiseConfig, SkyConfig, SourceClass,
};
use ndarray::Array2;

/// A noiseless field with nothing in it; each test adds what it checks.
fn bare(width: usize, height: usize, seed: u64) -> SkyConfig {
    SkyConfig {
        width,
        height,
        n_stars: 0,
        n_galaxies: 0,
        noise: NoiseConfig {
            enabled: false,
            ..NoiseConfig::default()
        },
        artefacts: ArtefactConfig {
            cosmic_rays: 0,
            saturated_stars: 0,
            bad_columns: 0,
            ..ArtefactConfig::default()
        },
        seed,
        ..SkyConfig::default()
    }
}

/// Truth threshold in ADU of `cfg`.
fn truth_level(cfg: &SkyConfig) -> f64 {
    cfg.artefacts.truth_threshold_sigma * cfg.noise.background_sigma_adu()
}

/// Asserts that `plane` is set exactly where `with` differs from `without` by more than
/// `level` (f32 rounding allowed within 1e-3 ADU of the threshold); returns the plane's size.
fn plane_is_the_change(
    bits: &Array2<u32>,
    plane: MaskPlane,
    with: &Array2<f32>,
    without: &Array2<f32>,
    level: f64,
) -> usize {
    let mut set = 0;
    for ((idx, &b), (&a, &z)) in bits.indexed_iter().zip(with.iter().zip(without)) {
        let change = (a as f64 - z as f64).abs();
        let masked = plane.is_set(b);
        set += masked as usize;
        if (change - level).abs() > 1e-3 {
            assert_eq!(
                masked,
                change > level,
                "{plane} at {idx:?}: change {change} vs threshold {level}"
            );
        }
    }
    set
}

#[test]
fn cosmic_ray_mask_is_where_the_hits_changed_the_image() {
    for model in [CosmicRayModel::Simple, CosmicRayModel::Physical] {
        let without = bare(96, 80, 21);
        let mut with = without.clone();
        with.artefacts.cosmic_rays = 40;
        with.artefacts.cosmic_ray_model = model;
        let a = simulate_sky(&with, &()).unwrap();
        let b = simulate_sky(&without, &()).unwrap();
        let level = truth_level(&with);
        let n = plane_is_the_change(
            &a.masks.bits,
            MaskPlane::CosmicRay,
            &a.image,
            &b.image,
            level,
        );
        assert!(n >= 40, "{model:?}: {n} cosmic-ray pixels");
        assert_eq!(a.catalog.count(SourceClass::CosmicRay), 40);
        // Nothing else is in the field.
        assert!(a
            .masks
            .bits
            .iter()
            .all(|&v| v & !MaskPlane::CosmicRay.bit() == 0));
        assert!(a.masks.segmentation.iter().all(|&s| s == 0));
    }
}

#[test]
fn physical_cosmic_ray_counts_follow_the_rate() {
    // 32×32 pixels of 15 µm for 60 s: a rate of 72.34 /cm²/s means 10 hits per field.
    let mut cfg = bare(32, 32, 0);
    cfg.artefacts.cosmic_ray_model = CosmicRayModel::Physical;
    cfg.artefacts.cosmic_rays = 1000; // ignored once a rate is given
    let area_cm2 = 32.0 * 32.0 * (15e-4f64).powi(2);
    cfg.artefacts.cosmic_ray_rate = 10.0 / (area_cm2 * cfg.exposure_time);
    let fields = 200;
    let total: usize = (0..fields)
        .map(|seed| {
            cfg.seed = seed;
            simulate_sky(&cfg, &())
                .unwrap()
                .catalog
                .count(SourceClass::CosmicRay)
        })
        .sum();
    let expect = 10.0 * fields as f64;
    assert!(
        (total as f64 - expect).abs() < 3.0 * expect.sqrt(),
        "{total} hits in {fields} fields, expected {expect}"
    );
}

#[test]
fn trail_and_hot_pixel_masks_are_where_they_changed_the_image() {
    let without = bare(80, 64, 5);
    let mut with = without.clone();
    with.artefacts.trails = 3;
    with.artefacts.hot_pixels = 10;
    with.artefacts.bad_columns = 2;
    let a = simulate_sky(&with, &()).unwrap();
    let mut trail_only = without.clone();
    trail_only.artefacts.trails = 3;
    let t = simulate_sky(&trail_only, &()).unwrap();
    let b = simulate_sky(&without, &()).unwrap();
    let level = truth_level(&with);
    let n = plane_is_the_change(&t.masks.bits, MaskPlane::Trail, &t.image, &b.image, level);
    assert!(n > 3 * 64, "{n} trail pixels");
    assert_eq!(
        t.masks.bits,
        a.masks.bits.mapv(|v| v & MaskPlane::Trail.bit())
    );
    // Bad columns and hot pixels come after the trails: they are what changed a from t.
    let n = plane_is_the_change(
        &a.masks.bits,
        MaskPlane::BadColumn,
        &a.image,
        &t.image,
        level,
    );
    assert!(n >= 10, "{n} bad-column pixels");
    // Trails and hot pixels are not catalogued.
    assert_eq!(a.catalog.len(), 2);
}

#[test]
fn bleed_trails_are_saturated_and_detected_covers_the_star() {
    let mut cfg = bare(64, 96, 8);
    cfg.injections = vec![Injection::Star {
        x: 32.0,
        y: 48.0,
        mag: 15.0,
    }];
    let f = simulate_sky(&cfg, &()).unwrap();
    assert_eq!(f.catalog.class[0], SourceClass::SaturatedStar);
    let (row, col) = (47, 31);
    let m = &f.masks;
    for ((r, c), &v) in f.image.indexed_iter() {
        if v as f64 >= cfg.saturation {
            assert!(m.has(MaskPlane::Saturated, r, c), "clipped ({r}, {c})");
        }
    }
    // The bleed runs along the column, well beyond the star's core.
    let in_column = (0..96)
        .filter(|&r| m.has(MaskPlane::Saturated, r, col))
        .count();
    let in_row = (0..64)
        .filter(|&c| m.has(MaskPlane::Saturated, row, c))
        .count();
    assert!(in_column > in_row + 10, "{in_column} vs {in_row}");
    let bled_top = (0..96)
        .rev()
        .find(|&r| m.has(MaskPlane::Saturated, r, col))
        .unwrap();
    assert!(f.image[[bled_top, col]] as f64 > cfg.noise.sky_adu());
    // Detected covers the core and beyond; the segmentation names the star (row 0).
    for (dr, dc) in [(0i64, 0i64), (3, 0), (0, -3), (-3, 3)] {
        let (r, c) = ((row as i64 + dr) as usize, (col as i64 + dc) as usize);
        assert!(m.has(MaskPlane::Detected, r, c), "({r}, {c})");
        assert_eq!(m.segmentation[[r, c]], 1);
    }
    assert!(!m.has(MaskPlane::Detected, 0, 0));
}

#[test]
fn detected_and_segmentation_follow_the_noiseless_sources() {
    let mut cfg = bare(96, 96, 12);
    // Faint enough that nothing saturates, so that no charge moves.
    cfg.n_stars = 15;
    cfg.stars.min = 20.0;
    cfg.n_galaxies = 20;
    cfg.injections = vec![Injection::Star {
        x: 40.0,
        y: 60.0,
        mag: 19.0,
    }];
    let f = simulate_sky(&cfg, &()).unwrap();
    // Noise off and no artefacts: the image minus the sky is the noiseless source light.
    let sky = cfg.noise.sky_adu();
    let footprint = cfg.artefacts.footprint_threshold_sigma * cfg.noise.background_sigma_adu();
    let mut detected = 0;
    for ((r, c), &v) in f.image.indexed_iter() {
        let light = v as f64 - sky;
        let d = f.masks.has(MaskPlane::Detected, r, c);
        detected += d as usize;
        if (light - footprint).abs() > 1e-3 {
            assert_eq!(d, light > footprint, "({r}, {c}): {light} vs {footprint}");
        }
        let s = f.masks.segmentation[[r, c]];
        assert_eq!(s > 0, d, "({r}, {c})");
        if s > 0 {
            let class = f.catalog.class[s as usize - 1];
            assert!(
                matches!(
                    class,
                    SourceClass::Star | SourceClass::Galaxy | SourceClass::SaturatedStar
                ),
                "{class:?}"
            );
        }
    }
    assert!(detected > 50, "{detected} detected pixels");
    // The injected star is the last row; the pixel at its centre is its segment.
    let k = f.catalog.len() - 1;
    assert!(f.catalog.injected[k]);
    assert_eq!(f.masks.segmentation[[59, 39]] as i64, f.catalog.id[k]);
    assert_eq!(f.catalog.id[k], k as i64 + 1);
}

#[test]
fn default_masks_cover_the_default_artefacts() {
    let f = simulate_sky(&SkyConfig::default(), &()).unwrap();
    let m = &f.masks;
    assert_eq!(m.bits.dim(), f.image.dim());
    assert!(m.count(MaskPlane::CosmicRay) >= 5);
    assert!(m.count(MaskPlane::Saturated) > 0);
    assert!(m.count(MaskPlane::BadColumn) > 0);
    assert!(m.count(MaskPlane::Detected) > 0);
    assert_eq!(m.count(MaskPlane::Trail), 0);
    assert_eq!(m.count(MaskPlane::NoData), 0);
}
