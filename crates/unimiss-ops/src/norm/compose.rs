//! Normalisations composed from differentiable candle primitives (any device, any float dtype).

use candle::{D, Result, Tensor};

/// Instance normalisation of `x [N, C, spatial..]` (arguments already checked).
pub(crate) fn instance_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let flat = x.reshape((n, c, ()))?;
    let mean = flat.mean_keepdim(2)?;
    let xc = flat.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(2)?;
    let mut y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.broadcast_mul(&w.reshape((1, c, 1))?)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape((1, c, 1))?)?;
    }
    y.reshape(dims)
}

/// Layer normalisation over the last axis (arguments already checked).
pub(crate) fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(weight)?.broadcast_add(bias)
}
