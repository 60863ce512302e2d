//! Public behaviour of the sky-field simulator (`deepsky_sim::sky`).

use deepsky_core::Validate;
use deepsky_sim::sky::{
    simulate_sky, ArtefactConfig, CardValue, ColumnData, Injection, NoiseConfig, Psf, SkyConfig,
    SkyField, SourceClass, TanWcs,
};
use ndarray::Array2;

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// A field with no random content: only what the test injects.
fn empty_config() -> SkyConfig {
    SkyConfig {
        width: 64,
        height: 64,
        n_stars: 0,
        n_galaxies: 0,
        artefacts: ArtefactConfig {
            cosmic_rays: 0,
            saturated_stars: 0,
            bad_columns: 0,
            ..ArtefactConfig::default()
        },
        ..SkyConfig::default()
    }
}

fn noiseless(mut cfg: SkyConfig, sky_level: f64) -> SkyConfig {
    cfg.noise = NoiseConfig {
        enabled: false,
        sky_level,
        ..NoiseConfig::default()
    };
    cfg
}

fn image_sum(image: &Array2<f32>) -> f64 {
    image.iter().map(|&v| v as f64).sum()
}

/// Flux-weighted centroid as (row, col) array indices.
fn centroid(image: &Array2<f32>) -> (f64, f64) {
    let (mut s, mut sr, mut sc) = (0.0, 0.0, 0.0);
    for ((r, c), &v) in image.indexed_iter() {
        let v = v as f64;
        s += v;
        sr += v * r as f64;
        sc += v * c as f64;
    }
    (sr / s, sc / s)
}

fn column_bits(field: &SkyField) -> Vec<(String, Vec<u64>)> {
    field
        .catalog
        .columns()
        .into_iter()
        .map(|(name, _, _, data)| {
            let bits = match data {
                ColumnData::I64(v) => v.iter().map(|&x| x as u64).collect(),
                ColumnData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                ColumnData::Str(v) => v
                    .iter()
                    .map(|s| s.len() as u64 ^ s.as_bytes()[0] as u64)
                    .collect(),
            };
            (name.to_string(), bits)
        })
        .collect()
}

#[test]
fn sky_same_seed_is_bit_identical_across_thread_counts() {
    let cfg = SkyConfig {
        width: 128,
        height: 96,
        n_stars: 12,
        n_galaxies: 40,
        artefacts: ArtefactConfig {
            cosmic_rays: 6,
            saturated_stars: 1,
            bad_columns: 2,
            ..ArtefactConfig::default()
        },
        seed: 99,
        ..SkyConfig::default()
    };
    let one = in_pool(1, || simulate_sky(&cfg, &()).unwrap());
    let two = in_pool(2, || simulate_sky(&cfg, &()).unwrap());
    let bits = |f: &SkyField| f.image.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
    assert_eq!(column_bits(&one), column_bits(&two));
    assert_eq!(one.catalog.len(), 12 + 40 + 1 + 6 + 2);

    let other = simulate_sky(
        &SkyConfig {
            seed: 100,
            ..cfg.clone()
        },
        &(),
    )
    .unwrap();
    assert_ne!(bits(&one), bits(&other));
    // Streams are per kind: more galaxies leave the stars where they were.
    let more = simulate_sky(
        &SkyConfig {
            n_galaxies: 41,
            ..cfg
        },
        &(),
    )
    .unwrap();
    assert_eq!(&more.catalog.x[..12], &one.catalog.x[..12]);
    assert_eq!(&more.catalog.x[12..52], &one.catalog.x[12..52]);
}

#[test]
fn sky_single_sources_conserve_flux() {
    let cases = [
        // A cuspy de Vaucouleurs galaxy half a pixel across, and two more ordinary ones.
        Injection::Galaxy {
            x: 32.3,
            y: 31.6,
            mag: 20.0,
            sersic_n: 4.0,
            r_half: 0.2,
            ellipticity: 0.3,
            position_angle: 30.0,
        },
        Injection::Galaxy {
            x: 32.0,
            y: 32.0,
            mag: 20.0,
            sersic_n: 1.0,
            r_half: 1.0,
            ellipticity: 0.6,
            position_angle: 100.0,
        },
        Injection::Galaxy {
            x: 32.5,
            y: 32.5,
            mag: 20.0,
            sersic_n: 0.5,
            r_half: 0.5,
            ellipticity: 0.0,
            position_angle: 0.0,
        },
        Injection::Star {
            x: 31.7,
            y: 32.2,
            mag: 20.0,
        },
    ];
    for psf in [
        Psf::Moffat {
            fwhm: 1.0,
            beta: 3.0,
        },
        Psf::Gaussian { fwhm: 0.8 },
    ] {
        for inj in &cases {
            let cfg = SkyConfig {
                psf: psf.clone(),
                injections: vec![inj.clone()],
                ..noiseless(empty_config(), 0.0)
            };
            let field = simulate_sky(&cfg, &()).unwrap();
            let flux = field.catalog.flux[0];
            assert!((flux - cfg.flux_of_mag(20.0)).abs() < 1e-6 * flux);
            let sum = image_sum(&field.image);
            assert!(
                (sum / flux - 1.0).abs() < 0.01,
                "{psf:?} {inj:?}: image {sum} vs flux {flux}"
            );
            assert!((field.catalog.flux_in_image[0] / flux - 1.0).abs() < 1e-9);
            assert!(field.image.iter().all(|&v| v > -1e-3 * flux as f32));
        }
    }
}

#[test]
fn sky_noiseless_image_sum_is_sky_plus_catalogue_flux() {
    // Random sources, some cut by the edges: the image holds the sky plus what lands on it.
    let cfg = SkyConfig {
        saturation: 1e12,
        artefacts: ArtefactConfig {
            cosmic_rays: 0,
            saturated_stars: 0,
            bad_columns: 0,
            ..ArtefactConfig::default()
        },
        seed: 3,
        ..noiseless(SkyConfig::default(), 800.0)
    };
    let field = simulate_sky(&cfg, &()).unwrap();
    let cat = &field.catalog;
    let area = (cfg.width * cfg.height) as f64;
    let sky = 800.0 / cfg.noise.gain * area;
    let sum = image_sum(&field.image);
    let in_image: f64 = cat.flux_in_image.iter().sum();
    assert!(
        (sum - sky - in_image).abs() < 1e-4 * (sky + in_image),
        "{sum} vs {}",
        sky + in_image
    );
    let total: f64 = cat.flux.iter().sum();
    assert!(in_image <= total * (1.0 + 1e-12));
    // Sources whose light lies well inside keep all of it.
    for i in 0..cat.len() {
        let margin = 40.0;
        let (x, y) = (cat.x[i], cat.y[i]);
        if x > margin
            && y > margin
            && x < cfg.width as f64 - margin
            && y < cfg.height as f64 - margin
        {
            assert!(
                (cat.flux_in_image[i] / cat.flux[i] - 1.0).abs() < 1e-9,
                "row {i}"
            );
        }
    }

    // Sources placed well inside: the image is the sky plus the catalogue fluxes.
    let injections = (0..25)
        .map(|k| {
            let (x, y) = (
                40.0 + 40.0 * (k % 5) as f64 + 0.3,
                40.0 + 40.0 * (k / 5) as f64 + 0.6,
            );
            if k % 3 == 0 {
                Injection::Star {
                    x,
                    y,
                    mag: 19.0 + 0.2 * k as f64,
                }
            } else {
                Injection::Galaxy {
                    x,
                    y,
                    mag: 19.0 + 0.2 * k as f64,
                    sersic_n: 0.5 + 0.15 * k as f64,
                    r_half: 0.2 + 0.05 * k as f64,
                    ellipticity: 0.02 * k as f64,
                    position_angle: 7.0 * k as f64,
                }
            }
        })
        .collect();
    let cfg = SkyConfig {
        n_stars: 0,
        n_galaxies: 0,
        injections,
        ..cfg
    };
    let field = simulate_sky(&cfg, &()).unwrap();
    let total: f64 = field.catalog.flux.iter().sum();
    let sum = image_sum(&field.image);
    assert!(
        ((sum - sky) / total - 1.0).abs() < 0.005,
        "{} vs {total}",
        sum - sky
    );
    assert!(field.catalog.injected.iter().all(|&i| i));
}

#[test]
fn sky_empty_field_noise_matches_sky_and_read_noise() {
    for (sky_level, gain, read_noise) in [(1000.0, 2.0, 5.0), (20.0, 1.5, 12.0)] {
        let mut cfg = empty_config();
        cfg.width = 256;
        cfg.height = 256;
        cfg.noise = NoiseConfig {
            enabled: true,
            sky_level,
            gain,
            read_noise,
        };
        let field = simulate_sky(&cfg, &()).unwrap();
        let n = field.image.len() as f64;
        let mean = image_sum(&field.image) / n;
        let var = field
            .image
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        let expect = (sky_level / gain / gain + (read_noise / gain).powi(2)).sqrt();
        assert!(
            (var.sqrt() / expect - 1.0).abs() < 0.03,
            "std {} vs {expect}",
            var.sqrt()
        );
        assert!((expect - cfg.noise.background_sigma_adu()).abs() < 1e-12);
        assert!(
            (mean - sky_level / gain).abs() < 5.0 * expect / n.sqrt(),
            "mean {mean}"
        );
    }
}

#[test]
fn sky_wcs_round_trips_and_has_fits_cards() {
    for (crval, rotation) in [
        ([150.1, 2.2], 0.0),
        ([359.99, 60.0], 30.0),
        ([10.0, -89.9], -75.0),
    ] {
        let wcs = TanWcs::from_pixel_scale(crval, [128.5, 100.0], 0.4, rotation);
        assert_eq!(wcs.pixel_to_world(128.5, 100.0), (crval[0], crval[1]));
        for &(x, y) in &[
            (1.0, 1.0),
            (256.0, 1.0),
            (17.3, 200.9),
            (128.5, 100.0),
            (-500.0, 3000.0),
        ] {
            let (ra, dec) = wcs.pixel_to_world(x, y);
            assert!((0.0..360.0).contains(&ra) && dec.abs() <= 90.0);
            let (x2, y2) = wcs.world_to_pixel(ra, dec).unwrap();
            assert!(
                (x2 - x).abs() < 1e-8 && (y2 - y).abs() < 1e-8,
                "({x}, {y}) -> ({x2}, {y2})"
            );
        }
    }
    // Orientation: north up, east (increasing RA) to the left, pixel_scale per pixel.
    let wcs = TanWcs::from_pixel_scale([150.0, 30.0], [50.0, 50.0], 0.4, 0.0);
    let (ra0, dec0) = wcs.pixel_to_world(50.0, 50.0);
    let (_, dec_up) = wcs.pixel_to_world(50.0, 51.0);
    let (ra_right, _) = wcs.pixel_to_world(51.0, 50.0);
    assert!(((dec_up - dec0) * 3600.0 - 0.4).abs() < 1e-6);
    assert!(((ra0 - ra_right) * 30f64.to_radians().cos() * 3600.0 - 0.4).abs() < 1e-6);
    // The opposite hemisphere cannot be projected.
    assert!(wcs.world_to_pixel(330.0, -30.0).is_none());

    let cards = wcs.header_cards();
    let get = |k: &str| cards.iter().find(|c| c.0 == k).map(|c| c.1.clone());
    assert_eq!(get("CTYPE1"), Some(CardValue::Str("RA---TAN".into())));
    assert_eq!(get("CTYPE2"), Some(CardValue::Str("DEC--TAN".into())));
    assert_eq!(get("CUNIT1"), Some(CardValue::Str("deg".into())));
    assert_eq!(get("RADESYS"), Some(CardValue::Str("ICRS".into())));
    assert_eq!(get("EQUINOX"), Some(CardValue::Float(2000.0)));
    assert_eq!(get("CRPIX1"), Some(CardValue::Float(50.0)));
    assert_eq!(get("CD1_1"), Some(CardValue::Float(-0.4 / 3600.0)));
    assert_eq!(get("CD2_2"), Some(CardValue::Float(0.4 / 3600.0)));

    // The field's default WCS: reference pixel at the image centre, crval there.
    let cfg = SkyConfig {
        width: 100,
        height: 60,
        ..empty_config()
    };
    let w = cfg.wcs();
    assert_eq!(w.crpix, [50.5, 30.5]);
    assert_eq!(w.crval, cfg.crval);
}

#[test]
fn sky_catalogue_positions_are_fits_one_based() {
    // Star at x = 10, y = 20 -> centred on array index [19, 9]; likewise off-centre positions
    // and a galaxy (rendered through the oversampled FFT grid).
    let cases = [
        (
            Injection::Star {
                x: 10.0,
                y: 20.0,
                mag: 20.0,
            },
            10.0,
            20.0,
        ),
        (
            Injection::Star {
                x: 30.37,
                y: 12.81,
                mag: 20.0,
            },
            30.37,
            12.81,
        ),
        (
            Injection::Galaxy {
                x: 40.7,
                y: 33.2,
                mag: 20.0,
                sersic_n: 2.0,
                r_half: 0.6,
                ellipticity: 0.5,
                position_angle: 35.0,
            },
            40.7,
            33.2,
        ),
    ];
    for (inj, x, y) in cases {
        for psf in [
            Psf::Moffat {
                fwhm: 1.0,
                beta: 3.0,
            },
            Psf::Gaussian { fwhm: 1.0 },
        ] {
            let cfg = SkyConfig {
                psf: psf.clone(),
                injections: vec![inj.clone()],
                ..noiseless(empty_config(), 0.0)
            };
            let field = simulate_sky(&cfg, &()).unwrap();
            assert_eq!((field.catalog.x[0], field.catalog.y[0]), (x, y));
            let (row, col) = centroid(&field.image);
            assert!(
                (row - (y - 1.0)).abs() < 0.05 && (col - (x - 1.0)).abs() < 0.05,
                "{inj:?} {psf:?}: centroid [{row}, {col}]"
            );
            let (ra, dec) = field.wcs.pixel_to_world(x, y);
            assert_eq!((field.catalog.ra[0], field.catalog.dec[0]), (ra, dec));
            // The box holds the source centre pixel.
            let c = &field.catalog;
            assert!(c.bbox_xmin[0] <= x.round() as i64 && x.round() as i64 <= c.bbox_xmax[0]);
            assert!(c.bbox_ymin[0] <= y.round() as i64 && y.round() as i64 <= c.bbox_ymax[0]);
        }
    }
}

#[test]
fn sky_invalid_parameters_are_rejected_by_name() {
    type Mutation = fn(&mut SkyConfig);
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (|c| c.width = 0, "width", "0"),
        (|c| c.height = 0, "height", "0"),
        (|c| c.pixel_scale = -0.2, "pixel_scale", "-0.2"),
        (|c| c.psf = Psf::Gaussian { fwhm: 0.0 }, "psf.fwhm", "0"),
        (
            |c| {
                c.psf = Psf::Moffat {
                    fwhm: 1.0,
                    beta: 1.0,
                }
            },
            "psf.beta",
            "1",
        ),
        (
            |c| {
                c.psf = Psf::Moffat {
                    fwhm: -1.0,
                    beta: 3.0,
                }
            },
            "psf.fwhm",
            "-1",
        ),
        (|c| c.noise.gain = 0.0, "noise.gain", "0"),
        (|c| c.noise.read_noise = -1.0, "noise.read_noise", "-1"),
        (|c| c.noise.sky_level = f64::NAN, "noise.sky_level", "NaN"),
        (|c| c.stars.min = 26.0, "stars.min", "26"),
        (
            |c| c.galaxies.sersic_n = [4.0, 1.0],
            "galaxies.sersic_n",
            "4",
        ),
        (
            |c| c.galaxies.sersic_n = [0.1, 1.0],
            "galaxies.sersic_n",
            "0.1",
        ),
        (
            |c| c.galaxies.r_half = [-0.1, 1.0],
            "galaxies.r_half",
            "-0.1",
        ),
        (|c| c.galaxies.r_half = [1.0, 0.5], "galaxies.r_half", "0.5"),
        (
            |c| c.galaxies.ellipticity_max = 1.2,
            "galaxies.ellipticity_max",
            "1.2",
        ),
        (
            |c| c.galaxies.magnitudes.max = 10.0,
            "galaxies.magnitudes.min",
            "19",
        ),
        (|c| c.exposure_time = 0.0, "exposure_time", "0"),
        (|c| c.saturation = -5.0, "saturation", "-5"),
        (|c| c.crval[1] = 95.0, "crval[1]", "95"),
        (|c| c.n_galaxies = 10_000_000, "n_galaxies", "10000000"),
        (|c| c.cd = Some([[0.0, 0.0], [0.0, 0.0]]), "cd", "0"),
        (
            |c| {
                c.injections = vec![Injection::Galaxy {
                    x: 1.0,
                    y: 1.0,
                    mag: 20.0,
                    sersic_n: 9.0,
                    r_half: 1.0,
                    ellipticity: 0.0,
                    position_angle: 0.0,
                }]
            },
            "injections[0].sersic_n",
            "9",
        ),
    ];
    for (mutate, name, value) in cases {
        let mut cfg = SkyConfig::default();
        mutate(&mut cfg);
        let err = simulate_sky(&cfg, &()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{name}`")),
            "expected `{name}` in: {err}"
        );
        assert!(err.contains(value), "expected the value {value} in: {err}");
    }
    assert!(SkyConfig::default().validate().is_ok());
}

#[test]
fn sky_config_parses_psf_profiles_and_rejects_unknown_names() {
    let cfg: SkyConfig =
        serde_json::from_str(r#"{"width": 32, "psf": {"profile": "gaussian", "fwhm": 0.8}}"#)
            .unwrap();
    assert_eq!(cfg.psf, Psf::Gaussian { fwhm: 0.8 });
    assert_eq!(cfg.height, 256);
    let cfg: SkyConfig =
        serde_json::from_str(r#"{"psf": {"profile": "moffat", "fwhm": 1.2}}"#).unwrap();
    assert_eq!(
        cfg.psf,
        Psf::Moffat {
            fwhm: 1.2,
            beta: 3.0
        }
    );

    let err = serde_json::from_str::<SkyConfig>(r#"{"psf": {"profile": "airy", "fwhm": 1.0}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("airy") && err.contains("gaussian") && err.contains("moffat"),
        "{err}"
    );
    let err = serde_json::from_str::<SkyConfig>(
        r#"{"psf": {"profile": "gaussian", "fwhm": 1.0, "beta": 2}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("beta"), "{err}");
    let err = serde_json::from_str::<SkyConfig>(r#"{"widht": 10}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("widht"), "{err}");

    // A configuration survives a JSON round trip.
    let cfg = SkyConfig {
        injections: vec![Injection::Star {
            x: 1.0,
            y: 2.0,
            mag: 20.0,
        }],
        crpix: Some([3.0, 4.0]),
        ..SkyConfig::default()
    };
    let back: SkyConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn sky_artefacts_are_catalogued_and_visible() {
    let cfg = SkyConfig {
        width: 160,
        height: 200,
        n_stars: 5,
        n_galaxies: 10,
        artefacts: ArtefactConfig {
            cosmic_rays: 12,
            saturated_stars: 2,
            bad_columns: 4,
            ..ArtefactConfig::default()
        },
        seed: 11,
        ..noiseless(SkyConfig::default(), 1000.0)
    };
    let field = simulate_sky(&cfg, &()).unwrap();
    let (cat, img) = (&field.catalog, &field.image);
    let sky = cfg.noise.sky_adu();
    assert_eq!(cat.count(SourceClass::CosmicRay), 12);
    assert_eq!(cat.count(SourceClass::BadColumn), 4);
    assert!(cat.count(SourceClass::SaturatedStar) >= 2);
    let px = |x: i64, y: i64| img[[(y - 1) as usize, (x - 1) as usize]] as f64;
    for i in 0..cat.len() {
        let (x0, y0, x1, y1) = (
            cat.bbox_xmin[i],
            cat.bbox_ymin[i],
            cat.bbox_xmax[i],
            cat.bbox_ymax[i],
        );
        match cat.class[i] {
            SourceClass::SaturatedStar => {
                assert!(cat.saturated[i]);
                // The bleed trail runs along the column: the box is taller than wide, and its
                // centre column is at the saturation level far above and below the star.
                assert!(y1 - y0 > x1 - x0, "row {i}: box {x0}..{x1} x {y0}..{y1}");
                let col = cat.x[i].round() as i64;
                let sat_pixels = (y0..=y1)
                    .filter(|&y| px(col, y) >= cfg.saturation * 0.999)
                    .count();
                assert!(
                    sat_pixels as i64 > x1 - x0,
                    "row {i}: {sat_pixels} saturated pixels"
                );
                assert!(img.iter().all(|&v| v as f64 <= cfg.saturation));
            }
            SourceClass::CosmicRay => {
                assert!(cat.flux[i] > 0.0 && cat.mag[i].is_nan() && cat.sersic_n[i].is_nan());
                let peak = (y0..=y1)
                    .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
                    .map(|(x, y)| px(x, y))
                    .fold(0.0, f64::max);
                assert!(peak > sky + 100.0, "row {i}: peak {peak}");
            }
            SourceClass::BadColumn => {
                assert_eq!(x0, x1);
                assert!(cat.flux[i].is_nan() && cat.snr[i].is_nan());
                let values: Vec<f64> = (y0..=y1).map(|y| px(x0, y)).collect();
                let dead = values.iter().all(|&v| v == 0.0);
                let hot = values.iter().all(|&v| v > sky);
                assert!(dead || hot, "row {i}: {values:?}");
                assert!(
                    y0 == 1 || y1 == cfg.height as i64,
                    "bad columns reach an edge"
                );
            }
            SourceClass::Galaxy => {
                assert!(cat.sersic_n[i] >= 0.5 && cat.r_half[i] > 0.0 && cat.snr[i] > 0.0);
                assert!(
                    cat.mag[i] >= cfg.galaxies.magnitudes.min
                        && cat.mag[i] <= cfg.galaxies.magnitudes.max
                );
            }
            SourceClass::Star => assert!(!cat.saturated[i] && cat.snr[i] > 0.0),
        }
    }
    // Class ids and names agree.
    let cols = cat.columns();
    let class = cols.iter().find(|c| c.0 == "class").unwrap();
    let class_id = cols.iter().find(|c| c.0 == "class_id").unwrap();
    if let (ColumnData::Str(names), ColumnData::I64(ids)) = (&class.3, &class_id.3) {
        for (n, &id) in names.iter().zip(ids) {
            assert_eq!(SourceClass::ALL[id as usize].name(), n);
        }
    } else {
        panic!("class columns have the wrong types");
    }
}

#[test]
fn sky_snr_is_the_matched_filter_value() {
    // For a faint star on a bright sky, s_i << sky and the matched-filter S/N reduces to
    // F·sqrt(Σ p_i²) / σ_bg; for a Gaussian PSF Σ p_i² ≈ 1/(4π σ²).
    let mut cfg = SkyConfig {
        psf: Psf::Gaussian { fwhm: 2.0 },
        pixel_scale: 0.5, // 4-pixel FWHM: pixelisation barely changes Σ p²
        injections: vec![Injection::Star {
            x: 32.0,
            y: 32.0,
            mag: 26.0,
        }],
        ..empty_config()
    };
    cfg.noise = NoiseConfig {
        enabled: true,
        sky_level: 5000.0,
        gain: 2.0,
        read_noise: 5.0,
    };
    let field = simulate_sky(&cfg, &()).unwrap();
    let flux = field.catalog.flux[0];
    let sigma = 4.0 / 2.354_820_045;
    let expect = flux
        / (4.0 * std::f64::consts::PI * sigma * sigma).sqrt()
        / cfg.noise.background_sigma_adu();
    let snr = field.catalog.snr[0];
    assert!((snr / expect - 1.0).abs() < 0.02, "snr {snr} vs {expect}");
}

#[test]
fn sky_header_cards_describe_the_field() {
    let cfg = SkyConfig {
        width: 32,
        height: 32,
        n_galaxies: 2,
        n_stars: 1,
        ..SkyConfig::default()
    };
    let field = simulate_sky(&cfg, &()).unwrap();
    let cards = field.header_cards();
    for key in [
        "GAIN", "RDNOISE", "SATURATE", "EXPTIME", "SKYLEVEL", "PSF_FWHM", "PSF_BETA", "SEED",
        "CTYPE1", "CD2_2", "MAGZP",
    ] {
        assert!(cards.iter().any(|c| c.0 == key), "missing {key}");
    }
    assert!(
        cards.iter().all(|c| c.0.len() <= 8),
        "FITS keywords have at most 8 characters"
    );
    let seed = cards.iter().find(|c| c.0 == "SEED").unwrap();
    assert_eq!(seed.1, CardValue::Int(0));
    let big = SkyConfig {
        seed: u64::MAX,
        ..cfg
    };
    let field = simulate_sky(&big, &()).unwrap();
    let seed = field
        .header_cards()
        .into_iter()
        .find(|c| c.0 == "SEED")
        .unwrap();
    assert_eq!(seed.1, CardValue::Str(u64::MAX.to_string()));
}

#[test]
fn sky_default_field_renders_quickly() {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Count(AtomicU64);
    impl deepsky_sim::Progress for Count {
        fn inc(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    let cfg = SkyConfig::default();
    let count = Count(AtomicU64::new(0));
    let start = std::time::Instant::now();
    let field = simulate_sky(&cfg, &count).unwrap();
    eprintln!(
        "simulate_sky default 256x256: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(field.image.dim(), (256, 256));
    assert!(field.image.iter().all(|v| v.is_finite()));
    assert_eq!(
        count.0.load(Ordering::Relaxed) as usize,
        field.catalog.len()
    );
    for class in [
        SourceClass::Galaxy,
        SourceClass::Star,
        SourceClass::CosmicRay,
        SourceClass::SaturatedStar,
        SourceClass::BadColumn,
    ] {
        assert!(field.catalog.count(class) > 0, "no {class:?}");
    }
}
