//! The official sub-volume protocol (reference §4.3), reproduced exactly; it never resamples.
//!
//! UniMiSS (`UniMiSS/data/extract_subvolumes.py`), on SimpleITK's (z, y, x) array (d, w, h):
//! - depth tiles of 24 with stride 4: `n = ceil((d − 24)/4) + 1` tiles, tile k spans
//!   `[4k, min(4k+24, d))`, shifted back to end at d when short, start clamped at 0. So a
//!   volume of 21–23 slices gives one short tile and one of 20 slices or fewer gives none, as
//!   the official formula does;
//! - in-plane crop rows `int(0.1·w) : int(0.9·w)` (y), cols `int(0.1·h) : int(0.9·h)` (x);
//! - int16 (truncated toward zero), header spacing/orientation/origin kept unchanged;
//! - written as `<stem>_dep<k>.nii.gz` (stem = file name without `.nii`/`.nii.gz`).
//!
//! UniMiSS+ (`UniMiSSPlus/data/extract_subvolumes.py`): stride 12, the in-plane crop only when
//! w > 320, existing outputs skipped.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::nifti::{OutputType, read_nifti_image, write_nifti};

/// Which official script to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    UniMiss,
    UniMissPlus,
}

/// Tile depth.
pub const TILE: usize = 24;

impl Protocol {
    fn stride(self) -> usize {
        match self {
            Protocol::UniMiss => 4,
            Protocol::UniMissPlus => 12,
        }
    }
}

/// The depth ranges `[start, end)` of the tiles of a volume with `d` slices.
pub fn tile_ranges(d: usize, protocol: Protocol) -> Vec<(usize, usize)> {
    let stride = protocol.stride() as f64;
    let n = ((d as f64 - TILE as f64) / stride).ceil() + 1.0;
    let n = if n > 0.0 { n as usize } else { 0 };
    (0..n)
        .map(|k| {
            let start = k * protocol.stride();
            let end = (start + TILE).min(d);
            if end - start < TILE {
                (d.saturating_sub(TILE), d)
            } else {
                (start, end)
            }
        })
        .collect()
}

/// The in-plane crop `[lo, hi)` along an axis of `n` voxels (`int(0.1·n) : int(0.9·n)`).
pub fn inplane_range(n: usize, protocol: Protocol, w: usize) -> (usize, usize) {
    if protocol == Protocol::UniMissPlus && w <= 320 {
        return (0, n);
    }
    ((0.1 * n as f64) as usize, (0.9 * n as f64) as usize)
}

/// The file name stem: the name without `.nii.gz` / `.nii`.
pub fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".nii.gz", ".nii"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_string();
        }
    }
    name
}

/// Cuts one volume into tiles written flat into `out_dir`; returns the written paths.
pub fn extract_subvolumes(
    input: &Path,
    out_dir: &Path,
    protocol: Protocol,
) -> Result<Vec<PathBuf>> {
    let img = read_nifti_image(input)?;
    let [nx, ny, nz] = img.header.dims;
    let (y0, y1) = inplane_range(ny, protocol, ny);
    let (x0, x1) = inplane_range(nx, protocol, ny);
    if y1 <= y0 || x1 <= x0 {
        return Err(DataError::BadSample {
            path: input.to_path_buf(),
            reason: format!("in-plane size {nx}x{ny} leaves nothing after the 10% border crop"),
        });
    }
    let stem = stem(input);
    let mut written = Vec::new();
    for (k, (z0, z1)) in tile_ranges(nz, protocol).into_iter().enumerate() {
        let out = out_dir.join(format!("{stem}_dep{k}.nii.gz"));
        if protocol == Protocol::UniMissPlus && out.exists() {
            continue;
        }
        let (tx, ty, tz) = (x1 - x0, y1 - y0, z1 - z0);
        let mut data = Vec::with_capacity(tx * ty * tz);
        for z in z0..z1 {
            for y in y0..y1 {
                let row = (z * ny + y) * nx;
                data.extend_from_slice(&img.data[row + x0..row + x1]);
            }
        }
        write_nifti(&out, &img.header, [tx, ty, tz], &data, OutputType::Int16)?;
        written.push(out);
    }
    Ok(written)
}
