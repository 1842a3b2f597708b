//! Where the test material from outside the repository is: one helper, included by each
//! crate's `tests/it/common.rs` (`#[path]`). Tests that call it are `#[ignore]`d, so a plain
//! `cargo test` counts them as ignored; run with `--include-ignored`, missing material fails
//! the test with the variable to set.

use std::path::{Path, PathBuf};

/// `$var`, else `<workspace>/../shared/<shared>`; fails the test when `probe` is not in it.
pub fn material(var: &str, shared: &str, probe: &str) -> PathBuf {
    let dir = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared").join(shared));
    assert!(dir.join(probe).exists(), "{} has no {probe}: set {var} to the folder that holds it", dir.display());
    dir
}
