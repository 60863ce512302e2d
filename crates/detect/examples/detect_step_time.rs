//! Time training steps of the detector (the dev profile is optimised):
//! `cargo build --workspace --examples && target/debug/examples/detect_step_time CROP BATCH STEPS`.
use candle_core::Device;
use deepsky_detect::assign::AssignConfig;
use deepsky_detect::dataset::{DataConfig, TrainData};
use deepsky_detect::detector::{Detector, TrainedOn};
use deepsky_detect::loss::LossConfig;
use deepsky_detect::model::DetectorConfig;
use deepsky_detect::Preprocess;
use deepsky_nn::train::{TrainConfig, Trainer};

fn main() {
    // As the `deepsky` CLI does.
    deepsky_nn::device::init_cpu_threads();
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (crop, batch, steps) = (a[0], a[1], a[2]);
    let data_cfg = DataConfig {
        fields: 2,
        crops_per_field: batch * steps / 2,
        crop,
        ..Default::default()
    };
    let pre = Preprocess::default();
    let t = std::time::Instant::now();
    let data = TrainData::simulate(&data_cfg, &pre, 3).unwrap();
    let t_sim = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let ex = data.batch(&(0..batch).collect::<Vec<_>>(), 0).unwrap();
    let t_ex = t.elapsed().as_secs_f64();
    let mut det = Detector::init(
        &DetectorConfig::default(),
        &pre,
        TrainedOn::default(),
        5,
        &Device::Cpu,
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: batch,
        val_fraction: 0.0,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    det.fit(
        &data,
        &AssignConfig::default(),
        &LossConfig::default(),
        Trainer::new(&cfg),
    )
    .unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!("sim {t_sim:.2}s; {} examples in {t_ex:.3}s; {steps} steps in {dt:.2}s: {:.3} s/step, {:.1} img/s", ex.len(), dt / steps as f64, (batch * steps) as f64 / dt);
}
