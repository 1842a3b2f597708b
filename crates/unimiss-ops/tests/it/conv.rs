//! Convolutions and transposed convolutions against direct-loop f64 references.

use candle::{DType, Result, Tensor, Var};
use unimiss_ops::{ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d};

use crate::common::{F32, F64, FD, assert_close, dot, finite_diff, probe_indices, tensor, values, var};

/// One convolution case in 3D form (`x [n, c, d, h, w]`, kernel `[kd, kh, kw]`).
#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    c: usize,
    o: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
    dilation: [usize; 3],
    /// Transposed convolutions only.
    output_padding: [usize; 3],
    bias: bool,
}

/// Results of a reference run: output and the gradients of `sum(y * r)`.
struct Reference {
    y: Vec<f64>,
    gx: Vec<f64>,
    gw: Vec<f64>,
    gb: Vec<f64>,
}

fn idx5(d: [usize; 5], i: [usize; 5]) -> usize {
    (((i[0] * d[1] + i[1]) * d[2] + i[2]) * d[3] + i[3]) * d[4] + i[4]
}

/// Visits every (output position, input position, kernel tap) triple of a forward convolution
/// with geometry `input -> out`, calling `f(out_pos, in_pos, tap)`.
fn for_each_tap(case: &Case, out: [usize; 3], mut f: impl FnMut([usize; 3], [usize; 3], [usize; 3])) {
    for od in 0..out[0] {
        for oh in 0..out[1] {
            for ow in 0..out[2] {
                let o = [od, oh, ow];
                for kd in 0..case.kernel[0] {
                    for kh in 0..case.kernel[1] {
                        for kw in 0..case.kernel[2] {
                            let k = [kd, kh, kw];
                            let mut pos = [0usize; 3];
                            let mut inside = true;
                            for a in 0..3 {
                                let p = (o[a] * case.stride[a] + k[a] * case.dilation[a]) as isize
                                    - case.padding[a] as isize;
                                inside &= p >= 0 && (p as usize) < case.input[a];
                                pos[a] = p.max(0) as usize;
                            }
                            if inside {
                                f(o, pos, k);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn conv_out(case: &Case) -> [usize; 3] {
    std::array::from_fn(|a| {
        (case.input[a] + 2 * case.padding[a] - case.dilation[a] * (case.kernel[a] - 1) - 1) / case.stride[a] + 1
    })
}

/// Output size of a transposed convolution.
fn transpose_out(case: &Case) -> [usize; 3] {
    std::array::from_fn(|a| {
        (case.input[a] - 1) * case.stride[a] + case.dilation[a] * (case.kernel[a] - 1) + case.output_padding[a] + 1
            - 2 * case.padding[a]
    })
}

/// Direct-loop convolution or transposed convolution (a scatter: the adjoint of the forward
/// convolution from its output size back to its input size) and its gradients for the upstream
/// gradient `r`.
fn reference(kind: Kind, case: &Case, x: &[f64], w: &[f64], b: &[f64], r: &[f64]) -> Reference {
    // The forward convolution that relates the two sides: `big` is its input, `small` its output.
    let (big, small) = match kind {
        Kind::Conv => (case.input, conv_out(case)),
        Kind::Transpose => (transpose_out(case), case.input),
    };
    let geometry = Case { input: big, ..*case };
    let (xs, ys) = if kind == Kind::Conv { (big, small) } else { (small, big) };
    let xd = [case.n, case.c, xs[0], xs[1], xs[2]];
    let yd = [case.n, case.o, ys[0], ys[1], ys[2]];
    let wd = if kind == Kind::Conv { [case.o, case.c, 0, 0, 0] } else { [case.c, case.o, 0, 0, 0] };
    let wd = [wd[0], wd[1], case.kernel[0], case.kernel[1], case.kernel[2]];
    let mut y = vec![0.0; yd.iter().product()];
    let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; case.o]);
    for n in 0..case.n {
        for c in 0..case.c {
            for o in 0..case.o {
                for_each_tap(&geometry, small, |sp, bp, k| {
                    let (xp, yp) = if kind == Kind::Conv { (bp, sp) } else { (sp, bp) };
                    let (w0, w1) = if kind == Kind::Conv { (o, c) } else { (c, o) };
                    let xi = idx5(xd, [n, c, xp[0], xp[1], xp[2]]);
                    let yi = idx5(yd, [n, o, yp[0], yp[1], yp[2]]);
                    let wi = idx5(wd, [w0, w1, k[0], k[1], k[2]]);
                    y[yi] += x[xi] * w[wi];
                    gx[xi] += r[yi] * w[wi];
                    gw[wi] += r[yi] * x[xi];
                });
            }
        }
    }
    if case.bias {
        let per_channel: usize = ys.iter().product();
        for (i, v) in y.iter_mut().enumerate() {
            let o = (i / per_channel) % case.o;
            *v += b[o];
            gb[o] += r[i];
        }
    }
    Reference { y, gx, gw, gb }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Conv,
    Transpose,
}

/// Runs `case` through the op under test (2D when depth is 1 and `planar`), in `dtype`.
fn run_op(kind: Kind, case: &Case, planar: bool, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let two = |v: [usize; 3]| [v[1], v[2]];
    match (kind, planar) {
        (Kind::Conv, false) => {
            conv3d(x, w, b, &ConvParams::new(case.stride, case.padding).with_dilation(case.dilation))
        }
        (Kind::Conv, true) => conv2d(
            &x.squeeze(2)?,
            &w.squeeze(2)?,
            b,
            &ConvParams::new(two(case.stride), two(case.padding)).with_dilation(two(case.dilation)),
        )?
        .unsqueeze(2),
        (Kind::Transpose, false) => conv_transpose3d(
            x,
            w,
            b,
            &ConvTransposeParams::new(case.stride)
                .with_padding(case.padding, case.output_padding)
                .with_dilation(case.dilation),
        ),
        (Kind::Transpose, true) => conv_transpose2d(
            &x.squeeze(2)?,
            &w.squeeze(2)?,
            b,
            &ConvTransposeParams::new(two(case.stride))
                .with_padding(two(case.padding), two(case.output_padding))
                .with_dilation(two(case.dilation)),
        )?
        .unsqueeze(2),
    }
}

/// Checks forward and all gradients against the reference in f64 and f32, and probes the
/// gradients with central finite differences.
fn check(kind: Kind, case: &Case, seed: u64) -> Result<()> {
    let planar = case.input[0] == 1 && case.kernel[0] == 1;
    let xdims = [case.n, case.c, case.input[0], case.input[1], case.input[2]];
    let wdims = match kind {
        Kind::Conv => [case.o, case.c, case.kernel[0], case.kernel[1], case.kernel[2]],
        Kind::Transpose => [case.c, case.o, case.kernel[0], case.kernel[1], case.kernel[2]],
    };
    let (x, w, b) = (var(seed, &xdims)?, var(seed + 1, &wdims)?, var(seed + 2, &[case.o])?);
    let bias = case.bias.then(|| b.as_tensor().clone());
    let y = run_op(kind, case, planar, &x, &w, bias.as_ref())?;
    let r = tensor(seed + 3, y.dims())?;
    let rv = values(&r)?;
    let (xv, wv, bv) = (values(&x)?, values(&w)?, values(&b)?);
    let reference = reference(kind, case, &xv, &wv, &bv, &rv);
    let what = format!("{kind:?} {case:?}");
    assert_close(&format!("{what} forward"), &values(&y)?, &reference.y, F64);
    let grads = dot(&y, &r)?.backward()?;
    let grad = |v: &Var| -> Result<Vec<f64>> {
        values(grads.get(v).ok_or_else(|| candle::Error::Msg("missing gradient".into()))?)
    };
    assert_close(&format!("{what} grad x"), &grad(&x)?, &reference.gx, F64);
    assert_close(&format!("{what} grad w"), &grad(&w)?, &reference.gw, F64);
    if case.bias {
        assert_close(&format!("{what} grad bias"), &grad(&b)?, &reference.gb, F64);
    }

    // f32 forward and gradients against the same reference.
    let (x32, w32) = (Var::from_tensor(&x.to_dtype(DType::F32)?)?, Var::from_tensor(&w.to_dtype(DType::F32)?)?);
    let b32 = bias.as_ref().map(|b| b.to_dtype(DType::F32)).transpose()?;
    let y32 = run_op(kind, case, planar, &x32, &w32, b32.as_ref())?;
    assert_close(&format!("{what} f32 forward"), &values(&y32)?, &reference.y, F32);
    let g32 = dot(&y32, &r)?.backward()?;
    let gx32 = g32.get(&x32).ok_or_else(|| candle::Error::Msg("missing f32 gradient".into()))?;
    assert_close(&format!("{what} f32 grad x"), &values(gx32)?, &reference.gx, F32);

    // Central finite differences on a few entries of x and w.
    let loss = || -> Result<f64> {
        let y = run_op(kind, case, planar, &x, &w, bias.as_ref())?;
        dot(&y, &r)?.to_scalar::<f64>()
    };
    for (name, v, analytic) in [("x", &x, &reference.gx), ("w", &w, &reference.gw)] {
        let idx = probe_indices(analytic.len(), 6);
        let numeric = finite_diff(v, &idx, &loss)?;
        let expected: Vec<f64> = idx.iter().map(|&i| analytic[i]).collect();
        assert_close(&format!("{what} finite differences {name}"), &numeric, &expected, FD);
    }
    Ok(())
}

fn case(n: usize, c: usize, o: usize, input: [usize; 3], kernel: [usize; 3]) -> Case {
    Case {
        n,
        c,
        o,
        input,
        kernel,
        stride: [1; 3],
        padding: [0; 3],
        dilation: [1; 3],
        output_padding: [0; 3],
        bias: true,
    }
}

#[test]
fn conv3d_matches_reference() -> Result<()> {
    let cases = [
        // The MiT stem pattern: k7 s(1,2,2) p3, scaled down.
        Case { stride: [1, 2, 2], padding: [3; 3], bias: false, ..case(2, 1, 3, [5, 9, 8], [7; 3]) },
        // k3 s2 p1 with odd sizes.
        Case { stride: [2; 3], padding: [1; 3], ..case(2, 3, 4, [5, 7, 6], [3; 3]) },
        // kernel == stride (spatial reduction), remainder dropped.
        Case { stride: [2; 3], ..case(1, 4, 3, [4, 5, 7], [2; 3]) },
        // stride > kernel, dilation, asymmetric everything.
        Case { stride: [3, 1, 4], padding: [0, 2, 1], dilation: [1, 2, 1], ..case(3, 2, 2, [6, 5, 9], [2, 3, 2]) },
    ];
    for (i, c) in cases.iter().enumerate() {
        check(Kind::Conv, c, 100 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn conv2d_matches_reference() -> Result<()> {
    let cases = [
        Case { stride: [1, 2, 2], padding: [0, 3, 3], ..case(2, 3, 4, [1, 11, 10], [1, 7, 7]) },
        Case { stride: [1, 2, 3], padding: [0, 1, 2], dilation: [1, 2, 1], ..case(3, 2, 3, [1, 9, 8], [1, 3, 2]) },
        Case { stride: [1, 3, 3], ..case(2, 5, 2, [1, 10, 7], [1, 3, 3]) },
    ];
    for (i, c) in cases.iter().enumerate() {
        check(Kind::Conv, c, 200 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn conv_transpose3d_matches_reference() -> Result<()> {
    let cases = [
        // The decoder pattern: k = s = 2.
        Case { stride: [2; 3], ..case(2, 4, 3, [1, 3, 3], [2; 3]) },
        Case { stride: [2; 3], padding: [1; 3], output_padding: [1, 0, 1], ..case(2, 3, 2, [3, 4, 3], [3; 3]) },
        Case { stride: [3, 1, 2], padding: [0, 2, 1], dilation: [1, 2, 2], output_padding: [2, 0, 1], ..case(1, 2, 3, [2, 4, 5], [2, 3, 2]) },
    ];
    for (i, c) in cases.iter().enumerate() {
        check(Kind::Transpose, c, 300 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn conv_transpose2d_matches_reference() -> Result<()> {
    let cases = [
        Case { stride: [1, 2, 2], ..case(2, 5, 3, [1, 3, 4], [1, 2, 2]) },
        Case { stride: [1, 2, 3], padding: [0, 1, 0], output_padding: [0, 1, 2], ..case(2, 2, 3, [1, 5, 4], [1, 3, 2]) },
    ];
    for (i, c) in cases.iter().enumerate() {
        check(Kind::Transpose, c, 400 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn tensor_used_twice_accumulates_gradient() -> Result<()> {
    let x = var(1, &[1, 2, 3, 5, 5])?;
    let w = var(2, &[2, 2, 2, 2, 2])?;
    let p = ConvParams::new([2; 3], [0; 3]);
    let once = conv3d(&x, &w, None, &p)?.sum_all()?.backward()?;
    let twice = (conv3d(&x, &w, None, &p)?.sum_all()? + (x.as_tensor() * 3.0)?.sum_all()?
        + conv3d(&x, &w, None, &p)?.sum_all()?)?
    .backward()?;
    let g1 = values(once.get(&x).ok_or_else(|| candle::Error::Msg("no grad".into()))?)?;
    let g2 = values(twice.get(&x).ok_or_else(|| candle::Error::Msg("no grad".into()))?)?;
    let expected: Vec<f64> = g1.iter().map(|g| 2.0 * g + 3.0).collect();
    assert_close("accumulated gradient", &g2, &expected, F64);
    Ok(())
}

fn expect_err(what: &str, r: Result<Tensor>, needles: &[&str]) {
    match r {
        Ok(t) => panic!("{what}: expected an error, got shape {:?}", t.dims()),
        Err(e) => {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{what}: error {msg:?} does not mention {n:?}");
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() -> Result<()> {
    let x5 = tensor(1, &[1, 2, 4, 4, 4])?;
    let w5 = tensor(2, &[3, 2, 3, 3, 3])?;
    let p = ConvParams::new([1; 3], [0; 3]);
    expect_err("rank", conv3d(&x5.squeeze(0)?, &w5, None, &p), &["conv3d", "[2, 4, 4, 4]"]);
    expect_err("channels", conv3d(&x5, &tensor(3, &[3, 5, 3, 3, 3])?, None, &p), &["conv3d", "[3, 5, 3, 3, 3]"]);
    expect_err("zero stride", conv3d(&x5, &w5, None, &ConvParams::new([1, 0, 1], [0; 3])), &["conv3d", "stride"]);
    expect_err("kernel too large", conv3d(&x5, &tensor(3, &[3, 2, 5, 3, 3])?, None, &p), &["conv3d", "[1, 2, 4, 4, 4]"]);
    expect_err("bias", conv3d(&x5, &w5, Some(&tensor(4, &[2])?), &p), &["conv3d", "bias"]);
    let x4 = tensor(1, &[1, 2, 4, 4])?;
    expect_err("conv2d rank", conv2d(&x4, &w5, None, &ConvParams::new([1; 2], [0; 2])), &["conv2d", "[3, 2, 3, 3, 3]"]);
    expect_err(
        "transpose channels",
        conv_transpose3d(&x5, &tensor(3, &[3, 2, 2, 2, 2])?, None, &ConvTransposeParams::new([2; 3])),
        &["conv_transpose3d", "[3, 2, 2, 2, 2]"],
    );
    expect_err(
        "output padding",
        conv_transpose2d(
            &x4,
            &tensor(3, &[2, 3, 2, 2])?,
            None,
            &ConvTransposeParams::new([2; 2]).with_padding([0; 2], [2, 0]),
        ),
        &["conv_transpose2d", "output_padding"],
    );
    expect_err(
        "transpose zero stride",
        conv_transpose2d(&x4, &tensor(3, &[2, 3, 2, 2])?, None, &ConvTransposeParams::new([0, 1])),
        &["conv_transpose2d", "stride"],
    );
    Ok(())
}

#[test]
fn chunked_column_buffer_matches_reference() -> Result<()> {
    // Two output rows per chunk: chunks straddle sample boundaries (9 rows per sample).
    unimiss_ops::set_conv_column_budget(500);
    let result = (|| {
        check(Kind::Conv, &Case { stride: [2; 3], padding: [1; 3], ..case(3, 2, 3, [5, 5, 7], [3; 3]) }, 500)?;
        check(Kind::Transpose, &Case { stride: [2; 3], ..case(3, 2, 3, [3, 3, 4], [3; 3]) }, 510)
    })();
    unimiss_ops::set_conv_column_budget(1 << 24);
    result
}

#[test]
fn non_overlapping_kernels_match_reference() -> Result<()> {
    // Kernels that do not overlap along depth and height (kernel == stride, or stride > kernel)
    // take the engine's tiled input-gradient path; batch > 1, odd channels, 2D and 3D, remainders.
    let cases = [
        Case { stride: [2; 3], bias: false, ..case(3, 5, 3, [5, 4, 7], [2; 3]) },
        Case { stride: [3, 3, 3], ..case(2, 3, 4, [6, 7, 6], [3; 3]) },
        Case { stride: [1, 2, 2], ..case(3, 3, 5, [1, 9, 6], [1, 2, 2]) },
        Case { stride: [3, 3, 2], padding: [1, 1, 1], ..case(2, 3, 2, [5, 7, 6], [2, 2, 3]) },
    ];
    for budget in [1 << 24, 40] {
        // A budget of 40 elements forces one output row per chunk.
        unimiss_ops::set_conv_column_budget(budget);
        let result = cases.iter().enumerate().try_for_each(|(i, c)| {
            check(Kind::Conv, c, 600 + 10 * i as u64)?;
            check(Kind::Transpose, c, 700 + 10 * i as u64)
        });
        unimiss_ops::set_conv_column_budget(1 << 24);
        result?;
    }
    Ok(())
}
