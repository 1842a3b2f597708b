//! Surface distances: the 95th-percentile Hausdorff distance (HD95) in millimetres.
//!
//! Definition (medpy `hd95`, the one most BCV papers report): the surfaces of both masks are the
//! mask voxels with a face neighbour outside the mask (voxels on the grid border count as
//! surface, as with `scipy.ndimage.binary_erosion`'s default `border_value = 0`); the distances
//! from every prediction-surface voxel to the nearest ground-truth-surface voxel and back are
//! pooled, and their 95th percentile (NumPy's linear rule) is returned. Distances are exact
//! Euclidean distances with the voxel spacing. Axes of extent 1 (a 2D image stored as `[1, H, W]`)
//! are not treated as borders.

use crate::error::{Result, TaskError};

/// HD95 between two masks on a `dims = [D, H, W]` grid with `spacing` (mm, same order).
/// `None` when either mask is empty.
pub fn hd95(pred: &[bool], gt: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Result<Option<f64>> {
    let n = dims.iter().product::<usize>();
    for (what, m) in [("prediction", pred), ("ground truth", gt)] {
        if m.len() != n {
            return Err(TaskError::ShapeMismatch {
                what: format!("hd95 {what} mask"),
                got: vec![m.len()],
                expected: dims.to_vec(),
            });
        }
    }
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(TaskError::Invalid(format!("hd95: spacing {spacing:?} must be positive")));
    }
    if !pred.iter().any(|&b| b) || !gt.iter().any(|&b| b) {
        return Ok(None);
    }
    let sp = surface(pred, dims);
    let sg = surface(gt, dims);
    let dg = distance_to(&sg, dims, spacing);
    let dp = distance_to(&sp, dims, spacing);
    let mut d: Vec<f64> = (0..n).filter(|&i| sp[i]).map(|i| dg[i]).collect();
    d.extend((0..n).filter(|&i| sg[i]).map(|i| dp[i]));
    Ok(Some(percentile(&mut d, 95.0)))
}

/// Mask voxels with a face neighbour outside the mask or outside the grid.
pub fn surface(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [d, h, w] = dims;
    let at = |z: usize, y: usize, x: usize| mask[(z * h + y) * w + x];
    let mut out = vec![false; mask.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                if !at(z, y, x) {
                    continue;
                }
                let off = |c: usize, n: usize, f: &dyn Fn(usize) -> bool| {
                    n > 1 && (c == 0 || c + 1 == n || !f(c - 1) || !f(c + 1))
                };
                let border = off(z, d, &|k| at(k, y, x))
                    || off(y, h, &|k| at(z, k, x))
                    || off(x, w, &|k| at(z, y, k));
                out[(z * h + y) * w + x] = border;
            }
        }
    }
    out
}

/// Euclidean distance (mm) from every voxel to the nearest `true` voxel of `feature`
/// (exact, separable Felzenszwalb–Huttenlocher transform). `f64::INFINITY` when `feature` is empty.
pub fn distance_to(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut f: Vec<f64> = feature.iter().map(|&b| if b { 0.0 } else { f64::INFINITY }).collect();
    let strides = [dims[1] * dims[2], dims[2], 1];
    for axis in 0..3 {
        let n = dims[axis];
        if n < 2 {
            continue;
        }
        let stride = strides[axis];
        let mut line = vec![0.0; n];
        let mut out = vec![0.0; n];
        let total = f.len();
        for start in (0..total).filter(|i| (i / stride) % n == 0) {
            for (k, v) in line.iter_mut().enumerate() {
                *v = f[start + k * stride];
            }
            lower_envelope(&line, spacing[axis], &mut out);
            for (k, v) in out.iter().enumerate() {
                f[start + k * stride] = *v;
            }
        }
    }
    f.into_iter().map(f64::sqrt).collect()
}

/// 1-D squared distance transform: `out[x] = min_q ((x − q)·s)² + f[q]`.
fn lower_envelope(f: &[f64], s: f64, out: &mut [f64]) {
    let n = f.len();
    let finite: Vec<usize> = (0..n).filter(|&q| f[q].is_finite()).collect();
    if finite.is_empty() {
        out.iter_mut().for_each(|o| *o = f64::INFINITY);
        return;
    }
    let pos = |q: usize| q as f64 * s;
    // parabolas (vertex index) and the boundaries between them
    let mut v: Vec<usize> = Vec::with_capacity(finite.len());
    let mut z: Vec<f64> = Vec::with_capacity(finite.len() + 1);
    for &q in &finite {
        loop {
            match v.last() {
                None => {
                    v.push(q);
                    z.clear();
                    z.push(f64::NEG_INFINITY);
                    break;
                }
                Some(&p) => {
                    let x = ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
                    if z.last().is_some_and(|&zl| x <= zl) {
                        v.pop();
                        z.pop();
                        continue;
                    }
                    v.push(q);
                    z.push(x);
                    break;
                }
            }
        }
    }
    z.push(f64::INFINITY);
    let mut k = 0;
    for (x, o) in out.iter_mut().enumerate() {
        let px = pos(x);
        while z[k + 1] < px {
            k += 1;
        }
        let d = px - pos(v[k]);
        *o = d * d + f[v[k]];
    }
}

/// NumPy's default (`linear`) percentile; sorts `values` in place. `values` must be non-empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 1 {
        return values[0];
    }
    let pos = q / 100.0 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let t = pos - lo as f64;
    values[lo] + (values[hi] - values[lo]) * t
}
