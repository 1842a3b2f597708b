//! Every file of the `.pth` reader's fuzz corpus (`fuzz/corpus/pth_reader/`, seeds, the
//! minimised corpus the fuzzer grew and crash reproducers) replayed through the very check the
//! fuzz target runs (`fuzz/fuzz_targets/pth_input.rs`), so CI exercises what the fuzzer found.
//! Errors are expected; a panic fails the test and names the file.

use std::path::{Path, PathBuf};

#[path = "../../../../fuzz/fuzz_targets/pth_input.rs"]
mod pth_input;

#[test]
fn pth_reader_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pth_reader");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display())).path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let panicked: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("reading a corpus file");
            let path = scratch.path().join("input.pth");
            std::panic::catch_unwind(|| pth_input::check(&data, &path)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "{} of {} corpus files panic: {panicked:#?}", panicked.len(), files.len());
}

/// The seeds are valid checkpoints (built by Python's pickler with torch's globals), so the
/// fuzzer starts from inputs that reach the tensor code: each reads its 4 tensors.
#[test]
fn pth_seeds_read_as_checkpoints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pth_reader");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    for seed in ["seed_state_dict", "seed_checkpoint", "seed_zip"] {
        let data = std::fs::read(dir.join(seed)).expect("reading a seed");
        let path = scratch.path().join(format!("{seed}.pth"));
        std::fs::write(&path, pth_input::file_bytes(&data).expect("a non-empty seed")).expect("writing a seed");
        let sd = unimiss_model::checkpoint::load_pth(&path, unimiss_model::checkpoint::Which::Teacher)
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
        let names: Vec<&str> = sd.tensors().keys().map(String::as_str).collect();
        assert_eq!(names, ["backbone.count", "backbone.fortran", "backbone.norm.weight", "backbone.proj.weight"], "{seed}");
        let fortran = sd.get("backbone.fortran").map(|t| t.to_vec2::<f32>()).transpose().expect("f32 values");
        assert_eq!(fortran, Some(vec![vec![2.0, 4.0, 6.0], vec![3.0, 5.0, 7.0]]), "{seed}");
    }
}
