//! A PNG grid of both augmented views of a few samples, to see what the model sees: one row
//! per sample, view 0 then view 1; 2D views as RGB, 3D views as their middle depth slice (grey,
//! one window per sample: the min–max of both whole 3D views, so a flat slice looks flat and the
//! two views compare). Every tile is scaled to the same cell (at least 256 px), the columns are
//! headed "view 0" / "view 1", and each row is labelled with its modality, file name (as
//! written) and view size ([`crate::font`]: no font files needed).

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{DataError, Result};
use crate::manifest::{Modality, Sample};
use crate::pipeline::Pipeline;

const GAP: u32 = 6;
/// Smallest cell side: 3D crops (96 px) are scaled up to it.
const MIN_CELL: u32 = 256;
/// Label glyphs are 5×7 pixels drawn at this scale, one pixel column apart.
const SCALE: u32 = 2;
/// Height of the column headings; a row's two-line label takes `LINE + 9 * SCALE`.
const LINE: u32 = 7 * SCALE + 2 * GAP;
const ROW_LABEL: u32 = LINE + 9 * SCALE;
const INK: Rgb<u8> = Rgb([235, 235, 235]);

/// Draws `text` (lines split at '\n') with its top-left corner at (x, y), each line cut at `max_x`.
fn label(img: &mut RgbImage, x: u32, y: u32, max_x: u32, text: &str) {
    crate::font::draw_text(img, x, y, max_x, text, SCALE, INK);
}

/// The row label of a sample: modality, what the tile shows, file name.
fn row_label(p: &Pipeline, s: &Sample) -> String {
    let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let [d, h, w] = p.size();
    match p.modality() {
        Modality::Image2d => format!("2D view {h}x{w}\n{name}"),
        Modality::Volume3d => format!("3D view {d}x{h}x{w}: slice {} of {d}\n{name}", d / 2 + 1),
    }
}

/// The grey window of a 3D sample: min and max over both whole views.
fn window(views: [&[f32]; 2]) -> (f32, f32) {
    views.iter().flat_map(|v| v.iter()).fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)))
}

/// One tile as an RGB image (3D: grey in the sample's `window`).
fn tile(p: &Pipeline, view: &[f32], (lo, hi): (f32, f32)) -> RgbImage {
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
        let text = row_label(&p, s);
        let win = window([&a, &b]);
        rows.push([(tile(&p, &a, win), text.clone()), (tile(&p, &b, win), text)]);
    }
    // One square cell for every tile, each tile scaled (aspect kept) to fill it.
    let cell = rows.iter().flatten().map(|(t, _)| t.width().max(t.height())).max().unwrap_or(1).max(MIN_CELL);
    let width = 2 * cell + 3 * GAP;
    let mut out = RgbImage::from_pixel(width, LINE + rows.len() as u32 * (ROW_LABEL + cell + GAP), Rgb([40, 40, 40]));
    for c in 0..2u32 {
        label(&mut out, GAP + c * (cell + GAP), GAP, width, &format!("view {c}"));
    }
    for (r, pair) in rows.iter().enumerate() {
        let y_label = LINE + r as u32 * (ROW_LABEL + cell + GAP);
        label(&mut out, GAP, y_label + GAP, width, &pair[0].1);
        for (c, (t, _)) in pair.iter().enumerate() {
            let f = f64::from(cell) / f64::from(t.width().max(t.height()));
            let (w, h) = ((f64::from(t.width()) * f).round() as u32, (f64::from(t.height()) * f).round() as u32);
            let scaled = image::imageops::resize(t, w.max(1), h.max(1), image::imageops::FilterType::Nearest);
            let (x0, y0) = (GAP + c as u32 * (cell + GAP), y_label + ROW_LABEL);
            image::imageops::replace(&mut out, &scaled, i64::from(x0), i64::from(y0));
        }
    }
    Ok(out)
}

/// Renders the grid as PNG bytes with its width and height (e.g. for a TensorBoard image).
pub fn preview_png(
    samples: &[Sample],
    size_2d: usize,
    size_3d: [usize; 3],
    seed: u64,
) -> Result<(Vec<u8>, u32, u32)> {
    let img = preview_grid(samples, size_2d, size_3d, seed, 0)?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| DataError::Config(format!("encoding the preview grid: {e}")))?;
    Ok((png.into_inner(), img.width(), img.height()))
}

/// Renders the grid and writes it as PNG.
pub fn write_preview(
    out: &Path,
    samples: &[Sample],
    size_2d: usize,
    size_3d: [usize; 3],
    seed: u64,
) -> Result<()> {
    let (png, _, _) = preview_png(samples, size_2d, size_3d, seed)?;
    std::fs::write(out, png).map_err(|e| DataError::Image {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })
}
