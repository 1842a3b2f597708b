//! What makes the phantom benchmark able to tell a good representation from pixels (issue 16):
//! a **pose** per case (the whole anatomy rotated in-plane by up to ±6° (more than the 2D augmentations undo: a rotation they cannot see becomes what the features encode), shifted by up to 12 %
//! of the field of view in-plane and 8 % in depth, scaled by 0.85–1.15), which moves every pixel
//! while meaning nothing, and a three-class **finding** that is visible at the benchmark's
//! resolution in both modalities but sits anywhere in the body:
//! - `none`;
//! - `nodules`: 12–16 small dense nodules (radius 3–5 mm, +500…+800 HU: calcified, denser
//!   than any liver lesion) scattered through the body;
//! - `ground_glass`: both lungs denser by 250–400 HU (a diffuse haze over the lung fields).
//!
//! Both findings are spread over the image, so that two random crops of one case (the views
//! self-distillation compares) both show it: a single mass at a random place is in one crop
//! and not the other, and measured that way (one mass vs five nodules, an earlier version) the
//! pretrained kNN stayed at chance.
//!
//! Both are drawn from their own generator (seeded by the case's seed and index), so the
//! anatomy's own draws are those of a case without them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::anatomy::Blob;

/// The finding classes, in label order.
pub const FINDINGS: [&str; 3] = ["none", "nodules", "ground_glass"];

/// An in-plane rotation, a shift and a scale of the anatomy; coordinates are the normalised
/// (z, y, x) in [−1, 1] of the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub angle: f64,
    pub shift: [f64; 3],
    pub scale: f64,
}

impl Pose {
    /// The identity (no pose variation).
    pub const IDENTITY: Pose = Pose { angle: 0.0, shift: [0.0; 3], scale: 1.0 };

    /// Grid point → the anatomy's own coordinates (the inverse of placing the anatomy).
    pub fn to_anatomy(&self, p: [f64; 3]) -> [f64; 3] {
        let (s, c) = self.angle.sin_cos();
        let (y, x) = (p[1] - self.shift[1], p[2] - self.shift[2]);
        [(p[0] - self.shift[0]) / self.scale, (c * y + s * x) / self.scale, (-s * y + c * x) / self.scale]
    }
}

/// The pose and the finding of one case.
pub struct Findings {
    pub pose: Pose,
    /// Index into [`FINDINGS`].
    pub class: usize,
    /// Dense blobs in anatomy coordinates with their contrast (HU added).
    pub blobs: Vec<(Blob, f64)>,
    /// HU added to the lungs (ground glass; 0 otherwise).
    pub lung_density: f64,
}

impl Findings {
    /// Draws case `k`'s pose and finding for a grid of `dims` voxels of `spacing` mm.
    pub fn draw(seed: u64, k: usize, dims: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (k as u64).wrapping_add(0x5EED));
        let pose = Pose {
            angle: rng.random_range(-6f64..6.0).to_radians(),
            shift: [rng.random_range(-0.08..0.08), rng.random_range(-0.12..0.12), rng.random_range(-0.12..0.12)],
            scale: rng.random_range(0.85..1.15),
        };
        let class = rng.random_range(0..FINDINGS.len());
        let count = if class == 1 { rng.random_range(12..=16) } else { 0 };
        let lung_density = if class == 2 { rng.random_range(250.0..400.0) } else { 0.0 };
        let blobs = (0..count)
            .map(|_| {
                let r_mm: f64 = rng.random_range(3.0..5.0);
                let axes = std::array::from_fn(|a| (r_mm / (spacing[a] * dims[a] as f64 / 2.0)).max(2.2 / dims[a] as f64));
                // anywhere well inside the body (a disc of radius 0.6 in-plane, |z| ≤ 0.7)
                let (rho, phi): (f64, f64) = (0.6 * rng.random_range(0f64..1.0).sqrt(), rng.random_range(0.0..std::f64::consts::TAU));
                let centre = [rng.random_range(-0.7..0.7), rho * phi.sin(), rho * phi.cos()];
                (Blob { centre, axes, waves: vec![] }, rng.random_range(500.0..800.0))
            })
            .collect();
        Self { pose, class, blobs, lung_density }
    }

    /// The HU the finding adds at anatomy point `p` (0 outside its blobs).
    pub fn contrast_at(&self, p: [f64; 3]) -> f64 {
        self.blobs.iter().filter(|(b, _)| b.contains(p)).map(|(_, c)| *c).fold(0.0, f64::max)
    }
}
