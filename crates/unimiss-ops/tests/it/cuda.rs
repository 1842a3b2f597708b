//! Every public op on a CUDA device (the composed paths) against the same op on the CPU (the
//! fused kernels): forward and the gradient of every input in f32, the public op in bf16, and
//! the optimiser passes. Compiled only with `--features cuda`; ignored unless run with
//! `--include-ignored`, and then they need a CUDA device: without one they fail, never pass.

use candle::{DType, Device, Result, Tensor, Var};
use unimiss_ops::interp::{Resize, interpolate_bicubic2d, interpolate_bilinear2d, interpolate_trilinear3d};
use unimiss_ops::update::{adamw, adamw_composed, ema, ema_composed, sum_sq, sum_sq_composed};
use unimiss_ops::{
    ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d, gelu, instance_norm, layer_norm,
    leaky_relu, linear, softmax_last_dim,
};

use crate::common::{Tol, assert_close, tensor, values};

const RUN_THEM: &str = "run the `--features cuda` test binary with --include-ignored on a GPU machine";
/// f32 on the GPU (cuBLAS f32 GEMMs, no TF32) against the f32 CPU kernels.
const F32: Tol = Tol { rel: 1e-4, abs: 1e-4 };
/// bf16 (8-bit mantissa) against f32: a few dozen products per output.
const BF16: Tol = Tol { rel: 3e-2, abs: 6e-2 };

type Op<'a> = &'a dyn Fn(&[Tensor]) -> Result<Tensor>;

fn gpu() -> Result<Device> {
    Device::new_cuda(0).map_err(|e| candle::Error::Msg(format!("no CUDA device 0 ({e}): these tests need one; {RUN_THEM}")))
}

/// `op` on the GPU against `op` on the CPU, for seeded inputs of `shapes` (scaled by `scale`).
fn compare(what: &str, shapes: &[&[usize]], scale: f64, op: Op) -> Result<()> {
    let dev = gpu()?;
    let base: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| (tensor(100 + i as u64, s)? * scale)?.to_dtype(DType::F32)).collect::<Result<_>>()?;
    let cpu: Vec<Var> = base.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let cuda: Vec<Var> = base.iter().map(|t| Var::from_tensor(&t.to_device(&dev)?)).collect::<Result<_>>()?;
    let run = |vs: &[Var]| op(&vs.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>());
    let (yc, yg) = (run(&cpu)?, run(&cuda)?);
    assert!(yg.device().is_cuda(), "{what}: the result left the GPU");
    assert_eq!(yc.dims(), yg.dims(), "{what}: shapes differ");
    assert_close(&format!("{what} forward"), &values(&yg)?, &values(&yc)?, F32);
    let r = tensor(77, yc.dims())?.to_dtype(DType::F32)?;
    let (gc, gg) = ((&yc * &r)?.sum_all()?.backward()?, (&yg * r.to_device(&dev)?)?.sum_all()?.backward()?);
    for (i, (vc, vg)) in cpu.iter().zip(&cuda).enumerate() {
        let missing = || candle::Error::Msg(format!("{what}: no gradient for input {i}"));
        let (a, e) = (gg.get(vg).ok_or_else(missing)?, gc.get(vc).ok_or_else(missing)?);
        assert!(a.device().is_cuda(), "{what}: gradient {i} left the GPU");
        assert_close(&format!("{what} grad {i}"), &values(a)?, &values(e)?, F32);
    }
    let half: Vec<Tensor> = cuda.iter().map(|v| v.as_tensor().to_dtype(DType::BF16)).collect::<Result<_>>()?;
    assert_close(&format!("{what} bf16"), &values(&op(&half)?)?, &values(&yc)?, BF16);
    Ok(())
}

#[test]
#[ignore = "needs a CUDA device: run the `--features cuda` test binary with --include-ignored on a GPU machine"]
fn convolutions_on_cuda_match_the_cpu() -> Result<()> {
    let p3 = ConvParams::new([1, 2, 2], [1, 1, 1]).with_dilation([1, 1, 2]);
    compare("conv3d", &[&[2, 3, 4, 9, 8], &[4, 3, 3, 3, 3], &[4]], 0.5, &|t| conv3d(&t[0], &t[1], Some(&t[2]), &p3))?;
    let p2 = ConvParams::new([2, 1], [1, 1]);
    compare("conv2d", &[&[2, 3, 9, 7], &[4, 3, 3, 3], &[4]], 0.5, &|t| conv2d(&t[0], &t[1], Some(&t[2]), &p2))?;
    // The MiT's patch embedding: 7x7 stride 4, the depthwise 3x3 of its Mix-FFN (groups = C are
    // expressed per channel by the model, so a plain 3x3 here).
    let pe = ConvParams::new([4, 4], [3, 3]);
    compare("conv2d 7x7/4", &[&[1, 3, 32, 32], &[8, 3, 7, 7], &[8]], 0.3, &|t| conv2d(&t[0], &t[1], Some(&t[2]), &pe))?;
    let t3 = ConvTransposeParams::new([2, 1, 2]).with_padding([0, 1, 0], [1, 0, 0]);
    compare("conv_transpose3d", &[&[2, 3, 4, 6, 5], &[3, 2, 2, 3, 2], &[2]], 0.5, &|t| {
        conv_transpose3d(&t[0], &t[1], Some(&t[2]), &t3)
    })?;
    let t2 = ConvTransposeParams::new([2, 2]).with_padding([1, 0], [1, 1]);
    compare("conv_transpose2d", &[&[2, 3, 5, 6], &[3, 4, 3, 2], &[4]], 0.5, &|t| {
        conv_transpose2d(&t[0], &t[1], Some(&t[2]), &t2)
    })
}

#[test]
#[ignore = "needs a CUDA device: run the `--features cuda` test binary with --include-ignored on a GPU machine"]
fn norms_activations_and_linear_on_cuda_match_the_cpu() -> Result<()> {
    let x: &[usize] = &[2, 3, 4, 6, 5];
    compare("instance_norm", &[x, &[3], &[3]], 1.0, &|t| instance_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5))?;
    compare("instance_norm no affine", &[&[2, 4, 7, 9]], 1.0, &|t| instance_norm(&t[0], None, None, 1e-5))?;
    compare("layer_norm", &[x, &[5], &[5]], 1.0, &|t| layer_norm(&t[0], &t[1], &t[2], 1e-6))?;
    compare("softmax_last_dim", &[&[3, 7, 33]], 4.0, &|t| softmax_last_dim(&t[0]))?;
    compare("leaky_relu", &[x], 1.0, &|t| leaky_relu(&t[0], 0.01))?;
    compare("gelu", &[x], 3.0, &|t| gelu(&t[0]))?;
    compare("linear", &[&[2, 7, 16], &[12, 16], &[12]], 0.5, &|t| linear(&t[0], &t[1], Some(&t[2])))?;
    compare("linear no bias", &[&[5, 16], &[12, 16]], 0.5, &|t| linear(&t[0], &t[1], None))
}

#[test]
#[ignore = "needs a CUDA device: run the `--features cuda` test binary with --include-ignored on a GPU machine"]
fn interpolation_on_cuda_matches_the_cpu() -> Result<()> {
    compare("bicubic", &[&[2, 3, 7, 9]], 1.0, &|t| interpolate_bicubic2d(&t[0], Resize::Size(12), Resize::Scale(1.5)))?;
    compare("bilinear", &[&[2, 3, 8, 6]], 1.0, &|t| interpolate_bilinear2d(&t[0], Resize::Size(5), Resize::Size(11)))?;
    compare("trilinear", &[&[1, 2, 4, 6, 6]], 1.0, &|t| {
        interpolate_trilinear3d(&t[0], Resize::Size(8), Resize::Scale(0.5), Resize::Size(9))
    })
}

/// The optimiser's composed passes on the GPU against the fused CPU passes.
#[test]
#[ignore = "needs a CUDA device: run the `--features cuda` test binary with --include-ignored on a GPU machine"]
fn optimiser_passes_on_cuda_match_the_fused_cpu_passes() -> Result<()> {
    let dev = gpu()?;
    let n = 70_001;
    let t = |seed| tensor(seed, &[n])?.to_dtype(DType::F32);
    let (theta, g, m, v) = (t(1)?, t(2)?, t(3)?, t(4)?.abs()?);
    let on = |x: &Tensor| x.to_device(&dev);
    let s = crate::update::step(0.999, 0.3);
    let want = adamw(&theta, Some(&g), Some(&m), Some(&v), &s)?.expect("f32 CPU tensors take the fused path");
    assert!(adamw(&on(&theta)?, Some(&on(&g)?), None, None, &s)?.is_none(), "CUDA tensors must take the composed path");
    let got = adamw_composed(&on(&theta)?, Some(&on(&g)?), Some(&on(&m)?), Some(&on(&v)?), &s)?;
    const SAME: Tol = Tol { rel: 1e-6, abs: 1e-7 };
    for (what, a, e) in [("theta", &got.0, &want.0), ("m", &got.1, &want.1), ("v", &got.2, &want.2)] {
        assert!(a.device().is_cuda(), "adamw {what} left the GPU");
        assert_close(&format!("adamw cuda {what}"), &values(a)?, &values(e)?, SAME);
    }
    let (sq, sq_gpu) = (sum_sq(&theta).expect("f32 CPU"), sum_sq_composed(&on(&theta)?)?);
    assert!((sq - sq_gpu).abs() <= 1e-9 * sq, "sum_sq cpu {sq} vs cuda {sq_gpu}");
    let e = ema(&theta, &g, 0.996)?.expect("f32 CPU");
    assert_close("ema cuda", &values(&ema_composed(&on(&theta)?, &on(&g)?, 0.996)?)?, &values(&e)?, SAME);
    Ok(())
}
