//! Training throughput of the two autoencoders behind BENCHMARKS.md (run by
//! `benchmarks/ae_throughput.sh`, side by side with `benchmarks/ae_torch.py`):
//!
//! ```sh
//! cargo build --workspace --examples --locked
//! RAYON_NUM_THREADS=2 target/debug/examples/ae_throughput [--steps N] [--models dense,conv]
//! ```
//!
//! For 32×32 single-channel stamps of seeded random data: the dense AE (widths [256, 64],
//! latent 8) and the conv AE (widths [8, 16, 32], latent 8), silu + batch norm, MSE loss,
//! trained through `AeModel::fit` (the shared loop: AdamW, warm-up + cosine schedule, gradient
//! clipping at 5) with batch 32 on 1024 examples (32 steps per epoch), no validation.
//! The first epoch (32 steps) is warm-up and not timed; the timed part is the following
//! `--steps` optimiser steps (rounded up to whole epochs). Threads: `RAYON_NUM_THREADS` (read
//! by candle and rayon).
//!
//! Prints one JSON line per model: samples/s and ms/step over the timed steps, and, from
//! /proc over the same interval, the cores this process kept busy (`own_cores`) and the cores
//! used by everything else on the machine (`others_cores`), so that a run disturbed by other
//! work shows it.

use std::time::Instant;

use candle_core::Device;
use deepsky_nn::train::{Hooks, TrainConfig, Trainer};
use deepsky_repr::fit::AeModel;
use deepsky_repr::model::{ArchKind, ModelConfig};
use deepsky_repr::normalise::Normaliser;
use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};

const BATCH: usize = 32;
const STEPS_PER_EPOCH: usize = 32;
const SHAPE: [usize; 3] = [1, 32, 32];

/// CPU accounting from /proc, in clock ticks: (machine busy, machine total, this process,
/// number of cores). Zeros where /proc is not readable.
#[derive(Clone, Copy)]
struct CpuSample {
    busy: u64,
    total: u64,
    own: u64,
    cores: usize,
}

impl CpuSample {
    fn now() -> CpuSample {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let f = |i: usize| fields.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = f(0) + f(1) + f(2) + f(5) + f(6) + f(7);
        let total = busy + f(3) + f(4);
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which ends with the last ')'): utime is the 12th, stime the 13th.
        let rest: Vec<&str> = me
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let own = field(11) + field(12);
        CpuSample {
            busy,
            total,
            own,
            cores: cores.max(1),
        }
    }

    /// (own cores, others' cores) averaged between `self` and `later`.
    fn cores_used(&self, later: &CpuSample) -> (f64, f64) {
        let wall = (later.total.saturating_sub(self.total)) as f64 / self.cores as f64;
        if wall <= 0.0 {
            return (f64::NAN, f64::NAN);
        }
        let own = later.own.saturating_sub(self.own) as f64;
        let busy = later.busy.saturating_sub(self.busy) as f64;
        (own / wall, (busy - own).max(0.0) / wall)
    }
}

/// Records time and CPU use at the end of the warm-up and at the last step.
struct Timer {
    warmup: usize,
    last: usize,
    start: Option<(Instant, CpuSample)>,
    end: Option<(Instant, CpuSample)>,
    last_loss: f64,
}

impl Hooks for Timer {
    fn on_step(&mut self, step: usize, loss: f64) {
        if step == self.warmup {
            self.start = Some((Instant::now(), CpuSample::now()));
        }
        if step == self.last {
            self.end = Some((Instant::now(), CpuSample::now()));
        }
        self.last_loss = loss;
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the `deepsky` CLI does.
    deepsky_nn::device::init_cpu_threads();
    let mut steps = 320usize;
    let mut models = vec!["dense".to_string(), "conv".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => steps = args.next().ok_or("--steps needs a number")?.parse()?,
            "--models" => {
                models = args
                    .next()
                    .ok_or("--models needs a list")?
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: ae_throughput [--steps N] [--models dense,conv]"
                )
                .into())
            }
        }
    }
    let timed_epochs = steps.div_ceil(STEPS_PER_EPOCH).max(1);
    let steps = timed_epochs * STEPS_PER_EPOCH;
    let warmup = STEPS_PER_EPOCH;
    let threads = candle_core::utils::get_num_threads();

    let n = BATCH * STEPS_PER_EPOCH;
    let features: usize = SHAPE.iter().product();
    let mut rng = deepsky_nn::init::named_rng(1, "ae_throughput/data");
    let data = Array2::from_shape_simple_fn((n, features), || StandardNormal.sample(&mut rng));

    for name in &models {
        let cfg = match name.as_str() {
            "dense" => ModelConfig {
                kind: ArchKind::Dense,
                widths: vec![256, 64],
                latent: 8,
                ..Default::default()
            },
            "conv" => ModelConfig {
                kind: ArchKind::Conv,
                widths: vec![8, 16, 32],
                latent: 8,
                ..Default::default()
            },
            other => return Err(format!("unknown model {other:?} (dense or conv)").into()),
        };
        let ae = AeModel::init(&cfg, &SHAPE, Normaliser::Identity, 1, &Device::Cpu)?;
        // Trainable parameters (batch norm's running statistics are variables too, but not trained).
        let params: usize = {
            let vars = ae.varmap().data().lock().expect("varmap lock");
            vars.iter()
                .filter(|(k, _)| !k.contains("running_"))
                .map(|(_, v)| v.as_tensor().elem_count())
                .sum()
        };
        let train = TrainConfig {
            epochs: 1 + timed_epochs,
            batch_size: BATCH,
            val_fraction: 0.0,
            patience: 0,
            ..Default::default()
        };
        let mut timer = Timer {
            warmup,
            last: warmup + steps,
            start: None,
            end: None,
            last_loss: f64::NAN,
        };
        let out = ae.fit(&data, Trainer::new(&train).hooks(&mut timer))?;
        assert_eq!(out.state.steps, warmup + steps, "steps taken");
        let (t0, c0) = timer.start.expect("warm-up ran");
        let (t1, c1) = timer.end.expect("last step ran");
        let secs = t1.duration_since(t0).as_secs_f64();
        let (own, others) = c0.cores_used(&c1);
        let line = serde_json::json!({
            "impl": "deepsky",
            "model": name,
            "threads": threads,
            "batch": BATCH,
            "warmup_steps": warmup,
            "steps": steps,
            "params": params,
            "seconds": round(secs, 4),
            "samples_per_s": round((steps * BATCH) as f64 / secs, 1),
            "ms_per_step": round(secs / steps as f64 * 1e3, 2),
            "own_cores": round(own, 2),
            "others_cores": round(others, 2),
            "final_loss": round(timer.last_loss, 5),
        });
        println!("{line}");
    }
    Ok(())
}
