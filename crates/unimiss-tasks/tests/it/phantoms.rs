use unimiss_tasks::TaskError;
use unimiss_data::labelled::LabelledManifest;
use unimiss_tasks::phantoms::{LIVER_LARGE_FRACTION, PhantomConfig, generate, phantom_case, split_sizes};

fn read_vol(p: &std::path::Path) -> Result<unimiss_data::Volume, TaskError> {
    unimiss_data::read_nifti(p).map_err(|e| TaskError::Invalid(format!("{}: {e}", p.display())))
}

fn png_any(p: &std::path::Path) -> Result<bool, TaskError> {
    let m = image::open(p).map_err(|e| TaskError::Invalid(format!("{}: {e}", p.display())))?.into_luma8();
    Ok(m.pixels().any(|px| px.0[0] > 0))
}

#[test]
fn phantoms_are_deterministic_and_labelled() -> Result<(), TaskError> {
    let dir = tempfile::tempdir()?;
    let cfg = PhantomConfig { count: 5, seed: 7, dims: [16, 32, 32], spacing: [2.5, 1.2, 1.2], size_2d: 32 };
    let mut calls = 0;
    let s = generate(dir.path(), &cfg, &mut |_, _| calls += 1)?;
    assert_eq!(calls, 5);
    assert_eq!((s.train, s.val, s.test), (3, 1, 1));
    // the CT reads back in model order with the case's spacing (base × 0.8–1.25, H = W)
    let vol = read_vol(&dir.path().join("ct/case_000.nii.gz"))?;
    assert_eq!(vol.dims, [16, 32, 32]);
    let (ct, _) = phantom_case(&cfg, 0);
    let sp = [vol.spacing[0], vol.spacing[1], vol.spacing[2]];
    for (a, b) in sp.iter().zip(ct.spacing) {
        assert!((a - b).abs() < 1e-4, "spacing {sp:?} vs generator {:?}", ct.spacing);
    }
    assert!((2.0..=3.125).contains(&ct.spacing[0]) && (0.96..=1.5).contains(&ct.spacing[1]) && ct.spacing[1] == ct.spacing[2]);
    let max_diff = vol.data.iter().zip(&ct.hu).map(|(a, b)| (a - b.round()).abs()).fold(0f32, f32::max);
    assert!(max_diff <= 0.5, "written HU differ from the generator by {max_diff}");
    let seg = read_vol(&dir.path().join("ct/case_000_seg.nii.gz"))?;
    for l in 1..=3 {
        assert!(seg.data.iter().any(|&v| v == l as f32), "organ {l} missing");
    }
    assert!(seg.data.iter().all(|&v| (0.0..=3.0).contains(&v)));
    // HU: air outside
    assert!(ct.hu[0] < -900.0);
    // same seed and index → same case, independent of count; another seed differs
    let (again, _) = phantom_case(&PhantomConfig { count: 99, ..cfg.clone() }, 0);
    assert_eq!(again.hu, ct.hu);
    let (other, _) = phantom_case(&PhantomConfig { seed: 8, ..cfg.clone() }, 0);
    assert_ne!(other.hu, ct.hu);
    // manifests
    let m = LabelledManifest::read(dir.path().join("seg2d_train.tsv"))?;
    assert_eq!(m.classes, vec!["liver", "spleen", "kidney"]);
    assert_eq!(m.samples.len(), 3);
    assert_eq!(m.samples[0].masks.len(), 3);
    assert!(m.samples[0].masks.iter().all(|p| p.exists()));
    let c = LabelledManifest::read(dir.path().join("cls3d_test.tsv"))?;
    assert_eq!(c.samples.len(), 1);
    assert!(c.class_index(0, 2, dir.path()).is_ok());
    assert_eq!(LabelledManifest::read(dir.path().join("cls2d_train_10pct.tsv"))?.samples.len(), 2);
    let pre = unimiss_data::Manifest::read(dir.path().join("pretrain.tsv")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    assert_eq!(pre.samples.len(), 6);
    assert!(pre.samples.iter().all(|s| s.path.exists() && s.label.is_none()));
    for (name, labels) in [("eval_finding.tsv", &["0", "1", "2"][..]), ("eval_lesion.tsv", &["0", "1"]), ("eval_liver.tsv", &["0", "1"])] {
        let e = unimiss_data::Manifest::read(dir.path().join(name)).map_err(|e| TaskError::Invalid(e.to_string()))?;
        // val + test cases, both modalities, labelled
        assert_eq!(e.samples.len(), 4, "{name}");
        assert!(e.samples.iter().all(|s| s.path.exists() && s.label.as_deref().is_some_and(|l| labels.contains(&l))), "{name}");
    }
    Ok(())
}

/// The labels written in the manifests agree with the generator and the masks written next to
/// them: the classification manifests carry the case's `finding`; `lesion` = 1 exactly when the
/// 3D lesion mask (and its projection) is non-empty, and then the lesion lies inside the liver;
/// `liver_large` = 1 exactly when the liver label fills more than `LIVER_LARGE_FRACTION` of the grid.
#[test]
fn labels_agree_with_the_masks() -> Result<(), TaskError> {
    let dir = tempfile::tempdir()?;
    let cfg = PhantomConfig { count: 12, seed: 3, dims: [16, 48, 48], spacing: [2.5, 0.9, 0.9], size_2d: 48 };
    generate(dir.path(), &cfg, &mut |_, _| ())?;
    let cls = LabelledManifest::read(dir.path().join("cls3d_train.tsv"))?;
    let mut cases: Vec<(std::path::PathBuf, usize)> = Vec::new();
    for split in ["train", "val", "test"] {
        let m = LabelledManifest::read(dir.path().join(format!("cls3d_{split}.tsv")))?;
        for i in 0..m.samples.len() {
            let k = cases.len();
            assert_eq!(m.class_index(i, 3, dir.path())?, phantom_case(&cfg, k).0.finding, "case {k}: finding label");
            cases.push((m.samples[i].sample.path.clone(), usize::from(phantom_case(&cfg, k).0.lesion)));
        }
    }
    assert_eq!(cls.classes, vec!["none", "nodules", "ground_glass"]);
    assert_eq!(cases.len(), 12);
    let liver = unimiss_data::Manifest::read(dir.path().join("eval_liver.tsv")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    let lesion_eval = unimiss_data::Manifest::read(dir.path().join("eval_lesion.tsv")).map_err(|e| TaskError::Invalid(e.to_string()))?;
    let mut seen = [0usize; 2];
    for (path, lesion) in &cases {
        if let Some(e) = lesion_eval.samples.iter().find(|s| dir.path().join(&s.path) == *path || s.path == *path) {
            assert_eq!(e.label.as_deref(), Some(lesion.to_string().as_str()), "{}: eval_lesion label", path.display());
        }
        let name = path.file_name().map(|n| n.to_string_lossy().replace(".nii.gz", "")).unwrap_or_default();
        let les = read_vol(&dir.path().join(format!("ct/lesion/{name}.nii.gz")))?;
        let seg = read_vol(&dir.path().join(format!("ct/{name}_seg.nii.gz")))?;
        let n_lesion = les.data.iter().filter(|&&v| v > 0.0).count();
        assert_eq!(n_lesion > 0, *lesion == 1, "{}: lesion label {lesion}, {n_lesion} mask voxels", path.display());
        assert!(les.data.iter().zip(&seg.data).all(|(l, s)| *l == 0.0 || *s == 1.0), "{}: lesion outside the liver", path.display());
        let xray = dir.path().join(format!("xray/lesion/{name}.png"));
        assert_eq!(png_any(&xray)?, *lesion == 1, "{}: projected lesion mask", xray.display());
        let frac = seg.data.iter().filter(|&&v| v == 1.0).count() as f64 / seg.data.len() as f64;
        if let Some(e) = liver.samples.iter().find(|s| s.path == *path) {
            assert_eq!(e.label.as_deref() == Some("1"), frac > LIVER_LARGE_FRACTION, "{}: liver fraction {frac}", path.display());
        }
        seen[*lesion] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both lesion classes occur in 12 cases: {seen:?}");
    Ok(())
}

/// Over many cases both labels are roughly balanced, and the organ-size label is carried by
/// the anatomy: large-liver cases have a larger liver fraction.
#[test]
fn labels_are_balanced_over_many_cases() {
    let cfg = PhantomConfig { count: 60, seed: 1, dims: [16, 32, 32], spacing: [2.5, 1.8, 1.8], size_2d: 32 };
    let cases: Vec<_> = (0..60).map(|k| phantom_case(&cfg, k).0).collect();
    let lesions = cases.iter().filter(|c| c.lesion).count();
    let large = cases.iter().filter(|c| c.liver_large).count();
    assert!((18..=42).contains(&lesions), "{lesions} of 60 cases have a lesion");
    assert!((18..=42).contains(&large), "{large} of 60 cases have a large liver");
    let per_finding: Vec<usize> = (0..3).map(|c| cases.iter().filter(|x| x.finding == c).count()).collect();
    assert!(per_finding.iter().all(|n| (10..=30).contains(n)), "findings per class over 60 cases: {per_finding:?}");
}

/// A finding is dense tissue: `nodules` are 12–16 dense blobs, `ground_glass` a denser lung,
/// `none` adds nothing; poses differ between cases.
#[test]
fn findings_are_visible_dense_tissue_and_poses_vary() {
    use unimiss_tasks::phantoms::{Findings, Pose};
    let (dims, spacing) = ([24, 64, 64], [2.5, 1.2, 1.2]);
    let mut blobs = [0usize; 3];
    let mut lungs = [0f64; 3];
    let mut angles = Vec::new();
    for k in 0..30 {
        let f = Findings::draw(5, k, dims, spacing);
        blobs[f.class] = f.blobs.len();
        lungs[f.class] = f.lung_density;
        angles.push(f.pose.angle);
        assert!(f.pose.scale > 0.8 && f.pose.scale < 1.2 && f.pose.angle.abs() <= 6f64.to_radians());
        assert!(f.blobs.iter().all(|(_, c)| (500.0..800.0).contains(c)));
        assert_eq!(f.contrast_at([5.0, 5.0, 5.0]), 0.0, "nothing outside the grid");
    }
    assert!(blobs[0] == 0 && (12..=16).contains(&blobs[1]) && blobs[2] == 0, "blobs per class (none, nodules, ground glass): {blobs:?}");
    assert!(lungs[0] == 0.0 && lungs[1] == 0.0 && (250.0..400.0).contains(&lungs[2]), "lung density per class: {lungs:?}");
    assert!(angles.iter().any(|a| *a > 0.03) && angles.iter().any(|a| *a < -0.03), "{angles:?}");
    // the identity pose maps every point to itself; a rotation by 90° maps (y, x) = (1, 0) to (0, −1)
    assert_eq!(Pose::IDENTITY.to_anatomy([0.1, 0.2, 0.3]), [0.1, 0.2, 0.3]);
    let q = Pose { angle: std::f64::consts::FRAC_PI_2, shift: [0.0; 3], scale: 1.0 }.to_anatomy([0.0, 1.0, 0.0]);
    assert!(q[1].abs() < 1e-12 && (q[2] + 1.0).abs() < 1e-12, "{q:?}");
}

#[test]
fn split_needs_three_cases() {
    assert!(split_sizes(2).is_err());
    assert_eq!(split_sizes(40).ok(), Some([24, 8, 8]));
}
