//! `weight_norm_linear` against a direct-loop f64 reference: forward, the gradients of the
//! input, direction and magnitude against central finite differences and (every entry) against
//! the composed graph, a frozen magnitude, f32; bad arguments.

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::{reference, weight_norm_linear};

use crate::common::{F32, F64, assert_close, check_grads, dot, tensor, values, var};

/// `y[r, j] = g_j Σ_i z[r, i] v[j, i] / sqrt(Σ_i v[j, i]²)`.
fn direct(z: &[f64], v: &[f64], g: &[f64], b: usize) -> Vec<f64> {
    z.chunks(b)
        .flat_map(|zr| {
            v.chunks(b).zip(g).map(move |(vj, gj)| {
                let norm = vj.iter().map(|x| x * x).sum::<f64>().sqrt();
                gj * zr.iter().zip(vj).map(|(a, c)| a * c).sum::<f64>() / norm
            })
        })
        .collect()
}

#[test]
fn weight_norm_linear_matches_reference_and_composed_graph() -> Result<()> {
    for (seed, n, k, b) in [(1u64, 3, 5, 4), (2, 1, 7, 3), (3, 6, 2, 8)] {
        let z = var(seed, &[n, b])?;
        let v = var(seed + 10, &[k, b])?;
        let g = Var::from_tensor(&(tensor(seed + 20, &[k, 1])? + 1.5)?)?;
        let expected = direct(&values(&z)?, &values(&v)?, &values(&g)?, b);
        let what = format!("weight_norm_linear n{n} k{k} b{b}");
        let f = || weight_norm_linear(&z, &v, &g);
        assert_eq!(f()?.dims(), [n, k]);
        check_grads(&what, &[&z, &v, &g], &f, &expected)?;
        let r = tensor(999, &[n, k])?;
        let fused = dot(&f()?, &r)?.backward()?;
        let composed_y = reference::weight_norm_linear(&z, &v, &g)?;
        assert_close(&format!("{what} composed forward"), &values(&composed_y)?, &expected, F64);
        let composed = dot(&composed_y, &r)?.backward()?;
        for (i, x) in [&z, &v, &g].into_iter().enumerate() {
            let grad = |s: &candle::backprop::GradStore| s.get(x).map(values).transpose();
            let (a, e) = (grad(&fused)?.expect("fused gradient"), grad(&composed)?.expect("composed gradient"));
            assert_close(&format!("{what} gradient {i} against the composed graph"), &a, &e, F64);
        }
        // A frozen (detached) magnitude gets no gradient; the others are unchanged.
        let frozen = dot(&weight_norm_linear(&z, &v, &g.as_tensor().detach())?, &r)?.backward()?;
        assert!(frozen.get(&g).is_none(), "{what}: a detached magnitude got a gradient");
        assert_close(&format!("{what} frozen g, dv"), &values(frozen.get(&v).expect("dv"))?, &values(fused.get(&v).expect("dv"))?, F64);
        let y32 = weight_norm_linear(&z.to_dtype(DType::F32)?, &v.to_dtype(DType::F32)?, &g.to_dtype(DType::F32)?)?;
        assert_eq!(y32.dtype(), DType::F32);
        assert_close(&format!("{what} f32"), &values(&y32)?, &expected, F32);
    }
    Ok(())
}

#[test]
fn weight_norm_linear_bad_arguments_are_errors() -> Result<()> {
    let msg = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let z = tensor(1, &[2, 3])?;
    let e = msg(weight_norm_linear(&z, &tensor(2, &[4, 5])?, &tensor(3, &[4, 1])?));
    assert!(e.contains("weight_norm_linear") && e.contains("[4, 5]"), "{e}");
    let e = msg(weight_norm_linear(&z, &tensor(2, &[4, 3])?, &tensor(3, &[4])?));
    assert!(e.contains("weight_norm_linear") && e.contains("[4]"), "{e}");
    let e = msg(weight_norm_linear(&tensor(1, &[2, 3, 1])?, &tensor(2, &[4, 3])?, &tensor(3, &[4, 1])?));
    assert!(e.contains("[2, 3, 1]"), "{e}");
    Ok(())
}
