//! Listing data files in a directory without dropping errors.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The entries of `dir`, sorted by path. An entry that cannot be read is an error naming the
/// directory (never skipped).
pub fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut v = rd.map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e))).collect::<Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

/// Whether `p` names a file the readers take: `.png`, `.jpg`, `.jpeg`, `.nii`, `.nii.gz`
/// (any case).
pub fn is_data_file(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    [".png", ".jpg", ".jpeg", ".nii", ".nii.gz"].iter().any(|s| n.ends_with(s))
}
