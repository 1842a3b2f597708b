//! Fused CPU row normalisation with backward: each row of `len` values is normalised by its own
//! mean and biased variance, then scaled and shifted by an affine that is either per column
//! (layer norm) or per row, cycling over `channels` (instance norm over `[N, C, spatial]`).

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::cpu_util::{float_dtype, slice};

/// Where the affine parameters vary.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Affine {
    /// One weight per column: layer norm over the last axis.
    PerColumn,
    /// One weight per row, row `r` using channel `r % channels`: instance norm.
    PerRow { channels: usize },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RowNorm {
    pub len: usize,
    pub eps: f64,
    pub affine: Affine,
}

/// Rows per rayon task, so that each task touches at least ~16K values.
fn rows_per_task(len: usize) -> usize {
    (16384 / len.max(1)).max(1)
}

/// Mean and 1/sqrt(var + eps) of a row, accumulated in f64.
fn stats<T: WithDType>(row: &[T], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = row.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl RowNorm {
    /// `(weight, bias)` index of row `r`, column `j`.
    fn param(&self, r: usize, j: usize) -> usize {
        match self.affine {
            Affine::PerColumn => j,
            Affine::PerRow { channels } => r % channels,
        }
    }

    fn n_params(&self) -> usize {
        match self.affine {
            Affine::PerColumn => self.len,
            Affine::PerRow { channels } => channels,
        }
    }

    /// The affine weights of row `r`, one per column: `w` itself per column, or `buf` filled
    /// with the row's channel weight.
    fn row_weights<'a, T: WithDType>(&self, r: usize, w: &'a [T], buf: &'a mut Vec<T>) -> &'a [T] {
        match self.affine {
            Affine::PerColumn => w,
            Affine::PerRow { channels } => {
                buf.clear();
                buf.resize(self.len, w[r % channels]);
                buf
            }
        }
    }

    fn forward<T: WithDType>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let mut y = vec![T::from_f64(0.0); x.len()];
        let per = rows_per_task(self.len);
        let block = per * self.len;
        y.par_chunks_mut(block).zip(x.par_chunks(block)).enumerate().for_each(|(t, (yb, xb))| {
            for (i, (yr, xr)) in yb.chunks_mut(self.len).zip(xb.chunks(self.len)).enumerate() {
                let r = t * per + i;
                let (mean, rstd) = stats(xr, self.eps);
                let (m, s) = (T::from_f64(mean), T::from_f64(rstd));
                match self.affine {
                    Affine::PerColumn => {
                        for ((yv, &xv), (&wv, &bv)) in yr.iter_mut().zip(xr).zip(w.iter().zip(b)) {
                            *yv = (xv - m) * s * wv + bv;
                        }
                    }
                    Affine::PerRow { channels } => {
                        let scale = s * w[r % channels];
                        let shift = b[r % channels] - m * scale;
                        for (yv, &xv) in yr.iter_mut().zip(xr) {
                            *yv = xv * scale + shift;
                        }
                    }
                }
            }
        });
        y
    }

    /// `gx = rstd * (g - mean(g) - xhat * mean(g * xhat))` with `g = gy * w`.
    fn grad_input<T: WithDType>(&self, x: &[T], w: &[T], gy: &[T]) -> Vec<T> {
        let mut gx = vec![T::from_f64(0.0); x.len()];
        let per = rows_per_task(self.len);
        let block = per * self.len;
        let n = self.len as f64;
        gx.par_chunks_mut(block).zip(x.par_chunks(block).zip(gy.par_chunks(block))).enumerate().for_each(
            |(t, (gb, (xb, gyb)))| {
                let mut buf = Vec::new();
                let rows = gb.chunks_mut(self.len).zip(xb.chunks(self.len).zip(gyb.chunks(self.len)));
                for (i, (gr, (xr, gyr))) in rows.enumerate() {
                    let wr = self.row_weights(t * per + i, w, &mut buf);
                    let (mean, rstd) = stats(xr, self.eps);
                    let (mut sg, mut sgx) = (0.0, 0.0);
                    for ((xv, gv), wv) in xr.iter().zip(gyr).zip(wr) {
                        let g = gv.to_f64() * wv.to_f64();
                        sg += g;
                        sgx += g * (xv.to_f64() - mean);
                    }
                    let (m, s) = (T::from_f64(mean), T::from_f64(rstd));
                    let mg = T::from_f64(sg / n);
                    let mgx = T::from_f64(sgx * rstd / n);
                    for ((o, (&xv, &gv)), &wv) in gr.iter_mut().zip(xr.iter().zip(gyr)).zip(wr) {
                        let xhat = (xv - m) * s;
                        *o = s * (gv * wv - mg - xhat * mgx);
                    }
                }
            },
        );
        gx
    }

    /// `[2, n_params]`: row 0 `sum(gy * xhat)`, row 1 `sum(gy)`, per parameter.
    fn grad_params<T: WithDType>(&self, x: &[T], gy: &[T]) -> Vec<T> {
        let np = self.n_params();
        let per = rows_per_task(self.len);
        let block = per * self.len;
        let sums = x
            .par_chunks(block)
            .zip(gy.par_chunks(block))
            .enumerate()
            .fold(
                || vec![0.0f64; 2 * np],
                |mut acc, (t, (xb, gyb))| {
                    for (i, (xr, gyr)) in xb.chunks(self.len).zip(gyb.chunks(self.len)).enumerate() {
                        let r = t * per + i;
                        let (mean, rstd) = stats(xr, self.eps);
                        for (j, (xv, gv)) in xr.iter().zip(gyr).enumerate() {
                            let p = self.param(r, j);
                            acc[p] += gv.to_f64() * (xv.to_f64() - mean) * rstd;
                            acc[np + p] += gv.to_f64();
                        }
                    }
                    acc
                },
            )
            .reduce(
                || vec![0.0f64; 2 * np],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        sums.into_iter().map(T::from_f64).collect()
    }
}

/// The three-operand kernels: the normalisation `(x, w, b) -> y` and its input gradient
/// `(x, w, gy) -> gx`.
#[derive(Clone, Copy)]
struct Norm3 {
    norm: RowNorm,
    grad: bool,
}

/// `(x, gy) -> [2, n_params]`.
#[derive(Clone, Copy)]
struct GradParams(RowNorm);

impl Norm3 {
    fn run<T: WithDType>(&self, s: [(&CpuStorage, &Layout); 3]) -> Result<Vec<T>> {
        let op = self.name();
        let (a, w, c) = (slice(op, s[0].0, s[0].1)?, slice(op, s[1].0, s[1].1)?, slice(op, s[2].0, s[2].1)?);
        Ok(if self.grad { self.norm.grad_input(a, w, c) } else { self.norm.forward(a, w, c) })
    }
}

impl CustomOp3 for Norm3 {
    fn name(&self) -> &'static str {
        if self.grad { "unimiss-row-norm-grad-input" } else { "unimiss-row-norm" }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = [(s1, l1), (s2, l2), (s3, l3)];
        let out = match float_dtype(self.name(), &[s1.dtype(), s2.dtype(), s3.dtype()])? {
            DType::F32 => CpuStorage::F32(self.run(s)?),
            _ => CpuStorage::F64(self.run(s)?),
        };
        Ok((out, l1.shape().clone()))
    }

    /// Only the normalisation has a backward here; the input-gradient kernel is reached only
    /// when differentiating a gradient, which candle does not do (it detaches gradients).
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.grad {
            return Err(candle::Error::BackwardNotSupported { op: self.name() });
        }
        let gy = gy.contiguous()?;
        let grad_op = Norm3 { norm: self.norm, grad: true };
        let gx = x.track_op().then(|| x.apply_op3(w, &gy, grad_op)).transpose()?;
        let (gw, gb) = if w.track_op() || b.track_op() {
            let gp = x.apply_op2(&gy, GradParams(self.norm))?;
            (w.track_op().then(|| gp.get(0)).transpose()?, b.track_op().then(|| gp.get(1)).transpose()?)
        } else {
            (None, None)
        };
        Ok((gx, gw, gb))
    }
}

impl CustomOp2 for GradParams {
    fn name(&self) -> &'static str {
        "unimiss-row-norm-grad-params"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let out = match float_dtype(name, &[s1.dtype(), s2.dtype()])? {
            DType::F32 => CpuStorage::F32(self.0.grad_params(slice::<f32>(name, s1, l1)?, slice::<f32>(name, s2, l2)?)),
            _ => CpuStorage::F64(self.0.grad_params(slice::<f64>(name, s1, l1)?, slice::<f64>(name, s2, l2)?)),
        };
        Ok((out, (2, self.0.n_params()).into()))
    }
}

/// Applies the fused normalisation to contiguous copies of `x`, `w`, `b`.
pub(crate) fn row_norm(x: &Tensor, w: &Tensor, b: &Tensor, norm: RowNorm) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Norm3 { norm, grad: false })
}
