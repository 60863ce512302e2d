//! The images a `detect predict` run searches: `--input` values expanded by the runtime.

pub use deepsky_runtime::inputs::{expand, stem};
