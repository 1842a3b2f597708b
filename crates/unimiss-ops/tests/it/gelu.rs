//! Exact GELU: f64 against values from PyTorch and candle's `gelu_erf`, its gradient against
//! finite differences, and the f32 kernel (approximate erf) against the f64 result.

use candle::{DType, Device, Result, Tensor};
use unimiss_ops::gelu;

use crate::common::{F64, FD, Tol, assert_close, dot, finite_diff, probe_indices, tensor, values, var};

/// GELU values `0.5·x·(1 + erf(x/√2))` from Python's `math.erf` (what PyTorch gives in f64).
const KNOWN: [(f64, f64); 5] = [
    (-3.0, -0.00404969409489031),
    (-1.0, -0.15865525393145707),
    (0.0, 0.0),
    (0.5, 0.34573123063700656),
    (2.0, 1.9544997361036416),
];

#[test]
fn gelu_matches_known_values_and_finite_differences() -> Result<()> {
    let xs: Vec<f64> = KNOWN.iter().map(|k| k.0).collect();
    let y = gelu(&Tensor::new(xs.as_slice(), &Device::Cpu)?)?;
    assert_close("gelu f64 known values", &values(&y)?, &KNOWN.map(|k| k.1), Tol { rel: 1e-12, abs: 1e-15 });

    let x = var(41, &[3, 5, 7])?;
    let y = gelu(&x)?;
    assert_close("gelu f64 vs candle gelu_erf", &values(&y)?, &values(&x.as_tensor().gelu_erf()?)?, F64);
    let r = tensor(42, y.dims())?;
    let grads = dot(&y, &r)?.backward()?;
    let g = values(grads.get(&x).ok_or_else(|| candle::Error::Msg("gelu: no gradient".into()))?)?;
    let idx = probe_indices(g.len(), 12);
    let numeric = finite_diff(&x, &idx, &|| dot(&gelu(&x)?, &r)?.to_scalar::<f64>())?;
    let analytic: Vec<f64> = idx.iter().map(|&i| g[i]).collect();
    assert_close("gelu gradient vs finite differences", &analytic, &numeric, FD);
    Ok(())
}

#[test]
fn gelu_f32_kernel_is_accurate() -> Result<()> {
    // Wide range, odd length (not a multiple of the kernel's block), forward and backward.
    let x64 = (tensor(43, &[3, 16385])? * 4.0)?;
    let x32 = candle::Var::from_tensor(&x64.to_dtype(DType::F32)?)?;
    let y32 = gelu(&x32)?;
    let exact = x64.to_dtype(DType::F32)?.to_dtype(DType::F64)?.gelu_erf()?;
    assert_close("gelu f32", &values(&y32)?, &values(&exact)?, Tol { rel: 1e-6, abs: 1e-6 });
    let g32 = y32.sum_all()?.backward()?;
    let xf = candle::Var::from_tensor(&x64.to_dtype(DType::F32)?.to_dtype(DType::F64)?)?;
    let g64 = gelu(&xf)?.sum_all()?.backward()?;
    let no_grad = || candle::Error::Msg("gelu: no gradient".into());
    let (a, e) = (values(g32.get(&x32).ok_or_else(no_grad)?)?, values(g64.get(&xf).ok_or_else(no_grad)?)?);
    assert_close("gelu f32 gradient", &a, &e, Tol { rel: 1e-6, abs: 1e-6 });
    Ok(())
}
