//! Every file of the data readers' fuzz corpora (`fuzz/corpus/<target>/`, the seeds and the
//! minimised corpus the fuzzer grew, crash reproducers included) replayed through the very checks
//! the fuzz targets run (`fuzz/fuzz_targets/data_checks.rs`), so CI exercises what the fuzzer
//! found. Errors are expected; a panic fails the test and names the file.

use std::path::{Path, PathBuf};

#[path = "../../../../fuzz/fuzz_targets/data_checks.rs"]
mod data_checks;

/// The corpus files of `target`, sorted; a missing or empty corpus fails (it is tracked).
pub fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
}

/// Runs `check` on every file of the corpus; lists the files that panicked.
pub fn replay(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) -> usize {
    let files = corpus(target);
    let panicked: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).unwrap();
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(panicked.is_empty(), "{target}: {} of {} corpus files panic: {panicked:#?}", panicked.len(), files.len());
    files.len()
}

#[test]
fn nifti_reader_corpus_replays_without_panic() {
    replay("nifti_reader", data_checks::nifti);
}

#[test]
fn image_reader_corpus_replays_without_panic() {
    replay("image_reader", data_checks::image);
}

#[test]
fn manifest_parser_corpus_replays_without_panic() {
    replay("manifest_parser", data_checks::manifest);
}

/// Found by `nifti_reader` (corpus `crash-voxel-count-overflow`): NIfTI-2 dimensions whose
/// product overflows u128 panicked with overflow checks on and, without them, wrapped to a
/// small voxel count that passed the size limit. The count now saturates and is refused.
#[test]
fn nifti_dims_whose_product_overflows_u128_are_refused() {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..8].copy_from_slice(b"n+2\0");
    h[12..14].copy_from_slice(&16i16.to_le_bytes()); // float32
    h[14..16].copy_from_slice(&32i16.to_le_bytes());
    for (i, d) in [3i64, 1 << 62, 1 << 62, 1 << 62, 1, 1, 1, 1].iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1f64.to_le_bytes());
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes());
    let e = unimiss_data::nifti::read_nifti_bytes(Path::new("huge.nii"), &h, 1 << 30).unwrap_err();
    assert!(matches!(e, unimiss_data::DataError::TooLarge { voxels: u128::MAX, .. }), "{e}");
    data_checks::nifti(&h);
}
