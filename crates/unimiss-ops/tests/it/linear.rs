//! `linear` against a direct-loop f64 reference: forward, every gradient against central finite
//! differences, with and without bias, any leading shape; bad arguments.

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::linear;

use crate::common::{F32, assert_close, check_grads, dot, tensor, values, var};

/// `y[r, o] = Σ_i x[r, i] w[o, i] + b[o]` over rows `r` of the flattened leading axes.
fn reference(x: &[f64], w: &[f64], b: Option<&[f64]>, inp: usize, out: usize) -> Vec<f64> {
    x.chunks(inp)
        .flat_map(|row| {
            (0..out).map(move |o| row.iter().zip(&w[o * inp..(o + 1) * inp]).map(|(a, c)| a * c).sum::<f64>() + b.map_or(0.0, |b| b[o]))
        })
        .collect()
}

#[test]
fn linear_matches_reference() -> Result<()> {
    for (seed, lead, inp, out, bias) in [(1u64, vec![2, 3], 5, 4, true), (2, vec![7], 3, 6, false), (3, vec![2, 1, 3], 8, 1, true)] {
        let mut dims = lead.clone();
        dims.push(inp);
        let x = var(seed, &dims)?;
        let w = var(seed + 10, &[out, inp])?;
        let b = var(seed + 20, &[out])?;
        let bv = values(b.as_tensor())?;
        let expected = reference(&values(&x)?, &values(&w)?, bias.then_some(bv.as_slice()), inp, out);
        let f = || linear(&x, &w, bias.then_some(b.as_tensor()));
        let y = f()?;
        let mut want_dims = lead.clone();
        want_dims.push(out);
        assert_eq!(y.dims(), want_dims.as_slice());
        let what = format!("linear {dims:?} -> {out} bias {bias}");
        let vars: Vec<&Var> = if bias { vec![&x, &w, &b] } else { vec![&x, &w] };
        check_grads(&what, &vars, &f, &expected)?;
        let grads = dot(&f()?, &tensor(999, &want_dims)?)?.backward()?;
        if !bias {
            assert!(grads.get(&b).is_none(), "{what}: an unused bias got a gradient");
        }
        // f32 kernel against the f64 reference.
        let y32 = linear(&x.to_dtype(DType::F32)?, &w.to_dtype(DType::F32)?, bias.then(|| b.to_dtype(DType::F32)).transpose()?.as_ref())?;
        assert_close(&format!("{what} f32"), &values(&y32)?, &expected, F32);
    }
    Ok(())
}

#[test]
fn linear_bad_arguments_are_errors() -> Result<()> {
    let msg = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let x = tensor(1, &[2, 3])?;
    let e = msg(linear(&x, &tensor(2, &[4, 5])?, None));
    assert!(e.contains("linear") && e.contains("[2, 3]") && e.contains("[4, 5]"), "{e}");
    let e = msg(linear(&x, &tensor(2, &[4, 3])?, Some(&tensor(3, &[5])?)));
    assert!(e.contains("linear") && e.contains("[5]"), "{e}");
    let e = msg(linear(&x, &tensor(2, &[4, 3, 1])?, None));
    assert!(e.contains("linear") && e.contains("[4, 3, 1]"), "{e}");
    Ok(())
}
