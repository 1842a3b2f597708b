//! Synthetic CT anatomy whose variation carries signal: an elliptic body (size and fat rim vary)
//! in air, two lungs (air, above the liver), a vertebra, liver / spleen / two kidneys as smooth random shapes whose position,
//! size, shape, mean intensity and texture vary from case to case, and with probability ½ a
//! liver lesion of varied size (radius 4–14 mm) and contrast (hypodense −40…−120 HU or
//! hyperdense +80…+300 HU), then blur and noise of varied strength. Values are Hounsfield
//! units; arrays are `(D, H, W)` row-major.
//!
//! Two labels depend on the anatomy, not on a global intensity:
//! - `lesion`: a lesion was placed (its voxels form the lesion mask, never empty when set);
//! - `liver_large`: the liver fills more than [`LIVER_LARGE_FRACTION`] of the grid. The liver
//!   scale is drawn from two separated ranges (×0.72–0.88 or ×1.12–1.3), so the classes are
//!   balanced; the label is then *measured* on the label map, so it always agrees with the mask.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::findings::Findings;

/// Organ names, in label order (label = index + 1; 0 is background).
pub const ORGANS: [&str; 3] = ["liver", "spleen", "kidney"];

/// Liver voxels / grid voxels above which a case is `liver_large`.
pub const LIVER_LARGE_FRACTION: f64 = 0.055;

/// One synthetic CT case.
pub struct CtCase {
    pub dims: [usize; 3],
    /// Voxel size (mm) along (D, H, W).
    pub spacing: [f64; 3],
    /// HU, rounded later to int16.
    pub hu: Vec<f32>,
    /// 0 background, 1 liver, 2 spleen, 3 kidney (lesion voxels stay liver).
    pub labels: Vec<u8>,
    /// The lesion voxels (all false without a lesion).
    pub lesion_mask: Vec<bool>,
    /// 1 when a lesion was placed.
    pub lesion: bool,
    /// The liver fills more than [`LIVER_LARGE_FRACTION`] of the grid.
    pub liver_large: bool,
    /// The finding's class (index into [`super::findings::FINDINGS`]).
    pub finding: usize,
}

impl CtCase {
    /// Fraction of the grid labelled liver.
    pub fn liver_fraction(&self) -> f64 {
        self.labels.iter().filter(|&&l| l == 1).count() as f64 / self.labels.len().max(1) as f64
    }
}

/// A smooth random blob: an ellipsoid whose radius is modulated by low-order harmonics of the
/// direction, so shapes differ from case to case but stay smooth.
pub struct Blob {
    pub(crate) centre: [f64; 3],
    pub(crate) axes: [f64; 3],
    pub(crate) waves: Vec<([f64; 3], f64, f64)>,
}

impl Blob {
    fn random(rng: &mut ChaCha8Rng, centre: [f64; 3], axes: [f64; 3], jitter: f64, scale: f64) -> Self {
        let c = std::array::from_fn(|a| centre[a] + rng.random_range(-jitter..=jitter));
        let ax = std::array::from_fn(|a| axes[a] * scale * rng.random_range(0.93..1.07));
        let waves = (0..3)
            .map(|_| {
                let dir = [rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0)];
                (dir, rng.random_range(0.0..std::f64::consts::TAU), rng.random_range(0.03..0.09))
            })
            .collect();
        Self { centre: c, axes: ax, waves }
    }

    pub(crate) fn contains(&self, p: [f64; 3]) -> bool {
        let u: [f64; 3] = std::array::from_fn(|a| (p[a] - self.centre[a]) / self.axes[a]);
        let r2 = u[0] * u[0] + u[1] * u[1] + u[2] * u[2];
        if r2 > 1.6 {
            return false;
        }
        let r = r2.sqrt();
        if r < 1e-9 {
            return true;
        }
        let bump: f64 = self.waves.iter().map(|(d, ph, amp)| amp * ((d[0] * u[0] + d[1] * u[1] + d[2] * u[2]) / r + ph).sin()).sum();
        r < 1.0 + bump
    }
}

/// A smooth texture: a sum of random plane waves (spatial periods 0.2–0.7 of the grid), zero
/// mean, amplitude `amp` HU.
struct Texture {
    waves: Vec<([f64; 3], f64)>,
    amp: f64,
}

impl Texture {
    fn random(rng: &mut ChaCha8Rng, amp: std::ops::Range<f64>) -> Self {
        let amp = rng.random_range(amp);
        let waves = (0..4)
            .map(|_| {
                let f = rng.random_range(3.0..10.0);
                let th = rng.random_range(0.0..std::f64::consts::TAU);
                let ph = rng.random_range(-1.0..1.0);
                ([0.5 * f * rng.random_range(-1.0..1.0), f * th.cos(), f * th.sin()], rng.random_range(0.0..std::f64::consts::TAU) + ph)
            })
            .collect();
        Self { waves, amp }
    }

    fn at(&self, p: [f64; 3]) -> f64 {
        let s: f64 = self.waves.iter().map(|(k, ph)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).cos()).sum();
        self.amp * s / (self.waves.len() as f64).sqrt()
    }
}

/// Generates one case on a `dims` grid with voxel size `spacing` (mm), its anatomy placed by
/// `findings.pose` and its finding added.
pub fn ct_case(rng: &mut ChaCha8Rng, dims: [usize; 3], spacing: [f64; 3], findings: &Findings) -> CtCase {
    let [d, h, w] = dims;
    let n = d * h * w;
    // normalised coordinates: z, y, x in [-1, 1]
    let coord = |z: usize, y: usize, x: usize| -> [f64; 3] {
        [2.0 * (z as f64 + 0.5) / d as f64 - 1.0, 2.0 * (y as f64 + 0.5) / h as f64 - 1.0, 2.0 * (x as f64 + 0.5) / w as f64 - 1.0]
    };
    let body_a = [rng.random_range(0.66..0.86), rng.random_range(0.78..0.94)];
    let fat_rim = rng.random_range(0.72..0.9);
    let large = rng.random_bool(0.5);
    let liver_scale = if large { rng.random_range(1.12..1.3) } else { rng.random_range(0.72..0.88) };
    let liver = Blob::random(rng, [0.0, -0.05, -0.35], [0.7, 0.42, 0.36], 0.08, liver_scale);
    let spleen_scale = rng.random_range(0.8..1.2);
    let spleen = Blob::random(rng, [0.1, 0.05, 0.5], [0.45, 0.22, 0.18], 0.08, spleen_scale);
    let kid_scale = rng.random_range(0.85..1.15);
    let kid_l = Blob::random(rng, [0.1, 0.42, -0.3], [0.4, 0.16, 0.13], 0.06, kid_scale);
    let kid_r = Blob::random(rng, [0.1, 0.42, 0.3], [0.4, 0.16, 0.13], 0.06, kid_scale);
    // lungs: air-filled, above the liver dome (label 0: not a segmentation class)
    let lung_scale = rng.random_range(0.85..1.15);
    let lung_l = Blob::random(rng, [0.6, 0.0, -0.42], [0.55, 0.5, 0.3], 0.06, lung_scale);
    let lung_r = Blob::random(rng, [0.6, 0.0, 0.42], [0.55, 0.5, 0.3], 0.06, lung_scale);
    let vert = [rng.random_range(0.55..0.65), rng.random_range(-0.04..0.04), rng.random_range(0.1..0.14)];
    let organ_hu = [rng.random_range(45.0..75.0), rng.random_range(35.0..55.0), rng.random_range(130.0..180.0)];
    let textures = [Texture::random(rng, 4.0..14.0), Texture::random(rng, 3.0..10.0), Texture::random(rng, 5.0..15.0)];
    let soft = Texture::random(rng, 3.0..10.0);
    let lesion = rng.random_bool(0.5);
    let lesion_blob = lesion.then(|| {
        let r_mm: f64 = rng.random_range(4.0..14.0);
        // at least 2 voxels across in every axis, so the mask is never empty on coarse grids
        let axes = std::array::from_fn(|a| (r_mm / (spacing[a] * dims[a] as f64 / 2.0)).max(2.2 / dims[a] as f64));
        let c = std::array::from_fn(|a| liver.centre[a] + rng.random_range(-0.35..0.35) * liver.axes[a]);
        let contrast = if rng.random_bool(0.5) { -rng.random_range(40.0..120.0) } else { rng.random_range(80.0..300.0) };
        (Blob { centre: c, axes, waves: vec![] }, contrast)
    });
    let mut hu = vec![-1000f32; n];
    let mut labels = vec![0u8; n];
    let mut lesion_mask = vec![false; n];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let p = findings.pose.to_anatomy(coord(z, y, x));
                let i = (z * h + y) * w + x;
                let e = (p[1] / body_a[0]).powi(2) + (p[2] / body_a[1]).powi(2);
                if e > 1.0 {
                    continue;
                }
                // subcutaneous fat rim, soft tissue inside
                let mut v = if e > fat_rim { -100.0 } else { 35.0 + soft.at(p) };
                if lung_l.contains(p) || lung_r.contains(p) {
                    v = -850.0 + 3.0 * soft.at(p) + findings.lung_density;
                }
                if ((p[1] - vert[0]) / vert[2]).powi(2) + ((p[2] - vert[1]) / (vert[2] * 0.85)).powi(2) < 1.0 {
                    v = 450.0;
                }
                for (k, b) in [&liver, &spleen, &kid_l, &kid_r].iter().enumerate() {
                    if b.contains(p) {
                        let label = [1u8, 2, 3, 3][k];
                        labels[i] = label;
                        v = organ_hu[label as usize - 1] + textures[label as usize - 1].at(p);
                    }
                }
                if let Some((l, contrast)) = &lesion_blob
                    && labels[i] == 1
                    && l.contains(p)
                {
                    v += contrast;
                    lesion_mask[i] = true;
                }
                v += findings.contrast_at(p);
                hu[i] = v as f32;
            }
        }
    }
    let blur = rng.random_range(0.4..0.9);
    gaussian_blur(&mut hu, dims, [0.6 * blur, blur, blur]);
    let noise = rng.random_range(8.0..25.0);
    for v in hu.iter_mut() {
        let z: f64 = rng.sample(StandardNormal);
        *v += (noise * z) as f32;
    }
    let has_lesion = lesion_mask.iter().any(|&m| m);
    let mut case = CtCase { dims, spacing, hu, labels, lesion_mask, lesion: has_lesion, liver_large: false, finding: findings.class };
    case.liver_large = case.liver_fraction() > LIVER_LARGE_FRACTION;
    case
}

/// In-place separable Gaussian blur with per-axis σ (voxels), kernel radius ⌈3σ⌉, edges clamped.
pub fn gaussian_blur(v: &mut [f32], dims: [usize; 3], sigma: [f64; 3]) {
    let strides = [dims[1] * dims[2], dims[2], 1];
    for a in 0..3 {
        if sigma[a] <= 0.0 || dims[a] < 2 {
            continue;
        }
        let r = (3.0 * sigma[a]).ceil() as i64;
        let k: Vec<f64> = (-r..=r).map(|x| (-0.5 * (x * x) as f64 / (sigma[a] * sigma[a])).exp()).collect();
        let ks: f64 = k.iter().sum();
        let n = dims[a] as i64;
        let src = v.to_vec();
        for (i, out) in v.iter_mut().enumerate() {
            let c = ((i / strides[a]) % dims[a]) as i64;
            let base = i - (c as usize) * strides[a];
            let mut acc = 0.0;
            for (j, kw) in k.iter().enumerate() {
                let q = (c + j as i64 - r).clamp(0, n - 1) as usize;
                acc += kw * src[base + q * strides[a]] as f64;
            }
            *out = (acc / ks) as f32;
        }
    }
}
