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
