//! Positional-embedding resizing exactly as the official `interpolate_pos_encoding2D/3D`
//! (reference §1.7), including the quirks that change numbers:
//!
//! - skipped only when the token count matches **and** `W == H`;
//! - PyTorch `scale_factor` semantics: the sampling step is the given `(n_out + 0.1) / n_in`,
//!   not `n_out / n_in`;
//! - the table is resampled to a `W × H` grid (3D: `D × W × H`) and then added to tokens laid out
//!   `H × W`: for non-square inputs the embedding is transposed / scrambled, as upstream;
//! - 3D: the table is reshaped with the *input's* stage depth and a square in-plane grid, and the
//!   depth axis (length unchanged) is copied, as PyTorch's CPU trilinear kernel does. (PyTorch's
//!   CUDA kernel would blend neighbouring depths slightly; see `docs/model.md`.)

use candle::{Result, Tensor, bail};
use unimiss_ops::interp::{Resize, interpolate_bicubic2d, interpolate_trilinear3d};

use crate::profile::time;
use unimiss_ops::Modality;

use crate::spatial::Grid;

/// `pos [1, 1+N, C]` resized for tokens on `grid`; returns `[1, 1 + grid.tokens(), C]`.
pub(crate) fn resize(pos: &Tensor, grid: &Grid) -> Result<Tensor> {
    let (_, n1, c) = pos.dims3()?;
    let n = n1 - 1;
    if n == grid.tokens() && grid.w == grid.h {
        return Ok(pos.clone());
    }
    time("pos_resize", || {
        let cls = pos.narrow(1, 0, 1)?;
        let patch = pos.narrow(1, 1, n)?;
        let (w, h) = (grid.w, grid.h);
        let resized = match grid.modality {
            Modality::Image2d => {
                let side = (n as f64).sqrt();
                let s = side as usize;
                if s * s != n {
                    bail!("2D positional table with {n} patches is not a square grid")
                }
                let img = patch.reshape((1, s, s, c))?.permute((0, 3, 1, 2))?.contiguous()?;
                let sw = Resize::Scale((w as f64 + 0.1) / side);
                let sh = Resize::Scale((h as f64 + 0.1) / side);
                let out = interpolate_bicubic2d(&img, sw, sh)?;
                if out.dims()[2..] != [w, h] {
                    bail!("2D positional resize gave {:?}, expected {w}×{h}", &out.dims()[2..])
                }
                out.permute((0, 2, 3, 1))?.reshape((1, w * h, c))?
            }
            Modality::Volume3d => {
                let d = grid.d;
                let side = (n as f64 / d as f64).sqrt();
                let m = side as usize;
                if d * m * m != n {
                    bail!(
                        "3D positional table with {n} patches cannot be reshaped to depth {d} × {m} × {m}: \
                         the input depth must equal the depth the model was built for (grid {grid})"
                    )
                }
                let vol = patch.reshape((1, d, m, m, c))?.permute((0, 4, 1, 2, 3))?.contiguous()?;
                let sd = Resize::Scale((d as f64 + 0.1) / d as f64);
                let sw = Resize::Scale((w as f64 + 0.1) / side);
                let sh = Resize::Scale((h as f64 + 0.1) / side);
                let out = interpolate_trilinear3d(&vol, sd, sw, sh)?;
                if out.dims()[2..] != [d, w, h] {
                    bail!("3D positional resize gave {:?}, expected {d}×{w}×{h}", &out.dims()[2..])
                }
                out.permute((0, 2, 3, 4, 1))?.reshape((1, d * w * h, c))?
            }
        };
        Tensor::cat(&[&cls, &resized], 1)
    })
}
