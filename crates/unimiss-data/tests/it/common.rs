//! Paths to the shipped sample and to the real data in `../shared/data`.

use std::path::PathBuf;

/// The repository's `data-manifests/` folder.
pub fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests")
}

/// `../shared/data` (or `$UNIMISS_DATA`): `None` with a loud SKIPPED line when absent, and a
/// panic under `CI=true` (the fixtures rule).
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("UNIMISS_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if p.join("ct-volumes").is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: real data not found at {} (CI=true)", p.display());
    }
    eprintln!("SKIPPED {test}: real data not found at {}", p.display());
    None
}

/// Asserts |a - b| <= tol with a message.
pub fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tol {tol})");
}
