//! Fused CPU row normalisation with backward: each row of `len` values is normalised by its own
//! mean and biased variance, then scaled and shifted by an affine that is either per column
//! (layer norm) or per row, cycling over `channels` (instance norm over `[N, C, spatial]`).

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
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

/// Mean and 1/sqrt(var + eps) of a row: one pass, f64 sums in four independent lanes.
fn stats<T: WithDType>(row: &[T], eps: f64) -> (f64, f64) {
    let (sx, sxx, _, _) = row_sums(row, row);
    let n = row.len() as f64;
    let mean = sx / n;
    (mean, 1.0 / ((sxx / n - mean * mean).max(0.0) + eps).sqrt())
}

impl RowNorm {
    fn n_params(&self) -> usize {
        match self.affine {
            Affine::PerColumn => self.len,
            Affine::PerRow { channels } => channels,
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

    /// One fused backward pass: `[gx (x.len() values), sum(gy * xhat) per parameter, sum(gy)
    /// per parameter]`, with `gx = rstd * (g - mean(g) - xhat * mean(g * xhat))`, `g = gy * w`.
    /// Each row is read twice (sums, then output); statistics and sums are in f64.
    fn backward<T: WithDType>(&self, x: &[T], w: &[T], gy: &[T]) -> Vec<T> {
        let np = self.n_params();
        let mut out = vec![T::from_f64(0.0); x.len() + 2 * np];
        let (gx, tail) = out.split_at_mut(x.len());
        let per = rows_per_task(self.len);
        let block = per * self.len;
        let n = self.len as f64;
        let sums = gx
            .par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(gy.par_chunks(block)))
            .enumerate()
            .map(|(t, (gb, (xb, gyb)))| {
                let mut acc = vec![0.0f64; 2 * np];
                let rows = gb.chunks_mut(self.len).zip(xb.chunks(self.len).zip(gyb.chunks(self.len)));
                for (i, (gr, (xr, gyr))) in rows.enumerate() {
                    let r = t * per + i;
                    match self.affine {
                        Affine::PerRow { channels } => {
                            let p = r % channels;
                            let (sx, sxx, sgy, sgyx) = row_sums(xr, gyr);
                            let mean = sx / n;
                            let rstd = 1.0 / ((sxx / n - mean * mean).max(0.0) + self.eps).sqrt();
                            let wv = w[p].to_f64();
                            // sum(gy * xhat) = rstd * (sum(gy x) - mean sum(gy)).
                            let sgy_xhat = rstd * (sgyx - mean * sgy);
                            acc[p] += sgy_xhat;
                            acc[np + p] += sgy;
                            let scale = T::from_f64(rstd * wv);
                            let mg = T::from_f64(rstd * wv * sgy / n);
                            let k = T::from_f64(rstd * rstd * wv * sgy_xhat / n);
                            let m = T::from_f64(mean);
                            // gx = rstd w gy - rstd w mean(gy) - rstd^2 (x - mean) w sum(gy xhat)/n.
                            for (o, (&xv, &gv)) in gr.iter_mut().zip(xr.iter().zip(gyr)) {
                                *o = scale * gv - mg - (xv - m) * k;
                            }
                        }
                        Affine::PerColumn => {
                            let (mut sx, mut sxx, mut sg, mut sgx) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                            for ((xv, gv), wv) in xr.iter().zip(gyr).zip(w) {
                                let (xv, g) = (xv.to_f64(), gv.to_f64() * wv.to_f64());
                                sx += xv;
                                sxx += xv * xv;
                                sg += g;
                                sgx += g * xv;
                            }
                            let mean = sx / n;
                            let rstd = 1.0 / ((sxx / n - mean * mean).max(0.0) + self.eps).sqrt();
                            let sg_xhat = rstd * (sgx - mean * sg);
                            let (m, s) = (T::from_f64(mean), T::from_f64(rstd));
                            let mg = T::from_f64(sg / n);
                            let mgx = T::from_f64(sg_xhat / n);
                            let (dw, db) = acc.split_at_mut(np);
                            let cols = gr.iter_mut().zip(xr.iter().zip(gyr)).zip(w.iter().zip(dw.iter_mut().zip(db)));
                            for ((o, (&xv, &gv)), (&wv, (dwv, dbv))) in cols {
                                let xhat = (xv - m) * s;
                                *o = s * (gv * wv - mg - xhat * mgx);
                                *dwv += (gv * xhat).to_f64();
                                *dbv += gv.to_f64();
                            }
                        }
                    }
                }
                acc
            })
            .collect::<Vec<_>>()
            // Summed in task order, so the result does not depend on scheduling.
            .into_iter()
            .fold(vec![0.0f64; 2 * np], |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            });
        tail.iter_mut().zip(sums).for_each(|(o, v)| *o = T::from_f64(v));
        out
    }
}

/// `(sum x, sum x^2, sum gy, sum gy x)` of one row, in f64 with four independent lanes.
fn row_sums<T: WithDType>(x: &[T], gy: &[T]) -> (f64, f64, f64, f64) {
    let mut a = [[0.0f64; 4]; 4];
    let (xc, gc) = (x.chunks_exact(4), gy.chunks_exact(4));
    let (xr, gr) = (xc.remainder(), gc.remainder());
    for (xs, gs) in xc.zip(gc) {
        for l in 0..4 {
            let (xv, gv) = (xs[l].to_f64(), gs[l].to_f64());
            a[0][l] += xv;
            a[1][l] += xv * xv;
            a[2][l] += gv;
            a[3][l] += gv * xv;
        }
    }
    for (xv, gv) in xr.iter().zip(gr) {
        let (xv, gv) = (xv.to_f64(), gv.to_f64());
        a[0][0] += xv;
        a[1][0] += xv * xv;
        a[2][0] += gv;
        a[3][0] += gv * xv;
    }
    let s = |v: [f64; 4]| (v[0] + v[1]) + (v[2] + v[3]);
    (s(a[0]), s(a[1]), s(a[2]), s(a[3]))
}

/// The three-operand kernels: the normalisation `(x, w, b) -> y` and its fused backward
/// `(x, w, gy) -> [gx, sum(gy * xhat), sum(gy)]` (flat).
#[derive(Clone, Copy)]
struct Norm3 {
    norm: RowNorm,
    grad: bool,
}

impl Norm3 {
    fn run<T: WithDType>(&self, s: [(&CpuStorage, &Layout); 3]) -> Result<Vec<T>> {
        let op = self.name();
        let (a, w, c) = (slice(op, s[0].0, s[0].1)?, slice(op, s[1].0, s[1].1)?, slice(op, s[2].0, s[2].1)?);
        let np = self.norm.n_params();
        let c_len = if self.grad { a.len() } else { np };
        if c.len() != c_len || w.len() != np || a.len() % self.norm.len != 0 {
            candle::bail!("{op}: internal error, operand lengths {} {} {} do not fit {:?}", a.len(), w.len(), c.len(), self.norm)
        }
        Ok(if self.grad { self.norm.backward(a, w, c) } else { self.norm.forward(a, w, c) })
    }
}

impl CustomOp3 for Norm3 {
    fn name(&self) -> &'static str {
        if self.grad { "unimiss-row-norm-backward" } else { "unimiss-row-norm" }
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
        let shape = if self.grad { Shape::from(l1.shape().elem_count() + 2 * self.norm.n_params()) } else { l1.shape().clone() };
        Ok((out, shape))
    }

    /// Only the normalisation has a backward here; the backward kernel is reached only when
    /// differentiating a gradient, which candle does not do (it detaches gradients).
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
        if !(x.track_op() || w.track_op() || b.track_op()) {
            return Ok((None, None, None));
        }
        let bucket = match self.norm.affine {
            Affine::PerColumn => "layer_norm bwd",
            Affine::PerRow { .. } => "instance_norm bwd",
        };
        let all = crate::profile::time(bucket, || x.apply_op3(w, &gy.contiguous()?, Norm3 { norm: self.norm, grad: true }))?;
        let (len, np) = (x.elem_count(), self.norm.n_params());
        let gx = x.track_op().then(|| all.narrow(0, 0, len)?.reshape(x.shape())).transpose()?;
        let gw = w.track_op().then(|| all.narrow(0, len, np)).transpose()?;
        let gb = b.track_op().then(|| all.narrow(0, len + np, np)).transpose()?;
        Ok((gx, gw, gb))
    }
}

/// Applies the fused normalisation to contiguous copies of `x`, `w`, `b`.
pub(crate) fn row_norm(x: &Tensor, w: &Tensor, b: &Tensor, norm: RowNorm) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Norm3 { norm, grad: false })
}
