//! Pre-flight: every bad entry of a manifest is listed with its file, manifest line and problem;
//! the good ones pass; `skipped.tsv` lists the same.

use std::io::Write;
use std::path::{Path, PathBuf};

use unimiss_data::preflight::{self, Entry};
use unimiss_data::{Manifest, Modality};

use crate::common::manifests;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A NIfTI-2 header (no voxels) claiming 100000³ int16 voxels.
fn huge_nifti2() -> Vec<u8> {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..8].copy_from_slice(b"n+2\0");
    h[12..14].copy_from_slice(&4i16.to_le_bytes());
    h[14..16].copy_from_slice(&16i16.to_le_bytes());
    for (i, d) in [3i64, 100_000, 100_000, 100_000, 1, 1, 1, 1].iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1f64.to_le_bytes());
    }
    h[168..176].copy_from_slice(&544i64.to_le_bytes());
    h
}

/// The sample manifest's files plus five bad ones, written as a TSV with comments between.
fn bad_manifest(dir: &Path) -> PathBuf {
    let sample = manifests().join("sample");
    let ct = std::fs::read(sample.join("ct/000001_02_01_008-023_dep0.nii.gz")).unwrap();
    std::fs::write(dir.join("cut.nii.gz"), &ct[..ct.len() / 2]).unwrap();
    std::fs::write(dir.join("text.nii.gz"), "this is not a volume\n".repeat(40)).unwrap();
    std::fs::write(dir.join("empty.png"), b"").unwrap();
    std::fs::write(dir.join("huge.nii.gz"), gz(&huge_nifti2())).unwrap();
    std::fs::copy(sample.join("cxr/00000001_000.png"), dir.join("xray.png")).unwrap();
    let good_ct = sample.join("ct/000001_02_01_008-023_dep1.nii.gz");
    let tsv = format!(
        "path\tmodality\tlabel\tspacing\n\
         # comment\n\
         xray.png\t2d\n\
         missing.nii.gz\t3d\n\
         cut.nii.gz\t3d\n\
         \n\
         {}\t3d\t-\t1,1,1\n\
         text.nii.gz\t3d\n\
         empty.png\t2d\n\
         huge.nii.gz\t3d\n\
         xray.png\t3d\n",
        good_ct.display()
    );
    let path = dir.join("m.tsv");
    std::fs::write(&path, tsv).unwrap();
    path
}

#[test]
fn every_bad_entry_is_listed_with_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let m = bad_manifest(dir.path());
    let report = preflight::check_file(&m).unwrap();
    assert_eq!(report.checked, 8);
    let got: Vec<(Option<usize>, String, &str)> = report
        .problems()
        .iter()
        .map(|p| (p.entry.line, p.entry.path.file_name().unwrap().to_string_lossy().into_owned(), p.reason.as_str()))
        .collect();
    let want: [(usize, &str, &str); 6] = [
        (4, "missing.nii.gz", "No such file"),
        (5, "cut.nii.gz", "gzip"),
        (8, "text.nii.gz", "not a NIfTI file"),
        (9, "empty.png", "0 bytes"),
        (10, "huge.nii.gz", "above the reader's limit"),
        (11, "xray.png", "listed as 3d but the file is a PNG"),
    ];
    assert_eq!(got.len(), want.len(), "{report}");
    for ((line, name, reason), (wl, wn, wr)) in got.iter().zip(want) {
        assert_eq!((*line, name.as_str()), (Some(wl), wn), "{report}");
        assert!(reason.contains(wr), "line {wl}: {reason:?} does not say {wr:?}");
    }
    let shown = report.to_string();
    assert!(shown.contains("6 of 8 entries") && shown.contains(&format!("{}:4: ", m.display())), "{shown}");
    // skipped.tsv: a header and one line per problem, with the manifest line first.
    let out = dir.path().join("skipped.tsv");
    report.write_tsv(&out).unwrap();
    let tsv = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0], ["line", "path", "modality", "problem"]);
    assert_eq!(&rows[1][..3], &["4", dir.path().join("missing.nii.gz").to_str().unwrap(), "3d"]);
    // Skipping leaves the two good entries, in order.
    let kept = report.retain_clean(&Manifest::read(&m).unwrap());
    let names: Vec<_> = kept.samples.iter().map(|s| s.path.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["xray.png", "000001_02_01_008-023_dep1.nii.gz"]);
}

#[test]
fn the_shipped_sample_is_clean() {
    let report = preflight::check_file(manifests().join("sample.tsv")).unwrap();
    assert_eq!(report.checked, 10);
    assert!(report.is_clean(), "{report}");
    assert!(report.to_string().contains("all 10 entries"));
    // Without the file, entries are numbered by position.
    let m = Manifest::read(manifests().join("sample.tsv")).unwrap();
    assert!(preflight::check(&m).is_clean());
}

#[test]
fn entries_without_lines_are_numbered() {
    let entries = vec![
        Entry { path: manifests().join("sample/cxr/00000001_000.png"), modality: Modality::Image2d, line: None },
        Entry { path: PathBuf::from("/nonexistent/mask.png"), modality: Modality::Image2d, line: None },
    ];
    let report = preflight::check_entries(Some(PathBuf::from("train.tsv")), &entries);
    assert_eq!(report.problems().len(), 1);
    assert_eq!(report.problems()[0].index, 1);
    assert!(report.to_string().contains("train.tsv entry 2: /nonexistent/mask.png"), "{report}");
}
