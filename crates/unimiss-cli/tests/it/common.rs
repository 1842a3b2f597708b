//! Where the material outside the repository is.

use std::path::PathBuf;

#[path = "../../../../test-support/material.rs"]
mod material;

/// The parity fixtures: `$UNIMISS_FIXTURES`, else `../shared/fixtures/parity` (test-support/material.rs).
pub fn fixtures() -> PathBuf {
    material::material("UNIMISS_FIXTURES", "fixtures/parity", "mit_tiny_official.pth")
}

/// The real data: `$UNIMISS_DATA`, else `../shared/data` (test-support/material.rs).
pub fn data() -> PathBuf {
    material::material("UNIMISS_DATA", "data", "ct-volumes")
}
