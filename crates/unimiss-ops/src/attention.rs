//! Multi-head attention `softmax(q kᵀ · scale) v` as ONE autograd node.
//!
//! Composed from candle ops (reshape, transpose, contiguous copies, narrow of keys and values,
//! two batched matmuls, scale, softmax, transpose back) one attention is a dozen graph nodes,
//! and their backward is mostly copies and zero-filled buffers: the narrows of `k` and `v` out of
//! `kv` each backpropagate as a zero-padded concatenation. Here the heads are read in place from
//! the projections' layout (`q [B, Nq, C]`, head `h` in columns `h·d ..`; `kv [B, Nk, 2C]`,
//! keys then values, as the official `kv(x).reshape(B, N, 2, heads, d)`), the scores live only
//! for a block of query rows, and the backward recomputes them instead of keeping them:
//! `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ = scale · dS K`,
//! `dK = scale · dSᵀ Q`.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::activation::cpu::{lane_sum, softmax_in_place};
use crate::cpu_util::{Dst, Elem, Float, Mat, float_dtype, gemm_scaled, slice};

/// `q [B, Nq, C]`, `kv [B, Nk, 2C]` → `[B, Nq, C]`: per head `h` of `d = C / heads` channels,
/// `softmax(q_h k_hᵀ · scale) v_h`, heads side by side in the output's channels (the official
/// `(attn @ v).transpose(1, 2).reshape(B, N, C)`). On the CPU in f32/f64 one custom op with a
/// fused backward; elsewhere [`attention_composed`].
pub fn attention(q: &Tensor, kv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let shape = check(q, kv, heads)?;
    let fused = q.device().is_cpu()
        && kv.device().is_cpu()
        && matches!(q.dtype(), DType::F32 | DType::F64)
        && kv.dtype() == q.dtype();
    if !fused {
        return attention_composed(q, kv, heads, scale);
    }
    let op = Attention { shape, scale };
    let (q, kv) = (q.contiguous()?, kv.contiguous()?);
    q.apply_op2(&kv, op)
}

/// [`attention`] composed from candle primitives (any device and float dtype; the softmax in f32
/// for other dtypes, as the mixed-precision backbone keeps it).
pub fn attention_composed(q: &Tensor, kv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let Shape3 { b, nq, nk, c, h, d } = check(q, kv, heads)?;
    let q = q.reshape((b, nq, h, d))?.transpose(1, 2)?.contiguous()?;
    let kv = kv.reshape((b, nk, 2, h, d))?;
    let k = kv.narrow(2, 0, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
    let v = kv.narrow(2, 1, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
    let scores = (q.matmul(&k.t()?)? * scale)?;
    let p = match scores.dtype() {
        DType::F32 | DType::F64 => crate::activation::softmax_composed(&scores)?,
        dt => crate::activation::softmax_composed(&scores.to_dtype(DType::F32)?)?.to_dtype(dt)?,
    };
    p.matmul(&v)?.transpose(1, 2)?.reshape((b, nq, c))
}

#[derive(Clone, Copy, Debug)]
struct Shape3 {
    b: usize,
    nq: usize,
    nk: usize,
    c: usize,
    h: usize,
    d: usize,
}

fn check(q: &Tensor, kv: &Tensor, heads: usize) -> Result<Shape3> {
    let Ok((b, nq, c)) = q.dims3() else { bail!("attention: queries must be [B, Nq, C], got {:?}", q.dims()) };
    let Ok((bk, nk, c2)) = kv.dims3() else { bail!("attention: keys/values must be [B, Nk, 2C], got {:?}", kv.dims()) };
    if bk != b || c2 != 2 * c {
        bail!("attention: keys/values {:?} do not match queries {:?} (expected [{b}, Nk, {}])", kv.dims(), q.dims(), 2 * c)
    }
    if heads == 0 || c % heads != 0 {
        bail!("attention: {c} channels do not split into {heads} heads")
    }
    if nk == 0 {
        bail!("attention: no keys (keys/values {:?})", kv.dims())
    }
    Ok(Shape3 { b, nq, nk, c, h: heads, d: c / heads })
}

#[derive(Clone, Debug)]
struct Attention {
    shape: Shape3,
    scale: f64,
}

/// Query rows per block: the block's scores (rows × Nk) stay near 64 KB.
fn rows_per_block(nk: usize) -> usize {
    (16384 / nk.max(1)).clamp(8, 256)
}

impl Attention {
    /// Views of head `h` of batch `b`: queries (row stride C), keys and values (row stride 2C).
    fn heads<'a, T>(&self, q: &'a [T], kv: &'a [T], b: usize, h: usize) -> (&'a [T], &'a [T], &'a [T]) {
        let Shape3 { nq, nk, c, d, .. } = self.shape;
        let qb = &q[b * nq * c + h * d..(b + 1) * nq * c];
        let kb = &kv[b * nk * 2 * c + h * d..(b + 1) * nk * 2 * c];
        let vb = &kv[b * nk * 2 * c + c + h * d..(b + 1) * nk * 2 * c];
        (qb, kb, vb)
    }

    /// Scores of query rows `r0 .. r0 + rows` of one head into `s [rows × Nk]`, softmax-ed.
    fn probs<T: Elem + Float>(&self, s: &mut [T], qb: &[T], kb: &[T], r0: usize, rows: usize) -> Result<()> {
        let Shape3 { nk, c, d, .. } = self.shape;
        let q_blk = Mat { data: &qb[r0 * c..], rs: c, cs: 1 };
        let k_t = Mat { data: kb, rs: 1, cs: 2 * c };
        gemm_scaled(rows, nk, d, Dst { data: s, rs: nk }, false, T::from_f64(self.scale), q_blk, k_t, false)?;
        s.chunks_mut(nk).for_each(softmax_in_place);
        Ok(())
    }

    fn forward<T: Elem + Float>(&self, q: &[T], kv: &[T]) -> Result<Vec<T>> {
        let Shape3 { b, nq, nk, c, h, d } = self.shape;
        let mut out = vec![T::ZERO; b * nq * c];
        let block = rows_per_block(nk);
        // One task per (sample, block of query rows): its output rows are its own.
        let tasks: Vec<(usize, usize, &mut [T])> = out
            .chunks_mut(nq * c)
            .enumerate()
            .flat_map(|(bi, ob)| ob.chunks_mut(block * c).enumerate().map(move |(i, blk)| (bi, i * block, blk)))
            .collect();
        tasks.into_par_iter().try_for_each(|(bi, r0, o)| -> Result<()> {
            let rows = o.len() / c;
            let mut s = vec![T::ZERO; rows * nk];
            for hi in 0..h {
                let (qb, kb, vb) = self.heads(q, kv, bi, hi);
                self.probs(&mut s, qb, kb, r0, rows)?;
                let dst = Dst { data: &mut o[hi * d..], rs: c };
                gemm_scaled(rows, d, nk, dst, false, T::ONE, Mat { data: &s, rs: nk, cs: 1 }, Mat { data: vb, rs: 2 * c, cs: 1 }, false)?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// `[dq (B·Nq·C) | dkv (B·Nk·2C)]` from the upstream gradient `gy [B, Nq, C]`.
    fn backward<T: Elem + Float>(&self, q: &[T], kv: &[T], gy: &[T]) -> Result<Vec<T>> {
        let Shape3 { b, nq, nk, c, h, d } = self.shape;
        let block = rows_per_block(nk);
        let scale = T::from_f64(self.scale);
        // One task per (batch, head): its dQ columns and dK/dV rows are its own.
        let parts: Vec<(Vec<T>, Vec<T>, Vec<T>)> = (0..b * h)
            .into_par_iter()
            .map(|task| -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
                let (bi, hi) = (task / h, task % h);
                let (qb, kb, vb) = self.heads(q, kv, bi, hi);
                let gb = &gy[bi * nq * c + hi * d..(bi + 1) * nq * c];
                let (mut dq, mut dk, mut dv) = (vec![T::ZERO; nq * d], vec![T::ZERO; nk * d], vec![T::ZERO; nk * d]);
                let mut p = vec![T::ZERO; block * nk];
                let mut dp = vec![T::ZERO; block * nk];
                for r0 in (0..nq).step_by(block) {
                    let rows = block.min(nq - r0);
                    let (p, dp) = (&mut p[..rows * nk], &mut dp[..rows * nk]);
                    self.probs(p, qb, kb, r0, rows)?;
                    let g_blk = || Mat { data: &gb[r0 * c..], rs: c, cs: 1 };
                    // dV += Pᵀ dO.
                    let p_t = Mat { data: &p[..], rs: 1, cs: nk };
                    gemm_scaled(nk, d, rows, Dst { data: &mut dv, rs: d }, true, T::ONE, p_t, g_blk(), false)?;
                    // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)), in place.
                    let v_t = Mat { data: vb, rs: 1, cs: 2 * c };
                    gemm_scaled(rows, nk, d, Dst { data: &mut dp[..], rs: nk }, false, T::ONE, g_blk(), v_t, false)?;
                    for (ds, pr) in dp.chunks_mut(nk).zip(p.chunks(nk)) {
                        let dot = T::from_f64(lane_sum(ds.iter().zip(pr).map(|(a, b)| a.to_f64() * b.to_f64())));
                        ds.iter_mut().zip(pr).for_each(|(g, &pv)| *g = pv * (*g - dot));
                    }
                    let ds = Mat { data: &dp[..], rs: nk, cs: 1 };
                    // dQ = scale · dS K; dK += scale · dSᵀ Q.
                    let dq_blk = Dst { data: &mut dq[r0 * d..], rs: d };
                    gemm_scaled(rows, d, nk, dq_blk, false, scale, ds, Mat { data: kb, rs: 2 * c, cs: 1 }, false)?;
                    let ds_t = Mat { data: &dp[..], rs: 1, cs: nk };
                    let q_blk = Mat { data: &qb[r0 * c..], rs: c, cs: 1 };
                    gemm_scaled(nk, d, rows, Dst { data: &mut dk, rs: d }, true, scale, ds_t, q_blk, false)?;
                }
                Ok((dq, dk, dv))
            })
            .collect::<Result<_>>()?;
        let mut grads = vec![T::ZERO; b * nq * c + b * nk * 2 * c];
        let (gq, gkv) = grads.split_at_mut(b * nq * c);
        for (task, (dq, dk, dv)) in parts.iter().enumerate() {
            let (bi, hi) = (task / h, task % h);
            for (row, src) in dq.chunks(d).enumerate() {
                let at = (bi * nq + row) * c + hi * d;
                gq[at..at + d].copy_from_slice(src);
            }
            for (row, (k, v)) in dk.chunks(d).zip(dv.chunks(d)).enumerate() {
                let at = (bi * nk + row) * 2 * c + hi * d;
                gkv[at..at + d].copy_from_slice(k);
                gkv[at + c..at + c + d].copy_from_slice(v);
            }
        }
        Ok(grads)
    }
}

/// The gradients of one [`Attention`]: operands `(q, kv, gy)`, output `[dq | dkv]` flat.
#[derive(Clone, Debug)]
struct AttentionGrad(Attention);

fn run<F32, F64>(name: &str, dtypes: &[DType], f32: F32, f64: F64) -> Result<CpuStorage>
where
    F32: FnOnce() -> Result<Vec<f32>>,
    F64: FnOnce() -> Result<Vec<f64>>,
{
    Ok(match float_dtype(name, dtypes)? {
        DType::F32 => CpuStorage::F32(f32()?),
        _ => CpuStorage::F64(f64()?),
    })
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "unimiss-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = CustomOp2::name(self);
        let out = run(
            n,
            &[s1.dtype(), s2.dtype()],
            || self.forward(slice::<f32>(n, s1, l1)?, slice::<f32>(n, s2, l2)?),
            || self.forward(slice::<f64>(n, s1, l1)?, slice::<f64>(n, s2, l2)?),
        )?;
        let Shape3 { b, nq, c, .. } = self.shape;
        Ok((out, Shape::from((b, nq, c))))
    }

    fn bwd(&self, q: &Tensor, kv: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        crate::profile::time("attention bwd", || {
            let flat = q.detach().apply_op3_no_bwd(&kv.detach(), &gy.detach().contiguous()?, &AttentionGrad(self.clone()))?;
            let Shape3 { b, nq, nk, c, .. } = self.shape;
            let dq = flat.narrow(0, 0, b * nq * c)?.reshape(q.shape())?;
            let dkv = flat.narrow(0, b * nq * c, b * nk * 2 * c)?.reshape(kv.shape())?;
            Ok((Some(dq), Some(dkv)))
        })
    }
}

impl CustomOp3 for AttentionGrad {
    fn name(&self) -> &'static str {
        "unimiss-attention-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = CustomOp3::name(self);
        let a = &self.0;
        let out = run(
            n,
            &[s1.dtype(), s2.dtype(), s3.dtype()],
            || a.backward(slice::<f32>(n, s1, l1)?, slice::<f32>(n, s2, l2)?, slice::<f32>(n, s3, l3)?),
            || a.backward(slice::<f64>(n, s1, l1)?, slice::<f64>(n, s2, l2)?, slice::<f64>(n, s3, l3)?),
        )?;
        let Shape3 { b, nq, nk, c, .. } = a.shape;
        Ok((out, Shape::from(b * nq * c + b * nk * 2 * c)))
    }
}
