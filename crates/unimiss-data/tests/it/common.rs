//! Paths to the shipped sample and to the real data in `../shared/data`.

use std::path::PathBuf;

/// The repository's `data-manifests/` folder.
pub fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests")
}

#[path = "../../../../test-support/material.rs"]
mod material;

/// The real data: `$UNIMISS_DATA`, else `../shared/data` (test-support/material.rs).
pub fn shared_data() -> PathBuf {
    material::material("UNIMISS_DATA", "data", "ct-volumes")
}

/// Asserts |a - b| <= tol with a message.
pub fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tol {tol})");
}
