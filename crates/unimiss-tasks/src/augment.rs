//! Spatial training augmentation of the segmentation presets (reference §5.2, §5.4), applied
//! identically to image and target and deterministic from `(seed, epoch, sample index)`.
//!
//! One inverse mapping per sample (rotation about the centre in the H–W plane, isotropic
//! in-plane scaling) is sampled, then every image channel is resampled linearly and every target
//! channel with nearest neighbour on the same coordinates (zero outside), followed by random
//! flips on every axis (the official mirror transforms).
//! - `seg3d` (nnU-Net "moreDA" of BCV): rotation ±30° with p 0.2, scale 0.7–1.4 with p 0.2, no
//!   elastic. The official rotation is about all three axes; here it is in-plane only (the
//!   phantom/CT depth axis is anisotropic and short), see `docs/tasks.md`.
//! - `seg2d` (JSRT): rotation ±10° and scale 0.9–1.1 on every sample (translation and shear of the
//!   official affine are not applied), then vertical and horizontal flips.
//!
//! Elastic deformation is official only for the RICORD classification preset, which keeps flips
//! only here.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::random_flips;
use crate::nets::Task;

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
    /// The preset of a segmentation task (`None` for classification).
    pub fn preset(task: Task, seed: u64) -> Option<Self> {
        match task {
            Task::Seg3d => Some(Self { seed, rotation_deg: 30.0, p_rotation: 0.2, scale: (0.7, 1.4), p_scale: 0.2 }),
            Task::Seg2d => Some(Self { seed, rotation_deg: 10.0, p_rotation: 1.0, scale: (0.9, 1.1), p_scale: 1.0 }),
            _ => None,
        }
    }

    /// The RNG of one sample: depends only on `(seed, epoch, index)`.
    pub fn rng(&self, epoch: usize, index: usize) -> ChaCha8Rng {
        let key = self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        ChaCha8Rng::seed_from_u64(key)
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
