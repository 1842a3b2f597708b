//! Spatial training augmentation of the fine-tuning tasks (reference §5.2, §5.4), applied
//! identically to image and target and deterministic from `(seed, epoch, sample index)` through
//! [`sample_rng`] (stream [`Stream::Labelled`]).
//!
//! One inverse mapping per sample (rotation about the centre in the H–W plane, isotropic
//! in-plane scaling) is sampled, then every image channel is resampled linearly and every target
//! channel with nearest neighbour on the same coordinates (zero outside), followed by random
//! flips on every axis (the official mirror transforms).
//! - 3D segmentation (nnU-Net "moreDA" of BCV): rotation ±30° with p 0.2, scale 0.7–1.4 with
//!   p 0.2, no elastic. The official rotation is about all three axes; here it is in-plane only
//!   (the CT depth axis is anisotropic and short), see `docs/tasks.md`.
//! - 2D segmentation (JSRT): rotation ±10° and scale 0.9–1.1 on every sample (translation and
//!   shear of the official affine are not applied), then vertical and horizontal flips.
//! - Classification: flips only (elastic deformation, official for the RICORD preset, is not
//!   implemented).

use rand::Rng;

use super::{AugRng, Stream, sample_rng};
use crate::manifest::Modality;

/// An image and its target on one `(D, H, W)` grid, channels first.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleArrays {
    pub image: Vec<f32>,
    pub image_channels: usize,
    pub target: Vec<f32>,
    pub target_channels: usize,
    pub dims: [usize; 3],
    /// Whether the target holds class indices (always nearest) rather than 0/1 masks (also nearest).
    pub labels: bool,
}

/// The spatial augmentation of a task preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmenter {
    pub seed: u64,
    /// Maximum rotation (degrees) and its probability.
    pub rotation_deg: f64,
    pub p_rotation: f64,
    /// Scale range and its probability.
    pub scale: (f64, f64),
    pub p_scale: f64,
}

impl Augmenter {
    /// The segmentation preset of `modality` (3D: BCV, 2D: JSRT).
    pub fn segmentation(modality: Modality, seed: u64) -> Self {
        match modality {
            Modality::Volume3d => Self { seed, rotation_deg: 30.0, p_rotation: 0.2, scale: (0.7, 1.4), p_scale: 0.2 },
            Modality::Image2d => Self { seed, rotation_deg: 10.0, p_rotation: 1.0, scale: (0.9, 1.1), p_scale: 1.0 },
        }
    }

    /// The classification preset: random flips only.
    pub fn classification(seed: u64) -> Self {
        Self { seed, rotation_deg: 0.0, p_rotation: 0.0, scale: (1.0, 1.0), p_scale: 0.0 }
    }

    /// The RNG of one sample: depends only on `(seed, epoch, index)`.
    pub fn rng(&self, epoch: usize, index: usize) -> AugRng {
        sample_rng(self.seed, epoch, index, Stream::Labelled)
    }

    /// Augments `a` in place.
    pub fn apply(&self, a: &mut SampleArrays, epoch: usize, index: usize) {
        let mut rng = self.rng(epoch, index);
        let angle = if rng.random_bool(self.p_rotation) { rng.random_range(-self.rotation_deg..=self.rotation_deg).to_radians() } else { 0.0 };
        let scale = if rng.random_bool(self.p_scale) { rng.random_range(self.scale.0..=self.scale.1) } else { 1.0 };
        if angle != 0.0 || scale != 1.0 {
            a.image = warp(&a.image, a.image_channels, a.dims, angle, scale, true);
            a.target = warp(&a.target, a.target_channels, a.dims, angle, scale, false);
        }
        let dims = a.dims;
        random_flips(&mut [(&mut a.image, a.image_channels), (&mut a.target, a.target_channels)], dims, &mut rng);
    }

    /// Augments an image without target (classification) in place: `channels` planes of `dims`.
    pub fn apply_image(&self, image: &mut Vec<f32>, channels: usize, dims: [usize; 3], epoch: usize, index: usize) {
        let mut a = SampleArrays { image: std::mem::take(image), image_channels: channels, target: vec![], target_channels: 0, dims, labels: false };
        self.apply(&mut a, epoch, index);
        *image = a.image;
    }
}

/// Resamples each `(D, H, W)` channel of `x` at the in-plane points `c + R(−angle)·(p − c)/scale`
/// (linear or nearest, 0 outside).
pub fn warp(x: &[f32], channels: usize, dims: [usize; 3], angle: f64, scale: f64, linear: bool) -> Vec<f32> {
    let [d, h, w] = dims;
    let plane = h * w;
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let mut out = vec![0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            let (dy, dx) = (y as f64 - cy, xx as f64 - cx);
            let sy = (cos * dy + sin * dx) / scale + cy;
            let sx = (-sin * dy + cos * dx) / scale + cx;
            let dst = y * w + xx;
            if linear {
                let (y0, x0) = (sy.floor(), sx.floor());
                let (ty, tx) = ((sy - y0) as f32, (sx - x0) as f32);
                let taps = [(y0, x0, (1.0 - ty) * (1.0 - tx)), (y0, x0 + 1.0, (1.0 - ty) * tx), (y0 + 1.0, x0, ty * (1.0 - tx)), (y0 + 1.0, x0 + 1.0, ty * tx)];
                for cz in 0..channels * d {
                    let base = cz * plane;
                    let mut v = 0f32;
                    for &(yy, xq, wt) in &taps {
                        if yy >= 0.0 && xq >= 0.0 && (yy as usize) < h && (xq as usize) < w {
                            v += wt * x[base + yy as usize * w + xq as usize];
                        }
                    }
                    out[base + dst] = v;
                }
            } else {
                let (ny, nx) = (sy.round(), sx.round());
                if ny >= 0.0 && nx >= 0.0 && (ny as usize) < h && (nx as usize) < w {
                    let src = ny as usize * w + nx as usize;
                    for cz in 0..channels * d {
                        out[cz * plane + dst] = x[cz * plane + src];
                    }
                }
            }
        }
    }
    out
}

/// Random flips of `channels` planes of a `(D, H, W)` grid (all channels flipped alike); the
/// same flips go to every array in `arrays` (image, then targets with their channel counts).
/// Each axis longer than 1 is flipped with probability 0.5.
pub fn random_flips(arrays: &mut [(&mut Vec<f32>, usize)], dims: [usize; 3], rng: &mut AugRng) {
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
