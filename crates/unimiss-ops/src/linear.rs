//! `y = x Wᵀ + b` over the last axis (PyTorch `F.linear`) as ONE autograd node.
//!
//! Composed from candle ops (reshape, transpose, matmul, broadcast add, reshape) a linear layer
//! is six graph nodes, and candle's backward gives every node's gradient a zero-filled buffer
//! plus an add: four full passes over the output and two over the input per layer, several times
//! the cost of the two GEMMs. Here the forward is one GEMM with the bias pre-filled into the
//! output, and the backward computes `dx = gy W`, `dW = gyᵀ x` and `db = Σ_rows gy` directly.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::cpu_util::{Elem, Mat, float_dtype, gemm, slice};

/// `x [.., inp]`, `w [out, inp]`, `b [out]` → `[.., out]`. On the CPU in f32/f64 one custom op
/// with a fused backward; elsewhere [`linear_composed`].
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let Ok((out, inp)) = w.dims2() else { bail!("linear: weight must be [out, in], got {:?}", w.dims()) };
    let Some((&last, lead)) = x.dims().split_last() else { bail!("linear: input must have rank >= 1, got a scalar") };
    if last != inp {
        bail!("linear: input {:?} must end in the weight's {inp} input features (weight {:?})", x.dims(), w.dims())
    }
    if let Some(b) = b
        && b.dims() != [out]
    {
        bail!("linear: bias must be [{out}], got {:?}", b.dims())
    }
    let same = |t: &Tensor| t.dtype() == x.dtype() && t.device().is_cpu();
    let fused = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && same(w) && b.is_none_or(same);
    if !fused {
        return linear_composed(x, w, b);
    }
    let mut dims = lead.to_vec();
    dims.push(out);
    let op = LinearOp { m: lead.iter().product(), inp, out, dims };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// [`linear`] composed from candle primitives (any device and float dtype).
pub fn linear_composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let Some((&inp, lead)) = x.dims().split_last() else { bail!("linear: input must have rank >= 1, got a scalar") };
    let m: usize = lead.iter().product();
    let y = x.reshape((m, inp))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut dims = lead.to_vec();
    dims.push(w.dim(0)?);
    y.reshape(dims)
}

#[derive(Clone, Debug)]
struct LinearOp {
    /// Rows (product of the leading axes), input and output features.
    m: usize,
    inp: usize,
    out: usize,
    /// Output shape.
    dims: Vec<usize>,
}

/// Rows per rayon task when filling the output with the bias (about 64K values per task).
fn rows_per_task(n: usize) -> usize {
    (65536 / n.max(1)).max(1)
}

impl LinearOp {
    fn forward<T: Elem>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Result<Vec<T>> {
        let (m, k, n) = (self.m, self.inp, self.out);
        let mut y = vec![T::ZERO; m * n];
        if let Some(b) = b {
            y.par_chunks_mut(n * rows_per_task(n)).for_each(|rows| rows.chunks_mut(n).for_each(|r| r.copy_from_slice(b)));
        }
        // y (+)= x [m x k] · wᵀ [k x n], wᵀ(i, j) = w[j * k + i].
        gemm(m, n, k, &mut y, b.is_some(), Mat { data: x, rs: k, cs: 1 }, Mat { data: w, rs: 1, cs: k }, true)?;
        Ok(y)
    }

    fn run(&self, name: &str, x: (&CpuStorage, &Layout), w: (&CpuStorage, &Layout), b: Option<(&CpuStorage, &Layout)>) -> Result<(CpuStorage, Shape)> {
        let mut dtypes = vec![x.0.dtype(), w.0.dtype()];
        dtypes.extend(b.map(|b| b.0.dtype()));
        let out = match float_dtype(name, &dtypes)? {
            DType::F32 => {
                let b = b.map(|(s, l)| slice::<f32>(name, s, l)).transpose()?;
                CpuStorage::F32(self.forward(slice::<f32>(name, x.0, x.1)?, slice::<f32>(name, w.0, w.1)?, b)?)
            }
            _ => {
                let b = b.map(|(s, l)| slice::<f64>(name, s, l)).transpose()?;
                CpuStorage::F64(self.forward(slice::<f64>(name, x.0, x.1)?, slice::<f64>(name, w.0, w.1)?, b)?)
            }
        };
        Ok((out, Shape::from(self.dims.clone())))
    }

    /// `(dx, dW, db)` for the tracked operands, from `gy [.., out]`.
    fn grads(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        crate::profile::time("linear bwd", || {
            let (m, k, n) = (self.m, self.inp, self.out);
            let gy = gy.detach().contiguous()?.reshape((m, n))?;
            let gx = x.track_op().then(|| gy.matmul(&w.detach())?.reshape(x.shape())).transpose()?;
            let gw = w.track_op().then(|| gy.t()?.matmul(&x.detach().reshape((m, k))?)).transpose()?;
            let gb = match b {
                Some(b) if b.track_op() => Some(Tensor::ones((1, m), gy.dtype(), gy.device())?.matmul(&gy)?.reshape(n)?),
                _ => None,
            };
            Ok((gx, gw, gb))
        })
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "unimiss-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(CustomOp2::name(self), (s1, l1), (s2, l2), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = self.grads(x, w, None, gy)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "unimiss-linear"
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
        self.run(CustomOp3::name(self), (s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, Some(b), gy)
    }
}
