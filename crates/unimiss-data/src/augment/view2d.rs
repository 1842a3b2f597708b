//! The 2D (X-ray) views of reference §4.1, torchvision 0.8.2 semantics on PIL images:
//! RandomResizedCrop(size, scale (0.14, 1), ratio (3/4, 4/3), bicubic) → horizontal flip (p 0.5)
//! → ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8 in a random order → RandomGrayscale (p 0.8 for
//! view 0, 0.4 for view 1) → GaussianBlur(kernel 23, σ ~ U(0.1, 2)) (p 0.5 / 1.0) → [0, 1].
//!
//! Values stay in f32 between steps (PIL rounds to 8 bits after each), a difference of at most
//! half a grey level per step. Grey images are processed as one plane: saturation, hue and
//! grayscale are exact no-ops on them, as in the official pipeline.

use super::kernels::{Border, Taps, blur_plane, gaussian_kernel, resample_plane};
use super::{AugRng, coin, randint, uniform};
use crate::image2d::Image2d;
use rand::seq::SliceRandom;

/// Per-view probabilities (reference §4.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View2dParams {
    pub grayscale_p: f64,
    pub blur_p: f64,
}

/// View 0 and view 1 of the official pipeline.
pub const VIEWS_2D: [View2dParams; 2] = [
    View2dParams {
        grayscale_p: 0.8,
        blur_p: 0.5,
    },
    View2dParams {
        grayscale_p: 0.4,
        blur_p: 1.0,
    },
];

/// RandomResizedCrop scale range.
pub const CROP_SCALE: (f64, f64) = (0.14, 1.0);
/// RandomResizedCrop aspect-ratio range.
pub const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
/// GaussianBlur kernel size.
pub const BLUR_KERNEL: usize = 23;

/// torchvision's `RandomResizedCrop.get_params`: (top, left, height, width).
pub fn crop_params(rng: &mut AugRng, height: usize, width: usize) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (lr0, lr1) = (CROP_RATIO.0.ln(), CROP_RATIO.1.ln());
    for _ in 0..10 {
        let target = area * uniform(rng, CROP_SCALE.0, CROP_SCALE.1);
        let aspect = uniform(rng, lr0, lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let i = randint(rng, 0, height - h);
            let j = randint(rng, 0, width - w);
            return (i, j, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < CROP_RATIO.0 {
        (
            width,
            ((width as f64 / CROP_RATIO.0).round() as usize).clamp(1, height),
        )
    } else if in_ratio > CROP_RATIO.1 {
        (
            ((height as f64 * CROP_RATIO.1).round() as usize).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

fn luma(planes: &[Vec<f32>]) -> Vec<f32> {
    planes[0]
        .iter()
        .zip(&planes[1])
        .zip(&planes[2])
        .map(|((r, g), b)| 0.299 * r + 0.587 * g + 0.114 * b)
        .collect()
}

fn blend(planes: &mut [Vec<f32>], other: &[f32], f: f32) {
    for p in planes.iter_mut() {
        for (v, &o) in p.iter_mut().zip(other.iter().cycle()) {
            *v = (o + f * (*v - o)).clamp(0.0, 1.0);
        }
    }
}

fn adjust_hue(planes: &mut [Vec<f32>], shift: f32) {
    let (r, rest) = planes.split_at_mut(1);
    let (g, b) = rest.split_at_mut(1);
    for ((r, g), b) in r[0].iter_mut().zip(g[0].iter_mut()).zip(b[0].iter_mut()) {
        let (mx, mn) = (r.max(g.max(*b)), r.min(g.min(*b)));
        let v = mx;
        let c = mx - mn;
        if c <= 0.0 {
            continue;
        }
        let s = c / mx;
        let mut h = if mx == *r {
            (*g - *b) / c
        } else if mx == *g {
            2.0 + (*b - *r) / c
        } else {
            4.0 + (*r - *g) / c
        } / 6.0;
        h = (h + shift).rem_euclid(1.0);
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (nr, ng, nb) = match i as i32 % 6 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        (*r, *g, *b) = (nr, ng, nb);
    }
}

/// One augmented view, planar (C, size, size) with C = 1 (grey) or 3, values in [0, 1].
pub fn augment_view(
    img: &Image2d,
    size: usize,
    p: &View2dParams,
    rng: &mut AugRng,
) -> (usize, Vec<f32>) {
    let (top, left, h, w) = crop_params(rng, img.height, img.width);
    let tx = Taps::pil_bicubic(w, size);
    let ty = Taps::pil_bicubic(h, size);
    let n_in = img.width * img.height;
    let mut planes: Vec<Vec<f32>> = (0..img.channels)
        .map(|c| {
            let src = &img.data[c * n_in..(c + 1) * n_in];
            let mut out = resample_plane(src, img.width, (top, h), left, &tx, &ty, w);
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
            out
        })
        .collect();
    if coin(rng, 0.5) {
        for pl in planes.iter_mut() {
            for row in pl.chunks_mut(size) {
                row.reverse();
            }
        }
    }
    if coin(rng, 0.8) {
        let b = uniform(rng, 0.6, 1.4) as f32;
        let c = uniform(rng, 0.6, 1.4) as f32;
        let s = uniform(rng, 0.8, 1.2) as f32;
        let hue = uniform(rng, -0.1, 0.1) as f32;
        let mut order = [0u8, 1, 2, 3];
        order.shuffle(rng);
        for op in order {
            match op {
                0 => blend(&mut planes, &[0.0], b),
                1 => {
                    let grey = if planes.len() == 3 {
                        luma(&planes)
                    } else {
                        planes[0].clone()
                    };
                    let mean = grey.iter().map(|&v| f64::from(v)).sum::<f64>() / grey.len() as f64;
                    // PIL: int(mean of the 8-bit L image + 0.5).
                    let m = ((mean * 255.0 + 0.5).floor() / 255.0) as f32;
                    blend(&mut planes, &[m], c);
                }
                2 if planes.len() == 3 => {
                    let grey = luma(&planes);
                    blend(&mut planes, &grey, s);
                }
                3 if planes.len() == 3 => adjust_hue(&mut planes, hue),
                _ => {}
            }
        }
    }
    if coin(rng, p.grayscale_p) && planes.len() == 3 {
        planes = vec![luma(&planes)];
    }
    if coin(rng, p.blur_p) {
        let sigma = uniform(rng, 0.1, 2.0);
        let k = gaussian_kernel(sigma, BLUR_KERNEL / 2);
        for pl in planes.iter_mut() {
            blur_plane(pl, size, size, &k, Border::Reflect101);
            pl.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        }
    }
    let c = planes.len();
    (c, planes.concat())
}
