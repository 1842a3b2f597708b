//! Separable resampling and blurring of planar f32 images.
//!
//! - PIL's antialiased bicubic (`Image.resize(.., BICUBIC)`, a = −0.5, support scaled by the
//!   downscale factor, weights normalised), used by torchvision's `RandomResizedCrop` on PIL
//!   images.
//! - Half-pixel bilinear with edge clamping (`cv2.resize` INTER_LINEAR, torch bilinear
//!   `align_corners=False` without antialias).
//! - Gaussian blur with torch's `reflect` border (edge not repeated) or scipy's `reflect`
//!   border (edge repeated).

/// Per-output-sample filter taps: output `o` reads `weights[o*k..(o+1)*k]` from input
/// `start[o]..start[o]+k` (weights past the input's end are zero and their index is clamped).
#[derive(Clone, Debug)]
pub struct Taps {
    pub start: Vec<usize>,
    pub k: usize,
    pub weights: Vec<f32>,
}

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

impl Taps {
    /// PIL's bicubic resample taps from `in_size` samples to `out_size` samples.
    pub fn pil_bicubic(in_size: usize, out_size: usize) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 2.0 * filterscale;
        let k = (support.ceil() as usize) * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut weights = vec![0.0f32; out_size * k];
        let mut ws = vec![0.0f64; k];
        for o in 0..out_size {
            let center = (o as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
            let xmax = ((center + support + 0.5).floor() as usize).min(in_size);
            let n = xmax.saturating_sub(xmin).min(k);
            let mut total = 0.0;
            for (j, w) in ws.iter_mut().enumerate().take(n) {
                *w = bicubic((j as f64 + xmin as f64 - center + 0.5) / filterscale);
                total += *w;
            }
            for j in 0..n {
                weights[o * k + j] = if total != 0.0 {
                    (ws[j] / total) as f32
                } else {
                    0.0
                };
            }
            start.push(xmin);
        }
        Taps { start, k, weights }
    }

    /// Half-pixel-centred bilinear taps with edge clamping (no antialias).
    pub fn bilinear(in_size: usize, out_size: usize) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let mut start = Vec::with_capacity(out_size);
        let mut weights = Vec::with_capacity(out_size * 2);
        for o in 0..out_size {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let mut i0 = src.floor() as usize;
            let mut f = src - i0 as f64;
            if i0 + 1 >= in_size {
                i0 = in_size - 1;
                f = 0.0;
            }
            start.push(i0);
            weights.push((1.0 - f) as f32);
            weights.push(f as f32);
        }
        Taps {
            start,
            k: 2,
            weights,
        }
    }

    fn out_len(&self) -> usize {
        self.start.len()
    }
}

/// Resamples a (h, w) plane region: rows `y0..y0+taps_y.in`, cols `x0..x0+taps_x.in` of a
/// plane with row stride `stride`, to (taps_y.out, taps_x.out). Horizontal pass first, as PIL.
pub fn resample_plane(
    src: &[f32],
    stride: usize,
    (y0, in_h): (usize, usize),
    x0: usize,
    tx: &Taps,
    ty: &Taps,
    in_w: usize,
) -> Vec<f32> {
    let (out_w, out_h) = (tx.out_len(), ty.out_len());
    let mut tmp = vec![0.0f32; in_h * out_w];
    for r in 0..in_h {
        let row = &src[(y0 + r) * stride + x0..(y0 + r) * stride + x0 + in_w];
        let dst = &mut tmp[r * out_w..(r + 1) * out_w];
        for (o, d) in dst.iter_mut().enumerate() {
            let s = tx.start[o];
            let w = &tx.weights[o * tx.k..(o + 1) * tx.k];
            let mut acc = 0.0f32;
            for (j, &wj) in w.iter().enumerate() {
                if wj != 0.0 {
                    acc += wj * row[(s + j).min(in_w - 1)];
                }
            }
            *d = acc;
        }
    }
    let mut out = vec![0.0f32; out_h * out_w];
    for o in 0..out_h {
        let s = ty.start[o];
        let w = &ty.weights[o * ty.k..(o + 1) * ty.k];
        let dst = &mut out[o * out_w..(o + 1) * out_w];
        for (j, &wj) in w.iter().enumerate() {
            if wj == 0.0 {
                continue;
            }
            let r = (s + j).min(in_h - 1);
            let srow = &tmp[r * out_w..(r + 1) * out_w];
            for (d, &v) in dst.iter_mut().zip(srow) {
                *d += wj * v;
            }
        }
    }
    out
}

/// Border handling of a blur.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// torch `reflect`: d c b | a b c d | c b a (edge not repeated).
    Reflect101,
    /// scipy `reflect`: c b a | a b c d | d c b (edge repeated).
    Symmetric,
}

fn reflect(i: isize, n: isize, border: Border) -> usize {
    if n == 1 {
        return 0;
    }
    let (period, mut j) = match border {
        Border::Reflect101 => (2 * (n - 1), i),
        Border::Symmetric => (2 * n, i),
    };
    j = j.rem_euclid(period);
    let j = match border {
        Border::Reflect101 => {
            if j >= n {
                period - j
            } else {
                j
            }
        }
        Border::Symmetric => {
            if j >= n {
                period - 1 - j
            } else {
                j
            }
        }
    };
    j as usize
}

/// Normalised 1-D Gaussian of `2*radius+1` taps.
pub fn gaussian_kernel(sigma: f64, radius: usize) -> Vec<f32> {
    let k: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let x = i as f64 - radius as f64;
            (-0.5 * (x / sigma) * (x / sigma)).exp()
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.iter().map(|v| (v / s) as f32).collect()
}

/// Separable Gaussian blur of one (h, w) plane in place.
pub fn blur_plane(p: &mut [f32], h: usize, w: usize, kernel: &[f32], border: Border) {
    let r = (kernel.len() / 2) as isize;
    let mut line = vec![0.0f32; h.max(w) + 2 * r as usize];
    // Rows.
    for y in 0..h {
        let row = &mut p[y * w..(y + 1) * w];
        for (i, l) in line.iter_mut().take(w + 2 * r as usize).enumerate() {
            *l = row[reflect(i as isize - r, w as isize, border)];
        }
        for (x, o) in row.iter_mut().enumerate() {
            *o = kernel.iter().zip(&line[x..]).map(|(a, b)| a * b).sum();
        }
    }
    // Columns, processed a row at a time for contiguous access.
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        let dst = &mut out[y * w..(y + 1) * w];
        for (t, &kv) in kernel.iter().enumerate() {
            let sy = reflect(y as isize + t as isize - r, h as isize, border);
            let src = &p[sy * w..(sy + 1) * w];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += kv * s;
            }
        }
    }
    p.copy_from_slice(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_modes() {
        let r101: Vec<usize> = (-3..7).map(|i| reflect(i, 4, Border::Reflect101)).collect();
        assert_eq!(r101, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        let sym: Vec<usize> = (-3..7).map(|i| reflect(i, 4, Border::Symmetric)).collect();
        assert_eq!(sym, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn bilinear_matches_half_pixel_formula() {
        // 4 -> 8 upsampling: src = (o + 0.5) / 2 - 0.5, clamped at both ends.
        let t = Taps::bilinear(4, 8);
        assert_eq!(t.start, [0, 0, 0, 1, 1, 2, 2, 3]);
        let f: Vec<f32> = t.weights.chunks(2).map(|w| w[1]).collect();
        assert_eq!(f, [0.0, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.0]);
    }

    #[test]
    fn bicubic_weights_sum_to_one_and_identity_is_exact() {
        let t = Taps::pil_bicubic(10, 10);
        let src: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let out = resample_plane(&src, 10, (0, 1), 0, &t, &Taps::pil_bicubic(1, 1), 10);
        for (a, b) in out.iter().zip(&src) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let t = Taps::pil_bicubic(300, 7);
        for w in t.weights.chunks(t.k) {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}
