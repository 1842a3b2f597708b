//! Trilinear resampling of a NIfTI image to a target voxel size (official preprocessing step:
//! 1 × 1 × 3 mm before sub-volume extraction).
//!
//! Sampling follows PyTorch `interpolate(mode="trilinear", size=…, align_corners=False)`: output
//! voxel o reads input coordinate (o + 0.5)·(n_in/n_out) − 0.5, clamped at the edges. The output
//! size per axis is round(n·spacing/target) (at least 1). The affine is updated so every output
//! voxel keeps its true world position: column j is scaled by f_j = n_in/n_out and the origin
//! moves by column_j·(f_j − 1)/2.

use crate::augment::kernels::Taps;
use crate::error::{DataError, Result};
use crate::nifti::NiftiImage;

/// Linear resampling of one axis of an x-fastest `dims` grid to `out` samples (half-pixel
/// taps, edges clamped).
pub(crate) fn linear_axis(data: &[f32], dims: [usize; 3], axis: usize, out: usize) -> Vec<f32> {
    let taps = Taps::bilinear(dims[axis], out);
    let mut nd = dims;
    nd[axis] = out;
    let stride = match axis {
        0 => 1,
        1 => dims[0],
        _ => dims[0] * dims[1],
    };
    let n_in = dims[axis];
    let outer: usize = dims
        .iter()
        .enumerate()
        .filter(|&(a, _)| a > axis)
        .map(|(_, &d)| d)
        .product();
    let mut res = vec![0.0f32; nd.iter().product()];
    for o in 0..outer {
        let src = &data[o * n_in * stride..(o + 1) * n_in * stride];
        let dst = &mut res[o * out * stride..(o + 1) * out * stride];
        for (i, &s) in taps.start.iter().enumerate() {
            let (w0, w1) = (taps.weights[2 * i], taps.weights[2 * i + 1]);
            let s1 = (s + 1).min(n_in - 1);
            let a = &src[s * stride..(s + 1) * stride];
            let b = &src[s1 * stride..(s1 + 1) * stride];
            for ((d, &x), &y) in dst[i * stride..(i + 1) * stride].iter_mut().zip(a).zip(b) {
                *d = w0 * x + w1 * y;
            }
        }
    }
    res
}

/// Resamples to `target` mm along (x, y, z). Integer inputs are rounded to integers.
pub fn resample_to_spacing(img: &NiftiImage, target: [f64; 3]) -> Result<NiftiImage> {
    if target.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(DataError::Config(format!(
            "target spacing {target:?} must be positive"
        )));
    }
    let sp = img.header.spacing_xyz();
    let dims = img.header.dims;
    let mut out_dims = [0usize; 3];
    for a in 0..3 {
        out_dims[a] = ((dims[a] as f64 * sp[a] / target[a]).round() as usize).max(1);
        if out_dims[a] > 32767 {
            return Err(DataError::Config(format!(
                "resampling to {target:?} would make axis {a} {} voxels long",
                out_dims[a]
            )));
        }
    }
    let mut data = img.data.clone();
    let mut cur = dims;
    for a in 0..3 {
        if out_dims[a] != cur[a] {
            data = linear_axis(&data, cur, a, out_dims[a]);
            cur[a] = out_dims[a];
        }
    }
    if !matches!(
        img.header.datatype,
        crate::nifti::Datatype::F32 | crate::nifti::Datatype::F64
    ) {
        data.iter_mut().for_each(|v| *v = v.round());
    }
    let mut h = img.header.clone();
    let f: Vec<f64> = (0..3)
        .map(|a| dims[a] as f64 / out_dims[a] as f64)
        .collect();
    let qa = h.affine_from_qform();
    for a in 0..3 {
        h.pixdim[a + 1] *= f[a];
        for (r, q) in qa.iter().enumerate() {
            h.srow[r][3] += h.srow[r][a] * (f[a] - 1.0) / 2.0;
            h.qoffset[r] += q[a] * (f[a] - 1.0) / 2.0;
        }
        for r in 0..3 {
            h.srow[r][a] *= f[a];
        }
    }
    h.dims = out_dims;
    Ok(NiftiImage { header: h, data })
}
