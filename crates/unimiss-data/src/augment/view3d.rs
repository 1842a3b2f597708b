//! The 3D (CT) views of reference §4.2: `pad_image`, the `crop_scale0` context crop and /1024
//! scaling, then per view `crop_scale_mirror_golbal` (depth crop, in-plane scale crop, flips
//! with p 0.8, bilinear in-plane resize) and the per-slice intensity transforms.
//!
//! Size constants scale with the output size `[sd, sh, sw]`: the official 96 becomes sh/sw, the
//! depth 16 becomes sd, and the in-plane pad target 256 becomes round(256·s/96) (exactly the
//! official numbers at [16, 96, 96]).

use super::intensity::{IntensityParams, augment_intensity};
use super::kernels::{Taps, resample_plane};
use super::{AugRng, coin, randint, uniform};
use crate::nifti::Volume;

/// The intensity divisor (`truncate`): no clipping, no offset.
pub const HU_SCALE: f32 = 1024.0;

/// The context crop of a padded volume, already divided by 1024: (D, h, w).
#[derive(Clone, Debug)]
pub struct Context {
    pub data: Vec<f32>,
    pub dims: [usize; 3],
}

/// In-plane pad target for an output side `s` (256 at s = 96).
pub fn pad_target(s: usize) -> usize {
    (256.0 * s as f64 / 96.0).round() as usize
}

fn scaled(s: usize, f: f64) -> usize {
    (s as f64 * f) as usize
}

/// `pad_image` + `crop_scale0` + /1024. `size` = [sd, sh, sw].
pub fn context_crop(vol: &Volume, size: [usize; 3], rng: &mut AugRng) -> Context {
    let [d, h, w] = vol.dims;
    let (ph, pw) = (h.max(pad_target(size[1])), w.max(pad_target(size[2])));
    let pd = d.max(size[0]);
    let d_before = (pd - d) / 2;
    let mut side = |len: usize, s: usize| {
        let f = uniform(rng, 1.4, 1.8);
        let c = scaled(s, f);
        if c >= len { s } else { c }
    };
    let ch = side(ph, size[1]);
    let cw = side(pw, size[2]);
    let h0 = randint(rng, 0, ph - ch);
    let w0 = randint(rng, 0, pw - cw);
    let mut data = vec![0.0f32; pd * ch * cw];
    for z in 0..pd {
        let Some(sz) = z.checked_sub(d_before).filter(|&s| s < d) else {
            continue;
        };
        for y in 0..ch {
            let sy = h0 + y;
            if sy >= h {
                break;
            }
            let src = &vol.data[(sz * h + sy) * w..(sz * h + sy + 1) * w];
            let dst = &mut data[(z * ch + y) * cw..(z * ch + y + 1) * cw];
            for (x, o) in dst.iter_mut().enumerate() {
                if let Some(&v) = src.get(w0 + x) {
                    *o = v / HU_SCALE;
                }
            }
        }
    }
    Context {
        data,
        dims: [pd, ch, cw],
    }
}

/// `crop_scale_mirror_golbal` + intensity augmentation: one (sd, sh, sw) view.
pub fn global_view(
    ctx: &Context,
    size: [usize; 3],
    p: &IntensityParams,
    rng: &mut AugRng,
) -> Vec<f32> {
    let [cd, ch, cw] = ctx.dims;
    let [sd, sh, sw] = size;
    let d0 = randint(rng, 0, cd.saturating_sub(sd));
    let mut side = |len: usize, s: usize| {
        let f = uniform(rng, 0.8, 1.2);
        let c = scaled(s, f);
        if c >= len { s.min(len) } else { c.max(1) }
    };
    let gh = side(ch, sh);
    let gw = side(cw, sw);
    let h0 = randint(rng, 0, ch - gh);
    let w0 = randint(rng, 0, cw - gw);
    let flip_w = coin(rng, 0.8);
    let flip_h = coin(rng, 0.8);
    let flip_d = coin(rng, 0.8);
    let tx = Taps::bilinear(gw, sw);
    let ty = Taps::bilinear(gh, sh);
    let plane = sh * sw;
    let depth = sd.min(cd);
    let mut out = vec![0.0f32; sd * plane];
    for z in 0..depth {
        let src = &ctx.data[(d0 + z) * ch * cw..(d0 + z + 1) * ch * cw];
        let mut sl = resample_plane(src, cw, (h0, gh), w0, &tx, &ty, gw);
        if flip_w {
            sl.chunks_mut(sw).for_each(|r| r.reverse());
        }
        if flip_h {
            let rows: Vec<&[f32]> = sl.chunks(sw).rev().collect();
            sl = rows.concat();
        }
        let dz = if flip_d { depth - 1 - z } else { z };
        out[dz * plane..(dz + 1) * plane].copy_from_slice(&sl);
    }
    augment_intensity(&mut out, sd, sh, sw, p, rng);
    out
}
