//! The convolution custom ops: forward, input gradient (= transposed convolution) and weight
//! gradient. Each one's backward is written with the other two, so every path differentiates.

use candle::backend::BackendStorage;
use candle::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::ConvGeom;
use super::cpu::{self, Elem};
use crate::cpu_util::{float_dtype, slice};

/// Which of the three products an op computes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `(x [n, c, in], w [o, c, k]) -> y [n, o, out]`.
    Forward,
    /// `(gy [n, o, out], w [o, c, k]) -> gx [n, c, in]`.
    Input,
    /// `(x [n, c, in], gy [n, o, out]) -> gw [o, c, k]`.
    Weight,
}

#[derive(Clone, Copy, Debug)]
struct ConvOp {
    geom: ConvGeom,
    kind: Kind,
}

impl ConvOp {
    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> Result<Vec<T>> {
        match self.kind {
            Kind::Forward => cpu::forward(&self.geom, a, b),
            Kind::Input => cpu::grad_input(&self.geom, a, b),
            Kind::Weight => cpu::grad_weight(&self.geom, a, b),
        }
    }

    fn out_shape(&self) -> Shape {
        let g = &self.geom;
        match self.kind {
            Kind::Forward => (g.n, g.o, g.out[0], g.out[1], g.out[2]).into(),
            Kind::Input => (g.n, g.c, g.input[0], g.input[1], g.input[2]).into(),
            Kind::Weight => (g.o, g.c, g.kernel[0], g.kernel[1], g.kernel[2]).into(),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Forward => "unimiss-conv",
            Kind::Input => "unimiss-conv-grad-input",
            Kind::Weight => "unimiss-conv-grad-weight",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let out = match float_dtype(name, &[s1.dtype(), s2.dtype()])? {
            DType::F32 => CpuStorage::F32(self.run(slice::<f32>(name, s1, l1)?, slice::<f32>(name, s2, l2)?)?),
            _ => CpuStorage::F64(self.run(slice::<f64>(name, s1, l1)?, slice::<f64>(name, s2, l2)?)?),
        };
        Ok((out, self.out_shape()))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        crate::profile::time("conv bwd", || self.grads(a, b, grad))
    }
}

impl ConvOp {
    fn grads(&self, a: &Tensor, b: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = &self.geom;
        let want = |t: &Tensor| t.track_op();
        let (ga, gb) = match self.kind {
            // y = F(x, w): dx = I(gy, w), dw = W(x, gy).
            Kind::Forward => (
                want(a).then(|| apply(Kind::Input, g, grad, b)).transpose()?,
                want(b).then(|| apply(Kind::Weight, g, a, grad)).transpose()?,
            ),
            // gx = I(gy, w) = F^T gy: d gy = F(R, w), d w = W(R, gy).
            Kind::Input => (
                want(a).then(|| apply(Kind::Forward, g, grad, b)).transpose()?,
                want(b).then(|| apply(Kind::Weight, g, grad, a)).transpose()?,
            ),
            // gw = W(x, gy): d x = I(gy, R), d gy = F(x, R).
            Kind::Weight => (
                want(a).then(|| apply(Kind::Input, g, b, grad)).transpose()?,
                want(b).then(|| apply(Kind::Forward, g, a, grad)).transpose()?,
            ),
        };
        Ok((ga, gb))
    }
}

/// Applies one of the three products to contiguous copies of its operands (3D form).
fn apply(kind: Kind, geom: &ConvGeom, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, ConvOp { geom: *geom, kind })
}

/// Forward convolution on the CPU kernel: `x [n, c, d, h, w]`, `w [o, c, k..]`.
pub(crate) fn conv(x: &Tensor, w: &Tensor, geom: &ConvGeom) -> Result<Tensor> {
    apply(Kind::Forward, geom, x, w)
}

/// Transposed convolution on the CPU kernel: `x [n, o, out]`, `w [o, c, k..]` -> `[n, c, in]`,
/// where `geom` is the forward convolution `[n, c, in] -> [n, o, out]`.
pub(crate) fn conv_transpose(x: &Tensor, w: &Tensor, geom: &ConvGeom) -> Result<Tensor> {
    apply(Kind::Input, geom, x, w)
}
