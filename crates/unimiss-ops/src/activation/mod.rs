//! Softmax over the last axis, LeakyReLU and exact GELU, all differentiable.
//!
//! On the CPU (f32/f64) both run as fused kernels with fused backward passes; elsewhere they are
//! composed from differentiable candle primitives.

pub(crate) mod cpu;
mod gelu;

use candle::{D, DType, Result, Tensor, bail};

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Softmax over the last axis, with gradients (unlike `candle_nn::ops::softmax_last_dim`).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let Some(&len) = x.dims().last() else {
        bail!("softmax_last_dim: input must have rank >= 1, got a scalar")
    };
    if len == 0 {
        bail!("softmax_last_dim: last axis is empty (shape {:?})", x.dims())
    }
    if fused(x) {
        return x.contiguous()?.apply_op1(cpu::Softmax { len });
    }
    softmax_composed(x)
}

/// [`softmax_last_dim`] composed from candle primitives.
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 {
        bail!("softmax_last_dim: input must have rank >= 1, got a scalar")
    }
    // The shift does not change the result, so it needs no gradient.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// LeakyReLU (PyTorch `LeakyReLU`): `x` where `x > 0`, else `negative_slope * x`. The gradient
/// is 1 where `x > 0` and `negative_slope` where `x <= 0` (PyTorch's `leaky_relu_backward`, so
/// `negative_slope` at exactly 0), on the CPU kernel and the composition alike.
pub fn leaky_relu(x: &Tensor, negative_slope: f64) -> Result<Tensor> {
    if fused(x) {
        return x.contiguous()?.apply_op1(cpu::LeakyRelu { slope: negative_slope });
    }
    leaky_relu_composed(x, negative_slope)
}

/// [`leaky_relu`] composed from candle primitives: a select on `x > 0`, whose backward routes
/// the gradient to the `x` branch only where `x > 0`, giving `negative_slope` at exactly 0 like
/// the kernel and PyTorch.
pub fn leaky_relu_composed(x: &Tensor, negative_slope: f64) -> Result<Tensor> {
    x.gt(&x.zeros_like()?)?.where_cond(x, &x.affine(negative_slope, 0.0)?)
}

/// Exact GELU, `x Φ(x)` (PyTorch `nn.GELU()`, `approximate='none'`), with gradients. On the CPU a
/// fused multi-threaded kernel (f32: erf to within 5e-7, the approximation PyTorch's CPU kernel
/// uses); elsewhere [`gelu_composed`].
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        return x.contiguous()?.apply_op1(gelu::Gelu);
    }
    gelu_composed(x)
}

/// [`gelu`] composed from candle primitives (any device and float dtype): `x · ½(1 + erf(x/√2))`.
/// Not candle's `gelu_erf`: its forward is the same, but its backward takes 0.398942 for
/// 1/√(2π) (gradients off by up to 7e-7 relative); `erf`'s backward is exact.
pub fn gelu_composed(x: &Tensor) -> Result<Tensor> {
    x * x.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()?.affine(0.5, 0.5)?
}
