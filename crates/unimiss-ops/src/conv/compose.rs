//! Convolutions composed from differentiable candle primitives (gather + matmul).
//!
//! Autograd differentiates these compositions, so they are correct for every argument.

use candle::{Result, Tensor};

use super::{ConvGeom, add_bias};

/// `count` slices of `x` along `dim`, starting at `start`, `step` apart.
fn strided(x: &Tensor, dim: usize, start: usize, step: usize, count: usize) -> Result<Tensor> {
    if step == 1 {
        return x.narrow(dim, start, count);
    }
    let idx: Vec<u32> = (0..count).map(|i| (start + i * step) as u32).collect();
    let idx = Tensor::from_vec(idx, count, x.device())?;
    x.contiguous()?.index_select(&idx, dim)
}

/// Forward convolution `x [n, c, d, h, w] * w [o, c, kd, kh, kw]` in 3D form.
pub(crate) fn conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom) -> Result<Tensor> {
    let mut xp = x.clone();
    for a in 0..3 {
        xp = xp.pad_with_zeros(2 + a, g.padding[a], g.padding[a])?;
    }
    let mut cols = Vec::with_capacity(g.taps());
    for kd in 0..g.kernel[0] {
        let xd = strided(&xp, 2, kd * g.dilation[0], g.stride[0], g.out[0])?;
        for kh in 0..g.kernel[1] {
            let xh = strided(&xd, 3, kh * g.dilation[1], g.stride[1], g.out[1])?;
            for kw in 0..g.kernel[2] {
                cols.push(strided(&xh, 4, kw * g.dilation[2], g.stride[2], g.out[2])?);
            }
        }
    }
    let col = Tensor::stack(&cols, 2)?.reshape((g.n, g.c * g.taps(), g.out_len()))?;
    let wm = w.reshape((g.o, g.c * g.taps()))?;
    let y = wm.broadcast_matmul(&col)?.reshape((g.n, g.o, g.out[0], g.out[1], g.out[2]))?;
    add_bias(y, bias)
}

/// Inserts `s - 1` zeros between neighbours along `dim`.
fn dilate(x: &Tensor, dim: usize, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    let xs = x.unsqueeze(dim + 1)?;
    let mut zdims = xs.dims().to_vec();
    zdims[dim + 1] = s - 1;
    let z = Tensor::zeros(zdims, x.dtype(), x.device())?;
    let mut merged = x.dims().to_vec();
    merged[dim] = n * s;
    Tensor::cat(&[&xs, &z], dim + 1)?.reshape(merged)?.narrow(dim, 0, (n - 1) * s + 1)
}

/// Transposed convolution `x [n, c, d, h, w]`, `w [c, o, k..]` in 3D form; `g` is the geometry
/// of the forward convolution whose input gradient this is (see `conv_transpose_geom`).
pub(crate) fn conv_transpose(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeom) -> Result<Tensor> {
    let mut z = x.clone();
    for a in 0..3 {
        z = dilate(&z, 2 + a, g.stride[a])?;
        let reach = (g.dilation[a] * (g.kernel[a] - 1)) as isize;
        let left = reach - g.padding[a] as isize;
        // The output padding is what the geometry's input length has beyond the stride pattern.
        let covered = (g.out[a] - 1) * g.stride[a] + g.dilation[a] * (g.kernel[a] - 1) + 1;
        let right = left + (g.input[a] + 2 * g.padding[a]) as isize - covered as isize;
        z = z.pad_with_zeros(2 + a, left.max(0) as usize, right.max(0) as usize)?;
        let len = z.dim(2 + a)?;
        let (cut_l, cut_r) = ((-left).max(0) as usize, (-right).max(0) as usize);
        z = z.narrow(2 + a, cut_l, len - cut_l - cut_r)?;
    }
    let wf = w.flip(&[2, 3, 4])?.transpose(0, 1)?.contiguous()?;
    let fwd = ConvGeom {
        n: g.n,
        c: g.o,
        o: g.c,
        input: [z.dim(2)?, z.dim(3)?, z.dim(4)?],
        kernel: g.kernel,
        stride: [1; 3],
        padding: [0; 3],
        dilation: g.dilation,
        out: g.input,
    };
    add_bias(conv(&z, &wf, None, &fwd)?, bias)
}
