//! Labelled samples as network inputs and targets.
//!
//! - 2D images: read with [`read_image`] (PNG/JPEG), replicated to 3 channels, normalised with
//!   the official CXR constants (mean 0.5056, std 0.252); resized bilinearly to the task's square
//!   input for classification ([`load_image`]), kept at their own size for segmentation
//!   ([`load_image_native`]). Masks (PNG/JPEG/GIF): foreground `> 0`, at the image's size.
//! - 3D volumes: read in model order (D, H, W), clipped to [−1024, 325] HU, `(v − 158.58) / 324.70`
//!   (RICORD); resized trilinearly to the task's input for classification ([`load_volume`]; the
//!   official RICORD test resizes whole volumes), kept at the native grid for segmentation
//!   ([`load_volume_native`]). Label maps: checked against the image's grid, spacing and the
//!   class count, resized nearest.
//!
//! Linear resizing is separable, on the same half-pixel taps as the augmentations and
//! [`crate::resample`] (PyTorch `align_corners=False`, edges clamped).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::image2d::read_image;
use crate::nifti::read_nifti;
use crate::resample::linear_axis;

/// Official CXR normalisation (all three channels).
pub const CXR_MEAN: f32 = 0.5056;
pub const CXR_STD: f32 = 0.252;
/// Official RICORD HU window and normalisation.
pub const HU_MIN: f32 = -1024.0;
pub const HU_MAX: f32 = 325.0;
pub const HU_MEAN: f32 = 158.58;
pub const HU_STD: f32 = 324.70;

/// Trilinear (or bilinear with `d = 1`) resize of a row-major `(D, H, W)` grid.
pub fn resize_linear(x: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    // `linear_axis` takes the fastest axis first: (W, H, D).
    let mut dims = [from[2], from[1], from[0]];
    let mut data = x.to_vec();
    for (axis, &n) in [to[2], to[1], to[0]].iter().enumerate() {
        if dims[axis] != n {
            data = linear_axis(&data, dims, axis, n);
            dims[axis] = n;
        }
    }
    data
}

fn nearest(n_in: usize, n_out: usize) -> Vec<usize> {
    (0..n_out).map(|o| (((o as f64 + 0.5) * n_in as f64 / n_out as f64).floor() as usize).min(n_in - 1)).collect()
}

/// Nearest-neighbour resize of a `(D, H, W)` grid (labels, masks).
pub fn resize_nearest<T: Copy>(x: &[T], from: [usize; 3], to: [usize; 3]) -> Vec<T> {
    let [nd, nh, nw] = [nearest(from[0], to[0]), nearest(from[1], to[1]), nearest(from[2], to[2])];
    let mut out = Vec::with_capacity(to.iter().product());
    for &z in &nd {
        for &y in &nh {
            for &xx in &nw {
                out.push(x[(z * from[1] + y) * from[2] + xx]);
            }
        }
    }
    out
}

/// A 2D image at its own size as `(3, H, W)`, normalised, and `[H, W]`.
pub fn load_image_native(path: &Path) -> Result<(Vec<f32>, [usize; 2])> {
    let img = read_image(path)?;
    let out = (0..3).flat_map(|c| img.rgb_plane(c).iter().map(|&v| (v - CXR_MEAN) / CXR_STD)).collect();
    Ok((out, [img.height, img.width]))
}

/// A 2D image as `(3, size, size)`, normalised.
pub fn load_image(path: &Path, size: usize) -> Result<Vec<f32>> {
    let img = read_image(path)?;
    let mut out = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        let plane = resize_linear(img.rgb_plane(c), [1, img.height, img.width], [1, size, size]);
        out.extend(plane.into_iter().map(|v| (v - CXR_MEAN) / CXR_STD));
    }
    Ok(out)
}

/// A binary 2D mask (PNG, JPEG or GIF, foreground `> 0`) and its `(H, W)`.
pub fn read_mask_2d(path: &Path) -> Result<(Vec<bool>, [usize; 2])> {
    let img = image::open(path)
        .map_err(|e| DataError::Image { path: path.to_path_buf(), reason: format!("cannot read mask: {e}") })?
        .into_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((img.into_raw().into_iter().map(|v| v > 0).collect(), [h, w]))
}

/// Multi-label 2D masks at the image's `[H, W]` (`size`), one per path; every mask must have
/// that size.
pub fn load_masks_2d(paths: &[PathBuf], image: &Path, size: [usize; 2]) -> Result<Vec<Vec<bool>>> {
    paths
        .iter()
        .map(|p| {
            let (m, [h, w]) = read_mask_2d(p)?;
            if [h, w] != size {
                return Err(DataError::BadSample {
                    path: p.clone(),
                    reason: format!("mask is {h}×{w} but the image {} is {}×{}", image.display(), size[0], size[1]),
                });
            }
            Ok(m)
        })
        .collect()
}

/// A CT volume at its own grid as `(1, D, H, W)`, windowed and normalised; also its dims and
/// spacing (model order).
pub fn load_volume_native(path: &Path) -> Result<(Vec<f32>, [usize; 3], [f64; 3])> {
    let v = read_nifti(path)?;
    let norm: Vec<f32> = v.data.iter().map(|x| (x.clamp(HU_MIN, HU_MAX) - HU_MEAN) / HU_STD).collect();
    Ok((norm, v.dims, v.spacing))
}

/// A CT volume as `(1, D, H, W)` at `size`, windowed and normalised; also its native dims and
/// spacing (model order).
pub fn load_volume(path: &Path, size: [usize; 3]) -> Result<(Vec<f32>, [usize; 3], [f64; 3])> {
    let (norm, dims, spacing) = load_volume_native(path)?;
    Ok((resize_linear(&norm, dims, size), dims, spacing))
}

/// A label map at `size` (nearest), checked against the image's grid and spacing and against
/// `classes`.
pub fn load_label_volume(path: &Path, image_dims: [usize; 3], image_spacing: [f64; 3], size: [usize; 3], classes: usize) -> Result<Vec<u32>> {
    let v = read_nifti(path)?;
    let bad = |reason: String| DataError::BadSample { path: path.to_path_buf(), reason };
    if v.dims != image_dims {
        return Err(bad(format!("label map is {:?} but the image is {image_dims:?}", v.dims)));
    }
    if v.spacing.iter().zip(&image_spacing).any(|(a, b)| (a - b).abs() > 1e-3 * b.abs().max(1e-6)) {
        return Err(bad(format!("label map spacing {:?} differs from the image's {image_spacing:?}", v.spacing)));
    }
    let mut labels = Vec::with_capacity(v.data.len());
    for (i, &x) in v.data.iter().enumerate() {
        if x < 0.0 || x.fract() != 0.0 || x as usize >= classes {
            let [_, h, w] = v.dims;
            let what = format!("voxel (d, h, w) = ({}, {}, {})", i / (h * w), i / w % h, i % w);
            return Err(DataError::LabelOutOfRange { path: path.to_path_buf(), what, label: x as i64, classes });
        }
        labels.push(x as u32);
    }
    Ok(resize_nearest(&labels, image_dims, size))
}
