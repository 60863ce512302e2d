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

/// How long (in spin-loop iterations) candle's element-wise worker threads spin for more work
/// before they park, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set; candle's default is
/// 25 000.
const CANDLE_SPIN_LIMIT: &str = "2000";

/// Set up the CPU thread pools before the first tensor operation; binaries call it first
/// thing in `main` (after any `RAYON_NUM_THREADS` of their own).
///
/// Why: candle runs its large element-wise operations on a worker pool of its own, beside
/// rayon's (which our convolution, batch-norm and optimiser kernels use). After each such
/// operation candle's workers spin for 25 000 iterations before they park; on a machine with
/// as many cores as threads, that spinning takes a core from the rayon kernel that runs next.
/// Measured on 2 cores: a conv-autoencoder training step took 23.7 ms (median of 7) with
/// candle's default and 20.1 ms with the shorter spin set here. A value the user has set is
/// kept.
pub fn init_cpu_threads() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        // Called before any thread that reads the environment exists (see above).
        std::env::set_var(VAR, CANDLE_SPIN_LIMIT);
    }
}
