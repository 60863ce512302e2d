//! Choosing where to compute: `cpu` (default), `cuda` or `cuda:N` when built with the `cuda`
//! feature.

use candle_core::Device;

use crate::error::{NnError, Result};

/// Parse a `--device` value. A CUDA device in a CPU-only build is a clear configuration error.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    match spec {
        "" | "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal: usize = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map_err(|_| NnError::config(format!("device `{s}`: expected cuda:N")))?,
                None => 0,
            };
            cuda(ordinal, s)
        }
        other => Err(NnError::config(format!(
            "device `{other}`: expected `cpu`, `cuda` or `cuda:N`"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize, spec: &str) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| NnError::config(format!("device `{spec}`: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize, spec: &str) -> Result<Device> {
    Err(NnError::config(format!(
        "device `{spec}`: this deepsky was built without CUDA; rebuild with `--features cuda`"
    )))
}

/// A short name for provenance (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// Features compiled into this build that change numerical behaviour.
pub fn enabled_features() -> Vec<&'static str> {
    let mut f = vec![];
    if cfg!(feature = "cuda") {
        f.push("cuda");
    }
    f
}

/// Set up the CPU thread pools before the first tensor operation; binaries call it first
/// thing in `main` (after any `RAYON_NUM_THREADS` of their own).
///
/// Why: candle 0.11 runs its large element-wise operations on a worker pool of its own (its
/// "barrier pool", `RAYON_NUM_THREADS - 1` threads), beside rayon's, which runs deepsky's
/// heavy kernels (convolution, dense products, batch norm, SiLU, AdamW). After each operation
/// candle's workers spin for 25 000 iterations before they park, and on a machine with as
/// many cores as threads that spinning takes a core from the rayon kernel that runs next
/// (`perf` gave candle's worker 22 % of a conv-autoencoder run's samples). With
/// `CANDLE_NUM_THREADS=1` candle's element-wise operations run on the calling thread and
/// there is one pool. Measured on 2 cores, 2 threads, medians of alternated runs: conv-AE
/// step 27.3 → 21.7 ms (23.7 → 21.3 ms in a second comparison), dense-AE step 9.2 → 7.9 ms, detector step (crop 128, batch 16)
/// 0.49–0.52 → 0.45 s; shower-GAN generation unchanged within its run-to-run spread. A
/// `CANDLE_NUM_THREADS` the user has set is kept.
pub fn init_cpu_threads() {
    const VAR: &str = "CANDLE_NUM_THREADS";
    if std::env::var_os(VAR).is_none() {
        // Called before any other thread exists or reads the environment (see above).
        std::env::set_var(VAR, "1");
    }
}
