//! Fused, multi-threaded parameter updates for the optimiser and the EMA teacher: one pass over
//! the buffers instead of a dozen candle ops that each allocate and traverse them.
//!
//! The fused functions work on contiguous f32 CPU tensors and return `None` for anything else;
//! the caller then takes their `*_composed` twins, written with candle tensor ops, which run on
//! any device (CUDA included) and float dtype. The fused arithmetic is the composed one's, in
//! the same order and precision (f32), so both give the same values up to the rounding of the
//! squared-norm sum, which the fused pass accumulates in f64.

use candle::{CpuStorage, DType, Layout, Result, Storage, Tensor};
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
/// (θ'', m', v') as new tensors (the passes of [`adamw_in_place`] on copies), or `None` unless
/// every operand is a contiguous f32 CPU tensor of θ's size.
pub fn adamw(theta: &Tensor, grad: Option<&Tensor>, m: Option<&Tensor>, v: Option<&Tensor>, s: &AdamWStep) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let n = theta.elem_count();
    let fits = |t: &Tensor| t.elem_count() == n && with_f32(t, |_| ()).is_some();
    if !(fits(theta) && grad.is_none_or(fits) && m.is_none_or(fits) && v.is_none_or(fits)) {
        return Ok(None);
    }
    let own = |t: Option<&Tensor>| t.map_or_else(|| theta.zeros_like(), Tensor::copy);
    let (t, m, v) = (theta.copy()?, own(m)?, own(v)?);
    if !adamw_in_place(&t, grad, &m, &v, s)? {
        candle::bail!("adamw: internal error, checked operands left the fused path")
    }
    Ok(Some((t, m, v)))
}

/// [`adamw`] where the buffers are: `theta`, `m` and `v` are overwritten with θ'', m', v' (the
/// same f32 arithmetic, so the same values bit for bit) and no buffer is allocated. Three passes
/// (the two moments from the gradient, then θ from both). Returns `false`, having changed
/// nothing, unless every operand is a contiguous f32 CPU tensor of θ's size; the caller then
/// takes [`adamw`] or [`adamw_composed`]. `m` and `v` must not share storage with anything that
/// expects their old values (the optimiser owns them).
pub fn adamw_in_place(theta: &Tensor, grad: Option<&Tensor>, m: &Tensor, v: &Tensor, s: &AdamWStep) -> Result<bool> {
    let n = theta.elem_count();
    let ok = |t: &Tensor| t.elem_count() == n && with_f32(t, |_| ()).is_some();
    if !(ok(theta) && ok(m) && ok(v) && grad.is_none_or(ok)) {
        return Ok(false);
    }
    let f = |x: f64| x as f32;
    let scale = f(s.grad_scale);
    for (t, beta, c, square) in [(m, f(s.beta1), f(1.0 - s.beta1), false), (v, f(s.beta2), f(1.0 - s.beta2), true)] {
        match grad {
            Some(g) => t.inplace_op2(g, &Moment { beta, c, scale, square })?,
            None => t.inplace_op1(&Moment { beta, c, scale, square })?,
        }
    }
    let step = ParamStep { decay: f(s.decay), eps: f(s.eps), inv_sqrt_bc2: f(1.0 / s.bias_correction2.sqrt()), step: f(s.lr / s.bias_correction1) };
    theta.inplace_op3(m, v, &step)?;
    Ok(true)
}

/// The contiguous f32 slice of an in-place op's destination.
fn dst_f32<'a>(op: &str, dst: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let Some((lo, hi)) = l.contiguous_offsets() else { candle::bail!("{op}: destination is not contiguous") };
    match dst {
        CpuStorage::F32(v) => Ok(&mut v[lo..hi]),
        _ => candle::bail!("{op}: destination is not f32"),
    }
}

/// The contiguous f32 slice of an in-place op's source.
fn src_f32<'a>(op: &str, src: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let Some((lo, hi)) = l.contiguous_offsets() else { candle::bail!("{op}: source is not contiguous") };
    match src {
        CpuStorage::F32(v) => Ok(&v[lo..hi]),
        _ => candle::bail!("{op}: source is not f32"),
    }
}

/// A moment in place: `m ← m·β + g·c` (`square`: `m ← m·β + g·g·c`), `g` scaled first; without
/// a gradient `m ← m·β`. [`adamw`]'s expressions, in its order.
struct Moment {
    beta: f32,
    c: f32,
    scale: f32,
    square: bool,
}

impl candle::InplaceOp1 for Moment {
    fn name(&self) -> &'static str {
        "unimiss-adamw-moment"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, l: &Layout) -> Result<()> {
        let beta = self.beta;
        dst_f32(candle::InplaceOp1::name(self), dst, l)?.par_chunks_mut(CHUNK).for_each(|d| d.iter_mut().for_each(|x| *x *= beta));
        Ok(())
    }
}

impl candle::InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "unimiss-adamw-moment"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, l: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let name = candle::InplaceOp2::name(self);
        let (g, d) = (src_f32(name, g, gl)?, dst_f32(name, dst, l)?);
        let Self { beta, c, scale, square } = *self;
        d.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(d, g)| {
            for (x, &gv) in d.iter_mut().zip(g) {
                let gj = if scale != 1.0 { gv * scale } else { gv };
                *x = if square { *x * beta + gj * gj * c } else { *x * beta + gj * c };
            }
        });
        Ok(())
    }
}

/// θ in place from the updated moments: `θ ← θ·decay − m / (√v·(1/√bc₂) + ε) · lr/bc₁`.
struct ParamStep {
    decay: f32,
    eps: f32,
    inv_sqrt_bc2: f32,
    step: f32,
}

impl candle::InplaceOp3 for ParamStep {
    fn name(&self) -> &'static str {
        "unimiss-adamw-step"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, l: &Layout, m: &CpuStorage, ml: &Layout, v: &CpuStorage, vl: &Layout) -> Result<()> {
        let name = self.name();
        let (m, v, th) = (src_f32(name, m, ml)?, src_f32(name, v, vl)?, dst_f32(name, dst, l)?);
        let Self { decay, eps, inv_sqrt_bc2, step } = *self;
        th.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(th, (m, v))| {
            for (t, (&mj, &vj)) in th.iter_mut().zip(m.iter().zip(v)) {
                let tv = if decay != 1.0 { *t * decay } else { *t };
                let denom = vj.sqrt() * inv_sqrt_bc2 + eps;
                *t = tv - mj / denom * step;
            }
        });
        Ok(())
    }
}

/// [`ema`] in place: `a ← m·a + (1 − m)·b` where `a` is, the same values; `false`, having changed
/// nothing, unless both are contiguous f32 CPU tensors of one size.
pub fn ema_in_place(a: &Tensor, b: &Tensor, m: f64) -> Result<bool> {
    let ok = |t: &Tensor| with_f32(t, |_| ()).is_some();
    if a.elem_count() != b.elem_count() || !ok(a) || !ok(b) {
        return Ok(false);
    }
    a.inplace_op2(b, &Ema { m: m as f32, c: (1.0 - m) as f32 })?;
    Ok(true)
}

struct Ema {
    m: f32,
    c: f32,
}

impl candle::InplaceOp2 for Ema {
    fn name(&self) -> &'static str {
        "unimiss-ema"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, l: &Layout, b: &CpuStorage, bl: &Layout) -> Result<()> {
        let name = candle::InplaceOp2::name(self);
        let (b, a) = (src_f32(name, b, bl)?, dst_f32(name, dst, l)?);
        let Self { m, c } = *self;
        a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x = *x * m + y * c));
        Ok(())
    }
}

/// `m·a + (1 − m)·b` (the EMA teacher update) in one pass, or `None` unless both are contiguous
/// f32 CPU tensors of one size.
pub fn ema(a: &Tensor, b: &Tensor, m: f64) -> Result<Option<Tensor>> {
    let ok = |t: &Tensor| with_f32(t, |_| ()).is_some();
    if a.elem_count() != b.elem_count() || !ok(a) || !ok(b) {
        return Ok(None);
    }
    let out = a.copy()?;
    Ok(ema_in_place(&out, b, m)?.then_some(out))
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
