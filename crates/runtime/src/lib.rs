//! What every deepsky pipeline shares, so that a user learns it once.
//!
//! - [`config`]: layered TOML (`-c base.toml -c run.toml`, then `--set train.epochs=5`), every
//!   key with a default, unknown keys an error naming the key, its file and the nearest valid
//!   key, ranges checked before work starts, `--dump-config`.
//! - [`provenance`]: how each output was made, as `<out>/provenance.json` and embedded in FITS
//!   headers and HDF5 attributes.
//! - [`progress`]: indicatif bars on a terminal, plain lines otherwise, tracing for logs.
//! - [`interrupt`] and [`RunError`]: exit codes 0 success, 1 failure, 2 bad input or config,
//!   130 interrupted (Ctrl-C or SIGTERM).
//! - [`outdir`]: the output directory with atomic writes and `report.json`.
//! - [`shard`]: `--shard K/N` for runs split over a cluster's job array, the state of a
//!   shard's output folder, and [`ShardedPipeline`], what a pipeline tells `deepsky submit`.
//! - [`slurm`]: the job array and merge job scripts, `sbatch`/`squeue`, `submit.json`.
//! - [`inputs`]: input files given as files, folders, globs and `@list` files.
//!
//! ```
//! use deepsky_runtime::{config, Shard};
//! let shard: Shard = "1/3".parse().unwrap();
//! assert_eq!(shard.range(10), 3..6);
//! ```
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod inputs;
pub mod interrupt;
pub mod outdir;
pub mod progress;
pub mod provenance;
pub mod shard;
pub mod slurm;

pub use config::{ConfigError, PipelineConfig, Resolved, Validate};
pub use error::{Result, RunError};
pub use outdir::OutDir;
pub use progress::Progress;
pub use provenance::Provenance;
pub use shard::{Shard, ShardRecord, ShardState, ShardedPipeline};
