//! batchgenerators 0.21 intensity transforms as the official 3D pipeline applies them
//! (reference §4.2 step 6): the view has shape (1, D, H, W), which batchgenerators reads as one
//! sample with D *channels*, so every depth slice gets its own random parameters and the blur
//! is 2-D per slice. "Variance" parameters are used as standard deviations, as batchgenerators
//! does.

use rand_distr::{Distribution, Normal};

use super::kernels::{Border, blur_plane, gaussian_kernel};
use super::{AugRng, coin, uniform};

/// Per-view probabilities of the intensity transforms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntensityParams {
    /// GaussianBlur: p_per_sample, p_per_channel.
    pub blur_p: (f64, f64),
    /// BrightnessMultiplicative p_per_sample.
    pub mult_p: f64,
    /// Brightness (additive) p_per_sample (p_per_channel is 0.8 for both views).
    pub add_p: f64,
    /// Gamma p_per_sample.
    pub gamma_p: f64,
}

/// View 0 (`global0`) and view 1 (`global1`) of the official pipeline.
pub const VIEWS_3D: [IntensityParams; 2] = [
    IntensityParams {
        blur_p: (0.8, 0.8),
        mult_p: 0.8,
        add_p: 0.8,
        gamma_p: 0.8,
    },
    IntensityParams {
        blur_p: (0.8, 0.5),
        mult_p: 1.0,
        add_p: 0.5,
        gamma_p: 1.0,
    },
];

fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// Applies the six transforms in the official order to a (slices, h, w) view in place.
pub fn augment_intensity(
    x: &mut [f32],
    slices: usize,
    h: usize,
    w: usize,
    p: &IntensityParams,
    rng: &mut AugRng,
) {
    let plane = h * w;
    debug_assert_eq!(x.len(), slices * plane);
    // 1. Gaussian noise, whole sample, std ~ U(0, 0.1).
    let std = uniform(rng, 0.0, 0.1);
    if let Some(n) = Some(std)
        .filter(|&s| s > 0.0)
        .and_then(|s| Normal::new(0.0f32, s as f32).ok())
    {
        for v in x.iter_mut() {
            *v += n.sample(rng);
        }
    }
    // 2. Gaussian blur per slice.
    if coin(rng, p.blur_p.0) {
        for s in x.chunks_mut(plane) {
            if coin(rng, p.blur_p.1) {
                let sigma = uniform(rng, 0.1, 2.0);
                let radius = (4.0 * sigma + 0.5) as usize;
                blur_plane(s, h, w, &gaussian_kernel(sigma, radius), Border::Symmetric);
            }
        }
    }
    // 3. Multiplicative brightness per slice, U(0.75, 1.25).
    if coin(rng, p.mult_p) {
        for s in x.chunks_mut(plane) {
            let m = uniform(rng, 0.75, 1.25) as f32;
            s.iter_mut().for_each(|v| *v *= m);
        }
    }
    // 4. Additive brightness per slice with p_per_channel 0.8, N(0, 0.4).
    if coin(rng, p.add_p)
        && let Ok(n) = Normal::new(0.0f64, 0.4)
    {
        for s in x.chunks_mut(plane) {
            if coin(rng, 0.8) {
                let a = n.sample(rng) as f32;
                s.iter_mut().for_each(|v| *v += a);
            }
        }
    }
    // 5. Contrast per slice (p_sample 1): factor U(0.75, 1) w.p. 1/2 else U(1, 1.25), range kept.
    for s in x.chunks_mut(plane) {
        let f = if coin(rng, 0.5) {
            uniform(rng, 0.75, 1.0)
        } else {
            uniform(rng, 1.0, 1.25)
        };
        let (mean, _) = mean_std(s);
        let (lo, hi) = min_max(s);
        for v in s.iter_mut() {
            *v = (((f64::from(*v) - mean) * f + mean) as f32).clamp(lo, hi);
        }
    }
    // 6. Gamma per slice, retain_stats.
    if coin(rng, p.gamma_p) {
        for s in x.chunks_mut(plane) {
            let g = if coin(rng, 0.5) {
                uniform(rng, 0.7, 1.0)
            } else {
                uniform(rng, 1.0, 1.5)
            };
            let (mn, sd) = mean_std(s);
            let (lo, hi) = min_max(s);
            let range = (f64::from(hi - lo) + 1e-7) as f32;
            let gf = g as f32;
            for v in s.iter_mut() {
                *v = ((*v - lo) / range).powf(gf) * range + lo;
            }
            let (m2, s2) = mean_std(s);
            let k = sd / (s2 + 1e-8);
            for v in s.iter_mut() {
                *v = ((f64::from(*v) - m2) * k + mn) as f32;
            }
        }
    }
}
