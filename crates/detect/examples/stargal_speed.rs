//! Time the point-source test (`stargal::point_source_scores`) on a simulated 1024² field of
//! the default sky (1″ Moffat seeing, 480 stars and 2400 galaxies: the density of issue 22's
//! benchmark field), against the β = 3 Moffat of the right FWHM as `detect predict` uses it:
//! `cargo run --release -p deepsky-detect --example stargal_speed [FWHM_PX [REPEATS [SIDE]]]`
//! (the dev profile is optimised too). FWHM_PX (default 2.5, the default sky's 0.4″ pixels)
//! sets the pixel scale; prints the median wall and CPU time (all threads; Linux) over REPEATS
//! (default 5) calls and a summary of the answers, for comparing implementations. Set
//! `RAYON_NUM_THREADS` for the number of threads.
use deepsky_core::pixel::from_fits;
use deepsky_detect::background::{estimate_background, BackgroundConfig};
use deepsky_detect::stargal::{point_source_scores, PsfProfile, StarGalaxyConfig};
use deepsky_sim::sky::{simulate_sky, SkyConfig, SourceClass};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let fwhm_px: f64 = a.first().map_or(2.5, |s| s.parse().unwrap());
    let repeats: usize = a.get(1).map_or(5, |s| s.parse().unwrap());
    let side: usize = a.get(2).map_or(1024, |s| s.parse().unwrap());
    let area = (side * side) as f64 / (256.0 * 256.0);
    let cfg = SkyConfig {
        width: side,
        height: side,
        pixel_scale: 1.0 / fwhm_px,
        n_stars: (30.0 * area).round() as usize,
        n_galaxies: (150.0 * area).round() as usize,
        seed: 22,
        ..SkyConfig::default()
    };
    let field = simulate_sky(&cfg, &()).expect("simulates");
    let image = field.image.view();
    let bkg = estimate_background(image, None, &BackgroundConfig::default()).expect("background");
    let cat = &field.catalog;
    let positions: Vec<(f64, f64)> = (0..cat.len())
        .filter(|&i| matches!(cat.class[i], SourceClass::Star | SourceClass::Galaxy))
        .map(|i| (from_fits(cat.x[i]), from_fits(cat.y[i])))
        .collect();
    let psf = PsfProfile::from_fwhm(fwhm_px);
    let sg = StarGalaxyConfig::default();
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    let mut found = None;
    for _ in 0..repeats.max(1) {
        let (t, c) = (std::time::Instant::now(), cpu_seconds());
        found = Some(point_source_scores(image, &bkg, &positions, &psf, &sg));
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let found = found.expect("ran");
    let stellar = found
        .scores
        .iter()
        .filter(|s| s.stellar == Some(true))
        .count();
    let undecided = found.scores.iter().filter(|s| s.stellar.is_none()).count();
    let sum: f64 = found
        .scores
        .iter()
        .map(|s| s.spread)
        .filter(|s| s.is_finite())
        .sum();
    println!(
        "{side}² field, FWHM {fwhm_px} px, {} objects on {} threads: median {:.4} s wall (min \
         {:.4} s), {:.4} s CPU (min {:.4} s) over {} calls; zero point {:+.6} from {}, {stellar} stellar, {undecided} undecided, \
         Σ spread {sum:.9}",
        positions.len(),
        rayon::current_num_threads(),
        times[times.len() / 2],
        times[0],
        cpu[cpu.len() / 2],
        cpu[0],
        times.len(),
        found.zero_point,
        found.locus_objects,
    );
}

/// CPU time of this process so far (user + system, all threads), seconds; 0 where
/// `/proc/self/stat` is not to be had.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
