//! Interpolation with PyTorch semantics (`align_corners=False`), as separable weight matrices.
//!
//! Every resize is linear in its input, so each axis is a matrix `M [out, in]` applied with a
//! matmul; autograd then gives the exact backward (`Mᵀ` applied to the gradient).

use candle::{Result, Tensor, bail};

/// The target of one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resize {
    /// An explicit output length; source coordinates use the ratio `in / out`.
    Size(usize),
    /// PyTorch's `scale_factor` mode: the output length is `floor(in * s)` and source coordinates
    /// use the *given* `s` (`src = (o + 0.5) / s - 0.5`), not `out / in`.
    Scale(f64),
}

impl Resize {
    /// Output length and the source step `1 / scale` for an axis of length `n_in`.
    fn resolve(self, op: &str, n_in: usize) -> Result<(usize, f64)> {
        match self {
            Resize::Size(0) => bail!("{op}: output size must be positive (input length {n_in})"),
            Resize::Size(n) => Ok((n, n_in as f64 / n as f64)),
            Resize::Scale(s) if !(s.is_finite() && s > 0.0) => {
                bail!("{op}: scale factor must be positive and finite, got {s} (input length {n_in})")
            }
            Resize::Scale(s) => {
                let n = (n_in as f64 * s).floor() as usize;
                if n == 0 {
                    bail!("{op}: scale factor {s} gives an empty output for input length {n_in}")
                }
                Ok((n, 1.0 / s))
            }
        }
    }
}

/// Kernel kind of a separable resize.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// Linear interpolation (PyTorch CPU: an axis whose length is unchanged is copied).
    Linear,
    /// Cubic convolution with `A = -0.75`, taps clamped to the border.
    Cubic,
}

fn cubic_weight(u: f64) -> f64 {
    const A: f64 = -0.75;
    let u = u.abs();
    if u <= 1.0 {
        ((A + 2.0) * u - (A + 3.0)) * u * u + 1.0
    } else if u < 2.0 {
        ((A * u - 5.0 * A) * u + 8.0 * A) * u - 4.0 * A
    } else {
        0.0
    }
}

/// The row-major matrix `[n_out, n_in]` of one axis.
fn axis_matrix(kernel: Kernel, n_in: usize, n_out: usize, step: f64) -> Vec<f64> {
    let mut m = vec![0.0; n_out * n_in];
    let last = n_in as isize - 1;
    for o in 0..n_out {
        let row = &mut m[o * n_in..(o + 1) * n_in];
        match kernel {
            Kernel::Linear if n_in == n_out => row[o] = 1.0,
            Kernel::Linear => {
                let x = (step * (o as f64 + 0.5) - 0.5).max(0.0);
                let i0 = (x.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                let l1 = (x - i0 as f64).clamp(0.0, 1.0);
                row[i0] += 1.0 - l1;
                row[i1] += l1;
            }
            Kernel::Cubic => {
                let x = step * (o as f64 + 0.5) - 0.5;
                let i = x.floor();
                let t = x - i;
                let w = [cubic_weight(t + 1.0), cubic_weight(t), cubic_weight(1.0 - t), cubic_weight(2.0 - t)];
                for (j, wj) in w.iter().enumerate() {
                    let idx = (i as isize - 1 + j as isize).clamp(0, last) as usize;
                    row[idx] += wj;
                }
            }
        }
    }
    m
}

/// Resizes axis `dim` of `x` with `kernel`.
fn resize_axis(op: &str, x: &Tensor, dim: usize, kernel: Kernel, target: Resize) -> Result<Tensor> {
    let n_in = x.dim(dim)?;
    let (n_out, step) = target.resolve(op, n_in)?;
    if matches!(kernel, Kernel::Linear) && n_in == n_out {
        return Ok(x.clone());
    }
    let m = axis_matrix(kernel, n_in, n_out, step);
    // [in, out] so that `x[.., in] @ mt` gives `[.., out]`.
    let mut mt = vec![0.0; n_in * n_out];
    for o in 0..n_out {
        for i in 0..n_in {
            mt[i * n_out + o] = m[o * n_in + i];
        }
    }
    let mt = Tensor::from_vec(mt, (n_in, n_out), x.device())?.to_dtype(x.dtype())?;
    let last = x.rank() - 1;
    let xt = x.transpose(dim, last)?.contiguous()?;
    xt.broadcast_matmul(&mt)?.transpose(dim, last)?.contiguous()
}

fn check_rank(op: &str, x: &Tensor, rank: usize, layout: &str) -> Result<()> {
    if x.rank() != rank || x.dims().contains(&0) {
        bail!("{op}: input must be a non-empty {layout}, got shape {:?}", x.dims())
    }
    Ok(())
}

/// Bicubic resize of `x [N, C, H, W]` (PyTorch `mode='bicubic'`, `align_corners=False`, A = -0.75).
pub fn interpolate_bicubic2d(x: &Tensor, h: Resize, w: Resize) -> Result<Tensor> {
    const OP: &str = "interpolate_bicubic2d";
    check_rank(OP, x, 4, "[N,C,H,W]")?;
    let y = resize_axis(OP, x, 2, Kernel::Cubic, h)?;
    resize_axis(OP, &y, 3, Kernel::Cubic, w)
}

/// Bilinear resize of `x [N, C, H, W]` (PyTorch CPU `mode='bilinear'`, `align_corners=False`).
pub fn interpolate_bilinear2d(x: &Tensor, h: Resize, w: Resize) -> Result<Tensor> {
    const OP: &str = "interpolate_bilinear2d";
    check_rank(OP, x, 4, "[N,C,H,W]")?;
    let y = resize_axis(OP, x, 2, Kernel::Linear, h)?;
    resize_axis(OP, &y, 3, Kernel::Linear, w)
}

/// Trilinear resize of `x [N, C, D, H, W]` (PyTorch CPU `mode='trilinear'`,
/// `align_corners=False`; an axis whose length is unchanged is copied, as on CPU).
pub fn interpolate_trilinear3d(x: &Tensor, d: Resize, h: Resize, w: Resize) -> Result<Tensor> {
    const OP: &str = "interpolate_trilinear3d";
    check_rank(OP, x, 5, "[N,C,D,H,W]")?;
    let y = resize_axis(OP, x, 2, Kernel::Linear, d)?;
    let y = resize_axis(OP, &y, 3, Kernel::Linear, h)?;
    resize_axis(OP, &y, 4, Kernel::Linear, w)
}
