//! Any byte string given to the NIfTI reader (plain or gzip) returns `Ok` or `Err`, never panics, and never
//! allocates beyond the voxel limit (4 Mi voxels here).
//! The checks live in `data_checks.rs`, shared with the ordinary test suite's corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "data_checks.rs"]
mod data_checks;

fuzz_target!(|data: &[u8]| data_checks::nifti(data));
