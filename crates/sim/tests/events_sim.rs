//! Tests of the photon event-list simulator (`deepsky_sim::events`).
//!
//! Wrapped in `mod events` so that `cargo test events` selects them.

mod events {
    use deepsky_sim::events::{
        light_curve_features, simulate_events, CardValue, ColumnData, EventConfig, EventList, Psf,
        Variability,
    };
    use deepsky_sim::SimError;

    fn run(cfg: &EventConfig) -> EventList {
        simulate_events(cfg, &()).expect("valid config")
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// Times of the events of one source.
    fn times_of(ev: &EventList, id: i32) -> Vec<f64> {
        ev.time
            .iter()
            .zip(&ev.source_id)
            .filter(|(_, &s)| s == id)
            .map(|(&t, _)| t)
            .collect()
    }

    /// MLE photon index of energies from dN/dE ∝ E^-Γ truncated to [lo, hi], by golden section
    /// on the log-likelihood  −Γ Σ ln E − N ln Z(Γ),  Z = ∫_lo^hi E^-Γ dE.
    fn fit_photon_index(e: &[f64], lo: f64, hi: f64) -> f64 {
        let n = e.len() as f64;
        let sum_ln: f64 = e.iter().map(|x| x.ln()).sum();
        let loglike = |g: f64| {
            let a = 1.0 - g;
            let z = if a.abs() < 1e-9 {
                (hi / lo).ln()
            } else {
                (hi.powf(a) - lo.powf(a)) / a
            };
            -g * sum_ln - n * z.ln()
        };
        let (mut a, mut b) = (-1.0f64, 5.0f64);
        let phi = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..200 {
            let c = b - phi * (b - a);
            let d = a + phi * (b - a);
            if loglike(c) > loglike(d) {
                b = d;
            } else {
                a = c;
            }
        }
        0.5 * (a + b)
    }

    fn quiet(n_sources: usize, rate: f64) -> EventConfig {
        EventConfig {
            n_sources,
            rate_min: rate,
            rate_max: rate,
            variable_fraction: 0.0,
            background_rate: 0.0,
            ..EventConfig::default()
        }
    }

    #[test]
    fn deterministic_across_runs_and_thread_counts() {
        let cfg = EventConfig {
            seed: 11,
            ..EventConfig::default()
        };
        let a = in_pool(1, || run(&cfg));
        let b = in_pool(2, || run(&cfg));
        let c = run(&cfg);
        assert!(
            a.len() > 1000,
            "default config gave only {} events",
            a.len()
        );
        // Debug output compares NaN truth entries too (NaN != NaN under PartialEq).
        let (da, db, dc) = (format!("{a:?}"), format!("{b:?}"), format!("{c:?}"));
        assert_eq!(da, db, "1 vs 2 threads differ");
        assert_eq!(da, dc, "repeat run differs");
        let other = run(&EventConfig {
            seed: 12,
            ..EventConfig::default()
        });
        assert_ne!(a.time, other.time, "different seeds should differ");
    }

    #[test]
    fn default_config_is_reasonable() {
        let ev = run(&EventConfig::default());
        assert!((1_000..=200_000).contains(&ev.len()), "{} events", ev.len());
        assert_eq!(ev.sources.len(), 20);
        assert_eq!(ev.gti.len(), 3);
        assert!((ev.exposure() - 50_000.0).abs() < 1e-6);
        let variable = ev
            .sources
            .variability
            .iter()
            .filter(|&&v| v != Variability::Constant);
        assert_eq!(variable.count(), 6);
        assert_eq!(ev.flares.len(), 3);
        // Every column of every table has one row per source / flare.
        for (name, _, _, col) in ev.sources.columns() {
            assert_eq!(col.len(), 20, "{name}");
        }
        for (name, _, _, col) in ev.flares.columns() {
            assert_eq!(col.len(), 3, "{name}");
        }
        let n_from_truth: u64 = ev.sources.n_events.iter().sum();
        let n_src = ev.source_id.iter().filter(|&&s| s > 0).count() as u64;
        assert_eq!(n_from_truth, n_src);
        let meta = ev.columns_meta();
        let names: Vec<_> = meta.iter().map(|m| m.name).collect();
        assert_eq!(names, ["TIME", "X", "Y", "ENERGY", "PI", "SOURCE_ID"]);
    }

    #[test]
    fn events_sorted_inside_gtis_and_within_limits() {
        let cfg = EventConfig {
            gtis: Some(vec![
                (0.0, 10_000.0),
                (15_000.0, 20_000.0),
                (30_000.0, 42_000.0),
            ]),
            tstart: 1.0e8,
            variable_fraction: 0.5,
            background_rate: 0.5,
            ..EventConfig::default()
        };
        let ev = run(&cfg);
        assert!(ev.time.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        let gti = [
            (1.0e8, 1.0e8 + 10_000.0),
            (1.0e8 + 15_000.0, 1.0e8 + 20_000.0),
            (1.0e8 + 30_000.0, 1.0e8 + 42_000.0),
        ];
        assert_eq!(ev.gti, gti);
        for &t in &ev.time {
            assert!(
                gti.iter().any(|&(a, b)| t >= a && t < b),
                "event at {t} outside GTIs"
            );
        }
        // Both the first and the last GTI are populated (no truncation of the process).
        for &(a, b) in &gti {
            let n = ev.time.iter().filter(|&&t| t >= a && t < b).count();
            assert!(n > 100, "GTI {a}-{b} has {n} events");
        }
        for m in ev.columns_meta() {
            let vals: Vec<f64> = match m.name {
                "TIME" => ev.time.clone(),
                "X" => ev.x.iter().map(|&v| v as f64).collect(),
                "Y" => ev.y.iter().map(|&v| v as f64).collect(),
                "ENERGY" => ev.energy.iter().map(|&v| v as f64).collect(),
                "PI" => ev.pi.iter().map(|&v| v as f64).collect(),
                "SOURCE_ID" => ev.source_id.iter().map(|&v| v as f64).collect(),
                other => panic!("unexpected column {other}"),
            };
            for v in vals {
                if let Some(lo) = m.tlmin {
                    assert!(v >= lo, "{} {v} < TLMIN {lo}", m.name);
                }
                if let Some(hi) = m.tlmax {
                    assert!(v <= hi, "{} {v} > TLMAX {hi}", m.name);
                }
            }
        }
        assert!(ev.energy.iter().all(|&e| e > 0.0));
        // PI is floor(ENERGY / 14.59 eV) + 1, clipped.
        for (&e, &pi) in ev.energy.iter().zip(&ev.pi) {
            let want = ((e as f64 / 0.01459).floor() + 1.0).clamp(1.0, 1024.0) as i16;
            assert_eq!(pi, want, "energy {e}");
        }
        // Keywords.
        let f = |k: &str| match ev.keyword(k) {
            Some(CardValue::Float(v)) => *v,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(f("EXPOSURE"), 27_000.0);
        assert_eq!(f("ONTIME"), 27_000.0);
        assert_eq!(f("LIVETIME"), 27_000.0);
        assert_eq!(f("TSTART"), 1.0e8);
        assert_eq!(f("TSTOP"), 1.0e8 + 42_000.0);
        assert_eq!(ev.keyword("MJDREFI"), Some(&CardValue::Int(50814)));
        assert_eq!(ev.keyword("TIMESYS"), Some(&CardValue::Str("TT".into())));
        assert_eq!(ev.keyword("TIMEUNIT"), Some(&CardValue::Str("s".into())));
        assert_eq!(
            ev.keyword("TELESCOP"),
            Some(&CardValue::Str("DEEPSKY".into()))
        );
        assert_eq!(
            ev.keyword("INSTRUME"),
            Some(&CardValue::Str("SIMXRAY".into()))
        );
        assert_eq!(ev.keyword("SIMSEED"), Some(&CardValue::Int(1)));
        // 1e8 s after 1998-01-01 TT is 1157 days + 35 200 s.
        assert_eq!(
            ev.keyword("DATE-OBS"),
            Some(&CardValue::Str("2001-03-03T09:46:40".into()))
        );
    }

    #[test]
    fn constant_source_counts_are_poisson() {
        let rate = 0.05;
        let cfg = EventConfig {
            source_margin_px: 100.0,
            ..quiet(10, rate)
        };
        let ev = run(&cfg);
        let mu = rate * ev.exposure();
        for (i, &id) in ev.sources.id.iter().enumerate() {
            let n = times_of(&ev, id).len() as f64;
            assert_eq!(n as u64, ev.sources.n_events[i]);
            assert!(
                (n - mu).abs() < 4.0 * mu.sqrt(),
                "source {id}: {n} events, expected {mu}"
            );
        }
    }

    #[test]
    fn variable_source_counts_match_integrated_model_rate() {
        // Checks the thinning: counts of flaring and periodic sources follow ∫λ(t)dt over GTIs.
        let cfg = EventConfig {
            n_sources: 8,
            rate_min: 0.02,
            rate_max: 0.05,
            variable_fraction: 1.0,
            flare_fraction: 0.5,
            background_rate: 0.0,
            source_margin_px: 100.0,
            seed: 5,
            ..EventConfig::default()
        };
        let ev = run(&cfg);
        for &id in &ev.sources.id {
            let mut mu = 0.0;
            for &(a, b) in &ev.gti {
                let steps = ((b - a) / 1.0).ceil() as usize;
                let dt = (b - a) / steps as f64;
                mu += (0..steps)
                    .map(|k| ev.source_rate_at(id, a + (k as f64 + 0.5) * dt) * dt)
                    .sum::<f64>();
            }
            let n = times_of(&ev, id).len() as f64;
            assert!(
                (n - mu).abs() < 4.0 * mu.sqrt(),
                "source {id}: {n} events, model {mu}"
            );
        }
    }

    #[test]
    fn photon_index_is_recovered() {
        for (gamma, seed) in [(1.3, 1u64), (2.2, 2)] {
            let cfg = EventConfig {
                photon_index_mean: gamma,
                photon_index_sigma: 0.0,
                fwhm_1kev: 0.0,
                seed,
                ..quiet(1, 0.4)
            };
            let ev = run(&cfg);
            let e: Vec<f64> = ev.energy.iter().map(|&x| x as f64).collect();
            assert!(e.len() > 15_000);
            let fit = fit_photon_index(&e, cfg.e_min, cfg.e_max);
            assert!((fit - gamma).abs() < 0.1, "Γ = {gamma}: fitted {fit}");
            assert_eq!(ev.sources.photon_index[0], gamma);
        }
        // With energy dispersion on, a band well inside [e_min, e_max] is barely distorted.
        let cfg = EventConfig {
            photon_index_mean: 1.7,
            photon_index_sigma: 0.0,
            ..quiet(1, 0.5)
        };
        let ev = run(&cfg);
        let e: Vec<f64> = ev
            .energy
            .iter()
            .map(|&x| x as f64)
            .filter(|e| (1.0..6.0).contains(e))
            .collect();
        let fit = fit_photon_index(&e, 1.0, 6.0);
        assert!((fit - 1.7).abs() < 0.1, "with dispersion: fitted {fit}");
    }

    #[test]
    fn flare_peaks_near_t_peak() {
        let cfg = EventConfig {
            n_sources: 4,
            rate_min: 0.05,
            rate_max: 0.05,
            variable_fraction: 1.0,
            flare_fraction: 1.0,
            flare_amplitude: [20.0, 20.0],
            flare_rise_s: [100.0, 300.0],
            flare_decay_s: [1_000.0, 2_000.0],
            background_rate: 0.0,
            seed: 3,
            ..EventConfig::default()
        };
        let ev = run(&cfg);
        assert_eq!(ev.flares.len(), 4);
        let bin = 200.0;
        for f in 0..ev.flares.len() {
            let id = ev.flares.source_id[f];
            let t_peak = ev.flares.t_peak[f];
            assert!(
                ev.gti.iter().any(|&(a, b)| t_peak >= a && t_peak < b),
                "peak in a gap"
            );
            assert!((ev.flares.t_peak[f] - ev.flares.t_start[f] - ev.flares.rise[f]).abs() < 1e-6);
            let times = times_of(&ev, id);
            // Bins tiling each GTI (whole bins only).
            let mut best = (0usize, f64::NAN);
            for &(a, b) in &ev.gti {
                let nb = ((b - a) / bin).floor() as usize;
                for k in 0..nb {
                    let (lo, hi) = (a + k as f64 * bin, a + (k + 1) as f64 * bin);
                    let c = times.iter().filter(|&&t| t >= lo && t < hi).count();
                    if c > best.0 {
                        best = (c, 0.5 * (lo + hi));
                    }
                }
            }
            let tol = 0.5 * ev.flares.decay[f] + bin;
            assert!(
                (best.1 - t_peak).abs() <= tol,
                "flare of source {id}: max bin at {} but t_peak {t_peak}",
                best.1
            );
            // The peak bin is far above the quiescent level of 0.05 × 200 = 10 counts.
            assert!(best.0 > 80, "peak bin only {} counts", best.0);
        }
    }

    #[test]
    fn periodic_source_shows_its_period() {
        let cfg = EventConfig {
            n_sources: 3,
            rate_min: 0.2,
            rate_max: 0.2,
            variable_fraction: 1.0,
            flare_fraction: 0.0,
            pulsed_fraction: [0.5, 0.5],
            period_s: [500.0, 3_000.0],
            seed: 9,
            ..EventConfig::default()
        };
        let ev = run(&cfg);
        for (i, &id) in ev.sources.id.iter().enumerate() {
            assert_eq!(ev.sources.variability[i], Variability::Periodic);
            let period = ev.sources.period[i];
            assert!((500.0..=3000.0).contains(&period));
            assert_eq!(ev.sources.pulsed_fraction[i], 0.5);
            let times = times_of(&ev, id);
            let n = times.len() as f64;
            // Rayleigh / Z²₁ power at frequency f.
            let z2 = |f: f64| {
                let (mut c, mut s) = (0.0, 0.0);
                for &t in &times {
                    let ph = 2.0 * std::f64::consts::PI * f * (t - cfg.tstart);
                    c += ph.cos();
                    s += ph.sin();
                }
                2.0 / n * (c * c + s * s)
            };
            let f0 = 1.0 / period;
            let grid = [0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0];
            let powers: Vec<f64> = grid.iter().map(|m| z2(m * f0)).collect();
            let best = powers
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(
                grid[best], 1.0,
                "source {id} period {period}: powers {powers:?}"
            );
            // Expected Z²₁ ≈ N p²/2 for pulsed fraction p; far above the noise (≈ 2).
            assert!(
                powers[4] > 0.5 * n * 0.25 / 2.0,
                "weak pulsation {}",
                powers[4]
            );
        }
    }

    #[test]
    fn energy_resolution_matches_fwhm() {
        for line in [1.0, 6.4] {
            let cfg = EventConfig {
                line_kev: Some(line),
                fwhm_1kev: 0.12,
                ..quiet(1, 0.4)
            };
            let ev = run(&cfg);
            let d: Vec<f64> = ev.energy.iter().map(|&e| e as f64 - line).collect();
            let n = d.len() as f64;
            let mean = d.iter().sum::<f64>() / n;
            let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            let want = 0.12 * line.sqrt() / 2.354_820_045;
            assert!((cfg.energy_sigma_kev(line) - want).abs() < 1e-9);
            assert!(
                (sd / want - 1.0).abs() < 0.05,
                "line {line}: sd {sd}, want {want}"
            );
            assert!(
                mean.abs() < 5.0 * want / n.sqrt(),
                "line {line}: mean offset {mean}"
            );
        }
    }

    #[test]
    fn king_psf_encloses_its_fractions() {
        let psf = Psf::King {
            r_c: 2.0,
            beta: 2.0,
        };
        let cfg = EventConfig {
            psf,
            source_margin_px: 400.0,
            ..quiet(1, 0.2)
        };
        let ev = run(&cfg);
        let (sx, sy) = (ev.sources.x[0], ev.sources.y[0]);
        let r: Vec<f64> =
            ev.x.iter()
                .zip(&ev.y)
                .map(|(&x, &y)| ((x as f64 - sx).powi(2) + (y as f64 - sy).powi(2)).sqrt())
                .collect();
        for frac in [0.5, 0.9] {
            let rr = psf.enclosed_radius(frac);
            let got = r.iter().filter(|&&v| v <= rr).count() as f64 / r.len() as f64;
            assert!((got - frac).abs() < 0.02, "{frac}: {got} within {rr} px");
        }
        let g = Psf::Gaussian { sigma_px: 1.5 };
        // Rayleigh median radius σ·sqrt(2 ln 2).
        assert!((g.enclosed_radius(0.5) - 1.5 * (2.0 * 2f64.ln()).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn features_separate_flares_from_constants() {
        let cfg = EventConfig {
            n_sources: 40,
            rate_min: 0.01,
            rate_max: 0.05,
            variable_fraction: 0.5,
            flare_fraction: 1.0,
            seed: 21,
            ..EventConfig::default()
        };
        let ev = run(&cfg);
        let ft = light_curve_features(&ev, 1_000.0);
        assert_eq!(ft.source_id, ev.sources.id);
        let labels: Vec<i64> = ev.sources.variability.iter().map(|v| v.label()).collect();
        assert_eq!(ft.label, labels);
        let mean_of = |v: &[f64], want: i64| {
            let xs: Vec<f64> = v
                .iter()
                .zip(&ft.label)
                .filter(|(_, &l)| l == want)
                .map(|(&x, _)| x)
                .collect();
            assert_eq!(xs.len(), 20);
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        let nev_flare = mean_of(&ft.excess_variance, 1);
        let nev_const = mean_of(&ft.excess_variance, 0);
        assert!(
            nev_flare > nev_const + 0.1,
            "flares {nev_flare} vs constants {nev_const}"
        );
        assert!(
            nev_const.abs() < 0.1,
            "constant excess variance {nev_const}"
        );
        // χ²/dof of constants ≈ 1, of flares ≫ 1.
        let chi_const = mean_of(&ft.chi2_dof, 0);
        assert!(
            (0.6..1.6).contains(&chi_const),
            "constant chi2/dof {chi_const}"
        );
        assert!(mean_of(&ft.chi2_dof, 1) > 3.0);
        assert!(mean_of(&ft.skewness, 1) > mean_of(&ft.skewness, 0));
        // Rates of constant sources: about 90 % of truth (90 % PSF radius, tiny background).
        for i in 0..ft.source_id.len() {
            if ft.label[i] == 0 {
                let ratio = ft.rate[i] / ev.sources.rate[i];
                assert!(
                    (0.75..1.05).contains(&ratio),
                    "source {}: {ratio}",
                    ft.source_id[i]
                );
            }
            assert!((-1.0..=1.0).contains(&ft.hardness_ratio[i]));
            assert!((0.3..10.5).contains(&ft.mean_energy[i]));
        }
        for (name, _, _, col) in ft.columns() {
            assert_eq!(col.len(), 40, "{name}");
        }
        let label_col = ft.columns().into_iter().find(|c| c.0 == "LABEL").unwrap().3;
        assert_eq!(label_col, ColumnData::I64(labels));
    }

    fn invalid_name(cfg: EventConfig) -> String {
        match simulate_events(&cfg, &()) {
            Err(SimError::Config(e)) => e.key,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("config should be rejected: {cfg:?}"),
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        let d = EventConfig::default;
        assert_eq!(
            invalid_name(EventConfig {
                exposure: 0.0,
                ..d()
            }),
            "exposure"
        );
        assert_eq!(
            invalid_name(EventConfig {
                exposure: -5.0,
                ..d()
            }),
            "exposure"
        );
        assert_eq!(
            invalid_name(EventConfig {
                e_min: 5.0,
                e_max: 5.0,
                ..d()
            }),
            "e_min"
        );
        assert_eq!(
            invalid_name(EventConfig {
                e_min: 8.0,
                e_max: 2.0,
                ..d()
            }),
            "e_min"
        );
        assert_eq!(
            invalid_name(EventConfig {
                background_rate: -1.0,
                ..d()
            }),
            "background_rate"
        );
        assert_eq!(
            invalid_name(EventConfig {
                rate_min: -0.1,
                ..d()
            }),
            "rate_min"
        );
        assert_eq!(
            invalid_name(EventConfig {
                rate_max: 0.001,
                ..d()
            }),
            "rate_max"
        );
        assert_eq!(
            invalid_name(EventConfig {
                variable_fraction: 1.5,
                ..d()
            }),
            "variable_fraction"
        );
        assert_eq!(
            invalid_name(EventConfig {
                flare_fraction: -0.1,
                ..d()
            }),
            "flare_fraction"
        );
        assert_eq!(
            invalid_name(EventConfig {
                fwhm_1kev: -0.1,
                ..d()
            }),
            "fwhm_1kev"
        );
        assert_eq!(
            invalid_name(EventConfig {
                flare_amplitude: [0.5, 2.0],
                ..d()
            }),
            "flare_amplitude"
        );
        assert_eq!(
            invalid_name(EventConfig {
                pulsed_fraction: [0.5, 1.2],
                ..d()
            }),
            "pulsed_fraction"
        );
        assert_eq!(
            invalid_name(EventConfig {
                period_s: [100.0, 50.0],
                ..d()
            }),
            "period_s"
        );
        assert_eq!(
            invalid_name(EventConfig {
                n_channels: 40_000,
                ..d()
            }),
            "n_channels"
        );
        assert_eq!(
            invalid_name(EventConfig {
                line_kev: Some(0.0),
                ..d()
            }),
            "line_kev"
        );
        assert_eq!(
            invalid_name(EventConfig {
                psf: Psf::Gaussian { sigma_px: 0.0 },
                ..d()
            }),
            "psf.sigma_px"
        );
        assert_eq!(
            invalid_name(EventConfig {
                psf: Psf::King {
                    r_c: 2.0,
                    beta: 0.9
                },
                ..d()
            }),
            "psf.beta"
        );
        assert_eq!(
            invalid_name(EventConfig {
                rate_max: 1e6,
                ..d()
            }),
            "rate_max"
        );
        assert_eq!(
            invalid_name(EventConfig {
                background_rate: 1e6,
                ..d()
            }),
            "background_rate"
        );
        let overlapping = Some(vec![(0.0, 100.0), (50.0, 200.0)]);
        assert_eq!(
            invalid_name(EventConfig {
                gtis: overlapping,
                ..d()
            }),
            "gtis"
        );
        let unsorted = Some(vec![(300.0, 400.0), (0.0, 100.0)]);
        assert_eq!(
            invalid_name(EventConfig {
                gtis: unsorted,
                ..d()
            }),
            "gtis"
        );
        let backwards = Some(vec![(0.0, 100.0), (200.0, 150.0)]);
        assert_eq!(
            invalid_name(EventConfig {
                gtis: backwards,
                ..d()
            }),
            "gtis"
        );
        assert_eq!(
            invalid_name(EventConfig {
                gtis: Some(vec![]),
                ..d()
            }),
            "gtis"
        );
        // Touching GTIs are fine, and explicit GTIs make `exposure` irrelevant.
        let ok = EventConfig {
            gtis: Some(vec![(0.0, 100.0), (100.0, 200.0)]),
            exposure: 0.0,
            n_sources: 2,
            ..d()
        };
        assert!((run(&ok).exposure() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn config_serde() {
        let json = r#"{"n_sources": 3, "psf": {"kind": "king", "r_c": 3.0, "beta": 1.5},
                       "gtis": [[0, 1000], [2000, 2500]], "seed": 4}"#;
        let cfg: EventConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            cfg.psf,
            Psf::King {
                r_c: 3.0,
                beta: 1.5
            }
        );
        assert_eq!(cfg.gtis, Some(vec![(0.0, 1000.0), (2000.0, 2500.0)]));
        assert_eq!(cfg.e_max, EventConfig::default().e_max);
        assert!(serde_json::from_str::<EventConfig>(r#"{"psf": {"kind": "airy"}}"#).is_err());
        assert!(serde_json::from_str::<EventConfig>(
            r#"{"psf": {"kind": "gaussian", "sigma_px": 1, "beta": 2}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<EventConfig>(r#"{"n_source": 3}"#).is_err());
        let d = EventConfig::default();
        let back: EventConfig = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
