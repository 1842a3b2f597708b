//! Positional-table resizing as the official downstream loaders do it:
//! `scipy.ndimage.zoom(pos[0], (N_new / N_old, 1), order=1)`.
//!
//! This is a 1-D linear resampling along the flattened token axis, not a spatial
//! interpolation. scipy's defaults apply: `grid_mode = False`, so the first and last tokens map
//! onto the first and last tokens (`src = o · (N_old − 1) / (N_new − 1)`), and the channel axis
//! (zoom 1) is copied.

use candle::{DType, Tensor};

use crate::error::{Result, TaskError};

/// What happens to the class-token entry (row 0) of a table before zooming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassEntry {
    /// The whole table, class entry included, is zoomed (RICORD; BCV `pos_embed1..3`).
    Include,
    /// Row 0 is dropped, the rest zoomed (BCV `pos_embed4` and decoder tables; the target has no
    /// class token).
    Drop,
}

/// Source positions and weights of the 1-D linear zoom from `n_old` to `n_new` entries:
/// entry `o` is `(1 − t)·in[i] + t·in[i + 1]`, returned as `(i, t)`.
pub fn zoom_taps(n_old: usize, n_new: usize) -> Vec<(usize, f64)> {
    let scale = if n_new > 1 { (n_old as f64 - 1.0) / (n_new as f64 - 1.0) } else { 1.0 };
    (0..n_new)
        .map(|o| {
            let x = (o as f64 * scale).clamp(0.0, (n_old - 1) as f64);
            let i = (x.floor() as usize).min(n_old - 1);
            let t = x - i as f64;
            if i + 1 >= n_old { (n_old - 1, 0.0) } else { (i, t) }
        })
        .collect()
}

/// Zooms rows of a `(N, C)` matrix (row-major `data`) to `n_new` rows.
pub fn zoom_rows(data: &[f64], n_old: usize, c: usize, n_new: usize) -> Vec<f64> {
    let mut out = vec![0.0; n_new * c];
    for (o, (i, t)) in zoom_taps(n_old, n_new).into_iter().enumerate() {
        for k in 0..c {
            let a = data[i * c + k];
            let b = if t > 0.0 { data[(i + 1) * c + k] } else { 0.0 };
            out[o * c + k] = a * (1.0 - t) + b * t;
        }
    }
    out
}

/// Resizes a positional table `(1, N_old, C)` to `(1, n_new, C)` with the official rule, after
/// dropping the class entry if asked. Computed in f64, returned in the table's dtype. A table
/// that already has the requested size is returned unchanged (after the drop).
pub fn zoom_pos_table(table: &Tensor, n_new: usize, class: ClassEntry) -> Result<Tensor> {
    let (one, n, c) = table.dims3()?;
    if one != 1 || n == 0 || n_new == 0 {
        return Err(TaskError::Invalid(format!(
            "positional table of shape {:?} cannot be zoomed to {n_new} entries",
            table.dims()
        )));
    }
    let t = match class {
        ClassEntry::Include => table.clone(),
        ClassEntry::Drop => {
            if n < 2 {
                return Err(TaskError::Invalid("positional table has no entry besides the class entry".into()));
            }
            table.narrow(1, 1, n - 1)?
        }
    };
    let n_old = t.dim(1)?;
    if n_old == n_new {
        return Ok(t);
    }
    let data: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let out = zoom_rows(&data, n_old, c, n_new);
    Ok(Tensor::from_vec(out, (1, n_new, c), t.device())?.to_dtype(table.dtype())?)
}
