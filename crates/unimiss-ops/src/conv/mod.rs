//! Convolutions and transposed convolutions in 2D and 3D with PyTorch semantics.
//!
//! A 2D convolution is a 3D convolution with depth 1: every entry point lifts its arguments to
//! the 3D form, so one engine serves both.

mod compose;
mod cpu;
mod geom;
mod op;

use candle::{DType, Result, Tensor};

pub(crate) use geom::ConvGeom;
use geom::{conv_geom, conv_transpose_geom};

/// Stride, padding and dilation of an `N`-dimensional convolution (PyTorch `Conv{N}d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams<const N: usize> {
    pub stride: [usize; N],
    pub padding: [usize; N],
    pub dilation: [usize; N],
}

impl<const N: usize> ConvParams<N> {
    /// Stride and zero padding per axis, dilation 1.
    pub fn new(stride: [usize; N], padding: [usize; N]) -> Self {
        Self { stride, padding, dilation: [1; N] }
    }

    /// The same parameters with a dilation per axis.
    pub fn with_dilation(mut self, dilation: [usize; N]) -> Self {
        self.dilation = dilation;
        self
    }
}

/// Stride, padding, output padding and dilation of an `N`-dimensional transposed convolution
/// (PyTorch `ConvTranspose{N}d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTransposeParams<const N: usize> {
    pub stride: [usize; N],
    pub padding: [usize; N],
    pub output_padding: [usize; N],
    pub dilation: [usize; N],
}

impl<const N: usize> ConvTransposeParams<N> {
    /// Stride per axis; no padding, no output padding, dilation 1.
    pub fn new(stride: [usize; N]) -> Self {
        Self { stride, padding: [0; N], output_padding: [0; N], dilation: [1; N] }
    }

    /// The same parameters with padding and output padding per axis.
    pub fn with_padding(mut self, padding: [usize; N], output_padding: [usize; N]) -> Self {
        self.padding = padding;
        self.output_padding = output_padding;
        self
    }

    /// The same parameters with a dilation per axis.
    pub fn with_dilation(mut self, dilation: [usize; N]) -> Self {
        self.dilation = dilation;
        self
    }
}

/// 2D convolution: `x [N, C, H, W]`, `w [O, C, kh, kw]`, optional `bias [O]` -> `[N, O, H', W']`.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvParams<2>) -> Result<Tensor> {
    let g = conv_geom("conv2d", x, w, bias, p)?;
    conv_any(&x.unsqueeze(2)?, &w.unsqueeze(2)?, bias, &g)?.squeeze(2)
}

/// 3D convolution: `x [N, C, D, H, W]`, `w [O, C, kd, kh, kw]`, optional `bias [O]`
/// -> `[N, O, D', H', W']`, with `D' = (D + 2p - d(k-1) - 1) / s + 1` per axis (PyTorch).
pub fn conv3d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvParams<3>) -> Result<Tensor> {
    let g = conv_geom("conv3d", x, w, bias, p)?;
    conv_any(x, w, bias, &g)
}

/// 2D transposed convolution: `x [N, C, H, W]`, `w [C, O, kh, kw]`, optional `bias [O]`
/// -> `[N, O, H', W']` with `H' = (H-1)s - 2p + d(k-1) + output_padding + 1`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTransposeParams<2>,
) -> Result<Tensor> {
    let g = conv_transpose_geom("conv_transpose2d", x, w, bias, p)?;
    conv_transpose_any(&x.unsqueeze(2)?, &w.unsqueeze(2)?, bias, &g)?.squeeze(2)
}

/// 3D transposed convolution: `x [N, C, D, H, W]`, `w [C, O, kd, kh, kw]`, optional `bias [O]`
/// -> `[N, O, D', H', W']` with `D' = (D-1)s - 2p + d(k-1) + output_padding + 1` per axis.
pub fn conv_transpose3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTransposeParams<3>,
) -> Result<Tensor> {
    let g = conv_transpose_geom("conv_transpose3d", x, w, bias, p)?;
    conv_transpose_any(x, w, bias, &g)
}

/// Sets the element budget of the CPU convolution's column buffer (default `1 << 24`, 64 MiB
/// in f32). The buffer holds `C * taps` rows for as many output rows as fit; results do not
/// depend on the budget, only memory and speed do.
pub fn set_conv_column_budget(elements: usize) {
    cpu::set_column_budget(elements);
}

/// Whether the CPU engine handles these operands (CPU device, f32 or f64, one dtype).
fn on_cpu_engine(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == w.dtype() && matches!(x.dtype(), DType::F32 | DType::F64)
}

fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1, 1))?),
        None => Ok(y),
    }
}

/// The composed (device-generic) implementations, used on CUDA and for dtypes the CPU kernels do
/// not take; public as test oracles.
pub mod reference {
    use super::*;

    /// [`conv3d`](super::conv3d) composed from candle primitives (gather + matmul).
    pub fn conv3d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvParams<3>) -> Result<Tensor> {
        compose::conv(x, w, bias, &conv_geom("conv3d", x, w, bias, p)?)
    }

    /// [`conv_transpose3d`](super::conv_transpose3d) composed from candle primitives.
    pub fn conv_transpose3d(
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: &ConvTransposeParams<3>,
    ) -> Result<Tensor> {
        compose::conv_transpose(x, w, bias, &conv_transpose_geom("conv_transpose3d", x, w, bias, p)?)
    }
}

/// Forward convolution in 3D form on whichever engine fits the operands.
fn conv_any(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom) -> Result<Tensor> {
    if on_cpu_engine(x, w) {
        add_bias(op::conv(x, w, g)?, bias)
    } else {
        compose::conv(x, w, bias, g)
    }
}

/// Transposed convolution in 3D form on whichever engine fits the operands.
fn conv_transpose_any(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom) -> Result<Tensor> {
    if on_cpu_engine(x, w) {
        add_bias(op::conv_transpose(x, w, g)?, bias)
    } else {
        compose::conv_transpose(x, w, bias, g)
    }
}
