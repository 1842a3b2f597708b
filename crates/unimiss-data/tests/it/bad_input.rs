//! Every bad-input case gives an error naming the file and the problem, never a panic.

use std::io::Write;
use std::path::Path;

use unimiss_data::nifti::{OutputType, read_nifti_image_limited, write_nifti};
use unimiss_data::{
    DataError, LoaderConfig, Manifest, Modality, OnBadSample, PairLoader, Sample, read_image,
    read_nifti, read_nifti_image,
};

use crate::common::manifests;

fn sample_ct() -> std::path::PathBuf {
    manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn raw_nii() -> Vec<u8> {
    let mut d = flate2::read::GzDecoder::new(std::fs::File::open(sample_ct()).unwrap());
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut v).unwrap();
    v
}

fn assert_names(e: &DataError, p: &Path, needle: &str) {
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()),
        "{msg:?} does not name {}",
        p.display()
    );
    assert!(msg.contains(needle), "{msg:?} does not say {needle:?}");
}

#[test]
fn missing_file() {
    let p = Path::new("/nonexistent/dir/vol.nii.gz");
    assert_names(&read_nifti(p).unwrap_err(), p, "No such file");
    assert_names(&read_image(p).unwrap_err(), p, "No such file");
}

#[test]
fn truncated_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_nii();
    let p = dir.path().join("cut.nii");
    std::fs::write(&p, &raw[..raw.len() - 1000]).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "truncated");
    let p = dir.path().join("cut_data.nii.gz");
    std::fs::write(&p, gz(&raw[..raw.len() / 2])).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "truncated");
    let p = dir.path().join("cut_stream.nii.gz");
    let z = std::fs::read(sample_ct()).unwrap();
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "corrupt");
    let p = dir.path().join("header_only.nii");
    std::fs::write(&p, &raw[..200]).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "truncated");
}

#[test]
fn corrupt_gzip_and_not_nifti() {
    let dir = tempfile::tempdir().unwrap();
    let mut z = std::fs::read(sample_ct()).unwrap();
    for b in z.iter_mut().skip(40).take(200) {
        *b ^= 0x5a;
    }
    let p = dir.path().join("flipped.nii.gz");
    std::fs::write(&p, &z).unwrap();
    let e = read_nifti(&p).unwrap_err();
    assert!(
        matches!(e, DataError::Corrupt { .. } | DataError::BadHeader { .. }),
        "{e}"
    );
    assert_names(&e, &p, "");
    let p = dir.path().join("text.nii");
    std::fs::write(&p, b"hello, this is not a volume at all").unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "not a NIfTI");
    let p = dir.path().join("empty.nii");
    std::fs::write(&p, b"").unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "0 bytes");
}

#[test]
fn absurd_size_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_nii();
    // dims 32767^3 int16 = 70 TB.
    for i in 1..4 {
        raw[40 + 2 * i..42 + 2 * i].copy_from_slice(&32767i16.to_le_bytes());
    }
    let p = dir.path().join("huge.nii.gz");
    std::fs::write(&p, gz(&raw)).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "refusing");
    // A small explicit limit refuses the real file too.
    let e = read_nifti_image_limited(&sample_ct(), 1000).unwrap_err();
    assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
}

#[test]
fn wrong_dimensionality_and_datatype() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = raw_nii();
    raw[40..42].copy_from_slice(&4i16.to_le_bytes());
    raw[48..50].copy_from_slice(&3i16.to_le_bytes()); // dim[4] = 3 time points
    let p = dir.path().join("series.nii");
    std::fs::write(&p, &raw).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "wrong dimensionality");
    let mut raw = raw_nii();
    raw[70..72].copy_from_slice(&128i16.to_le_bytes()); // RGB24
    let p = dir.path().join("rgb.nii");
    std::fs::write(&p, &raw).unwrap();
    assert_names(&read_nifti(&p).unwrap_err(), &p, "datatype code 128");
}

#[test]
fn nan_and_inf_voxels() {
    let dir = tempfile::tempdir().unwrap();
    let src = read_nifti_image(sample_ct()).unwrap();
    for (name, bad) in [("nan.nii", f32::NAN), ("inf.nii.gz", f32::INFINITY)] {
        let mut data = src.data.clone();
        let [nx, ny, _] = src.header.dims;
        data[3 + nx * (4 + ny * 5)] = bad;
        let p = dir.path().join(name);
        write_nifti(&p, &src.header, src.header.dims, &data, OutputType::Float32).unwrap();
        let e = read_nifti(&p).unwrap_err();
        assert_names(&e, &p, "non-finite");
        assert!(e.to_string().contains("[3, 4, 5]"), "{e}");
    }
}

#[test]
fn corrupt_and_wrong_images() {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(manifests().join("sample/cxr/00000001_000.png")).unwrap();
    let p = dir.path().join("cut.png");
    std::fs::write(&p, &png[..png.len() / 3]).unwrap();
    assert_names(&read_image(&p).unwrap_err(), &p, "image");
    let p = dir.path().join("noise.png");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is garbage after a png magic").unwrap();
    assert_names(&read_image(&p).unwrap_err(), &p, "image");
    let p = dir.path().join("notimage.jpg");
    std::fs::write(&p, b"plain text").unwrap();
    assert_names(&read_image(&p).unwrap_err(), &p, "image:");
}

#[test]
fn bad_manifest_lines_name_file_and_line() {
    let p = Path::new("m.tsv");
    let e = Manifest::parse("a.png\t2d\nb.png\t4d\n", Path::new("/d"), p).unwrap_err();
    assert_eq!(
        e.to_string(),
        "m.tsv:2: modality \"4d\" is neither 2d nor 3d"
    );
    let e = Manifest::parse("a.png\n", Path::new("/d"), p).unwrap_err();
    assert!(e.to_string().starts_with("m.tsv:1: expected 2 to 4"), "{e}");
    let e = Manifest::parse("v.nii\t3d\t-\t1,x,3\n", Path::new("/d"), p).unwrap_err();
    assert!(e.to_string().contains("\"x\" is not a number"), "{e}");
    let e = Manifest::parse("v.nii\t3d\t-\t1,-2,3\n", Path::new("/d"), p).unwrap_err();
    assert!(e.to_string().contains("positive"), "{e}");
}

#[test]
fn loader_fail_and_skip() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage").unwrap();
    let good = Manifest::read(manifests().join("sample.tsv"))
        .unwrap()
        .of_modality(Modality::Volume3d);
    let mut samples = good.clone();
    samples.insert(
        2,
        Sample {
            path: bad.clone(),
            modality: Modality::Volume3d,
            label: None,
            spacing: None,
        },
    );
    samples.push(Sample {
        path: dir.path().join("missing.nii.gz"),
        modality: Modality::Volume3d,
        label: None,
        spacing: None,
    });
    let cfg = LoaderConfig {
        batch_size: 2,
        threads: 2,
        size_3d: [4, 16, 16],
        seed: 3,
        ..LoaderConfig::default()
    };
    // Fail: the epoch stops with the error, naming the file.
    let loader = PairLoader::new(samples.clone(), cfg.clone()).unwrap();
    let results: Vec<_> = loader.epoch(0, 0).collect();
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("an error");
    assert!(err.path().is_some(), "{err}");
    assert!(
        results.last().unwrap().is_err(),
        "the epoch ends at the error"
    );
    // Skip: every batch comes, bad files are listed at the end.
    let loader = PairLoader::new(
        samples,
        LoaderConfig {
            on_bad_sample: OnBadSample::Skip,
            ..cfg
        },
    )
    .unwrap();
    let mut it = loader.epoch(0, 0);
    let mut seen = 0;
    for b in it.by_ref() {
        seen += b.unwrap().indices.len();
    }
    let skipped = it.skipped();
    assert_eq!(seen + skipped.len(), 8);
    let names: Vec<_> = skipped.iter().map(|(p, _)| p.clone()).collect();
    assert!(names.contains(&bad) && skipped.len() == 2, "{skipped:?}");
    // A 2D file in a 3D loader and a mixed-modality list are refused.
    let wrong = Sample {
        path: manifests().join("sample/cxr/00000001_000.png"),
        modality: Modality::Volume3d,
        label: None,
        spacing: None,
    };
    let loader = PairLoader::new(
        vec![wrong.clone(), wrong],
        LoaderConfig {
            batch_size: 2,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let e = loader.epoch(0, 0).next().unwrap().unwrap_err();
    assert!(e.to_string().contains(".nii"), "{e}");
    let mixed = vec![
        good[0].clone(),
        Sample {
            modality: Modality::Image2d,
            ..good[1].clone()
        },
    ];
    assert!(PairLoader::new(mixed, LoaderConfig::default()).is_err());
}
