//! Timing and physics numbers of the shower Monte Carlo (the "Validation and cost" section of
//! `deepsky_sim::shower`'s documentation), printed for reading rather than asserted: the
//! asserted physics checks are in `tests/shower_physics.rs`.
//!
//! ```text
//! cargo run -p deepsky-sim --release --example shower_bench            # both
//! cargo run -p deepsky-sim --release --example shower_bench timings
//! cargo run -p deepsky-sim --release --example shower_bench physics
//! ```

use std::time::Instant;

use deepsky_sim::shower::{
    shower_diagnostics, simulate_showers, Calorimeter, EnergySpec, Particle, ShowerConfig,
};

/// Process CPU time (user + system) in seconds, from /proc (Linux only; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// (showers/s by wall clock, showers/s per CPU-second) for `n` electrons of `e` GeV.
fn rate(threads: usize, e: f64, n: usize) -> (f64, f64) {
    let cfg = ShowerConfig {
        particle: Particle::Electron,
        energy_gev: EnergySpec::Fixed(e),
        n_showers: n,
        seed: 1,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let (t0, c0) = (Instant::now(), cpu_seconds());
    pool.install(|| simulate_showers(&cfg, &()))
        .expect("simulate");
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    (n as f64 / wall, n as f64 / cpu.max(1e-9))
}

/// Showers per second on 1 and 2 threads, by wall clock and per CPU-second.
fn timings() {
    for (e, n) in [(1.0, 4000), (10.0, 400), (100.0, 60)] {
        let (w1, c1) = rate(1, e, n);
        let (w2, c2) = rate(2, e, n);
        println!(
            "e- {e:>5} GeV: {w1:8.1} showers/s (1 thread), {w2:8.1} showers/s (2 threads); \
             per CPU-second {c1:.1} / {c2:.1}"
        );
    }
}

/// Shower maximum, containment, deposited and leaked fractions, response and resolution.
fn physics() {
    let cal = Calorimeter::calogan();
    for p in [Particle::Electron, Particle::Photon] {
        for (e, n) in [(1.0, 400), (10.0, 200), (50.0, 100), (100.0, 50)] {
            let d = shower_diagnostics(&cal, p, e, n, 5, &()).expect("diag");
            let f = d.gamma_fit().expect("fit");
            let formula = (e * 1000.0 / cal.critical_energy_mev()).ln()
                + if p == Particle::Photon { 0.5 } else { -0.5 };
            println!(
                "{p:>5} {e:>5} GeV: t_max fit {:.2} (a {:.2}, b {:.3}), peak {:.2}, formula {:.2}; \
                 R_M containment {:.3}, 2 R_M {:.3}, 3.5 R_M {:.4}; deposited {:.4}, leaked {:.4}",
                f.t_max,
                f.a,
                f.b,
                d.peak_depth_x0(),
                formula,
                d.containment(1.0),
                d.containment(2.0),
                d.containment(3.5),
                d.mean_deposited_mev() / (e * 1000.0),
                d.mean_leaked_mev() / (e * 1000.0),
            );
        }
    }
    for (e, n) in [(2.0, 400), (10.0, 200), (50.0, 100)] {
        let cfg = ShowerConfig {
            particle: Particle::Electron,
            energy_gev: EnergySpec::Fixed(e),
            n_showers: n,
            seed: 9,
        };
        let set = simulate_showers(&cfg, &()).expect("sim");
        let s = set.to_calochallenge().showers;
        let tot: Vec<f64> = (0..n)
            .map(|i| s.row(i).sum() as f64 + set.overflow.row(i).sum() as f64)
            .collect();
        let m = tot.iter().sum::<f64>() / n as f64;
        let v = tot.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        println!(
            "e- {e} GeV: response {:.4}, sigma/E {:.4}, x sqrt(E) {:.4}",
            m / (e * 1000.0),
            v.sqrt() / m,
            v.sqrt() / m * e.sqrt()
        );
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "timings" => timings(),
        "physics" => physics(),
        "" => {
            timings();
            physics();
        }
        other => {
            eprintln!("unknown study `{other}`: expected timings or physics");
            std::process::exit(2);
        }
    }
}
