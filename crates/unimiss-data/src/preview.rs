//! A PNG grid of both augmented views of a few samples, to see what the model sees: one row
//! per sample, view 0 then view 1; 2D views as RGB, 3D views as their middle depth slice
//! (grey, each tile stretched to its own min–max).

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{DataError, Result};
use crate::manifest::{Modality, Sample};
use crate::pipeline::Pipeline;

const GAP: u32 = 4;

/// One tile as an RGB image.
fn tile(p: &Pipeline, view: &[f32]) -> RgbImage {
    let [d, h, w] = p.size();
    match p.modality() {
        Modality::Image2d => {
            let n = h * w;
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                let c = |k: usize| (view[k * n + i].clamp(0.0, 1.0) * 255.0).round() as u8;
                Rgb([c(0), c(1), c(2)])
            })
        }
        Modality::Volume3d => {
            let sl = &view[(d / 2) * h * w..(d / 2 + 1) * h * w];
            let (lo, hi) = sl
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let span = (hi - lo).max(1e-6);
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let v = ((sl[y as usize * w + x as usize] - lo) / span * 255.0).round() as u8;
                Rgb([v, v, v])
            })
        }
    }
}

/// Renders the grid for `samples` (any mix of modalities) with the given output sizes.
pub fn preview_grid(
    samples: &[Sample],
    size_2d: usize,
    size_3d: [usize; 3],
    seed: u64,
    epoch: usize,
) -> Result<RgbImage> {
    if samples.is_empty() {
        return Err(DataError::Config("no samples to preview".into()));
    }
    let mut rows = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let p = Pipeline::new(s.modality, size_2d, size_3d);
        p.validate()?;
        let [a, b] = p.views(&s.path, seed, epoch, i)?;
        rows.push([tile(&p, &a), tile(&p, &b)]);
    }
    let cw = rows.iter().flatten().map(|t| t.width()).max().unwrap_or(1);
    let ch = rows.iter().flatten().map(|t| t.height()).max().unwrap_or(1);
    let mut out = RgbImage::from_pixel(
        2 * cw + 3 * GAP,
        rows.len() as u32 * (ch + GAP) + GAP,
        Rgb([40, 40, 40]),
    );
    for (r, pair) in rows.iter().enumerate() {
        for (c, t) in pair.iter().enumerate() {
            let (x0, y0) = (GAP + c as u32 * (cw + GAP), GAP + r as u32 * (ch + GAP));
            image::imageops::replace(&mut out, t, i64::from(x0), i64::from(y0));
        }
    }
    Ok(out)
}

/// Renders the grid and writes it as PNG.
pub fn write_preview(
    out: &Path,
    samples: &[Sample],
    size_2d: usize,
    size_3d: [usize; 3],
    seed: u64,
) -> Result<()> {
    let img = preview_grid(samples, size_2d, size_3d, seed, 0)?;
    img.save(out).map_err(|e| DataError::Image {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })
}
