//! What makes the phantom benchmark able to tell a good representation from pixels (issue 16):
//! a **pose** per case (the whole anatomy rotated in-plane by up to ±6° (more than the 2D augmentations undo: a rotation they cannot see becomes what the features encode), shifted by up to 12 %
//! of the field of view in-plane and 8 % in depth, scaled by 0.85–1.15), which moves every pixel
//! while meaning nothing, and a three-class **finding** that is visible at the benchmark's
//! resolution in both modalities but sits anywhere in the body:
//! - `none`;
//! - `mass`: one dense mass (radius 11–14 mm, +500…+800 HU: calcified, denser than any liver lesion);
//! - `nodules`: five dense nodules (radius 6–8 mm each, the same contrast), about the mass's
//!   total volume, so the amount of dense tissue does not give the class away: its shape does.
//!
//! Both are drawn from their own generator (seeded by the case's seed and index), so the
//! anatomy's own draws are those of a case without them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::anatomy::Blob;

/// The finding classes, in label order.
pub const FINDINGS: [&str; 3] = ["none", "mass", "nodules"];

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
        let (count, radius) = match class {
            1 => (1, 11.0..14.0),
            2 => (5, 6.0..8.0),
            _ => (0, 1.0..2.0),
        };
        let blobs = (0..count)
            .map(|_| {
                let r_mm: f64 = rng.random_range(radius.clone());
                let axes = std::array::from_fn(|a| (r_mm / (spacing[a] * dims[a] as f64 / 2.0)).max(2.2 / dims[a] as f64));
                // anywhere well inside the body (a disc of radius 0.55 in-plane, |z| ≤ 0.6)
                let (rho, phi): (f64, f64) = (0.55 * rng.random_range(0f64..1.0).sqrt(), rng.random_range(0.0..std::f64::consts::TAU));
                let centre = [rng.random_range(-0.6..0.6), rho * phi.sin(), rho * phi.cos()];
                (Blob { centre, axes, waves: vec![] }, rng.random_range(500.0..800.0))
            })
            .collect();
        Self { pose, class, blobs }
    }

    /// The HU the finding adds at anatomy point `p` (0 outside its blobs).
    pub fn contrast_at(&self, p: [f64; 3]) -> f64 {
        self.blobs.iter().filter(|(b, _)| b.contains(p)).map(|(_, c)| *c).fold(0.0, f64::max)
    }
}
