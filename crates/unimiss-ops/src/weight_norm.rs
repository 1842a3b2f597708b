//! A bias-free linear layer with a weight-normalised weight (PyTorch `weight_norm`, the DINO
//! head's `last_layer`): `y = z · (g ⊙ v / ‖v‖_row)ᵀ`, as ONE autograd node.
//!
//! The normalised weight is never built: `y[n, j] = (z_n · v_j) · g_j / ‖v_j‖`. Composed from
//! candle ops, the backward of the head's `v` (K × bottleneck, 16.8 M values at K = 65536) is a
//! chain of full-size passes (square, broadcast, multiply, and a zero-filled buffer plus an add
//! for each of v's two uses); here it is one GEMM `G = gyᵀ z` and one pass over `v` and `G`:
//! `dv_j = (g_j / ‖v_j‖) (G_j − v_j (v_j · G_j) / ‖v_j‖²)`, `dg_j = (v_j · G_j) / ‖v_j‖`,
//! `dz = (gy ⊙ g/‖v‖) v`.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor, bail};
use rayon::prelude::*;

use crate::activation::cpu::lane_sum;
use crate::cpu_util::{Elem, Mat, float_dtype, gemm, slice};

/// `z [N, B]`, `v [K, B]`, `g [K, 1]` → `[N, K]`, `y[n, j] = g_j (z_n · v_j) / ‖v_j‖` (no eps, as
/// PyTorch's `_weight_norm`). On the CPU in f32/f64 one custom op with a fused backward (to `z`,
/// `v` and `g`, whichever are tracked); elsewhere [`weight_norm_linear_composed`].
pub fn weight_norm_linear(z: &Tensor, v: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (n, k, b) = check(z, v, g)?;
    let same = |t: &Tensor| t.device().is_cpu() && t.dtype() == z.dtype();
    if !(same(z) && same(v) && same(g) && matches!(z.dtype(), DType::F32 | DType::F64)) {
        return weight_norm_linear_composed(z, v, g);
    }
    z.contiguous()?.apply_op3(&v.contiguous()?, &g.contiguous()?, WnLinear { n, k, b })
}

/// [`weight_norm_linear`] composed from candle primitives (any device and float dtype).
pub fn weight_norm_linear_composed(z: &Tensor, v: &Tensor, g: &Tensor) -> Result<Tensor> {
    check(z, v, g)?;
    let col = g.broadcast_div(&v.sqr()?.sum_keepdim(1)?.sqrt()?)?;
    z.matmul(&v.t()?)?.broadcast_mul(&col.t()?)
}

fn check(z: &Tensor, v: &Tensor, g: &Tensor) -> Result<(usize, usize, usize)> {
    let (Ok((n, b)), Ok((k, bv))) = (z.dims2(), v.dims2()) else {
        bail!("weight_norm_linear: input must be [N, B] and direction [K, B], got {:?} and {:?}", z.dims(), v.dims())
    };
    if b != bv || g.dims() != [k, 1] {
        bail!("weight_norm_linear: input {:?}, direction {:?} and magnitude {:?} do not fit (expected [N, B], [K, B], [K, 1])", z.dims(), v.dims(), g.dims())
    }
    Ok((n, k, b))
}

#[derive(Clone, Copy, Debug)]
struct WnLinear {
    n: usize,
    k: usize,
    b: usize,
}

/// `‖v_j‖` of every row of `v [K, B]` (summed in f64) and the column scales `g_j / ‖v_j‖`.
fn norms_and_scales<T: Elem>(v: &[T], g: &[T], b: usize) -> (Vec<f64>, Vec<T>) {
    let norms: Vec<f64> = v.par_chunks(b).map(|r| lane_sum(r.iter().map(|x| x.to_f64() * x.to_f64())).sqrt()).collect();
    let col = norms.iter().zip(g).map(|(nv, gj)| T::from_f64(gj.to_f64() / nv)).collect();
    (norms, col)
}

impl WnLinear {
    fn forward<T: Elem>(&self, z: &[T], v: &[T], g: &[T]) -> Result<Vec<T>> {
        let (n, k, b) = (self.n, self.k, self.b);
        let mut y = vec![T::ZERO; n * k];
        gemm(n, k, b, &mut y, false, Mat { data: z, rs: b, cs: 1 }, Mat { data: v, rs: 1, cs: b }, true)?;
        let (_, col) = norms_and_scales(v, g, b);
        y.par_chunks_mut(k).for_each(|row| row.iter_mut().zip(&col).for_each(|(o, c)| *o = *o * *c));
        Ok(y)
    }

    /// `[dz (N·B) | dv (K·B) | dg (K)]` from `gy [N, K]`.
    fn backward<T: Elem>(&self, z: &[T], v: &[T], g: &[T], gy: &[T]) -> Result<Vec<T>> {
        let (n, k, b) = (self.n, self.k, self.b);
        let (norms, col) = norms_and_scales(v, g, b);
        let mut out = vec![T::ZERO; n * b + k * b + k];
        let (dz, rest) = out.split_at_mut(n * b);
        let (dv, dg) = rest.split_at_mut(k * b);
        // dz = (gy ⊙ g/‖v‖) v.
        let mut gs = gy.to_vec();
        gs.par_chunks_mut(k).for_each(|row| row.iter_mut().zip(&col).for_each(|(o, c)| *o = *o * *c));
        gemm(n, b, k, dz, false, Mat { data: &gs, rs: k, cs: 1 }, Mat { data: v, rs: b, cs: 1 }, true)?;
        // G = gyᵀ z into dv, then per row j: dg_j = (v_j · G_j)/‖v_j‖, dv_j = c_j (G_j − v_j (v_j · G_j)/‖v_j‖²).
        gemm(k, b, n, dv, false, Mat { data: gy, rs: 1, cs: k }, Mat { data: z, rs: b, cs: 1 }, true)?;
        dv.par_chunks_mut(b).zip(v.par_chunks(b)).zip(dg.par_iter_mut()).zip(norms.par_iter().zip(&col)).for_each(
            |(((dvj, vj), dgj), (&nv, &c))| {
                let dot = lane_sum(vj.iter().zip(dvj.iter()).map(|(a, b)| a.to_f64() * b.to_f64()));
                *dgj = T::from_f64(dot / nv);
                let along = T::from_f64(dot / (nv * nv));
                dvj.iter_mut().zip(vj).for_each(|(d, &x)| *d = c * (*d - x * along));
            },
        );
        Ok(out)
    }
}

impl CustomOp3 for WnLinear {
    fn name(&self) -> &'static str {
        "unimiss-weight-norm-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = CustomOp3::name(self);
        let out = match float_dtype(name, &[s1.dtype(), s2.dtype(), s3.dtype()])? {
            DType::F32 => CpuStorage::F32(self.forward(slice::<f32>(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?)?),
            _ => CpuStorage::F64(self.forward(slice::<f64>(name, s1, l1)?, slice(name, s2, l2)?, slice(name, s3, l3)?)?),
        };
        Ok((out, Shape::from((self.n, self.k))))
    }

    fn bwd(&self, z: &Tensor, v: &Tensor, g: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        crate::profile::time("weight_norm_linear bwd", || {
            let gy = gy.detach().contiguous()?;
            let name = "unimiss-weight-norm-linear backward";
            let (sz, lz) = z.storage_and_layout();
            let (sv, lv) = v.storage_and_layout();
            let (sg, lg) = g.storage_and_layout();
            let (sy, ly) = gy.storage_and_layout();
            let (Storage::Cpu(sz), Storage::Cpu(sv), Storage::Cpu(sg), Storage::Cpu(sy)) = (&*sz, &*sv, &*sg, &*sy) else {
                bail!("{name}: operands left the CPU")
            };
            let (n, k, b) = (self.n, self.k, self.b);
            let flat = match float_dtype(name, &[sz.dtype(), sv.dtype(), sg.dtype(), sy.dtype()])? {
                DType::F32 => {
                    let out = self.backward::<f32>(slice(name, sz, lz)?, slice(name, sv, lv)?, slice(name, sg, lg)?, slice(name, sy, ly)?)?;
                    Tensor::from_vec(out, n * b + k * b + k, z.device())?
                }
                _ => {
                    let out = self.backward::<f64>(slice(name, sz, lz)?, slice(name, sv, lv)?, slice(name, sg, lg)?, slice(name, sy, ly)?)?;
                    Tensor::from_vec(out, n * b + k * b + k, z.device())?
                }
            };
            let part = |at: usize, len: usize, t: &Tensor| -> Result<Option<Tensor>> {
                t.track_op().then(|| flat.narrow(0, at, len)?.reshape(t.shape())).transpose()
            };
            Ok((part(0, n * b, z)?, part(n * b, k * b, v)?, part(n * b + k * b, k, g)?))
        })
    }
}
