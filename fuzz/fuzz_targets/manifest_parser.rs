//! Any text given to the TSV manifest parser, the official list parser and the spacing parser
//! returns `Ok` or `Err` (naming the line), never panics; a parsed manifest survives a round trip.
//! The checks live in `data_checks.rs`, shared with the ordinary test suite's corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "data_checks.rs"]
mod data_checks;

fuzz_target!(|data: &[u8]| data_checks::manifest(data));
