use unimiss_tasks::TaskError;
use unimiss_tasks::labelled::LabelledManifest;
use unimiss_tasks::phantoms::{PhantomConfig, generate, phantom_case, split_sizes};

#[test]
fn phantoms_are_deterministic_and_labelled() -> Result<(), TaskError> {
    let dir = tempfile::tempdir()?;
    let cfg = PhantomConfig { count: 5, seed: 7, dims: [16, 32, 32], spacing: [2.5, 1.2, 1.2], size_2d: 32 };
    let mut calls = 0;
    let s = generate(dir.path(), &cfg, &mut |_, _| calls += 1)?;
    assert_eq!(calls, 5);
    assert_eq!((s.train, s.val, s.test), (3, 1, 1));
    // the CT reads back in model order with its spacing; the label map has the organ labels
    let vol = unimiss_data::read_nifti(dir.path().join("ct/case_000.nii.gz")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    assert_eq!(vol.dims, [16, 32, 32]);
    for (a, b) in vol.spacing.iter().zip([2.5, 1.2, 1.2]) {
        assert!((a - b).abs() < 1e-5, "spacing {:?}", vol.spacing);
    }
    let (ct, _) = phantom_case(&cfg, 0);
    let max_diff = vol.data.iter().zip(&ct.hu).map(|(a, b)| (a - b.round()).abs()).fold(0f32, f32::max);
    assert!(max_diff <= 0.5, "written HU differ from the generator by {max_diff}");
    let seg = unimiss_data::read_nifti(dir.path().join("ct/case_000_seg.nii.gz")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    for l in 1..=3 {
        assert!(seg.data.iter().any(|&v| v == l as f32), "organ {l} missing");
    }
    assert!(seg.data.iter().all(|&v| (0.0..=3.0).contains(&v)));
    // HU: air outside, organs in the soft-tissue range
    assert!(ct.hu[0] < -900.0);
    // same seed and index → same case, independent of count
    let (again, _) = phantom_case(&PhantomConfig { count: 99, ..cfg.clone() }, 0);
    assert_eq!(again.hu, ct.hu);
    // manifests
    let m = LabelledManifest::read(dir.path().join("seg2d_train.tsv"))?;
    assert_eq!(m.classes, vec!["liver", "spleen", "kidney"]);
    assert_eq!(m.samples.len(), 3);
    assert_eq!(m.samples[0].masks.len(), 3);
    assert!(m.samples[0].masks.iter().all(|p| p.exists()));
    let c = LabelledManifest::read(dir.path().join("cls3d_test.tsv"))?;
    assert_eq!(c.samples.len(), 1);
    assert!(c.class_index(0, 2, dir.path()).is_ok());
    let pre = unimiss_data::Manifest::read(dir.path().join("pretrain.tsv")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    assert_eq!(pre.samples.len(), 6);
    assert!(pre.samples.iter().all(|s| s.path.exists() && s.label.is_none()));
    Ok(())
}

#[test]
fn lesion_label_is_balanced_over_many_cases() {
    let cfg = PhantomConfig { count: 40, seed: 1, dims: [8, 16, 16], spacing: [2.5, 1.2, 1.2], size_2d: 16 };
    let n = (0..40).filter(|&k| phantom_case(&cfg, k).0.lesion).count();
    assert!((10..=30).contains(&n), "{n} of 40 cases have a lesion");
}

#[test]
fn split_needs_three_cases() {
    assert!(split_sizes(2).is_err());
    assert_eq!(split_sizes(40).ok(), Some([24, 8, 8]));
}

#[test]
fn labelled_manifest_errors_name_the_problem() -> Result<(), TaskError> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("empty.tsv");
    std::fs::write(&p, "#classes=a,b\npath\tmodality\tlabel\n")?;
    let e = LabelledManifest::read(&p).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("empty.tsv") && e.contains("no samples"), "{e}");
    let p = dir.path().join("bad.tsv");
    std::fs::write(&p, "x.png\t2d\t5\n")?;
    let m = LabelledManifest::read(&p)?;
    assert!(matches!(m.class_index(0, 2, &p), Err(TaskError::LabelOutOfRange { label: 5, classes: 2, .. })));
    std::fs::write(&p, "x.png\t4d\t1\n")?;
    assert!(LabelledManifest::read(&p).is_err());
    Ok(())
}
