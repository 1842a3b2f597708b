//! The composed paths (used on CUDA and for dtypes the CPU kernels do not take) against the CPU
//! kernels: forward and every gradient in f64 through `unimiss_ops::reference`, and the dtype
//! routing by running the public ops in f16 (which the CPU kernels do not take).

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::{
    ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d, gelu, instance_norm, layer_norm,
    leaky_relu, linear, reference, softmax_last_dim,
};

use crate::common::{Tol, assert_close, dot, tensor, values, var};

/// f16 has an 11-bit mantissa; sums of a few dozen products stay within this.
const F16: Tol = Tol { rel: 1e-2, abs: 2e-2 };
const SAME: Tol = Tol { rel: 1e-9, abs: 1e-9 };

type Op<'a> = &'a dyn Fn(&[Tensor]) -> Result<Tensor>;

/// Compares `kernel` and `composed` on `inputs`: forward, gradients of every input in f64, and
/// the public op in f16 (routed to the composition).
fn compare(what: &str, inputs: &[Var], kernel: Op, composed: Op) -> Result<()> {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let (yk, yc) = (kernel(&ts)?, composed(&ts)?);
    assert_close(&format!("{what} forward"), &values(&yc)?, &values(&yk)?, SAME);
    let r = tensor(77, yk.dims())?;
    let (gk, gc) = (dot(&yk, &r)?.backward()?, dot(&yc, &r)?.backward()?);
    for (i, v) in inputs.iter().enumerate() {
        let get = |g: &candle::backprop::GradStore| -> Result<Vec<f64>> {
            values(g.get(v).ok_or_else(|| candle::Error::Msg(format!("{what}: no gradient for input {i}")))?)
        };
        assert_close(&format!("{what} grad {i}"), &get(&gc)?, &get(&gk)?, SAME);
    }
    let half: Vec<Tensor> = ts.iter().map(|t| t.to_dtype(DType::F16)).collect::<Result<_>>()?;
    assert_close(&format!("{what} f16"), &values(&kernel(&half)?)?, &values(&yk)?, F16);
    Ok(())
}

#[test]
fn composed_paths_match_kernels() -> Result<()> {
    let x = var(1, &[2, 3, 4, 6, 5])?;
    let w = Var::from_tensor(&(tensor(2, &[4, 3, 3, 3, 3])? * 0.3)?)?;
    let b = var(3, &[4])?;
    let p = ConvParams::new([1, 2, 2], [1, 1, 1]);
    compare(
        "conv3d",
        &[x.clone(), w, b],
        &|t| conv3d(&t[0], &t[1], Some(&t[2]), &p),
        &|t| reference::conv3d(&t[0], &t[1], Some(&t[2]), &p),
    )?;

    let wt = Var::from_tensor(&(tensor(4, &[3, 2, 2, 3, 2])? * 0.3)?)?;
    let bt = var(5, &[2])?;
    let pt = ConvTransposeParams::new([2, 1, 2]).with_padding([0, 1, 0], [1, 0, 0]);
    compare(
        "conv_transpose3d",
        &[x.clone(), wt, bt],
        &|t| conv_transpose3d(&t[0], &t[1], Some(&t[2]), &pt),
        &|t| reference::conv_transpose3d(&t[0], &t[1], Some(&t[2]), &pt),
    )?;

    compare(
        "instance_norm",
        &[x.clone(), var(6, &[3])?, var(7, &[3])?],
        &|t| instance_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5),
        &|t| reference::instance_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5),
    )?;
    compare(
        "layer_norm",
        &[x.clone(), var(8, &[5])?, var(9, &[5])?],
        &|t| layer_norm(&t[0], &t[1], &t[2], 1e-5),
        &|t| reference::layer_norm(&t[0], &t[1], &t[2], 1e-5),
    )?;
    compare("softmax", &[x.clone()], &|t| softmax_last_dim(&t[0]), &|t| reference::softmax_last_dim(&t[0]))?;
    compare("leaky_relu", &[x.clone()], &|t| leaky_relu(&t[0], 0.01), &|t| reference::leaky_relu(&t[0], 0.01))?;
    compare("gelu", &[x.clone()], &|t| gelu(&t[0]), &|t| reference::gelu(&t[0]))?;
    compare(
        "linear",
        &[x, var(10, &[3, 5])?, var(11, &[3])?],
        &|t| linear(&t[0], &t[1], Some(&t[2])),
        &|t| reference::linear(&t[0], &t[1], Some(&t[2])),
    )?;
    Ok(())
}

/// The 2D entry points lift to the 3D form (depth 1) before choosing an engine, so off the CPU
/// kernels a 2D convolution is the composed 3D one on `unsqueeze(2)`.
#[test]
fn composed_2d_convolutions_match_kernels() -> Result<()> {
    let x = var(21, &[2, 3, 9, 7])?;
    let w = Var::from_tensor(&(tensor(22, &[4, 3, 3, 2])? * 0.3)?)?;
    let b = var(23, &[4])?;
    let p = ConvParams::new([2, 1], [1, 1]).with_dilation([1, 2]);
    let p3 = ConvParams { stride: [1, p.stride[0], p.stride[1]], padding: [0, p.padding[0], p.padding[1]], dilation: [1, 1, 2] };
    let lift = |t: &Tensor| t.unsqueeze(2);
    compare(
        "conv2d",
        &[x.clone(), w, b],
        &|t| conv2d(&t[0], &t[1], Some(&t[2]), &p),
        &|t| reference::conv3d(&lift(&t[0])?, &lift(&t[1])?, Some(&t[2]), &p3)?.squeeze(2),
    )?;
    let wt = Var::from_tensor(&(tensor(24, &[3, 2, 2, 3])? * 0.3)?)?;
    let pt = ConvTransposeParams::new([2, 1]).with_padding([1, 0], [1, 0]);
    let pt3 = ConvTransposeParams::new([1, 2, 1]).with_padding([0, 1, 0], [0, 1, 0]);
    compare(
        "conv_transpose2d",
        &[x, wt, var(25, &[2])?],
        &|t| conv_transpose2d(&t[0], &t[1], Some(&t[2]), &pt),
        &|t| reference::conv_transpose3d(&lift(&t[0])?, &lift(&t[1])?, Some(&t[2]), &pt3)?.squeeze(2),
    )?;
    Ok(())
}
