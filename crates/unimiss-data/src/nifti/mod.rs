//! NIfTI volumes: a hand-written, bounded reader (NIfTI-1 and -2, `.nii`/`.nii.gz`, both byte
//! orders, every real scalar datatype) and a NIfTI-1 writer (int16 or float32, plain or gzip).
//!
//! Why not the `nifti` crate: the reader must refuse absurd headers *before* allocating, report
//! truncation and corruption with the file name, treat NaN/0 `scl_slope` as "no scaling", and be
//! fuzzable from a byte slice; a small reader that streams through zlib-rs does all of that in a
//! few hundred lines and decodes straight to f32.

mod decode;
mod header;
mod read;
mod write;

use std::path::Path;

pub use header::{Datatype, NiftiHeader, NiftiVersion};
pub use read::{DEFAULT_MAX_VOXELS, read_decompressed, read_nifti_bytes, read_nifti_image_limited};
pub use write::{OutputType, write_nifti};

use crate::error::Result;

/// A NIfTI image in the file's own order: (x, y, z) with x varying fastest, scaling applied.
#[derive(Clone, Debug)]
pub struct NiftiImage {
    pub header: NiftiHeader,
    /// `dims[0] * dims[1] * dims[2]` values, index `x + nx * (y + ny * z)`.
    pub data: Vec<f32>,
}

/// A CT volume in the order the official code feeds the model: (D, H, W) = (z, x, y) of the
/// NIfTI (x, y, z) array (reference §4.2: nibabel's (x, y, z) array transposed to (z, x, y)).
#[derive(Clone, Debug)]
pub struct Volume {
    /// `dims[0] * dims[1] * dims[2]` values, row-major (D, H, W): index `(d * H + h) * W + w`.
    pub data: Vec<f32>,
    /// (D, H, W) = (nz, nx, ny).
    pub dims: [usize; 3],
    /// Voxel sizes in mm along (D, H, W) = (z, x, y).
    pub spacing: [f64; 3],
    /// The NIfTI voxel (x, y, z) index → world (mm) affine, 3×4 rows (sform, else qform, else
    /// pixdim), as nibabel's `img.affine[:3]`.
    pub affine: [[f64; 4]; 3],
    /// The datatype stored in the file.
    pub source_datatype: Datatype,
}

impl NiftiImage {
    /// Voxel (x, y, z) value.
    pub fn at(&self, x: usize, y: usize, z: usize) -> f32 {
        let [nx, ny, _] = self.header.dims;
        self.data[x + nx * (y + ny * z)]
    }

    /// The model-order (D, H, W) = (z, x, y) volume.
    pub fn into_volume(self) -> Volume {
        let [nx, ny, nz] = self.header.dims;
        let mut data = vec![0.0f32; self.data.len()];
        // Tile the per-slice (y, x) -> (x, y) transpose for cache friendliness.
        const T: usize = 32;
        for z in 0..nz {
            let src = &self.data[z * nx * ny..(z + 1) * nx * ny];
            let dst = &mut data[z * nx * ny..(z + 1) * nx * ny];
            for y0 in (0..ny).step_by(T) {
                for x0 in (0..nx).step_by(T) {
                    for y in y0..(y0 + T).min(ny) {
                        for x in x0..(x0 + T).min(nx) {
                            dst[x * ny + y] = src[y * nx + x];
                        }
                    }
                }
            }
        }
        Volume::from_model_order(&self.header, data)
    }
}

impl Volume {
    /// The volume of `header` from voxels already in (D, H, W) = (z, x, y) order.
    fn from_model_order(header: &NiftiHeader, data: Vec<f32>) -> Volume {
        let [nx, ny, nz] = header.dims;
        let [sx, sy, sz] = header.spacing_xyz();
        Volume {
            data,
            dims: [nz, nx, ny],
            spacing: [sz, sx, sy],
            affine: header.affine(),
            source_datatype: header.datatype,
        }
    }

    /// Value at model-order (d, h, w).
    pub fn at(&self, d: usize, h: usize, w: usize) -> f32 {
        let [_, hh, ww] = self.dims;
        self.data[(d * hh + h) * ww + w]
    }
}

/// Reads a NIfTI file in its own (x, y, z) order (scaling applied), with the default size limit.
pub fn read_nifti_image(path: impl AsRef<Path>) -> Result<NiftiImage> {
    read_nifti_image_limited(path.as_ref(), DEFAULT_MAX_VOXELS)
}

/// Reads a NIfTI file as a model-order (D, H, W) = (z, x, y) [`Volume`], decoding the voxels
/// straight into that order (one pass, no intermediate array).
pub fn read_nifti(path: impl AsRef<Path>) -> Result<Volume> {
    let (header, data) =
        read::read_layout(path.as_ref(), DEFAULT_MAX_VOXELS, decode::Layout::Model)?;
    Ok(Volume::from_model_order(&header, data))
}
