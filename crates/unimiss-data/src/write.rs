//! Writers of model outputs and synthetic data: a `(D, H, W)` row-major volume as NIfTI, an
//! 8-bit grey image as PNG.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::nifti::{NiftiHeader, OutputType, write_nifti};

/// (D, H, W) row-major → NIfTI file order (x = H fastest, then y = W, then z = D).
pub fn to_file_order(data: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = dims;
    let mut out = vec![0f32; data.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                out[y + h * (x + w * z)] = data[(z * h + y) * w + x];
            }
        }
    }
    out
}

/// Writes a (D, H, W) volume as NIfTI (int16 or f32) with the geometry of `header`.
pub fn write_volume(path: &Path, data: &[f32], dims: [usize; 3], header: &NiftiHeader, ty: OutputType) -> Result<()> {
    let file = to_file_order(data, dims);
    write_nifti(path, header, [dims[1], dims[2], dims[0]], &file, ty)
}

/// Writes an 8-bit grey PNG of `size` `[H, W]`.
pub fn write_png(path: &Path, data: &[u8], size: [usize; 2]) -> Result<()> {
    let bad = |reason: String| DataError::Image { path: path.to_path_buf(), reason };
    let img = image::GrayImage::from_raw(size[1] as u32, size[0] as u32, data.to_vec())
        .ok_or_else(|| bad(format!("{} bytes do not fill {}×{}", data.len(), size[0], size[1])))?;
    img.save(path).map_err(|e| bad(e.to_string()))
}
