//! Voxel bytes → f32 in one pass: datatype conversion, byte order, `scl_slope`/`scl_inter` and
//! the layout (the file's (x, y, z) order, or the model's (D, H, W) = (z, x, y) order, written
//! directly without an intermediate array), then the NaN/inf check.

use std::path::Path;

use super::header::{Datatype, NiftiHeader};
use crate::error::{DataError, Result};

/// Where decoded voxels go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The file's order: index `x + nx * (y + ny * z)`.
    File,
    /// The model's (D, H, W) = (z, x, y) order: index `(z * nx + x) * ny + y`.
    Model,
}

/// Tile side of the per-slice transpose (cache friendliness).
const TILE: usize = 32;

/// Converts `raw` (exactly `header.data_bytes()` bytes) to f32 in `layout`, with scaling;
/// refuses NaN/inf values naming the (x, y, z) voxel.
pub fn decode_voxels(path: &Path, h: &NiftiHeader, raw: &[u8], layout: Layout) -> Result<Vec<f32>> {
    let be = h.big_endian;
    let scale = h.scaling();
    macro_rules! run {
        ($ty:ty, $to:expr) => {{
            const N: usize = std::mem::size_of::<$ty>();
            let get = |c: &[u8]| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                let v = if be {
                    <$ty>::from_be_bytes(a)
                } else {
                    <$ty>::from_le_bytes(a)
                };
                $to(v)
            };
            match scale {
                None => convert::<N>(raw, h.dims, layout, get),
                Some((s, i)) => {
                    convert::<N>(raw, h.dims, layout, |c| (f64::from(get(c)) * s + i) as f32)
                }
            }
        }};
    }
    let out = match h.datatype {
        Datatype::U8 => run!(u8, f32::from),
        Datatype::I8 => run!(i8, f32::from),
        Datatype::I16 => run!(i16, f32::from),
        Datatype::U16 => run!(u16, f32::from),
        Datatype::I32 => run!(i32, |v: i32| v as f32),
        Datatype::U32 => run!(u32, |v: u32| v as f32),
        Datatype::I64 => run!(i64, |v: i64| v as f32),
        Datatype::U64 => run!(u64, |v: u64| v as f32),
        Datatype::F32 => run!(f32, |v: f32| v),
        Datatype::F64 => run!(f64, |v: f64| v as f32),
    };
    if out.iter().all(|v| v.is_finite()) {
        return Ok(out);
    }
    let pos = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let [nx, ny, _] = h.dims;
    let index = match layout {
        Layout::File => [pos % nx, (pos / nx) % ny, pos / (nx * ny)],
        Layout::Model => [(pos / ny) % nx, pos % ny, pos / (nx * ny)],
    };
    Err(DataError::NonFinite {
        path: path.to_path_buf(),
        value: out[pos],
        index,
    })
}

/// One pass over `raw` (`N` bytes per voxel, file order) writing `f(voxel bytes)` in `layout`.
fn convert<const N: usize>(
    raw: &[u8],
    [nx, ny, nz]: [usize; 3],
    layout: Layout,
    f: impl Fn(&[u8]) -> f32,
) -> Vec<f32> {
    debug_assert_eq!(raw.len(), nx * ny * nz * N);
    if layout == Layout::File || nx == 1 || ny == 1 {
        // A transpose of a single row or column is the identity.
        return raw.chunks_exact(N).map(f).collect();
    }
    let plane = nx * ny;
    let mut out = vec![0.0f32; plane * nz];
    for (src, dst) in raw.chunks_exact(plane * N).zip(out.chunks_exact_mut(plane)) {
        for y0 in (0..ny).step_by(TILE) {
            for x0 in (0..nx).step_by(TILE) {
                for y in y0..(y0 + TILE).min(ny) {
                    let row = &src[(y * nx + x0) * N..(y * nx + (x0 + TILE).min(nx)) * N];
                    for (k, c) in row.chunks_exact(N).enumerate() {
                        dst[(x0 + k) * ny + y] = f(c);
                    }
                }
            }
        }
    }
    out
}
