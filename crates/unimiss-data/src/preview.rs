//! A PNG grid of both augmented views of a few samples, to see what the model sees: one row
//! per sample, view 0 then view 1; 2D views as RGB, 3D views as their middle depth slice
//! (grey, each tile stretched to its own min–max). Every tile is scaled to the same cell (at
//! least 256 px), the columns are headed "VIEW 0" / "VIEW 1", and each row is labelled with
//! its modality, file name and view size (a built-in 5×7 pixel font: no font files needed).

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

/// Rows of a 5×7 glyph (bit 4 = leftmost column); lower case is drawn as upper case and any
/// other character as '?'.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        _ => [14, 17, 1, 2, 4, 0, 4],
    }
}

/// Draws `text` (lines split at '\n') with its top-left corner at (x, y), each line cut at `max_x`.
fn label(img: &mut RgbImage, x: u32, y: u32, max_x: u32, text: &str) {
    for (n, line) in text.lines().enumerate() {
        label_line(img, x, y + n as u32 * (9 * SCALE), max_x, line);
    }
}

fn label_line(img: &mut RgbImage, x: u32, y: u32, max_x: u32, text: &str) {
    for (i, c) in text.chars().enumerate() {
        let x0 = x + i as u32 * 6 * SCALE;
        if x0 + 5 * SCALE > max_x {
            return;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5u32 {
                if bits & (16 >> col) != 0 {
                    for (dx, dy) in (0..SCALE).flat_map(|a| (0..SCALE).map(move |b| (a, b))) {
                        let (px, py) = (x0 + col * SCALE + dx, y + row as u32 * SCALE + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, INK);
                        }
                    }
                }
            }
        }
    }
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
        let text = row_label(&p, s);
        rows.push([(tile(&p, &a), text.clone()), (tile(&p, &b), text)]);
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
