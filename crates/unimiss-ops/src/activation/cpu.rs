//! Fused CPU softmax (last axis) and LeakyReLU, each with a fused backward.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::cpu_util::{Float, float_dtype, slice};

/// Values per rayon task.
const BLOCK: usize = 16384;

/// Softmax over rows of `len` values.
#[derive(Clone, Copy)]
pub(crate) struct Softmax {
    pub len: usize,
}

/// `(y, gy) -> gx = y * (gy - sum(gy * y))` per row.
#[derive(Clone, Copy)]
struct SoftmaxGrad {
    len: usize,
}

fn rows_block(len: usize) -> usize {
    (BLOCK / len.max(1)).max(1) * len
}

fn softmax_rows<T: Float>(x: &[T], len: usize) -> Vec<T> {
    let mut y = x.to_vec();
    y.par_chunks_mut(rows_block(len)).for_each(|yb| yb.chunks_mut(len).for_each(softmax_in_place));
    y
}

/// Softmax of one row, in place (max-shifted; the sum accumulated in f64).
pub(crate) fn softmax_in_place<T: Float>(r: &mut [T]) {
    let Some(&first) = r.first() else { return };
    let max = r.iter().copied().fold(first, |a, b| if b > a { b } else { a });
    // Separate loops so that the exponentials vectorise.
    r.iter_mut().for_each(|v| *v = (*v - max).exp());
    let inv = T::from_f64(1.0 / lane_sum(r.iter().map(|v| v.to_f64())));
    r.iter_mut().for_each(|v| *v *= inv);
}

/// Sum in four independent lanes (lets the compiler overlap the additions).
pub(crate) fn lane_sum(it: impl Iterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 4];
    for (i, v) in it.enumerate() {
        acc[i & 3] += v;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

fn softmax_grad_rows<T: WithDType>(y: &[T], gy: &[T], len: usize) -> Vec<T> {
    let mut gx = vec![T::from_f64(0.0); y.len()];
    let block = rows_block(len);
    gx.par_chunks_mut(block).zip(y.par_chunks(block).zip(gy.par_chunks(block))).for_each(|(gb, (yb, gyb))| {
        for (gr, (yr, gyr)) in gb.chunks_mut(len).zip(yb.chunks(len).zip(gyb.chunks(len))) {
            let dot = T::from_f64(lane_sum(yr.iter().zip(gyr).map(|(a, b)| a.to_f64() * b.to_f64())));
            for (o, (&yv, &gv)) in gr.iter_mut().zip(yr.iter().zip(gyr)) {
                *o = yv * (gv - dot);
            }
        }
    });
    gx
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "unimiss-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match float_dtype(self.name(), &[s.dtype()])? {
            DType::F32 => CpuStorage::F32(softmax_rows(slice::<f32>(self.name(), s, l)?, self.len)),
            _ => CpuStorage::F64(softmax_rows(slice::<f64>(self.name(), s, l)?, self.len)),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        crate::profile::time("softmax bwd", || Ok(Some(y.apply_op2(&gy.contiguous()?, SoftmaxGrad { len: self.len })?)))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "unimiss-softmax-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let out = match float_dtype(n, &[s1.dtype(), s2.dtype()])? {
            DType::F32 => CpuStorage::F32(softmax_grad_rows(slice::<f32>(n, s1, l1)?, slice::<f32>(n, s2, l2)?, self.len)),
            _ => CpuStorage::F64(softmax_grad_rows(slice::<f64>(n, s1, l1)?, slice::<f64>(n, s2, l2)?, self.len)),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// LeakyReLU with PyTorch's gradient convention (slope for `x <= 0`).
#[derive(Clone, Copy)]
pub(crate) struct LeakyRelu {
    pub slope: f64,
}

/// `(x, gy) -> gy * (x > 0 ? 1 : slope)`.
#[derive(Clone, Copy)]
struct LeakyReluGrad {
    slope: f64,
}

/// `out[i] = f(a[i], b[i])`, in parallel blocks.
pub(super) fn map2<T: WithDType>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); a.len()];
    out.par_chunks_mut(BLOCK).zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK))).for_each(|(o, (a, b))| {
        for (o, (a, b)) in o.iter_mut().zip(a.iter().zip(b)) {
            *o = f(*a, *b);
        }
    });
    out
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "unimiss-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let out = match float_dtype(n, &[s.dtype()])? {
            DType::F32 => {
                let (x, k) = (slice::<f32>(n, s, l)?, self.slope as f32);
                CpuStorage::F32(map2(x, x, |v, _| if v > 0.0 { v } else { v * k }))
            }
            _ => {
                let (x, k) = (slice::<f64>(n, s, l)?, self.slope);
                CpuStorage::F64(map2(x, x, |v, _| if v > 0.0 { v } else { v * k }))
            }
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        crate::profile::time("leaky_relu bwd", || {
            Ok(Some(x.apply_op2(&gy.contiguous()?, LeakyReluGrad { slope: self.slope })?))
        })
    }
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "unimiss-leaky-relu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let out = match float_dtype(n, &[s1.dtype(), s2.dtype()])? {
            DType::F32 => {
                let k = self.slope as f32;
                CpuStorage::F32(map2(slice(n, s1, l1)?, slice(n, s2, l2)?, |x: f32, g| if x > 0.0 { g } else { g * k }))
            }
            _ => {
                let k = self.slope;
                CpuStorage::F64(map2(slice(n, s1, l1)?, slice(n, s2, l2)?, |x: f64, g| if x > 0.0 { g } else { g * k }))
            }
        };
        Ok((out, l1.shape().clone()))
    }
}
