//! Instance norm, layer norm, softmax and LeakyReLU against direct-loop f64 references.

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::{instance_norm, layer_norm, leaky_relu, softmax_last_dim};

use crate::common::{F32, F64, assert_close, check_grads, tensor, values, var};

/// Normalises each consecutive group of `len` values (biased variance).
fn normalise_groups(x: &[f64], len: usize, eps: f64) -> Vec<f64> {
    x.chunks(len)
        .flat_map(|g| {
            let mean = g.iter().sum::<f64>() / len as f64;
            let var = g.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / len as f64;
            g.iter().map(move |v| (v - mean) / (var + eps).sqrt()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn instance_norm_matches_reference() -> Result<()> {
    for (seed, dims) in [(1u64, vec![2, 3, 3, 4, 5]), (2, vec![3, 2, 5, 7])] {
        let c = dims[1];
        let spatial: usize = dims[2..].iter().product();
        let x = var(seed, &dims)?;
        // Shift and scale so that the normalisation matters.
        let (w, b) = (var(seed + 1, &[c])?, var(seed + 2, &[c])?);
        let xn = normalise_groups(&values(&x)?, spatial, 1e-5);
        let (wv, bv) = (values(&w)?, values(&b)?);
        let expected: Vec<f64> =
            xn.iter().enumerate().map(|(i, v)| v * wv[(i / spatial) % c] + bv[(i / spatial) % c]).collect();
        let f = || instance_norm(&x, Some(&w), Some(&b), 1e-5);
        check_grads(&format!("instance_norm {dims:?}"), &[&x, &w, &b], &f, &expected)?;
        let plain = instance_norm(&x, None, None, 1e-5)?;
        assert_close("instance_norm without affine", &values(&plain)?, &xn, F64);
        let y32 = instance_norm(&x.to_dtype(DType::F32)?, Some(&w.to_dtype(DType::F32)?), Some(&b.to_dtype(DType::F32)?), 1e-5)?;
        assert_close("instance_norm f32", &values(&y32)?, &expected, F32);
    }
    Ok(())
}

#[test]
fn layer_norm_matches_reference() -> Result<()> {
    let dims = [2, 5, 7];
    let x = var(11, &dims)?;
    let (w, b) = (var(12, &[7])?, var(13, &[7])?);
    let xn = normalise_groups(&values(&x)?, 7, 1e-6);
    let (wv, bv) = (values(&w)?, values(&b)?);
    let expected: Vec<f64> = xn.iter().enumerate().map(|(i, v)| v * wv[i % 7] + bv[i % 7]).collect();
    let f = || layer_norm(&x, &w, &b, 1e-6);
    check_grads("layer_norm", &[&x, &w, &b], &f, &expected)?;
    let y32 = layer_norm(&x.to_dtype(DType::F32)?, &w.to_dtype(DType::F32)?, &b.to_dtype(DType::F32)?, 1e-6)?;
    assert_close("layer_norm f32", &values(&y32)?, &expected, F32);
    // A strided (transposed) input gives the same result as its contiguous copy.
    let xt = x.as_tensor().transpose(0, 1)?;
    let y_t = layer_norm(&xt, &w, &b, 1e-6)?;
    let y_c = layer_norm(&xt.contiguous()?, &w, &b, 1e-6)?;
    assert_close("layer_norm strided", &values(&y_t)?, &values(&y_c)?, F64);
    Ok(())
}

#[test]
fn softmax_matches_reference() -> Result<()> {
    let x = Var::from_tensor(&(tensor(21, &[3, 4, 9])? * 5.0)?)?;
    let expected: Vec<f64> = values(&x)?
        .chunks(9)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
        })
        .collect();
    check_grads("softmax", &[&x], &|| softmax_last_dim(&x), &expected)?;
    let y32 = softmax_last_dim(&x.to_dtype(DType::F32)?)?;
    assert_close("softmax f32", &values(&y32)?, &expected, F32);
    Ok(())
}

#[test]
fn leaky_relu_matches_reference() -> Result<()> {
    let x = var(31, &[4, 3, 5])?;
    let expected: Vec<f64> = values(&x)?.iter().map(|&v| if v > 0.0 { v } else { 0.01 * v }).collect();
    check_grads("leaky_relu", &[&x], &|| leaky_relu(&x, 0.01), &expected)
}

/// At exactly 0 both paths give PyTorch's gradient `negative_slope` (`self > 0 ? g : g·slope`),
/// and 1 / slope on either side, in f32 and f64.
#[test]
fn leaky_relu_gradient_at_zero_is_the_slope_on_both_paths() -> Result<()> {
    let vals = [-1.5f64, -0.0, 0.0, 0.0, 2.0, -1e-30, 1e-30];
    let want: Vec<f64> = vals.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.25 }).collect();
    for dtype in [DType::F64, DType::F32] {
        let x = Var::from_tensor(&Tensor::new(&vals[..], &candle::Device::Cpu)?.to_dtype(dtype)?)?;
        for (name, y) in [
            ("kernel", leaky_relu(x.as_tensor(), 0.25)?),
            ("composed", unimiss_ops::reference::leaky_relu(x.as_tensor(), 0.25)?),
        ] {
            let g = y.sum_all()?.backward()?;
            let g = values(g.get(x.as_tensor()).ok_or_else(|| candle::Error::Msg(format!("{name}: no gradient")))?)?;
            assert_eq!(g, want, "{name} {dtype:?} gradient of leaky_relu(0.25) at {vals:?}");
        }
    }
    Ok(())
}

#[test]
fn norm_bad_arguments_are_errors() -> Result<()> {
    let x = tensor(1, &[2, 3, 4])?;
    let msg = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = msg(instance_norm(&x.flatten_all()?, None, None, 1e-5));
    assert!(e.contains("instance_norm") && e.contains("[24]"), "{e}");
    let e = msg(instance_norm(&x, Some(&tensor(2, &[4])?), None, 1e-5));
    assert!(e.contains("instance_norm") && e.contains("[4]"), "{e}");
    let e = msg(layer_norm(&x, &tensor(2, &[3])?, &tensor(3, &[4])?, 1e-5));
    assert!(e.contains("layer_norm") && e.contains("[3]"), "{e}");
    let e = msg(softmax_last_dim(&Tensor::new(1f64, &candle::Device::Cpu)?));
    assert!(e.contains("softmax_last_dim"), "{e}");
    Ok(())
}
