//! The fused optimiser passes against the same arithmetic written out per element in f64:
//! AdamW (first step, later step with clipping factor, leftover zero gradient, decay), the
//! squared norm and the EMA; `None` off the f32 CPU path. Their composed twins (the path on
//! CUDA and in other dtypes) against the fused passes on the CPU.

use candle::{DType, Result, Tensor};
use unimiss_ops::update::{AdamWStep, adamw, adamw_composed, adamw_in_place, ema, ema_composed, ema_in_place, sum_sq, sum_sq_composed};

use crate::common::{Tol, assert_close, tensor, values};

const F32: Tol = Tol { rel: 1e-5, abs: 1e-6 };

fn f32t(seed: u64, n: usize) -> Result<Tensor> {
    tensor(seed, &[n])?.to_dtype(DType::F32)
}

/// (name, with gradient, with state, decay, gradient scale) of the AdamW cases.
const CASES: [(&str, bool, bool, f64, f64); 3] =
    [("first step", true, false, 1.0 - 1e-3 * 0.04, 1.0), ("clipped, decayed", true, true, 0.999, 0.3), ("zero grad", false, true, 1.0, 1.0)];

/// The AdamW scalars of the cases (step 3); also used by the CUDA tests.
pub fn step(decay: f64, grad_scale: f64) -> AdamWStep {
    AdamWStep {
        decay,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        bias_correction1: 1.0 - 0.9f64.powi(3),
        bias_correction2: 1.0 - 0.999f64.powi(3),
        lr: 1e-3,
        grad_scale,
    }
}

#[test]
fn fused_adamw_matches_the_formula() -> Result<()> {
    let n = 70_001; // more than one parallel chunk, not a multiple of it
    let (theta, g, m, v) = (f32t(1, n)?, f32t(2, n)?, f32t(3, n)?, f32t(4, n)?.abs()?);
    for (case, with_grad, with_state, decay, scale) in CASES {
        let s = step(decay, scale);
        let (gt, mt, vt) = (with_grad.then_some(&g), with_state.then_some(&m), with_state.then_some(&v));
        let (new, m1, v1) = adamw(&theta, gt, mt, vt, &s)?.expect("f32 CPU tensors take the fused path");
        let (th, gv, mv, vv) = (values(&theta)?, values(&g)?, values(&m)?, values(&v)?);
        let (mut want_t, mut want_m, mut want_v) = (vec![], vec![], vec![]);
        for i in 0..n {
            let gi = if with_grad { gv[i] * scale } else { 0.0 };
            let (m0, v0) = if with_state { (mv[i], vv[i]) } else { (0.0, 0.0) };
            let mi = 0.9 * m0 + 0.1 * gi;
            let vi = 0.999 * v0 + 0.001 * gi * gi;
            let denom = vi.sqrt() / s.bias_correction2.sqrt() + 1e-8;
            want_t.push(th[i] * decay - s.lr / s.bias_correction1 * mi / denom);
            want_m.push(mi);
            want_v.push(vi);
        }
        assert_close(&format!("adamw {case} theta"), &values(&new)?, &want_t, F32);
        assert_close(&format!("adamw {case} m"), &values(&m1)?, &want_m, F32);
        assert_close(&format!("adamw {case} v"), &values(&v1)?, &want_v, F32);
        assert_eq!(new.dims(), theta.dims());
    }
    let th64 = theta.to_dtype(DType::F64)?;
    let s = AdamWStep { decay: 1.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, bias_correction1: 0.1, bias_correction2: 0.001, lr: 1e-3, grad_scale: 1.0 };
    assert!(adamw(&th64, None, None, None, &s)?.is_none(), "f64 must take the composed path");
    assert!(adamw(&theta, Some(&f32t(5, 3)?), None, None, &s)?.is_none(), "mismatched sizes must be refused");
    Ok(())
}

#[test]
fn fused_norm_and_ema_match_the_formula() -> Result<()> {
    let n = 100_003;
    let (a, b) = (f32t(6, n)?, f32t(7, n)?);
    let (av, bv) = (values(&a)?, values(&b)?);
    let sq: f64 = av.iter().map(|x| x * x).sum();
    let got = sum_sq(&a).expect("f32 CPU");
    assert!((got - sq).abs() <= 1e-12 * sq, "sum_sq {got} vs {sq}");
    assert!(sum_sq(&a.to_dtype(DType::F64)?).is_none());
    // A non-contiguous view is refused rather than read in storage order.
    assert!(sum_sq(&Tensor::zeros((3, 4), DType::F32, &candle::Device::Cpu)?.t()?).is_none());
    let m = 0.996;
    let want: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| m * x + (1.0 - m) * y).collect();
    assert_close("ema", &values(&ema(&a, &b, m)?.expect("f32 CPU"))?, &want, F32);
    assert!(ema(&a, &f32t(8, 5)?, m)?.is_none());
    Ok(())
}

/// The composed twins give the fused passes' values on the CPU in f32 (same arithmetic, same
/// order) and run in f64, which the fused passes refuse.
#[test]
fn composed_updates_match_the_fused_passes() -> Result<()> {
    const SAME_F32: Tol = Tol { rel: 1e-6, abs: 1e-7 };
    let n = 70_001;
    let (theta, g, m, v) = (f32t(11, n)?, f32t(12, n)?, f32t(13, n)?, f32t(14, n)?.abs()?);
    for (case, with_grad, with_state, decay, scale) in CASES {
        let s = step(decay, scale);
        let (gt, mt, vt) = (with_grad.then_some(&g), with_state.then_some(&m), with_state.then_some(&v));
        let fused = adamw(&theta, gt, mt, vt, &s)?.expect("f32 CPU tensors take the fused path");
        let composed = adamw_composed(&theta, gt, mt, vt, &s)?;
        for (what, a, b) in [("theta", &composed.0, &fused.0), ("m", &composed.1, &fused.1), ("v", &composed.2, &fused.2)] {
            assert_close(&format!("adamw composed {case} {what}"), &values(a)?, &values(b)?, SAME_F32);
            assert_eq!(a.dtype(), DType::F32);
        }
        let f64s = |t: Option<&Tensor>| t.map(|t| t.to_dtype(DType::F64)).transpose();
        let (t64, g64, m64, v64) = (theta.to_dtype(DType::F64)?, f64s(gt)?, f64s(mt)?, f64s(vt)?);
        let wide = adamw_composed(&t64, g64.as_ref(), m64.as_ref(), v64.as_ref(), &s)?;
        assert_close(&format!("adamw composed {case} f64 theta"), &values(&wide.0)?, &values(&fused.0)?, F32);
    }
    let a = f32t(15, n)?;
    let (fused, composed) = (sum_sq(&a).expect("f32 CPU"), sum_sq_composed(&a)?);
    assert!((fused - composed).abs() <= 1e-12 * fused, "sum_sq fused {fused} vs composed {composed}");
    let b = f32t(16, n)?;
    let want = values(&ema(&a, &b, 0.996)?.expect("f32 CPU"))?;
    assert_close("ema composed", &values(&ema_composed(&a, &b, 0.996)?)?, &want, SAME_F32);
    Ok(())
}

/// The in-place passes change the buffers where they are (a clone taken before sees the new
/// values), give `adamw`/`ema`'s values bit for bit, and leave everything unchanged off the f32
/// CPU path.
#[test]
fn in_place_updates_write_where_the_buffers_are() -> Result<()> {
    let n = 70_001;
    let bits = |t: &Tensor| -> Result<Vec<u32>> { Ok(t.to_vec1::<f32>()?.iter().map(|x| x.to_bits()).collect()) };
    for (case, with_grad, _, decay, scale) in CASES {
        let s = step(decay, scale);
        let (theta, g, m, v) = (f32t(21, n)?, f32t(22, n)?, f32t(23, n)?, f32t(24, n)?.abs()?);
        let gt = with_grad.then_some(&g);
        let want = adamw(&theta, gt, Some(&m), Some(&v), &s)?.expect("f32 CPU");
        let (alias_t, alias_m, alias_v) = (theta.clone(), m.clone(), v.clone());
        assert!(adamw_in_place(&theta, gt, &m, &v, &s)?, "{case}: f32 CPU tensors are updated in place");
        for (what, got, w) in [("theta", &alias_t, &want.0), ("m", &alias_m, &want.1), ("v", &alias_v, &want.2)] {
            assert_eq!(bits(got)?, bits(w)?, "adamw in place {case} {what}");
        }
    }
    let (a, b) = (f32t(25, n)?, f32t(26, n)?);
    let want = ema(&a, &b, 0.996)?.expect("f32 CPU");
    let alias = a.clone();
    assert!(ema_in_place(&a, &b, 0.996)?);
    assert_eq!(bits(&alias)?, bits(&want)?, "ema in place");
    // Off the path nothing changes.
    let (t64, m64) = (f32t(27, 5)?.to_dtype(DType::F64)?, f32t(28, 5)?.to_dtype(DType::F64)?);
    let before = values(&t64)?;
    assert!(!adamw_in_place(&t64, None, &m64, &m64, &step(1.0, 1.0))?);
    assert!(!ema_in_place(&t64, &m64, 0.5)?);
    assert_eq!(values(&t64)?, before);
    let short = f32t(29, 3)?;
    assert!(!adamw_in_place(&f32t(30, 5)?, Some(&short), &f32t(31, 5)?, &f32t(32, 5)?, &step(1.0, 1.0))?, "mismatched sizes are refused");
    Ok(())
}
