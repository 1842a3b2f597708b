//! The single integration-test binary of unimiss-tasks.

mod losses;
mod phantoms;
mod metrics;
mod nets;
mod patches;
mod seg;
mod seg_window;
mod sliding;
mod train;
mod zoom;

/// Asserts `|a − b| <= tol` with a readable message.
pub fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: got {a}, expected {b} (tolerance {tol})");
}
