//! The files `predict` reads from a folder, without the masks that sit next to their images.
//!
//! The documented layout (`docs/tasks.md`, and what `phantoms` and `predict` write) keeps a mask
//! beside its image under the image's name plus a suffix: `case_000_seg.nii.gz` next to
//! `case_000.nii.gz`, `case_000_liver.png` next to `case_000.png`. A file `T_S.ext` of a folder
//! is taken for such a mask, and skipped, when the folder also holds an image `T.<ext>` and the
//! file holds a mask:
//! - NIfTI: only non-negative integers, at most 256 distinct values (a label map; a CT has
//!   negative HU);
//! - PNG/JPEG: at most two grey values (a binary mask);
//!
//! so a second genuine image such as `scan_2.png` beside `scan.png` is still predicted.
//!
//! A single file given as input is always predicted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Result, TaskError};
use crate::seg_infer::{IMAGE_EXTENSIONS, file_stem};

/// What a folder holds for `predict`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    /// Images to predict, sorted.
    pub images: Vec<PathBuf>,
    /// Masks of the documented layout that were left out, sorted.
    pub skipped_masks: Vec<PathBuf>,
}

fn is_image(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    IMAGE_EXTENSIONS.iter().any(|s| n.ends_with(s))
}

fn is_nifti(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// Whether a PNG/JPEG holds at most two distinct grey values.
fn is_binary_image(p: &Path) -> Result<bool> {
    let img = unimiss_data::read_image(p)?;
    // distinct pixel values (all channels of a pixel together), stopping at the third
    let plane = img.width * img.height;
    let mut seen: Vec<Vec<u32>> = Vec::with_capacity(3);
    for i in 0..plane {
        let px: Vec<u32> = (0..img.channels).map(|c| img.data[c * plane + i].to_bits()).collect();
        if !seen.contains(&px) {
            seen.push(px);
            if seen.len() > 2 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether a NIfTI volume holds only non-negative integers, at most 256 distinct values.
fn is_label_volume(p: &Path) -> Result<bool> {
    let v = unimiss_data::read_nifti(p).map_err(|e| TaskError::file(p, e))?;
    let mut seen = BTreeSet::new();
    let mut last = f32::NAN;
    for &x in &v.data {
        if x == last {
            continue;
        }
        if x < 0.0 || x.fract() != 0.0 || (seen.insert(x as u32) && seen.len() > 256) {
            return Ok(false);
        }
        last = x;
    }
    Ok(true)
}

/// Whether `p` is the mask of another image of `stems` (same folder), by the rule above.
fn is_mask_of_sibling(p: &Path, stems: &BTreeSet<String>) -> Result<bool> {
    let stem = file_stem(p);
    // an image name that `stem` extends by `_SUFFIX` (suffixes may hold `_`)
    let extends_an_image = stem.match_indices('_').any(|(i, _)| i > 0 && stems.contains(&stem[..i]));
    if !extends_an_image {
        return Ok(false);
    }
    if is_nifti(p) {
        return is_label_volume(p);
    }
    is_binary_image(p)
}

/// The images of `input`: the file itself, or the `.png`/`.jpg`/`.jpeg`/`.nii`/`.nii.gz` files of
/// a folder (sorted) without the masks of the documented layout.
pub fn list_inputs(input: &Path) -> Result<Inputs> {
    if input.is_file() {
        return Ok(Inputs { images: vec![input.to_path_buf()], skipped_masks: vec![] });
    }
    let rd = std::fs::read_dir(input).map_err(|e| TaskError::file(input, e))?;
    let mut files = Vec::new();
    for e in rd {
        let p = e.map_err(|e| TaskError::file(input, format!("reading the folder: {e}")))?.path();
        if p.is_file() && is_image(&p) {
            files.push(p);
        }
    }
    files.sort();
    let stems: BTreeSet<String> = files.iter().map(|p| file_stem(p)).collect();
    let mut out = Inputs::default();
    for p in files {
        if is_mask_of_sibling(&p, &stems)? {
            out.skipped_masks.push(p);
        } else {
            out.images.push(p);
        }
    }
    if out.images.is_empty() {
        return Err(TaskError::file(
            input,
            format!("no .png/.jpg/.nii/.nii.gz images to predict ({} masks named IMAGE_SUFFIX beside their image skipped)", out.skipped_masks.len()),
        ));
    }
    Ok(out)
}
