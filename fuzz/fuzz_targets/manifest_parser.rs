//! Any text given to the TSV manifest parser, the official list parser and the spacing parser
//! returns `Ok` or `Err` (naming the line), never panics; a parsed manifest survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use unimiss_data::manifest::parse_spacing;
use unimiss_data::{Manifest, Modality};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = Manifest::parse(text, Path::new("/base"), Path::new("fuzz.tsv")) {
        let again = Manifest::parse(&m.to_tsv(), Path::new("/other"), Path::new("again.tsv"));
        if m.samples.iter().all(|s| !s.path.to_string_lossy().contains(['\t', '\n', '\r'])) {
            assert!(again.is_ok(), "round trip failed for {text:?}");
        }
    }
    let l = Manifest::parse_official_list(text, Path::new("/root"), Modality::Volume3d);
    assert!(l.samples.len() <= text.lines().count());
    let _ = parse_spacing(text);
});
