//! Manifest formats: our TSV and the official list.

use std::path::{Path, PathBuf};

use unimiss_data::{Manifest, Modality};

use crate::common::manifests;

#[test]
fn shipped_sample_manifest() {
    let m = Manifest::read(manifests().join("sample.tsv")).unwrap();
    let n2 = m.of_modality(Modality::Image2d).len();
    let n3 = m.of_modality(Modality::Volume3d).len();
    // More 3D than 2D samples (reference §8.2) and a full batch of 2 of each.
    assert!(n3 > n2 && n2 >= 2, "{n2} 2D, {n3} 3D");
    for s in &m.samples {
        assert!(s.path.is_file(), "{} missing", s.path.display());
        assert_eq!(s.modality, Modality::from_path(&s.path));
    }
}

#[test]
fn tsv_columns_relative_paths_and_spaces() {
    let text = "path\tmodality\tlabel\tspacing\n# comment\n\nx rays/a b.png\t2d\n/abs/v.nii.gz\t3D\tlesion\t0.7,0.7,3\r\nv2.nii\t3d\t-\t-\n";
    let m = Manifest::parse(text, Path::new("/data/m"), Path::new("m.tsv")).unwrap();
    assert_eq!(m.samples.len(), 3);
    assert_eq!(m.samples[0].path, PathBuf::from("/data/m/x rays/a b.png"));
    assert_eq!(m.samples[0].modality, Modality::Image2d);
    assert_eq!(m.samples[0].label, None);
    assert_eq!(m.samples[1].path, PathBuf::from("/abs/v.nii.gz"));
    assert_eq!(m.samples[1].label.as_deref(), Some("lesion"));
    assert_eq!(m.samples[1].spacing, Some([0.7, 0.7, 3.0]));
    assert_eq!(m.samples[2].spacing, None);
    // Round trip through to_tsv.
    let again = Manifest::parse(&m.to_tsv(), Path::new("/elsewhere"), Path::new("x.tsv")).unwrap();
    assert_eq!(again, m);
}

#[test]
fn official_list_whole_lines() {
    let text = "2D images/img 001.png\nsub/b.png\t1\n\n  \nc.png\r\n";
    let m = Manifest::parse_official_list(text, Path::new("/root"), Modality::Image2d);
    let paths: Vec<_> = m.samples.iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("/root/2D images/img 001.png"),
            PathBuf::from("/root/sub/b.png"),
            PathBuf::from("/root/c.png")
        ]
    );
    assert_eq!(m.samples[1].label.as_deref(), Some("1"));
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("3D_images.txt");
    std::fs::write(&list, "a_dep0.nii.gz\nb c_dep1.nii.gz\n").unwrap();
    let m = Manifest::read_official_list(&list, dir.path(), Modality::Volume3d).unwrap();
    assert_eq!(m.samples[1].path, dir.path().join("b c_dep1.nii.gz"));
    assert!(m.samples.iter().all(|s| s.modality == Modality::Volume3d));
}
