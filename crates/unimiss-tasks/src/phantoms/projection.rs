//! Radiograph-like projections of a synthetic CT: the line integral of attenuation along the
//! antero-posterior (H) axis with the case's spacing, resampled to a square image (head up),
//! windowed as a processed radiograph: [2nd, 99.8th] percentile of the body's line integrals →
//! [0, 1], a per-case gamma in [0.8, 1.25] (exposure and processing vary), 2 grey levels of
//! noise; outside the body stays black. Masks are the projections of the organ labels (overlaps allowed, as JSRT's
//! multi-label masks) and of the lesion: a pixel is foreground when its ray meets the structure.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::anatomy::{CtCase, ORGANS};

/// One projected case: an 8-bit image, one 0/255 mask per organ and the lesion mask,
/// `size × size` each.
pub struct XrayCase {
    pub size: usize,
    pub image: Vec<u8>,
    pub masks: Vec<Vec<u8>>,
    pub lesion_mask: Vec<u8>,
}

/// Projects `ct` (HU, its spacing in mm) and resamples rows (the D axis, head up) and columns
/// (W) to `size`.
pub fn project(ct: &CtCase, size: usize, rng: &mut ChaCha8Rng) -> XrayCase {
    let [d, h, w] = ct.dims;
    let gamma: f64 = rng.random_range(0.8..1.25);
    // μ per mm relative to water, 0.02/mm for water
    let mut line = vec![0f64; d * w];
    let mut organ = vec![vec![false; d * w]; ORGANS.len() + 1];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let i = (z * h + y) * w + x;
                let mu = ((ct.hu[i] as f64 + 1000.0) / 1000.0).max(0.0) * 0.02;
                line[z * w + x] += mu * ct.spacing[1];
                let l = ct.labels[i] as usize;
                if l > 0 {
                    organ[l - 1][z * w + x] = true;
                }
                if ct.lesion_mask[i] {
                    organ[ORGANS.len()][z * w + x] = true;
                }
            }
        }
    }
    let src = |o: usize, n: usize| -> (usize, usize, f64) {
        let x = ((o as f64 + 0.5) * n as f64 / size as f64 - 0.5).clamp(0.0, (n - 1) as f64);
        let i = x.floor() as usize;
        (i, (i + 1).min(n - 1), x - i as f64)
    };
    let mut lines = vec![0f64; size * size];
    let mut image = vec![0u8; size * size];
    let mut masks = vec![vec![0u8; size * size]; ORGANS.len() + 1];
    for r in 0..size {
        // row 0 = highest z (head up)
        let (z0, z1, tz) = src(size - 1 - r, d);
        for c in 0..size {
            let (x0, x1, tx) = src(c, w);
            let at = |z: usize, x: usize| line[z * w + x];
            let v = (1.0 - tz) * ((1.0 - tx) * at(z0, x0) + tx * at(z0, x1)) + tz * ((1.0 - tx) * at(z1, x0) + tx * at(z1, x1));
            lines[r * size + c] = v;
            let zn = if tz < 0.5 { z0 } else { z1 };
            let xn = if tx < 0.5 { x0 } else { x1 };
            for (m, o) in masks.iter_mut().zip(&organ) {
                m[r * size + c] = if o[zn * w + xn] { 255 } else { 0 };
            }
        }
    }
    let max = lines.iter().copied().fold(0f64, f64::max);
    let mut body: Vec<f64> = lines.iter().copied().filter(|&v| v > 0.1 * max).collect();
    body.sort_by(f64::total_cmp);
    let pct = |q: f64| body.get(((body.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
    let (lo, hi) = (pct(0.02), pct(0.998).max(pct(0.02) + 1e-9));
    for (px, &v) in image.iter_mut().zip(&lines) {
        let noise: f64 = rng.sample(StandardNormal);
        let x = if v > 0.1 * max { ((v - lo) / (hi - lo)).clamp(0.0, 1.0).powf(gamma) } else { 0.0 };
        *px = (255.0 * x + 2.0 * noise).round().clamp(0.0, 255.0) as u8;
    }
    let lesion_mask = masks.pop().unwrap_or_default();
    XrayCase { size, image, masks, lesion_mask }
}
