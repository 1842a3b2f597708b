//! Shared helpers: fixture lookup and tolerance checks.

use std::path::PathBuf;

use candle::Tensor;

/// The parity fixtures directory, or `None` (with a loud SKIPPED line) when it is missing and
/// `CI` is not `true`. Panics (fails the test) when missing under `CI=true`.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("UNIMISS_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/parity")
    });
    if dir.join("dino_loss.safetensors").exists() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("fixtures not found at {} (CI=true)", dir.display());
    }
    eprintln!("SKIPPED: fixtures not found at {}", dir.display());
    None
}

/// max|a − b| ≤ tol · max|b|, reporting the worst element.
pub fn assert_close(name: &str, a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.dims(), b.dims(), "{name}: shapes differ");
    let a: Vec<f32> = a.flatten_all().and_then(|t| t.to_vec1()).expect("to_vec1");
    let b: Vec<f32> = b.flatten_all().and_then(|t| t.to_vec1()).expect("to_vec1");
    let scale = b.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
    let (worst, idx) = a.iter().zip(&b).enumerate().fold((0f64, 0), |(w, wi), (i, (x, y))| {
        let d = f64::from((x - y).abs());
        if d > w { (d, i) } else { (w, wi) }
    });
    assert!(
        worst <= tol * scale.max(f64::MIN_POSITIVE),
        "{name}: max|diff| {worst:e} at {idx} ({} vs {}) > {tol:e}·{scale:e}",
        a[idx],
        b[idx]
    );
}
