//! Public behaviour of the cutout simulator (`deepsky_sim::cutouts`).

use deepsky_core::Validate;
use deepsky_sim::cutouts::{
    label_names, simulate_cutouts, CutoutConfig, CutoutSet, LABEL_ARTEFACT, LABEL_LENS,
    LABEL_MERGER, LABEL_NORMAL,
};
use deepsky_sim::sky::{ColumnData, GalaxyModel, MagnitudeDistribution, NoiseConfig};

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn small(n: usize, rare_fraction: f64, seed: u64) -> CutoutConfig {
    CutoutConfig {
        n,
        size: 48,
        rare_fraction,
        seed,
        ..CutoutConfig::default()
    }
}

fn f64_column(set: &CutoutSet, name: &str) -> Vec<f64> {
    match set.columns().into_iter().find(|c| c.0 == name).map(|c| c.3) {
        Some(ColumnData::F64(v)) => v,
        other => panic!("column {name}: {other:?}"),
    }
}

#[test]
fn cutouts_are_bit_identical_across_thread_counts() {
    let cfg = small(30, 0.3, 17);
    let one = in_pool(1, || simulate_cutouts(&cfg, &()).unwrap());
    let two = in_pool(2, || simulate_cutouts(&cfg, &()).unwrap());
    let bits = |s: &CutoutSet| s.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
    assert_eq!(one.labels, two.labels);
    for (a, b) in one.columns().iter().zip(two.columns()) {
        match (&a.3, &b.3) {
            (ColumnData::F64(x), ColumnData::F64(y)) => {
                assert!(
                    x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{}",
                    a.0
                )
            }
            (x, y) => assert_eq!(x, y),
        }
    }
    let other = simulate_cutouts(&CutoutConfig { seed: 18, ..cfg }, &()).unwrap();
    assert_ne!(bits(&one), bits(&other));
}

#[test]
fn cutouts_shapes_labels_and_columns_are_consistent() {
    let cfg = small(40, 0.25, 3);
    let set = simulate_cutouts(&cfg, &()).unwrap();
    assert_eq!(set.images.dim(), (40, 48, 48));
    assert_eq!(set.len(), 40);
    assert_eq!(set.ids, (1..=40).collect::<Vec<i64>>());
    assert_eq!(label_names(), ["normal", "lens", "merger", "artefact"]);
    // Exactly round(40 · 0.25) = 10 rare stamps, split 4/3/3 by largest remainder.
    assert_eq!(set.label_counts(), [30, 4, 3, 3]);
    for (name, _, _, data) in set.columns() {
        assert_eq!(data.len(), 40, "column {name}");
    }
    let p = &set.params;
    for i in 0..set.len() {
        let l = set.labels[i];
        assert_eq!(p.einstein_radius[i].is_nan(), l != LABEL_LENS, "stamp {i}");
        assert_eq!(p.magnification[i].is_nan(), l != LABEL_LENS, "stamp {i}");
        assert_eq!(
            p.companion_separation[i].is_nan(),
            l != LABEL_MERGER,
            "stamp {i}"
        );
        assert_eq!(p.artefact[i].is_empty(), l != LABEL_ARTEFACT, "stamp {i}");
        assert!(p.snr[i] > 0.0 && p.flux[i] > 0.0 && p.r_half[i] > 0.0);
        assert!(p.x_offset[i].abs() <= cfg.max_offset && p.y_offset[i].abs() <= cfg.max_offset);
        if l == LABEL_LENS {
            let theta_e = p.einstein_radius[i] * cfg.pixel_scale;
            assert!(
                theta_e >= cfg.lens.einstein_radius[0] && theta_e <= cfg.lens.einstein_radius[1]
            );
            assert!(
                p.magnification[i] > 1.0,
                "lensing magnifies: {}",
                p.magnification[i]
            );
            assert!(p.source_offset[i] <= cfg.lens.source_offset_max * p.einstein_radius[i]);
        }
        if l == LABEL_MERGER {
            let sep = p.companion_separation[i];
            let fwhm = cfg.psf.fwhm() / cfg.pixel_scale;
            assert!(
                sep >= cfg.merger.separation[0] * fwhm.min(p.r_half[i]),
                "separation {sep}"
            );
            assert!(p.companion_mag[i] >= p.mag[i] - 2.5 * cfg.merger.flux_ratio[1].log10() - 1e-9);
        }
        if l == LABEL_ARTEFACT {
            assert!(
                ["cosmic_ray", "satellite_trail", "hot_pixels"].contains(&p.artefact[i].as_str())
            );
        }
        if l == LABEL_NORMAL {
            assert!(
                p.mag[i] >= cfg.galaxies.magnitudes.min && p.mag[i] <= cfg.galaxies.magnitudes.max
            );
        }
    }
    let cards = set.header_cards();
    assert!(cards.iter().all(|c| c.0.len() <= 8));
    assert!(cards.iter().any(|c| c.0 == "LABEL1"));
    assert!(f64_column(&set, "stamp_flux").iter().all(|&f| f > 0.0));
}

#[test]
fn cutouts_rare_classes_are_all_present_in_exact_numbers() {
    // Exact counts by construction: round(n · rare_fraction), all rare classes present.
    for (n, frac, expect) in [(150, 0.02, [147, 1, 1, 1]), (101, 0.1, [91, 4, 3, 3])] {
        let cfg = CutoutConfig {
            n,
            size: 24,
            rare_fraction: frac,
            seed: 9,
            ..CutoutConfig::default()
        };
        let set = simulate_cutouts(&cfg, &()).unwrap();
        assert_eq!(set.label_counts(), expect);
    }
}

#[test]
fn cutouts_noiseless_stamps_hold_the_galaxy_light() {
    let cfg = CutoutConfig {
        noise: NoiseConfig {
            enabled: false,
            ..NoiseConfig::default()
        },
        galaxies: GalaxyModel {
            r_half: [0.2, 0.4],
            ..CutoutConfig::default().galaxies
        },
        ..small(20, 0.0, 4)
    };
    let set = simulate_cutouts(&cfg, &()).unwrap();
    for i in 0..set.len() {
        let stamp = set.images.index_axis(ndarray::Axis(0), i);
        let sum: f64 = stamp.iter().map(|&v| v as f64).sum();
        let p = &set.params;
        assert!(
            (sum / p.stamp_flux[i] - 1.0).abs() < 1e-4,
            "stamp {i}: {sum} vs {}",
            p.stamp_flux[i]
        );
        // Small galaxies fit the stamp: nearly all their light is inside.
        assert!(p.stamp_flux[i] <= p.flux[i] * (1.0 + 1e-9));
        assert!(
            p.stamp_flux[i] > 0.97 * p.flux[i],
            "stamp {i}: {} of {}",
            p.stamp_flux[i],
            p.flux[i]
        );
        // Centred: the flux-weighted centroid is at the stamp centre plus the offset.
        let (mut sx, mut sy) = (0.0, 0.0);
        for ((r, c), &v) in stamp.indexed_iter() {
            sx += v as f64 * c as f64;
            sy += v as f64 * r as f64;
        }
        let centre = (cfg.size as f64 - 1.0) / 2.0;
        assert!(
            (sx / sum - centre - p.x_offset[i]).abs() < 0.1,
            "stamp {i} x"
        );
        assert!(
            (sy / sum - centre - p.y_offset[i]).abs() < 0.1,
            "stamp {i} y"
        );
    }
}

#[test]
fn cutouts_background_noise_matches_the_noise_model() {
    let cfg = CutoutConfig {
        galaxies: GalaxyModel {
            magnitudes: MagnitudeDistribution {
                min: 22.0,
                max: 23.0,
                slope: 0.3,
            },
            r_half: [0.2, 0.3],
            ..CutoutConfig::default().galaxies
        },
        ..small(16, 0.0, 5)
    };
    let set = simulate_cutouts(&cfg, &()).unwrap();
    // 10×10 corners of every stamp, far from the small central galaxies.
    let mut values = Vec::new();
    for i in 0..set.len() {
        for r in (0..10).chain(38..48) {
            for c in (0..10).chain(38..48) {
                values.push(set.images[[i, r, c]] as f64);
            }
        }
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let expect = cfg.noise.background_sigma_adu();
    assert!((std / expect - 1.0).abs() < 0.04, "std {std} vs {expect}");
    assert!(
        mean.abs() < 4.0 * expect / n.sqrt(),
        "sky-subtracted mean {mean}"
    );
}

#[test]
fn cutouts_invalid_parameters_are_rejected_by_name() {
    type Mutation = fn(&mut CutoutConfig);
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (|c| c.n = 0, "n", "0"),
        (|c| c.size = 4, "size", "4"),
        (|c| c.rare_fraction = 1.5, "rare_fraction", "1.5"),
        (|c| c.rare_weights = [0.0, 0.0, 0.0], "rare_weights", "0"),
        (|c| c.rare_weights = [1.0, -1.0, 0.0], "rare_weights", "-1"),
        (|c| c.pixel_scale = 0.0, "pixel_scale", "0"),
        (|c| c.noise.gain = -2.0, "noise.gain", "-2"),
        (|c| c.max_offset = 40.0, "max_offset", "40"),
        (
            |c| c.galaxies.sersic_n = [3.0, 2.0],
            "galaxies.sersic_n",
            "3",
        ),
        (
            |c| c.lens.einstein_radius = [0.0, 1.0],
            "lens.einstein_radius",
            "0",
        ),
        (
            |c| c.lens.source_offset_max = -0.5,
            "lens.source_offset_max",
            "-0.5",
        ),
        (
            |c| c.merger.flux_ratio = [0.5, 0.2],
            "merger.flux_ratio",
            "0.5",
        ),
        (
            |c| {
                c.psf = deepsky_sim::sky::Psf::Moffat {
                    fwhm: 0.7,
                    beta: 0.5,
                }
            },
            "psf.beta",
            "0.5",
        ),
    ];
    for (mutate, name, value) in cases {
        let mut cfg = CutoutConfig::default();
        mutate(&mut cfg);
        let err = simulate_cutouts(&cfg, &()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{name}`")),
            "expected `{name}` in: {err}"
        );
        assert!(err.contains(value), "expected {value} in: {err}");
    }
    assert!(CutoutConfig::default().validate().is_ok());
    let err = serde_json::from_str::<CutoutConfig>(r#"{"rare_fracton": 0.1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rare_fracton"), "{err}");
}
