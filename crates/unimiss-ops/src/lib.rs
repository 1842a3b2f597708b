//! Tensor operators that candle 0.11 lacks, with backward passes.
//!
//! Every function here returns a `candle::Result` and is differentiable through candle's
//! autograd: gradients reach every input and parameter (unlike candle-nn's fused
//! `layer_norm`/`softmax_last_dim`, which record no backward).
//!
//! - [`conv2d`], [`conv3d`]: convolutions with per-axis stride, padding and dilation.
//! - [`conv_transpose2d`], [`conv_transpose3d`]: transposed convolutions (PyTorch layout
//!   `[C_in, C_out, k..]`, output padding).
//! - [`Modality`]: the 2D/3D switch of the whole workspace (re-exported by the model, data and
//!   ssl crates).
//! - [`instance_norm`], [`layer_norm`], [`softmax_last_dim`], [`leaky_relu`], [`gelu`].
//! - [`linear`]: `x Wᵀ + b` as one autograd node (GEMM forward, fused backward).
//! - [`attention`]: multi-head `softmax(q kᵀ · scale) v` read in place from the projections, as
//!   one autograd node (scores per block of query rows, recomputed in the backward).
//! - [`weight_norm_linear`]: the DINO head's weight-normalised last layer as one autograd node
//!   (the normalised weight is never built).
//! - [`update`]: fused multi-threaded AdamW, squared-norm and EMA passes for the optimiser.
//! - [`interp`]: bicubic, bilinear and trilinear resizing with PyTorch's `align_corners=False`
//!   semantics, including the scale-factor mode.
//!
//! Bad arguments (rank, channel mismatch, zero stride, kernel larger than the padded input)
//! give an error naming the op and the shapes, never a panic.
//!
//! On the CPU in f32/f64 the ops run as custom ops with fused backward passes: convolutions
//! through one vol2col + GEMM engine (2D is 3D with depth 1; the column buffer is bounded, see
//! [`set_conv_column_budget`]), fused layer/instance norm, softmax and LeakyReLU. On other
//! devices (CUDA) and dtypes they run as compositions of candle primitives, the same ones
//! exposed in [`reference`]. See `docs/ops.md`.
//!
//! ```
//! use candle::{Device, Tensor, Var};
//! use unimiss_ops::{conv3d, ConvParams};
//!
//! let dev = Device::Cpu;
//! let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 1, 4, 9, 9), &dev)?)?;
//! let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (8, 1, 3, 3, 3), &dev)?)?;
//! let y = conv3d(&x, &w, None, &ConvParams::new([1, 2, 2], [1, 1, 1]))?;
//! assert_eq!(y.dims(), [2, 8, 4, 5, 5]);
//! let grads = y.sqr()?.sum_all()?.backward()?;
//! assert_eq!(grads.get(&w).map(|g| g.dims().to_vec()), Some(vec![8, 1, 3, 3, 3]));
//! # Ok::<(), candle::Error>(())
//! ```

mod activation;
mod attention;
mod cpu_util;
mod conv;
pub mod interp;
mod modality;
pub mod profile;
mod linear;
mod norm;
pub mod update;
mod weight_norm;

pub use activation::{gelu, leaky_relu, softmax_last_dim};
pub use attention::attention;
pub use conv::{
    ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d, set_conv_column_budget,
};
pub use modality::{Modality, PerModality};
pub use linear::linear;
pub use norm::{instance_norm, layer_norm};
pub use weight_norm::weight_norm_linear;

/// The composed implementations (candle primitives only, any device and float dtype) that the
/// public ops fall back to off the CPU kernels; exposed as test oracles.
pub mod reference {
    pub use crate::attention::attention_composed as attention;
    pub use crate::activation::{
        gelu_composed as gelu, leaky_relu_composed as leaky_relu, softmax_composed as softmax_last_dim,
    };
    pub use crate::conv::reference::{conv_transpose3d, conv3d};
    pub use crate::linear::linear_composed as linear;
    pub use crate::norm::{instance_norm_composed as instance_norm, layer_norm_composed as layer_norm};
    pub use crate::weight_norm::weight_norm_linear_composed as weight_norm_linear;
}
