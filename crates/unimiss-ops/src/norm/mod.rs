//! Normalisations: instance norm over the spatial axes, layer norm over the last axis.
//!
//! On the CPU (f32/f64) both run as one fused kernel with a fused backward; elsewhere they are
//! composed from differentiable candle primitives.

mod compose;
mod rows;

use candle::{DType, Result, Tensor, bail};
use rows::{Affine, RowNorm, row_norm};

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Instance normalisation (PyTorch `InstanceNorm{1,2,3}d`, no running statistics): each
/// (sample, channel) is normalised over its spatial positions with the biased variance, then
/// scaled by `weight [C]` and shifted by `bias [C]` when given.
///
/// `x` is `[N, C, spatial..]` with at least one spatial axis.
pub fn instance_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    check_instance_norm(x, weight, bias)?;
    if !fused(x) || weight.is_some_and(|w| w.dtype() != x.dtype()) || bias.is_some_and(|b| b.dtype() != x.dtype()) {
        return compose::instance_norm(x, weight, bias, eps);
    }
    let dims = x.dims();
    let c = dims[1];
    let ones;
    let zeros;
    let w = match weight {
        Some(w) => w,
        None => {
            ones = Tensor::ones(c, x.dtype(), x.device())?;
            &ones
        }
    };
    let b = match bias {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(c, x.dtype(), x.device())?;
            &zeros
        }
    };
    let len = dims[2..].iter().product();
    row_norm(x, w, b, RowNorm { len, eps, affine: Affine::PerRow { channels: c } })
}

/// Layer normalisation over the last axis (PyTorch `LayerNorm(dim)`): biased variance,
/// `weight [dim]`, `bias [dim]`. Gradients reach `x`, `weight` and `bias` (unlike
/// `candle_nn::LayerNorm` on contiguous input).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let last = check_layer_norm(x, weight, bias)?;
    if !fused(x) || weight.dtype() != x.dtype() || bias.dtype() != x.dtype() {
        return compose::layer_norm(x, weight, bias, eps);
    }
    row_norm(x, weight, bias, RowNorm { len: last, eps, affine: Affine::PerColumn })
}

/// [`layer_norm`] composed from candle primitives.
pub fn layer_norm_composed(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    check_layer_norm(x, weight, bias)?;
    compose::layer_norm(x, weight, bias, eps)
}

/// [`instance_norm`] composed from candle primitives.
pub fn instance_norm_composed(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    check_instance_norm(x, weight, bias)?;
    compose::instance_norm(x, weight, bias, eps)
}

fn check_instance_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<()> {
    let dims = x.dims();
    if dims.len() < 3 || dims.contains(&0) {
        bail!("instance_norm: input must be a non-empty [N,C,spatial..] (rank >= 3), got shape {dims:?}")
    }
    let c = dims[1];
    for (name, t) in [("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            if t.dims() != [c] {
                bail!("instance_norm: {name} must have shape [{c}], got {:?} (input {dims:?})", t.dims())
            }
        }
    }
    Ok(())
}

/// Checks the layer-norm operands and returns the normalised length.
fn check_layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<usize> {
    let dims = x.dims();
    let Some(&last) = dims.last() else {
        bail!("layer_norm: input must have rank >= 1, got a scalar")
    };
    if weight.dims() != [last] || bias.dims() != [last] || last == 0 {
        bail!(
            "layer_norm: weight {:?} and bias {:?} must have shape [{last}] (input {dims:?})",
            weight.dims(),
            bias.dims()
        )
    }
    Ok(last)
}
