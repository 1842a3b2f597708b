//! Any bytes given to the `.pth` reader return `Ok` or `Err`, never panic, overflow the stack
//! or allocate without bound (see `pth_input.rs` for the input forms).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "pth_input.rs"]
mod pth_input;

fuzz_target!(|data: &[u8]| {
    let scratch = std::env::temp_dir().join(format!("pth_reader_fuzz_{}.pth", std::process::id()));
    pth_input::check(data, &scratch);
});
