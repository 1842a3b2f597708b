//! Shared helpers: fixture lookup and tolerance checks.

use std::path::PathBuf;

use candle::Tensor;

#[path = "../../../../test-support/material.rs"]
mod material;

/// The parity fixtures: `$UNIMISS_FIXTURES`, else `../shared/fixtures/parity` (test-support/material.rs).
pub fn fixtures() -> PathBuf {
    material::material("UNIMISS_FIXTURES", "fixtures/parity", "dino_loss.safetensors")
}

/// The training-trajectory fixture: `$UNIMISS_TRAJECTORY/trajectory_tiny.safetensors`, else the
/// one in `../shared/fixtures/trajectory`.
pub fn trajectory() -> PathBuf {
    material::material("UNIMISS_TRAJECTORY", "fixtures/trajectory", "trajectory_tiny.safetensors").join("trajectory_tiny.safetensors")
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
