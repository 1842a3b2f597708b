//! Any byte string given to the PNG/JPEG reader returns `Ok` or `Err`, never panics, and a
//! decoded image is consistent (1 or 3 planes of H·W values in [0, 1]).
//! The checks live in `data_checks.rs`, shared with the ordinary test suite's corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "data_checks.rs"]
mod data_checks;

fuzz_target!(|data: &[u8]| data_checks::image(data));
