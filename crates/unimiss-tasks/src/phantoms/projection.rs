//! Radiograph-like projections of a synthetic CT: the line integral of attenuation along the
//! antero-posterior (H) axis, shown as `1 − exp(−∫μ)`, resampled to a square image; per-organ
//! masks are the projections of the organ labels (overlaps allowed, as JSRT's multi-label masks).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::anatomy::{CtCase, ORGANS};

/// One projected case: an 8-bit image and one 0/255 mask per organ, `size × size` each.
pub struct XrayCase {
    pub size: usize,
    pub image: Vec<u8>,
    pub masks: Vec<Vec<u8>>,
}

/// Projects `ct` (HU, spacing in mm) and resamples rows (the D axis, head up) and columns (W) to
/// `size`.
pub fn project(ct: &CtCase, spacing: [f64; 3], size: usize, rng: &mut ChaCha8Rng) -> XrayCase {
    let [d, h, w] = ct.dims;
    // μ per mm relative to water, 0.02/mm for water
    let mut line = vec![0f64; d * w];
    let mut organ = vec![vec![false; d * w]; ORGANS.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let i = (z * h + y) * w + x;
                let mu = ((ct.hu[i] as f64 + 1000.0) / 1000.0).max(0.0) * 0.02;
                line[z * w + x] += mu * spacing[1];
                let l = ct.labels[i] as usize;
                if l > 0 {
                    organ[l - 1][z * w + x] = true;
                }
            }
        }
    }
    let src = |o: usize, n: usize| -> (usize, usize, f64) {
        let x = ((o as f64 + 0.5) * n as f64 / size as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let i = x.floor() as usize;
        (i, (i + 1).min(n - 1), x - i as f64)
    };
    let mut image = vec![0u8; size * size];
    let mut masks = vec![vec![0u8; size * size]; ORGANS.len()];
    for r in 0..size {
        // row 0 = highest z (head up)
        let (z0, z1, tz) = src(size - 1 - r, d);
        for c in 0..size {
            let (x0, x1, tx) = src(c, w);
            let at = |z: usize, x: usize| line[z * w + x];
            let v = (1.0 - tz) * ((1.0 - tx) * at(z0, x0) + tx * at(z0, x1)) + tz * ((1.0 - tx) * at(z1, x0) + tx * at(z1, x1));
            let noise: f64 = rng.sample(StandardNormal);
            let px = 255.0 * (1.0 - (-v).exp()) + 2.0 * noise;
            image[r * size + c] = px.round().clamp(0.0, 255.0) as u8;
            let zn = if tz < 0.5 { z0 } else { z1 };
            let xn = if tx < 0.5 { x0 } else { x1 };
            for (m, o) in masks.iter_mut().zip(&organ) {
                m[r * size + c] = if o[zn * w + xn] { 255 } else { 0 };
            }
        }
    }
    XrayCase { size, image, masks }
}
