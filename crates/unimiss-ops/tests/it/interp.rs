//! Interpolation against direct per-point f64 references written from PyTorch's definitions.

use candle::{DType, Result, Tensor};
use unimiss_ops::interp::{Resize, interpolate_bicubic2d, interpolate_bilinear2d, interpolate_trilinear3d};

use crate::common::{F32, F64, FD, assert_close, dot, finite_diff, probe_indices, tensor, values, var};

fn cubic(u: f64) -> f64 {
    let a = -0.75;
    let u = u.abs();
    if u <= 1.0 {
        (a + 2.0) * u.powi(3) - (a + 3.0) * u.powi(2) + 1.0
    } else if u < 2.0 {
        a * u.powi(3) - 5.0 * a * u.powi(2) + 8.0 * a * u - 4.0 * a
    } else {
        0.0
    }
}

/// (output length, 1/scale) of an axis, as PyTorch resolves it.
fn resolve(r: Resize, n_in: usize) -> (usize, f64) {
    match r {
        Resize::Size(n) => (n, n_in as f64 / n as f64),
        Resize::Scale(s) => ((n_in as f64 * s).floor() as usize, 1.0 / s),
    }
}

/// Taps `(index, weight)` of output `o` on one axis, straight from PyTorch's formulas.
fn taps(cubic_mode: bool, n_in: usize, n_out: usize, step: f64, o: usize) -> Vec<(usize, f64)> {
    if cubic_mode {
        let x = step * (o as f64 + 0.5) - 0.5;
        let i = x.floor() as isize;
        let t = x - i as f64;
        (-1..=2)
            .map(|j| ((i + j).clamp(0, n_in as isize - 1) as usize, cubic(t - j as f64)))
            .collect()
    } else if n_in == n_out {
        vec![(o, 1.0)]
    } else {
        let x = (step * (o as f64 + 0.5) - 0.5).max(0.0);
        let i0 = (x.floor() as usize).min(n_in - 1);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        let l = x - i0 as f64;
        vec![(i0, 1.0 - l), (i1, l)]
    }
}

/// Direct resize of a row-major `[planes, dims..]` buffer.
fn reference(x: &[f64], planes: usize, dims: &[usize], targets: &[Resize], cubic_mode: bool) -> (Vec<f64>, Vec<usize>) {
    let axes: Vec<(usize, f64)> = dims.iter().zip(targets).map(|(&n, &r)| resolve(r, n)).collect();
    let out_dims: Vec<usize> = axes.iter().map(|a| a.0).collect();
    let in_len: usize = dims.iter().product();
    let out_len: usize = out_dims.iter().product();
    let mut y = vec![0.0; planes * out_len];
    for p in 0..planes {
        for oi in 0..out_len {
            // Decompose the output index and accumulate the tensor product of per-axis taps.
            let mut rem = oi;
            let mut coords = vec![0; dims.len()];
            for a in (0..dims.len()).rev() {
                coords[a] = rem % out_dims[a];
                rem /= out_dims[a];
            }
            let per_axis: Vec<Vec<(usize, f64)>> = (0..dims.len())
                .map(|a| taps(cubic_mode, dims[a], out_dims[a], axes[a].1, coords[a]))
                .collect();
            let mut acc = vec![(0usize, 1.0f64)];
            for (a, t) in per_axis.iter().enumerate() {
                acc = acc.iter().flat_map(|&(idx, w)| t.iter().map(move |&(i, tw)| (idx * dims[a] + i, w * tw))).collect();
            }
            y[p * out_len + oi] = acc.iter().map(|&(i, w)| w * x[p * in_len + i]).sum();
        }
    }
    (y, out_dims)
}

fn check(
    what: &str,
    dims: &[usize],
    targets: &[Resize],
    cubic_mode: bool,
    op: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<()> {
    let x = var(7, dims)?;
    let planes = dims[0] * dims[1];
    let (expected, out_dims) = reference(&values(&x)?, planes, &dims[2..], targets, cubic_mode);
    let y = op(&x)?;
    assert_eq!(&y.dims()[2..], out_dims.as_slice(), "{what}: output shape");
    assert_close(&format!("{what} forward"), &values(&y)?, &expected, F64);
    let y32 = op(&x.to_dtype(DType::F32)?)?;
    assert_close(&format!("{what} f32"), &values(&y32)?, &expected, F32);
    let r = tensor(8, y.dims())?;
    let grads = dot(&y, &r)?.backward()?;
    let g = values(grads.get(&x).ok_or_else(|| candle::Error::Msg("no gradient".into()))?)?;
    let idx = probe_indices(g.len(), 8);
    let numeric = finite_diff(&x, &idx, &|| dot(&op(&x)?, &r)?.to_scalar::<f64>())?;
    let analytic: Vec<f64> = idx.iter().map(|&i| g[i]).collect();
    assert_close(&format!("{what} finite differences"), &analytic, &numeric, FD);
    Ok(())
}

#[test]
fn bicubic_matches_reference() -> Result<()> {
    use Resize::{Scale, Size};
    // The positional-embedding case: scale (W + 0.1) / n, downsampling.
    check("bicubic scale down", &[1, 3, 14, 14], &[Scale(6.1 / 14.0), Scale(6.1 / 14.0)], true, &|x| {
        interpolate_bicubic2d(x, Scale(6.1 / 14.0), Scale(6.1 / 14.0))
    })?;
    check("bicubic sizes", &[2, 2, 5, 7], &[Size(9), Size(4)], true, &|x| {
        interpolate_bicubic2d(x, Size(9), Size(4))
    })?;
    check("bicubic scale up", &[1, 2, 7, 6], &[Scale(24.1 / 7.0), Scale(1.5)], true, &|x| {
        interpolate_bicubic2d(x, Scale(24.1 / 7.0), Scale(1.5))
    })?;
    Ok(())
}

#[test]
fn bicubic_pos_embed_weights() -> Result<()> {
    // reference-algorithm §1.7: 56 -> 24 with s = 24.1/56, output 0 reads inputs 0, 1, 2 with
    // weights ≈ 0.3201, 0.7910, -0.1111 (the clamped tap -1 folds into input 0).
    let dev = candle::Device::Cpu;
    for i in 0..3 {
        let mut e = vec![0f64; 56];
        e[i] = 1.0;
        let x = Tensor::from_vec(e, (1, 1, 1, 56), &dev)?;
        let y = interpolate_bicubic2d(&x, Resize::Size(1), Resize::Scale(24.1 / 56.0))?;
        assert_eq!(y.dims(), [1, 1, 1, 24]);
        let w = values(&y)?[0];
        let expected = [0.3201, 0.7910, -0.1111][i];
        assert!((w - expected).abs() < 1e-4, "weight of input {i}: {w} vs {expected}");
    }
    Ok(())
}

#[test]
fn trilinear_matches_reference() -> Result<()> {
    use Resize::{Scale, Size};
    // Positional-embedding case: the depth axis keeps its length and is copied (PyTorch CPU).
    let t = [Scale(8.1 / 8.0), Scale(6.1 / 4.0), Scale(3.1 / 4.0)];
    check("trilinear pos-embed", &[1, 2, 8, 4, 4], &t, false, &|x| interpolate_trilinear3d(x, t[0], t[1], t[2]))?;
    let t = [Size(5), Size(3), Size(8)];
    check("trilinear sizes", &[2, 1, 3, 6, 5], &t, false, &|x| interpolate_trilinear3d(x, t[0], t[1], t[2]))?;
    Ok(())
}

#[test]
fn bilinear_matches_reference() -> Result<()> {
    use Resize::{Scale, Size};
    check("bilinear", &[2, 3, 5, 6], &[Size(10), Scale(0.7)], false, &|x| {
        interpolate_bilinear2d(x, Size(10), Scale(0.7))
    })
}

#[test]
fn interp_bad_arguments_are_errors() -> Result<()> {
    let x = tensor(1, &[1, 2, 4, 4])?;
    let msg = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = msg(interpolate_trilinear3d(&x, Resize::Size(2), Resize::Size(2), Resize::Size(2)));
    assert!(e.contains("interpolate_trilinear3d") && e.contains("[1, 2, 4, 4]"), "{e}");
    let e = msg(interpolate_bicubic2d(&x, Resize::Scale(0.0), Resize::Size(2)));
    assert!(e.contains("interpolate_bicubic2d") && e.contains("scale"), "{e}");
    let e = msg(interpolate_bilinear2d(&x, Resize::Size(0), Resize::Size(2)));
    assert!(e.contains("interpolate_bilinear2d"), "{e}");
    Ok(())
}
