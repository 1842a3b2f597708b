//! Training patches at native resolution, sampled as nnU-Net v1's `DataLoader3D` does
//! (reference §5.2; the 2D task uses the same rule with depth 1).
//!
//! - The patch is the network input (`input_3d`, or `1 × input_2d × input_2d`).
//! - Axes shorter than the patch are padded: the start is drawn from `[−⌈pad/2⌉, −⌊pad/2⌋]`
//!   (nnU-Net's `lb = −need_to_pad // 2`, `ub = shape + need_to_pad // 2 + need_to_pad % 2 −
//!   patch`); longer axes give a uniform start in `[0, n − patch]`.
//! - Foreground oversampling: the last `batch − round(batch · (1 − 0.33))` positions of a batch
//!   (`get_do_oversample`, Python's half-to-even `round`) centre their patch on a voxel of a
//!   foreground class picked uniformly among those present, the voxel uniformly among that
//!   class's voxels; the start is `max(lb, voxel − patch // 2)` (no upper clamp, so the far side may
//!   be padded, as nnU-Net). A case without foreground falls back to a random patch.
//! - Padding is 0 for the normalised image and for the target (background; nnU-Net pads the
//!   segmentation with −1 and maps it to 0).
//!
//! Randomness comes from the caller's RNG (`unimiss_data::augment::sample_rng`, keyed by
//! `(seed, epoch, sample index)`), so a patch never depends on batch order or threads.

use rand::Rng;
use unimiss_data::augment::AugRng;

use unimiss_data::augment::spatial::SampleArrays;

/// nnU-Net's `oversample_foreground_percent`.
pub const FOREGROUND_FRACTION: f64 = 0.33;

/// Whether position `pos` of a batch of `batch` samples must contain foreground
/// (nnU-Net: `not pos < round(batch · (1 − 0.33))`).
pub fn forces_foreground(pos: usize, batch: usize) -> bool {
    pos as f64 >= (batch as f64 * (1.0 - FOREGROUND_FRACTION)).round_ties_even()
}

/// The start of the patch on each axis (negative or beyond `dims − patch`: padded), centred on
/// `centre` when given, else random.
pub fn patch_origin(dims: [usize; 3], patch: [usize; 3], centre: Option<[usize; 3]>, rng: &mut AugRng) -> [isize; 3] {
    std::array::from_fn(|a| {
        let (n, p) = (dims[a] as isize, patch[a] as isize);
        let pad = (p - n).max(0);
        let lb = -((pad + 1) / 2);
        let ub = n + pad / 2 + pad % 2 - p;
        match centre {
            Some(c) => lb.max(c[a] as isize - p / 2),
            None => rng.random_range(lb as i64..=ub as i64) as isize,
        }
    })
}

/// A foreground voxel `(d, h, w)` of the target: a class (label maps: values > 0; masks: channels
/// with a non-zero pixel) picked uniformly, then one of its voxels uniformly. `None` without
/// foreground.
pub fn foreground_voxel(a: &SampleArrays, rng: &mut AugRng) -> Option<[usize; 3]> {
    let n: usize = a.dims.iter().product();
    let voxels: Vec<usize> = if a.labels {
        let map = &a.target[..n];
        let mut classes: Vec<u32> = map.iter().filter(|&&v| v > 0.0).map(|&v| v as u32).collect();
        classes.sort_unstable();
        classes.dedup();
        if classes.is_empty() {
            return None;
        }
        let c = classes[rng.random_range(0..classes.len())] as f32;
        (0..n).filter(|&i| map[i] == c).collect()
    } else {
        let present: Vec<usize> = (0..a.target_channels).filter(|&c| a.target[c * n..(c + 1) * n].iter().any(|&v| v > 0.0)).collect();
        if present.is_empty() {
            return None;
        }
        let c = present[rng.random_range(0..present.len())];
        (0..n).filter(|&i| a.target[c * n + i] > 0.0).collect()
    };
    let i = voxels[rng.random_range(0..voxels.len())];
    let [_, h, w] = a.dims;
    Some([i / (h * w), (i / w) % h, i % w])
}

/// The `patch` region starting at `origin` of each `(D, H, W)` channel of `x`, zero outside.
pub fn crop_padded(x: &[f32], channels: usize, dims: [usize; 3], origin: [isize; 3], patch: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = dims;
    let [pd, ph, pw] = patch;
    let mut out = vec![0f32; channels * pd * ph * pw];
    // the valid x range of every row
    let x0 = origin[2].max(0) as usize;
    let x1 = ((origin[2] + pw as isize).min(w as isize)).max(0) as usize;
    if x1 <= x0 {
        return out;
    }
    let dst_x = (x0 as isize - origin[2]) as usize;
    for c in 0..channels {
        for z in 0..pd {
            let sz = origin[0] + z as isize;
            if sz < 0 || sz >= d as isize {
                continue;
            }
            for y in 0..ph {
                let sy = origin[1] + y as isize;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                let src = ((c * d + sz as usize) * h + sy as usize) * w;
                let dst = ((c * pd + z) * ph + y) * pw + dst_x;
                out[dst..dst + x1 - x0].copy_from_slice(&x[src + x0..src + x1]);
            }
        }
    }
    out
}

/// One training patch of `a` (image and target cropped alike), foreground-centred when `force_fg`.
pub fn sample_patch(a: &SampleArrays, patch: [usize; 3], force_fg: bool, rng: &mut AugRng) -> SampleArrays {
    let centre = if force_fg { foreground_voxel(a, rng) } else { None };
    let origin = patch_origin(a.dims, patch, centre, rng);
    SampleArrays {
        image: crop_padded(&a.image, a.image_channels, a.dims, origin, patch),
        image_channels: a.image_channels,
        target: crop_padded(&a.target, a.target_channels, a.dims, origin, patch),
        target_channels: a.target_channels,
        dims: patch,
        labels: a.labels,
    }
}
