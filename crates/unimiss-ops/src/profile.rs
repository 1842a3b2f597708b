//! Optional named timers for `unimiss bench model|train`: the model's forward operations, the
//! backward passes of this crate's operators (buckets ending in ` bwd`) and the phases of a
//! training step (buckets starting with `step:`) add their wall time to one table.
//!
//! Off by default (one relaxed atomic load per instrumented call). CPU ops are synchronous, so
//! the buckets are exact there; on CUDA they only measure launch time. Buckets nest (a phase
//! contains operations): sum only buckets of one kind.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Turns the timers on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Clears every bucket.
pub fn reset() {
    if let Ok(mut t) = TABLE.lock() {
        t.clear();
    }
}

/// The buckets: `(name, total time, calls)`, slowest first.
pub fn snapshot() -> Vec<(&'static str, Duration, u64)> {
    let mut v: Vec<_> = match TABLE.lock() {
        Ok(t) => t.iter().map(|(k, (d, n))| (*k, *d, *n)).collect(),
        Err(_) => Vec::new(),
    };
    v.sort_by(|a, b| b.1.cmp(&a.1));
    v
}

/// Runs `f`, adding its wall time to bucket `name` when timing is enabled.
#[inline]
pub fn time<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let dt = start.elapsed();
    if let Ok(mut t) = TABLE.lock() {
        let e = t.entry(name).or_insert((Duration::ZERO, 0));
        e.0 += dt;
        e.1 += 1;
    }
    out
}
