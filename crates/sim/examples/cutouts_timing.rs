//! Time to simulate the default cutout set (2000 stamps of 64×64 pixels), the size the anomaly
//! pipeline trains on.
//!
//! ```text
//! cargo run -p deepsky-sim --release --example cutouts_timing
//! ```

use deepsky_sim::cutouts::{simulate_cutouts, CutoutConfig};

fn main() {
    let cfg = CutoutConfig::default();
    let start = std::time::Instant::now();
    let set = simulate_cutouts(&cfg, &()).expect("the default configuration is valid");
    println!(
        "simulate_cutouts default ({} x {}x{}): {:.2} s, label counts {:?}",
        set.len(),
        cfg.size,
        cfg.size,
        start.elapsed().as_secs_f64(),
        set.label_counts()
    );
}
