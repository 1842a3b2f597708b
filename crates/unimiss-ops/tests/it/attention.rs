//! `attention` against a direct-loop f64 reference: forward, every gradient against central
//! finite differences and against the composed candle graph (all entries), several heads, more
//! query rows than one block, a single query row (the class-token-only last block); bad arguments.

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::{attention, reference};

use crate::common::{F32, F64, assert_close, check_grads, dot, tensor, values, var};

/// Per batch, head and query row: softmax over keys of `scale · q·k`, then the weighted values.
fn direct(q: &[f64], kv: &[f64], (b, nq, nk, c, h): (usize, usize, usize, usize, usize), scale: f64) -> Vec<f64> {
    let d = c / h;
    let mut out = vec![0.0; b * nq * c];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..nq {
                let qi = &q[(bi * nq + i) * c + hi * d..][..d];
                let key = |j: usize| &kv[(bi * nk + j) * 2 * c + hi * d..][..d];
                let val = |j: usize| &kv[(bi * nk + j) * 2 * c + c + hi * d..][..d];
                let s: Vec<f64> = (0..nk).map(|j| scale * qi.iter().zip(key(j)).map(|(a, b)| a * b).sum::<f64>()).collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for (t, vv) in val(j).iter().enumerate() {
                        out[(bi * nq + i) * c + hi * d + t] += ej / z * vv;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_reference_and_composed_graph() -> Result<()> {
    // (b, nq, nk, c, heads): one head; two heads; more query rows than a block (nk 3 → 256 rows);
    // one query row.
    for (seed, (b, nq, nk, c, h)) in [(1u64, (2, 5, 3, 4, 1)), (2, (1, 4, 6, 6, 2)), (3, (2, 300, 3, 4, 2)), (4, (3, 1, 7, 8, 4))] {
        let scale = (c as f64 / h as f64).powf(-0.5);
        let q = var(seed, &[b, nq, c])?;
        let kv = var(seed + 10, &[b, nk, 2 * c])?;
        let expected = direct(&values(&q)?, &values(&kv)?, (b, nq, nk, c, h), scale);
        let what = format!("attention b{b} nq{nq} nk{nk} c{c} h{h}");
        let f = || attention(&q, &kv, h, scale);
        assert_eq!(f()?.dims(), [b, nq, c]);
        check_grads(&what, &[&q, &kv], &f, &expected)?;
        // Every gradient entry against the composed graph's autograd.
        let r = tensor(999, &[b, nq, c])?;
        let fused = dot(&f()?, &r)?.backward()?;
        let composed_y = reference::attention(&q, &kv, h, scale)?;
        assert_close(&format!("{what} composed forward"), &values(&composed_y)?, &expected, F64);
        let composed = dot(&composed_y, &r)?.backward()?;
        for (i, v) in [&q, &kv].into_iter().enumerate() {
            let grad = |g: &candle::backprop::GradStore, v: &Var| g.get(v).map(values).transpose();
            let (a, e) = (grad(&fused, v)?.expect("fused gradient"), grad(&composed, v)?.expect("composed gradient"));
            assert_close(&format!("{what} gradient {i} against the composed graph"), &a, &e, F64);
        }
        // The f32 kernel against the f64 reference.
        let y32 = attention(&q.to_dtype(DType::F32)?, &kv.to_dtype(DType::F32)?, h, scale)?;
        assert_eq!(y32.dtype(), DType::F32);
        assert_close(&format!("{what} f32"), &values(&y32)?, &expected, F32);
    }
    Ok(())
}

#[test]
fn attention_bad_arguments_are_errors() -> Result<()> {
    let msg = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let q = tensor(1, &[2, 3, 4])?;
    let e = msg(attention(&q, &tensor(2, &[2, 5, 6])?, 1, 1.0));
    assert!(e.contains("attention") && e.contains("[2, 5, 6]"), "{e}");
    let e = msg(attention(&q, &tensor(2, &[1, 5, 8])?, 1, 1.0));
    assert!(e.contains("attention") && e.contains("[1, 5, 8]"), "{e}");
    let e = msg(attention(&q, &tensor(2, &[2, 5, 8])?, 3, 1.0));
    assert!(e.contains("4 channels") && e.contains("3 heads"), "{e}");
    let e = msg(attention(&tensor(1, &[3, 4])?, &tensor(2, &[2, 5, 8])?, 1, 1.0));
    assert!(e.contains("[B, Nq, C]"), "{e}");
    Ok(())
}
