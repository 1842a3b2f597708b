//! The deterministic preprocessing of evaluation inputs (no augmentation), the same as the
//! training pipeline's intensity handling: 2D images in [0, 1] resized to `size`² with PIL's
//! bicubic taps; 3D volumes as HU / 1024 resized trilinearly to `size`. Used by the kNN
//! monitor of pretraining and by the transfer benchmark.

use std::path::Path;

use candle::{Device, Tensor};
use unimiss_ops::interp::{Resize, interpolate_trilinear3d};

use crate::augment::kernels::{Taps, resample_plane};
use crate::augment::view3d::HU_SCALE;
use crate::error::Result;
use crate::{read_image, read_nifti};

/// One 2D sample: `[3, size, size]` in [0, 1].
pub fn eval_input_2d(path: &Path, size: usize) -> Result<Vec<f32>> {
    let img = read_image(path)?;
    let (tx, ty) = (Taps::pil_bicubic(img.width, size), Taps::pil_bicubic(img.height, size));
    let mut out = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        let plane = resample_plane(img.rgb_plane(c), img.width, (0, img.height), 0, &tx, &ty, img.width);
        out.extend(plane.into_iter().map(|v| v.clamp(0.0, 1.0)));
    }
    Ok(out)
}

/// One 3D sample: `[1, D, H, W]` = HU / 1024 resized trilinearly to `size`.
pub fn eval_input_3d(path: &Path, size: [usize; 3]) -> Result<Tensor> {
    let vol = read_nifti(path)?;
    let [d, h, w] = vol.dims;
    let x = Tensor::from_vec(vol.data.iter().map(|v| v / HU_SCALE).collect::<Vec<f32>>(), (1, 1, d, h, w), &Device::Cpu)?;
    let y = interpolate_trilinear3d(&x, Resize::Size(size[0]), Resize::Size(size[1]), Resize::Size(size[2]))?;
    Ok(y.squeeze(0)?)
}

