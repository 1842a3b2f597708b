#![allow(dead_code)] // each target uses one of these checks
//! What the data fuzz targets assert, shared with the replay test of the ordinary suite
//! (`crates/unimiss-data/tests/it/fuzz_corpus.rs` includes this file), so CI runs every corpus
//! file through exactly the checks the fuzzer ran. Each function must return (never panic) for
//! any input.

use std::path::Path;

use unimiss_data::manifest::parse_spacing;
use unimiss_data::{Manifest, Modality};

/// Any bytes (plain or gzip) into the NIfTI reader with a 4 Mi voxel limit: `Ok` or `Err`; a
/// decoded image has nx·ny·nz values and survives `into_volume`.
pub fn nifti(data: &[u8]) {
    if let Ok(img) = unimiss_data::nifti::read_nifti_bytes(Path::new("fuzz.nii"), data, 1 << 22) {
        let [nx, ny, nz] = img.header.dims;
        assert_eq!(img.data.len(), nx * ny * nz);
        let _ = img.header.affine();
        let vol = img.into_volume();
        assert_eq!(vol.data.len(), vol.dims.iter().product::<usize>());
    }
}

/// Any bytes into the PNG/JPEG reader: a decoded image has 1 or 3 planes of H·W values in [0, 1].
pub fn image(data: &[u8]) {
    if let Ok(img) = unimiss_data::image2d::read_image_bytes(Path::new("fuzz.png"), data) {
        assert!(img.channels == 1 || img.channels == 3);
        assert_eq!(img.data.len(), img.channels * img.width * img.height);
        assert!(img.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

/// Any text into the TSV manifest, official list and spacing parsers; a parsed manifest
/// survives a round trip through `to_tsv`.
pub fn manifest(data: &[u8]) {
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
}
