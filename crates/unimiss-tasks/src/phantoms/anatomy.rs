//! Synthetic CT anatomy: an elliptic body of soft tissue in air, a spine, three organs as smooth
//! random shapes (liver, spleen, two kidneys), an optional dense lesion in the liver, then blur
//! and noise. Values are Hounsfield units; arrays are `(D, H, W)` row-major.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Organ names, in label order (label = index + 1; 0 is background).
pub const ORGANS: [&str; 3] = ["liver", "spleen", "kidney"];

/// One synthetic CT case.
pub struct CtCase {
    pub dims: [usize; 3],
    /// HU, rounded later to int16.
    pub hu: Vec<f32>,
    /// 0 background, 1 liver, 2 spleen, 3 kidney.
    pub labels: Vec<u8>,
    /// 1 when a lesion was placed.
    pub lesion: bool,
}

/// A smooth random blob: an ellipsoid whose radius is modulated by low-order harmonics of the
/// direction, so shapes differ from case to case but stay smooth.
struct Blob {
    centre: [f64; 3],
    axes: [f64; 3],
    waves: Vec<([f64; 3], f64, f64)>,
}

impl Blob {
    fn random(rng: &mut ChaCha8Rng, centre: [f64; 3], axes: [f64; 3], jitter: f64) -> Self {
        let c = std::array::from_fn(|a| centre[a] + rng.random_range(-jitter..=jitter) * axes[a]);
        let ax = std::array::from_fn(|a| axes[a] * rng.random_range(0.85..1.15));
        let waves = (0..3)
            .map(|_| {
                let dir = [rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0)];
                (dir, rng.random_range(0.0..std::f64::consts::TAU), rng.random_range(0.03..0.1))
            })
            .collect();
        Self { centre: c, axes: ax, waves }
    }

    fn contains(&self, p: [f64; 3]) -> bool {
        let u: [f64; 3] = std::array::from_fn(|a| (p[a] - self.centre[a]) / self.axes[a]);
        let r = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt();
        if r < 1e-9 {
            return true;
        }
        let bump: f64 = self.waves.iter().map(|(d, ph, amp)| amp * ((d[0] * u[0] + d[1] * u[1] + d[2] * u[2]) / r + ph).sin()).sum();
        r < 1.0 + bump
    }
}

/// Generates one case on a `dims` grid with `spacing` (mm), lesion with probability ½.
pub fn ct_case(rng: &mut ChaCha8Rng, dims: [usize; 3], spacing: [f64; 3]) -> CtCase {
    let [d, h, w] = dims;
    let n = d * h * w;
    // work in normalised coordinates: z, y, x in [-1, 1]
    let coord = |z: usize, y: usize, x: usize| -> [f64; 3] {
        [2.0 * (z as f64 + 0.5) / d as f64 - 1.0, 2.0 * (y as f64 + 0.5) / h as f64 - 1.0, 2.0 * (x as f64 + 0.5) / w as f64 - 1.0]
    };
    let body_a = [rng.random_range(0.70..0.85), rng.random_range(0.80..0.92)];
    let liver = Blob::random(rng, [0.0, -0.05, -0.35], [0.75, 0.45, 0.38], 0.08);
    let spleen = Blob::random(rng, [0.1, 0.05, 0.5], [0.45, 0.22, 0.18], 0.08);
    let kid_l = Blob::random(rng, [0.1, 0.42, -0.3], [0.4, 0.16, 0.13], 0.06);
    let kid_r = Blob::random(rng, [0.1, 0.42, 0.3], [0.4, 0.16, 0.13], 0.06);
    let lesion = rng.random_bool(0.5);
    // lesion: a sphere of 3.5–6 mm·(1/spacing) radius inside the liver, dense (calcified)
    let lesion_blob = lesion.then(|| {
        let r_mm = rng.random_range(5.0..8.0);
        let axes = [r_mm / (spacing[0] * d as f64 / 2.0), r_mm / (spacing[1] * h as f64 / 2.0), r_mm / (spacing[2] * w as f64 / 2.0)];
        let c = [
            liver.centre[0] + rng.random_range(-0.3..0.3) * liver.axes[0],
            liver.centre[1] + rng.random_range(-0.3..0.3) * liver.axes[1],
            liver.centre[2] + rng.random_range(-0.3..0.3) * liver.axes[2],
        ];
        Blob { centre: c, axes, waves: vec![] }
    });
    let organ_hu = [rng.random_range(55.0..70.0), rng.random_range(40.0..50.0), rng.random_range(140.0..170.0)];
    let mut hu = vec![-1000f32; n];
    let mut labels = vec![0u8; n];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let p = coord(z, y, x);
                let i = (z * h + y) * w + x;
                let e = (p[1] / body_a[0]).powi(2) + (p[2] / body_a[1]).powi(2);
                if e > 1.0 {
                    continue;
                }
                // subcutaneous fat rim, soft tissue inside
                let mut v = if e > 0.8 { -100.0 } else { 35.0 };
                // vertebra: a disc behind the kidneys
                if ((p[1] - 0.6) / 0.12).powi(2) + (p[2] / 0.1).powi(2) < 1.0 {
                    v = 450.0;
                }
                for (k, b) in [&liver, &spleen, &kid_l, &kid_r].iter().enumerate() {
                    if b.contains(p) {
                        let label = [1u8, 2, 3, 3][k];
                        labels[i] = label;
                        v = organ_hu[label as usize - 1];
                    }
                }
                if let Some(l) = &lesion_blob
                    && labels[i] == 1
                    && l.contains(p)
                {
                    v = organ_hu[0] + 500.0;
                }
                hu[i] = v as f32;
            }
        }
    }
    gaussian_blur(&mut hu, dims, [0.5, 0.8, 0.8]);
    for v in hu.iter_mut() {
        let z: f64 = rng.sample(StandardNormal);
        *v += (15.0 * z) as f32;
    }
    CtCase { dims, hu, labels, lesion }
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
