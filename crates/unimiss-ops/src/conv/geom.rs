//! Shape checking and output-size arithmetic shared by every convolution entry point.
//!
//! Every public convolution works on the 3D form: a 2D call is lifted to depth 1 first, so the
//! geometry below always has three spatial axes (depth, height, width).

use candle::{Result, Tensor, bail};

use super::{ConvParams, ConvTransposeParams};

/// Geometry of a (possibly lifted) 3D convolution `[n, c, in] * [o, c, k] -> [n, o, out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub o: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
    pub out: [usize; 3],
}

impl ConvGeom {
    /// Number of kernel taps `kd * kh * kw`.
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Number of output positions per sample and channel.
    pub fn out_len(&self) -> usize {
        self.out.iter().product()
    }

    /// Number of input positions per sample and channel.
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }
}

/// Lifts a per-axis parameter of length `N` (2 or 3) to the 3D form, filling depth with `fill`.
fn lift<const N: usize>(v: [usize; N], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - N..].copy_from_slice(&v);
    out
}

/// `[n, c, h, w]` becomes `[n, c, 1, h, w]`; rank-5 dims are returned as they are.
fn lift_dims(d: &[usize]) -> [usize; 5] {
    match *d {
        [a, b, h, w] => [a, b, 1, h, w],
        [a, b, c, h, w] => [a, b, c, h, w],
        _ => [0; 5],
    }
}

/// Operand checks shared by both kinds: ranks, channels (`w_in` is the weight axis that must
/// match the input channels, `w_out` the one the bias follows), positive stride and dilation,
/// no empty axis. Returns the operands' dims in 3D form.
#[allow(clippy::too_many_arguments)]
fn check_operands(
    op: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: [usize; 3],
    dilation: [usize; 3],
    spatial: usize,
    (w_in, w_out): (usize, usize),
) -> Result<([usize; 5], [usize; 5])> {
    let (xdims, wdims) = (x.dims(), w.dims());
    let rank = spatial + 2;
    if xdims.len() != rank {
        bail!("{op}: input must have rank {rank} [N,C,spatial..], got shape {xdims:?}")
    }
    if wdims.len() != rank {
        bail!("{op}: weight must have rank {rank}, got shape {wdims:?} (input {xdims:?})")
    }
    let (x3, w3) = (lift_dims(xdims), lift_dims(wdims));
    if x3[1] != w3[w_in] {
        bail!("{op}: input has {} channels but weight {wdims:?} expects {} (input {xdims:?})", x3[1], w3[w_in])
    }
    if stride.contains(&0) || dilation.contains(&0) {
        bail!("{op}: stride {stride:?} and dilation {dilation:?} must be positive (input {xdims:?}, weight {wdims:?})")
    }
    if x3.contains(&0) || w3.contains(&0) {
        bail!("{op}: empty input {xdims:?} or weight {wdims:?}")
    }
    if let Some(b) = bias {
        if b.dims() != [w3[w_out]] {
            bail!("{op}: bias must have shape [{}], got {:?} (weight {wdims:?})", w3[w_out], b.dims())
        }
    }
    Ok((x3, w3))
}

/// Checks a convolution call (`x [n, c, in..]`, `w [o, c, k..]`, `N` = 2 or 3) and computes
/// its geometry in 3D form.
pub(crate) fn conv_geom<const N: usize>(
    op: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvParams<N>,
) -> Result<ConvGeom> {
    let (stride, padding, dilation) = (lift(p.stride, 1), lift(p.padding, 0), lift(p.dilation, 1));
    let (x3, w3) = check_operands(op, x, w, bias, stride, dilation, N, (1, 0))?;
    let mut out = [0; 3];
    for a in 0..3 {
        let padded = x3[2 + a] + 2 * padding[a];
        let span = dilation[a] * (w3[2 + a] - 1) + 1;
        if span > padded {
            bail!(
                "{op}: kernel {:?} (dilation {:?}) is larger than the padded input: input {:?}, padding {:?}",
                &w.dims()[2..],
                p.dilation,
                x.dims(),
                p.padding
            )
        }
        out[a] = (padded - span) / stride[a] + 1;
    }
    Ok(ConvGeom {
        n: x3[0],
        c: x3[1],
        o: w3[0],
        input: [x3[2], x3[3], x3[4]],
        kernel: [w3[2], w3[3], w3[4]],
        stride,
        padding,
        dilation,
        out,
    })
}

/// Checks a transposed convolution call (`x [n, c, in..]`, `w [c, o, k..]`) and returns the
/// geometry of the forward convolution whose input gradient it is: that convolution maps the
/// transposed output `[n, o, out..]` to `[n, c, in..]` with the same weight tensor.
pub(crate) fn conv_transpose_geom<const N: usize>(
    op: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTransposeParams<N>,
) -> Result<ConvGeom> {
    let (stride, padding, dilation) = (lift(p.stride, 1), lift(p.padding, 0), lift(p.dilation, 1));
    let output_padding = lift(p.output_padding, 0);
    let (x3, w3) = check_operands(op, x, w, bias, stride, dilation, N, (0, 1))?;
    let mut out = [0; 3];
    for a in 0..3 {
        if output_padding[a] >= stride[a].max(dilation[a]) {
            bail!(
                "{op}: output_padding {:?} must be smaller than stride {:?} or dilation {:?}",
                p.output_padding,
                p.stride,
                p.dilation
            )
        }
        let full = (x3[2 + a] - 1) * stride[a] + dilation[a] * (w3[2 + a] - 1) + 1 + output_padding[a];
        if full <= 2 * padding[a] {
            bail!(
                "{op}: padding {:?} leaves no output: input {:?}, weight {:?}, stride {:?}",
                p.padding,
                x.dims(),
                w.dims(),
                p.stride
            )
        }
        out[a] = full - 2 * padding[a];
    }
    Ok(ConvGeom {
        n: x3[0],
        c: w3[1],
        o: x3[1],
        input: out,
        kernel: [w3[2], w3[3], w3[4]],
        stride,
        padding,
        dilation,
        out: [x3[2], x3[3], x3[4]],
    })
}
