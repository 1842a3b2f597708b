//! Fused, multi-threaded parameter updates for the optimiser and the EMA teacher: one pass over
//! the buffers instead of a dozen candle ops that each allocate and traverse them.
//!
//! The fused functions work on contiguous f32 CPU tensors and return `None` for anything else;
//! the caller then takes their `*_composed` twins, written with candle tensor ops, which run on
//! any device (CUDA included) and float dtype. The fused arithmetic is the composed one's, in
//! the same order and precision (f32), so both give the same values up to the rounding of the
//! squared-norm sum, which the fused pass accumulates in f64.

use candle::{CpuStorage, DType, Result, Storage, Tensor};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 16;

/// Runs `f` on the f32 slice of `t` when `t` is a contiguous f32 CPU tensor.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let (lo, hi) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Some(f(&v[lo..hi])),
        _ => None,
    }
}

/// `Σ t²` accumulated in f64, or `None` off the f32 CPU path. The per-chunk partial sums are
/// added in chunk order, so the result does not depend on how rayon split the work (a resumed
/// run must reproduce a straight one bit for bit).
pub fn sum_sq(t: &Tensor) -> Option<f64> {
    with_f32(t, |x| {
        let partial: Vec<f64> = x.par_chunks(CHUNK).map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()).collect();
        partial.iter().sum()
    })
}

/// Scalars of one AdamW update (PyTorch 1.x `torch.optim.AdamW`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    /// `1 − lr·weight_decay` (1 without decay).
    pub decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`.
    pub bias_correction1: f64,
    pub bias_correction2: f64,
    pub lr: f64,
    /// Factor applied to the gradient first (per-parameter clipping; 1 otherwise).
    pub grad_scale: f64,
}

/// One fused AdamW update: with θ' = θ·decay, g = grad·grad_scale (0 when `grad` is `None`, the
/// PyTorch<2.0 leftover zero gradient), m' = β₁m + (1−β₁)g, v' = β₂v + (1−β₂)g²,
/// θ'' = θ' − (lr/bc₁)·m' / (√v'/√bc₂ + ε). `m`, `v` `None` = zero (first step). Returns
/// (θ'', m', v'), or `None` unless every operand is a contiguous f32 CPU tensor of θ's size.
pub fn adamw(theta: &Tensor, grad: Option<&Tensor>, m: Option<&Tensor>, v: Option<&Tensor>, s: &AdamWStep) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let n = theta.elem_count();
    let sized = |t: Option<&Tensor>| t.is_none_or(|t| t.elem_count() == n);
    if !(sized(grad) && sized(m) && sized(v)) {
        return Ok(None);
    }
    let f = |x: f64| x as f32;
    let (decay, b1, b2, eps) = (f(s.decay), f(s.beta1), f(s.beta2), f(s.eps));
    let (c1, c2) = (f(1.0 - s.beta1), f(1.0 - s.beta2));
    // The composed path divides by √bc₂ as candle does, i.e. multiplies by its reciprocal.
    let (inv_sqrt_bc2, step, scale) = (f(1.0 / s.bias_correction2.sqrt()), f(s.lr / s.bias_correction1), f(s.grad_scale));
    let mut out_t = vec![0f32; n];
    let mut out_m = vec![0f32; n];
    let mut out_v = vec![0f32; n];
    let mut run = |th: &[f32], g: Option<&[f32]>, m0: Option<&[f32]>, v0: Option<&[f32]>| {
        out_t.par_chunks_mut(CHUNK).zip(out_m.par_chunks_mut(CHUNK)).zip(out_v.par_chunks_mut(CHUNK)).enumerate().for_each(
            |(i, ((ot, om), ov))| {
                let r = i * CHUNK..(i * CHUNK + ot.len());
                let th = &th[r.clone()];
                let (g, m0, v0) = (g.map(|x| &x[r.clone()]), m0.map(|x| &x[r.clone()]), v0.map(|x| &x[r]));
                for j in 0..ot.len() {
                    let t = if decay != 1.0 { th[j] * decay } else { th[j] };
                    let mp = m0.map_or(0.0, |m| m[j]) * b1;
                    let vp = v0.map_or(0.0, |v| v[j]) * b2;
                    let (mj, vj) = match g {
                        Some(g) => {
                            let gj = if scale != 1.0 { g[j] * scale } else { g[j] };
                            (mp + gj * c1, vp + gj * gj * c2)
                        }
                        None => (mp, vp),
                    };
                    let denom = vj.sqrt() * inv_sqrt_bc2 + eps;
                    ot[j] = t - mj / denom * step;
                    om[j] = mj;
                    ov[j] = vj;
                }
            },
        )
    };
    // Nested views: each operand's slice is borrowed while the pass runs.
    let done = with_f32(theta, |th| {
        let opt = |t: Option<&Tensor>, k: &mut dyn FnMut(Option<&[f32]>) -> Option<()>| match t {
            Some(t) => with_f32(t, |x| k(Some(x))).flatten(),
            None => k(None),
        };
        opt(grad, &mut |g| opt(m, &mut |m0| opt(v, &mut |v0| {
            run(th, g, m0, v0);
            Some(())
        })))
    })
    .flatten();
    if done.is_none() {
        return Ok(None);
    }
    let (shape, dev) = (theta.shape(), theta.device());
    Ok(Some((Tensor::from_vec(out_t, shape, dev)?, Tensor::from_vec(out_m, shape, dev)?, Tensor::from_vec(out_v, shape, dev)?)))
}

/// `m·a + (1 − m)·b` (the EMA teacher update) in one pass, or `None` unless both are contiguous
/// f32 CPU tensors of one size.
pub fn ema(a: &Tensor, b: &Tensor, m: f64) -> Result<Option<Tensor>> {
    if a.elem_count() != b.elem_count() {
        return Ok(None);
    }
    let (m32, c) = (m as f32, (1.0 - m) as f32);
    let mut out = vec![0f32; a.elem_count()];
    let done = with_f32(a, |x| {
        with_f32(b, |y| {
            out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(o, (x, y))| {
                for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                    *o = x * m32 + y * c;
                }
            })
        })
    })
    .flatten();
    match done {
        Some(()) => Ok(Some(Tensor::from_vec(out, a.shape(), a.device())?)),
        None => Ok(None),
    }
}

/// [`sum_sq`] composed from candle ops (any device and float dtype): `Σ t²` in f64.
pub fn sum_sq_composed(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()
}

/// [`adamw`] composed from candle ops (any device and float dtype, CUDA included): the same
/// update in the same order, (θ'', m', v'), every result detached. `m`, `v` `None` = zero.
pub fn adamw_composed(
    theta: &Tensor,
    grad: Option<&Tensor>,
    m: Option<&Tensor>,
    v: Option<&Tensor>,
    s: &AdamWStep,
) -> Result<(Tensor, Tensor, Tensor)> {
    let theta = theta.detach();
    let theta = if s.decay != 1.0 { theta.affine(s.decay, 0.0)? } else { theta };
    let state = |t: Option<&Tensor>| t.map_or_else(|| theta.zeros_like(), |t| Ok(t.detach()));
    let (m0, v0) = (state(m)?, state(v)?);
    let (m1, v1) = match grad {
        Some(g) => {
            let g = g.detach();
            let g = if s.grad_scale != 1.0 { (g * s.grad_scale)? } else { g };
            (((m0 * s.beta1)? + (&g * (1.0 - s.beta1))?)?, ((v0 * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?)
        }
        None => ((m0 * s.beta1)?, (v0 * s.beta2)?),
    };
    let denom = ((v1.sqrt()? / s.bias_correction2.sqrt())? + s.eps)?;
    let new = (theta - ((&m1 / &denom)? * (s.lr / s.bias_correction1))?)?;
    Ok((new, m1, v1))
}

/// [`ema`] composed from candle ops (any device and float dtype): `m·a + (1 − m)·b`, detached.
pub fn ema_composed(a: &Tensor, b: &Tensor, m: f64) -> Result<Tensor> {
    (a.detach() * m)? + (b.detach() * (1.0 - m))?
}
