//! Turning labelled samples into network inputs and targets.
//!
//! - 2D images: read (PNG/JPEG via the data crate; GIF masks too), resized bilinearly to the
//!   task's square input, replicated to 3 channels, normalised with the official CXR constants
//!   (mean 0.5056, std 0.252). Segmentation keeps the native size (`*_native`, masks
//!   foreground `> 0`; patches are cropped by `patches`).
//! - 3D volumes: read in model order (D, H, W), clipped to [−1024, 325] HU, `(v − 158.58) / 324.70`
//!   (RICORD), resized trilinearly to the task's input for classification (the official RICORD
//!   test resizes whole volumes; training here does the same, then augments), kept at the native
//!   grid for segmentation. Label maps: nearest resize.
//! - Training augmentation (`augment`): random flips on every spatial axis, as the official
//!   mirror transforms; the rotation/scaling/elastic transforms of §5 are not implemented yet
//!   (see `docs/tasks.md`).

use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use unimiss_data::{read_image, read_nifti};

use crate::error::{Result, TaskError};

/// Official CXR normalisation (all three channels).
pub const CXR_MEAN: f32 = 0.5056;
pub const CXR_STD: f32 = 0.252;
/// Official RICORD HU window and normalisation.
pub const HU_MIN: f32 = -1024.0;
pub const HU_MAX: f32 = 325.0;
pub const HU_MEAN: f32 = 158.58;
pub const HU_STD: f32 = 324.70;

/// Linear resampling taps (align_corners = False, edges clamped): `(i0, i1, t)` per output.
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    (0..n_out)
        .map(|o| {
            let x = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i = x.floor() as usize;
            (i, (i + 1).min(n_in - 1), (x - i as f64) as f32)
        })
        .collect()
}

fn nearest(n_in: usize, n_out: usize) -> Vec<usize> {
    (0..n_out).map(|o| (((o as f64 + 0.5) * n_in as f64 / n_out as f64).floor() as usize).min(n_in - 1)).collect()
}

/// Trilinear (or bilinear with `d = 1`) resize of a `(D, H, W)` grid.
pub fn resize_linear(x: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    if from == to {
        return x.to_vec();
    }
    let [td, th, tw] = [taps(from[0], to[0]), taps(from[1], to[1]), taps(from[2], to[2])];
    let at = |z: usize, y: usize, xx: usize| x[(z * from[1] + y) * from[2] + xx];
    let mut out = Vec::with_capacity(to.iter().product());
    for &(z0, z1, a) in &td {
        for &(y0, y1, b) in &th {
            for &(x0, x1, c) in &tw {
                let lerp2 = |z: usize| {
                    let r0 = at(z, y0, x0) * (1.0 - c) + at(z, y0, x1) * c;
                    let r1 = at(z, y1, x0) * (1.0 - c) + at(z, y1, x1) * c;
                    r0 * (1.0 - b) + r1 * b
                };
                out.push(lerp2(z0) * (1.0 - a) + lerp2(z1) * a);
            }
        }
    }
    out
}

/// Nearest-neighbour resize of a `(D, H, W)` grid (labels).
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
    let img = read_image(path).map_err(|e| TaskError::file(path, e))?;
    let out = (0..3).flat_map(|c| img.rgb_plane(c).iter().map(|&v| (v - CXR_MEAN) / CXR_STD).collect::<Vec<f32>>()).collect();
    Ok((out, [img.height, img.width]))
}

/// A 2D image as `(3, size, size)`, normalised.
pub fn load_image(path: &Path, size: usize) -> Result<Vec<f32>> {
    let img = read_image(path).map_err(|e| TaskError::file(path, e))?;
    let mut out = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        let plane = resize_linear(img.rgb_plane(c), [1, img.height, img.width], [1, size, size]);
        out.extend(plane.into_iter().map(|v| (v - CXR_MEAN) / CXR_STD));
    }
    Ok(out)
}

/// A binary 2D mask (PNG, JPEG or GIF, foreground `> 0`) and its original `(H, W)`.
pub fn read_mask_2d(path: &Path) -> Result<(Vec<bool>, [usize; 2])> {
    let img = image::open(path).map_err(|e| TaskError::file(path, format!("cannot read mask: {e}")))?.into_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((img.into_raw().into_iter().map(|v| v > 0).collect(), [h, w]))
}

/// Multi-label 2D masks at the image's `[H, W]`, one per path; every mask must have that size.
pub fn load_masks_2d(paths: &[std::path::PathBuf], image: &Path, size: [usize; 2]) -> Result<Vec<Vec<bool>>> {
    paths
        .iter()
        .map(|p| {
            let (m, hw) = read_mask_2d(p)?;
            if hw != size {
                return Err(TaskError::file(p, format!("mask is {}×{} but the image {} is {}×{}", hw[0], hw[1], image.display(), size[0], size[1])));
            }
            Ok(m)
        })
        .collect()
}

/// A CT volume at its own grid as `(1, D, H, W)`, windowed and normalised; also its dims and
/// spacing.
pub fn load_volume_native(path: &Path) -> Result<(Vec<f32>, [usize; 3], [f64; 3])> {
    let v = read_nifti(path).map_err(|e| TaskError::file(path, e))?;
    let norm: Vec<f32> = v.data.iter().map(|x| (x.clamp(HU_MIN, HU_MAX) - HU_MEAN) / HU_STD).collect();
    Ok((norm, v.dims, v.spacing))
}

/// A CT volume as `(1, D, H, W)` at `size`, windowed and normalised; also its native dims and
/// spacing.
pub fn load_volume(path: &Path, size: [usize; 3]) -> Result<(Vec<f32>, [usize; 3], [f64; 3])> {
    let (norm, dims, spacing) = load_volume_native(path)?;
    Ok((resize_linear(&norm, dims, size), dims, spacing))
}

/// A label map at `size` (nearest), checked against the image's grid and spacing and against
/// `classes`.
pub fn load_label_volume(path: &Path, image_dims: [usize; 3], image_spacing: [f64; 3], size: [usize; 3], classes: usize) -> Result<Vec<u32>> {
    let v = read_nifti(path).map_err(|e| TaskError::file(path, e))?;
    if v.dims != image_dims {
        return Err(TaskError::file(path, format!("label map is {:?} but the image is {image_dims:?}", v.dims)));
    }
    if v.spacing.iter().zip(&image_spacing).any(|(a, b)| (a - b).abs() > 1e-3 * b.abs().max(1e-6)) {
        return Err(TaskError::file(path, format!("label map spacing {:?} differs from the image's {image_spacing:?}", v.spacing)));
    }
    let mut labels = Vec::with_capacity(v.data.len());
    for &x in &v.data {
        if x < 0.0 || x.fract() != 0.0 || x as usize >= classes {
            return Err(TaskError::LabelOutOfRange { what: path.display().to_string(), label: x as i64, classes });
        }
        labels.push(x as u32);
    }
    Ok(resize_nearest(&labels, image_dims, size))
}

/// Random flips of `channels` planes of a `(D, H, W)` grid (all channels flipped alike); the
/// same flips go to every array in `arrays` (image, then targets with their channel counts).
pub fn random_flips(arrays: &mut [(&mut Vec<f32>, usize)], dims: [usize; 3], rng: &mut ChaCha8Rng) {
    for axis in 0..3 {
        if dims[axis] < 2 || !rng.random_bool(0.5) {
            continue;
        }
        for (a, ch) in arrays.iter_mut() {
            flip_axis(a, *ch, dims, axis);
        }
    }
}

fn flip_axis(x: &mut [f32], channels: usize, dims: [usize; 3], axis: usize) {
    let [d, h, w] = dims;
    let n = d * h * w;
    for c in 0..channels {
        let v = &mut x[c * n..(c + 1) * n];
        let src = v.to_vec();
        for z in 0..d {
            for y in 0..h {
                for xx in 0..w {
                    let (sz, sy, sx) = match axis {
                        0 => (d - 1 - z, y, xx),
                        1 => (z, h - 1 - y, xx),
                        _ => (z, y, w - 1 - xx),
                    };
                    v[(z * h + y) * w + xx] = src[(sz * h + sy) * w + sx];
                }
            }
        }
    }
}
