//! Pictures of a segmentation: the predicted masks over their image (`predict --overlay`), as
//! one PNG per input, `<name>_pred_overlay.png`.
//!
//! - 2D: the image in grey as stored, each label filled in its colour (35 % opacity) with an
//!   opaque outline (masks may overlap, multi-label).
//! - 3D: up to four axial slices (evenly spread among the slices holding at least a tenth of the
//!   largest predicted area of a slice; the middle slice when nothing is predicted) side by side, in one soft-tissue window for the whole volume
//!   ([`CT_WINDOW`]), each class in its colour.
//!
//! Tiles are scaled up (nearest) to at least 256 px; a title names the file and the window, a
//! legend the classes ([`unimiss_data::font`]).

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use unimiss_data::font::{draw_text, text_width};
use unimiss_model::Modality;

use crate::error::{Result, TaskError};
use crate::nets::Task;
use crate::seg_infer::{SegMaps, file_stem};

/// Grey window of CT overlays in HU (abdominal soft tissue, W 400 / L 40), one for the volume.
pub const CT_WINDOW: (f32, f32) = (-160.0, 240.0);
const PALETTE: [Rgb<u8>; 6] = [Rgb([235, 64, 52]), Rgb([60, 200, 90]), Rgb([70, 140, 245]), Rgb([245, 205, 40]), Rgb([205, 90, 225]), Rgb([40, 215, 215])];
const BG: Rgb<u8> = Rgb([30, 30, 30]);
const INK: Rgb<u8> = Rgb([235, 235, 235]);
const GAP: u32 = 8;
const SCALE: u32 = 2;
const LINE: u32 = 9 * SCALE + GAP;
const MIN_TILE: u32 = 256;

/// `out/<name>_pred_overlay.png` for the input `path`.
pub fn overlay_file(path: &Path, out: &Path) -> PathBuf {
    out.join(format!("{}_pred_overlay.png", file_stem(path)))
}

/// One grey slice `(h, w)` in [0, 255] with masks `(colour, mask)` drawn over it, scaled by `f`.
fn tile(grey: &[u8], h: usize, w: usize, masks: &[(Rgb<u8>, Vec<bool>)], f: u32) -> RgbImage {
    let at = |m: &[bool], y: isize, x: isize| y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w && m[y as usize * w + x as usize];
    let small = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let g = f32::from(grey[i]);
        let mut px = [g, g, g];
        for (c, m) in masks.iter().filter(|(_, m)| m[i]) {
            let (yy, xx) = (y as isize, x as isize);
            let edge = !(at(m, yy - 1, xx) && at(m, yy + 1, xx) && at(m, yy, xx - 1) && at(m, yy, xx + 1));
            let a = if edge { 1.0 } else { 0.35 };
            for k in 0..3 {
                px[k] = px[k] * (1.0 - a) + f32::from(c.0[k]) * a;
            }
        }
        Rgb(px.map(|v| v.round().clamp(0.0, 255.0) as u8))
    });
    image::imageops::resize(&small, w as u32 * f, h as u32 * f, image::imageops::FilterType::Nearest)
}

/// The slices to show: up to four, evenly spread among those holding at least a tenth of the
/// largest foreground area of a slice (so a few stray voxels do not pick a slice).
fn slices(pred: &SegMaps) -> Vec<usize> {
    let [d, h, w] = pred.dims;
    let area: Vec<usize> = (0..d).map(|z| pred.labels[z * h * w..(z + 1) * h * w].iter().filter(|&&l| l > 0).count()).collect();
    let most = area.iter().copied().max().unwrap_or(0);
    let fg: Vec<usize> = (0..d).filter(|&z| most > 0 && area[z] * 10 >= most).collect();
    if fg.is_empty() {
        return vec![d / 2];
    }
    let n = fg.len().min(4);
    let mut out: Vec<usize> = (0..n).map(|k| fg[if n == 1 { fg.len() / 2 } else { k * (fg.len() - 1) / (n - 1) }]).collect();
    out.dedup();
    out
}

/// Draws the overlay of `pred` (the prediction of `path`) to `dst`; returns `dst`.
pub fn write_overlay(task: Task, path: &Path, pred: &SegMaps, classes: &[String], dst: &Path) -> Result<PathBuf> {
    let [d, h, w] = pred.dims;
    let f = (MIN_TILE as usize).div_ceil(h.max(w)).max(1) as u32;
    let (tiles, title, legend): (Vec<(RgbImage, String)>, String, Vec<(Rgb<u8>, &str)>) = match task.modality() {
        Modality::Image2d => {
            let img = unimiss_data::read_image(path).map_err(|e| TaskError::file(path, e))?;
            let planes: Vec<&[f32]> = (0..3).map(|c| img.rgb_plane(c)).collect();
            let grey: Vec<u8> = (0..h * w).map(|i| ((planes[0][i] + planes[1][i] + planes[2][i]) / 3.0 * 255.0).round().clamp(0.0, 255.0) as u8).collect();
            let masks: Vec<(Rgb<u8>, Vec<bool>)> = pred.masks.iter().enumerate().map(|(i, m)| (PALETTE[i % PALETTE.len()], m.clone())).collect();
            let legend = classes.iter().enumerate().map(|(i, c)| (PALETTE[i % PALETTE.len()], c.as_str())).collect();
            (vec![(tile(&grey, h, w, &masks, f), format!("{h}x{w}"))], "predicted masks over the image".into(), legend)
        }
        Modality::Volume3d => {
            let v = unimiss_data::read_nifti(path).map_err(|e| TaskError::file(path, e))?;
            let (lo, hi) = CT_WINDOW;
            let tiles = slices(pred)
                .into_iter()
                .map(|z| {
                    let sl = &v.data[z * h * w..(z + 1) * h * w];
                    let grey: Vec<u8> = sl.iter().map(|&x| ((x - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8).collect();
                    let lab = &pred.labels[z * h * w..(z + 1) * h * w];
                    let masks: Vec<(Rgb<u8>, Vec<bool>)> =
                        (1..classes.len()).map(|c| (PALETTE[(c - 1) % PALETTE.len()], lab.iter().map(|&l| l as usize == c).collect())).collect();
                    (tile(&grey, h, w, &masks, f), format!("slice {} of {d}", z + 1))
                })
                .collect();
            let legend = classes.iter().enumerate().skip(1).map(|(c, n)| (PALETTE[(c - 1) % PALETTE.len()], n.as_str())).collect();
            (tiles, format!("predicted labels, window {lo}..{hi} HU"), legend)
        }
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let title = format!("{name}: {title} ({task})");
    let (tw, th) = (tiles[0].0.width(), tiles[0].0.height());
    let legend_w: u32 = legend.iter().map(|(_, n)| 9 * SCALE + GAP + text_width(n, SCALE) + 2 * GAP).sum();
    let width = (tiles.len() as u32 * (tw + GAP) + GAP).max(text_width(&title, SCALE) + 2 * GAP).max(legend_w + 2 * GAP);
    let height = LINE + LINE + th + GAP + LINE + GAP;
    let mut out = RgbImage::from_pixel(width, height, BG);
    draw_text(&mut out, GAP, GAP, width, &title, SCALE, INK);
    for (i, (t, label)) in tiles.iter().enumerate() {
        let x = GAP + i as u32 * (tw + GAP);
        draw_text(&mut out, x, LINE + GAP / 2, x + tw, label, SCALE, INK);
        image::imageops::replace(&mut out, t, i64::from(x), i64::from(2 * LINE));
    }
    let mut x = GAP;
    let y = 2 * LINE + th + GAP;
    for (c, n) in &legend {
        for (dx, dy) in (0..7 * SCALE).flat_map(|a| (0..7 * SCALE).map(move |b| (a, b))) {
            if x + dx < width && y + dy < height {
                out.put_pixel(x + dx, y + dy, *c);
            }
        }
        x += 9 * SCALE;
        draw_text(&mut out, x, y, width, n, SCALE, INK);
        x += text_width(n, SCALE) + 2 * GAP;
    }
    out.save(dst).map_err(|e| TaskError::file(dst, format!("cannot write the overlay: {e}")))?;
    Ok(dst.to_path_buf())
}
