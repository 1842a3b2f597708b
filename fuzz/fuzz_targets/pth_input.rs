#![allow(dead_code)] // the fuzz target uses `check`, the replay test both
//! What the `pth_reader` fuzz target does with one input, shared with the replay test of the
//! ordinary suite (`crates/unimiss-model/tests/it/pth_corpus.rs` includes this file).
//!
//! The first byte picks the form: odd → the rest is the whole file (zip container and all);
//! even → the rest is `data.pkl`, wrapped in a stored zip with one 64-byte storage
//! `archive/data/0` (16 f32), so the fuzzer spends its time in the pickle and tensor code.

use std::io::Write;
use std::path::Path;

use unimiss_model::checkpoint::{Which, load_pth};

/// The `.pth` file bytes an input stands for (`None` for the empty input).
pub fn file_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    if mode % 2 == 1 {
        return Some(rest.to_vec());
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let storage: Vec<u8> = (0..16u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    zip.start_file("archive/data.pkl", opts).expect("in-memory zip");
    zip.write_all(rest).expect("in-memory zip");
    zip.start_file("archive/data/0", opts).expect("in-memory zip");
    zip.write_all(&storage).expect("in-memory zip");
    Some(zip.finish().expect("in-memory zip").into_inner())
}

/// Writes the input's file to `scratch` and reads both state_dicts: `Ok` or `Err`, never a
/// panic, stack overflow or unbounded allocation; every tensor read has as many values as its
/// shape says.
pub fn check(data: &[u8], scratch: &Path) {
    let Some(bytes) = file_bytes(data) else { return };
    std::fs::write(scratch, &bytes).expect("writing the fuzz input to a scratch file");
    for which in [Which::Teacher, Which::Student] {
        if let Ok(sd) = load_pth(scratch, which) {
            assert!(!sd.is_empty());
            for t in sd.tensors().values() {
                let n = t.flatten_all().and_then(|f| f.dims1()).expect("flattening a tensor read");
                assert_eq!(n, t.elem_count());
            }
        }
    }
}
