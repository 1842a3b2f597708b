//! Helpers: seeded random data, tolerance comparison, finite differences.

use candle::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Uniform values in [-1, 1) from a seeded generator.
pub fn random(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A seeded f64 tensor of the given shape.
pub fn tensor(seed: u64, dims: &[usize]) -> Result<Tensor> {
    let len = dims.iter().product();
    Tensor::from_vec(random(seed, len), dims, &Device::Cpu)
}

/// A seeded trainable f64 variable.
pub fn var(seed: u64, dims: &[usize]) -> Result<Var> {
    Var::from_tensor(&tensor(seed, dims)?)
}

/// Flattens a tensor to f64 values.
pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

/// Relative and absolute tolerance: `|a - e| <= abs + rel * |e|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rel: f64,
    pub abs: f64,
}

/// f64 against an f64 reference: only rounding differences.
pub const F64: Tol = Tol { rel: 1e-10, abs: 1e-10 };
/// f32 against an f64 reference.
pub const F32: Tol = Tol { rel: 1e-4, abs: 1e-4 };
/// Central finite differences in f64 with step 1e-6.
pub const FD: Tol = Tol { rel: 1e-5, abs: 1e-6 };

/// Asserts that `actual` matches `expected` elementwise; reports the worst index.
pub fn assert_close(what: &str, actual: &[f64], expected: &[f64], tol: Tol) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let excess = (a - e).abs() - (tol.abs + tol.rel * e.abs());
        if !(excess <= 0.0) && worst.is_none_or(|(_, w)| excess > w || w.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: index {i} of {}: actual {} expected {} (tol {tol:?})",
            actual.len(),
            actual[i],
            expected[i]
        );
    }
}

/// Central finite-difference derivatives of the scalar `f` with respect to entries `idx` of `v`.
pub fn finite_diff(v: &Var, idx: &[usize], f: &dyn Fn() -> Result<f64>) -> Result<Vec<f64>> {
    const H: f64 = 1e-6;
    let orig = v.as_tensor().copy()?;
    let base = values(&orig)?;
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let mut plus = base.clone();
        plus[i] += H;
        v.set(&Tensor::from_vec(plus, orig.dims(), &Device::Cpu)?)?;
        let fp = f()?;
        let mut minus = base.clone();
        minus[i] -= H;
        v.set(&Tensor::from_vec(minus, orig.dims(), &Device::Cpu)?)?;
        let fm = f()?;
        out.push((fp - fm) / (2.0 * H));
    }
    v.set(&orig)?;
    Ok(out)
}

/// Up to `count` spread-out indices into a buffer of length `len`.
pub fn probe_indices(len: usize, count: usize) -> Vec<usize> {
    let step = (len / count.max(1)).max(1);
    (0..len).step_by(step).take(count).collect()
}

/// `sum(y * r)` as an f64 scalar, the functional every gradient test differentiates.
pub fn dot(y: &Tensor, r: &Tensor) -> Result<Tensor> {
    (y.to_dtype(DType::F64)? * r)?.sum_all()
}

/// Checks `f(vars)` against `reference` and its gradients by finite differences for every var.
pub fn check_grads(what: &str, vars: &[&Var], f: &dyn Fn() -> Result<Tensor>, reference: &[f64]) -> Result<()> {
    let y = f()?;
    assert_close(&format!("{what} forward"), &values(&y)?, reference, F64);
    let r = tensor(999, y.dims())?;
    let grads = dot(&y, &r)?.backward()?;
    let loss = || dot(&f()?, &r)?.to_scalar::<f64>();
    for (i, v) in vars.iter().enumerate() {
        let g = values(grads.get(v).ok_or_else(|| candle::Error::Msg(format!("{what}: no gradient for input {i}")))?)?;
        let idx = probe_indices(g.len(), 8);
        let numeric = finite_diff(v, &idx, &loss)?;
        let analytic: Vec<f64> = idx.iter().map(|&j| g[j]).collect();
        assert_close(&format!("{what} finite differences input {i}"), &analytic, &numeric, FD);
        assert!(g.iter().any(|v| *v != 0.0), "{what}: gradient of input {i} is all zero");
    }
    Ok(())
}
