//! The detector network's arithmetic rate on this machine: the compiled network (what
//! `deepsky detect predict` runs on the CPU) on tiles of a simulated field, one tile per thread,
//! against its multiply–add count — the numbers behind BENCHMARKS.md's "physical limit" line.
//!
//! `cargo run --release --example net_speed -- [MODEL_DIR] [TILE] [TILES]`
//! (defaults: data/models/detect, 240, 50).

use std::time::Instant;

use candle_core::Device;
use deepsky_detect::detector::Detector;
use deepsky_detect::model::Workspace;
use rayon::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("data/models/detect", |s| s.as_str());
    let tile: usize = args.get(2).map_or(Ok(240), |s| s.parse())?;
    let tiles: usize = args.get(3).map_or(Ok(50), |s| s.parse())?;
    let det = Detector::load(std::path::Path::new(model), &Device::Cpu)?;
    let net = det.net().compile()?;
    // A normalised-looking tile: unit noise plus a few bright blobs, so that the sparse box
    // branch has work as on a real field.
    let mut x = vec![0f32; tile * tile];
    let mut state = 12345u64;
    for (i, v) in x.iter_mut().enumerate() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.4;
        let (r, c) = (i / tile, i % tile);
        if r % 20 == 10 && c % 20 == 10 {
            *v += 4.0;
        }
    }
    // As the tiles run here: class branch everywhere, box branch at the candidates only.
    let dense = net.multiply_adds(tile, tile, true) as f64;
    let macs = net.multiply_adds(tile, tile, false) as f64;
    let threads = rayon::current_num_threads();
    let run = || {
        (0..tiles)
            .into_par_iter()
            .map_init(Workspace::default, |ws, _| {
                let out = net.forward(&x, tile, tile, false, ws).expect("forward");
                let wanted: Vec<usize> = (0..out.scores.len() / net.num_classes())
                    .filter(|&a| out.scores[a * net.num_classes()] > 0.2)
                    .collect();
                let n = out.boxes_at(&wanted, ws).len();
                out.recycle(ws);
                n
            })
            .sum::<usize>()
    };
    run(); // warm-up: workspaces, page faults
    let t = Instant::now();
    let boxes = run();
    let s = t.elapsed().as_secs_f64();
    let pixels = (tile * tile) as f64;
    println!(
        "{tiles} tiles of {tile}² on {threads} threads: {s:.3} s, {:.2} Mpix/s; {:.0} \
         multiply-adds per pixel as run ({:.0} with every box), {:.1} GFLOP/s ({boxes} boxes \
         decoded)",
        tiles as f64 * pixels / s / 1e6,
        macs / pixels,
        dense / pixels,
        2.0 * macs * tiles as f64 / s / 1e9
    );
    Ok(())
}
