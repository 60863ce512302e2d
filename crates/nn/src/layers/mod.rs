//! The layers deepsky's models are built from, one module per layer as in candle-nn:
//!
//! - [`Conv2d`] ([`conv2d`], [`conv2d_no_bias`]) and [`upsample_nearest`];
//! - [`Dense`] ([`dense()`]), the fully connected layer;
//! - [`Act`] with [`silu`], and [`NormKind`] built as a [`Norm`]: the activations and
//!   normalisations a config chooses by name.
//!
//! Parameters have candle-nn's names, shapes and initialisation, so checkpoints are the same
//! as with candle-nn's layers. On the CPU (f32 and f64) each layer runs as one candle custom
//! op with a backward of its own, because candle's generic ops cost a full-size result and a
//! zero-filled gradient buffer per graph node, and candle's CPU convolution computes its input
//! gradient as a direct, unblocked transposed convolution. Before these ops the conv
//! autoencoder trained at 0.10× PyTorch's throughput on 2 cores; with them, above 1×
//! (BENCHMARKS.md). Other devices and dtypes take candle's tensor ops. The convolution's and
//! batch norm's CPU results are the same bits whatever the thread count.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use deepsky_nn::{init::SeededVarMap, layers::{conv2d, upsample_nearest, Act}};
//!
//! let vars = SeededVarMap::new(1);
//! let conv = conv2d(1, 4, 3, 1, 1, vars.builder(&Device::Cpu).pp("conv"))?;
//! let x = Tensor::zeros((2, 1, 8, 8), DType::F32, &Device::Cpu)?;
//! let y = Act::Silu.apply(&conv.forward(&upsample_nearest(&x, 2)?)?)?;
//! assert_eq!(y.dims(), &[2, 4, 16, 16]);
//! # Ok::<(), candle_core::Error>(())
//! ```

mod activation;
mod conv;
mod conv_cpu;
mod cpu;
mod dense;
mod norm;
#[cfg(test)]
mod test_util;
mod upsample;

pub use activation::{silu, Act};
pub use conv::{conv2d, conv2d_no_bias, Conv2d};
pub use dense::{dense, Dense};
pub use norm::{Norm, NormKind};
pub use upsample::upsample_nearest;
