//! The kNN monitor on the shipped sample: deterministic preprocessing, leave-one-out scores.

use std::path::PathBuf;

use candle::{DType, Device};
use candle_nn::VarMap;
use unimiss_model::{Arch, Mit, MitConfig, SeededVarMap};
use unimiss_ssl::Modality;
use unimiss_ssl::knn::KnnParams;
use unimiss_ssl::monitor::{EvalSet, eval_input_2d};

fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample")
}

/// A labelled manifest over the shipped sample: 4 X-rays (labels 0 0 1 1), 6 CT sub-volumes
/// (0 0 0 1 1 1).
fn labelled_manifest(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let s = sample_dir();
    let mut text = String::from("path\tmodality\tlabel\n");
    for (i, n) in ["00000001_000", "00000002_000", "00000003_000", "00000003_001"].iter().enumerate() {
        text += &format!("{}\t2d\t{}\n", s.join(format!("cxr/{n}.png")).display(), i / 2);
    }
    for i in 0..6 {
        text += &format!("{}\t3d\t{}\n", s.join(format!("ct/000001_02_01_008-023_dep{i}.nii.gz")).display(), i / 3);
    }
    let p = dir.join("eval.tsv");
    std::fs::write(&p, text)?;
    Ok(p)
}

#[test]
fn eval_set_is_deterministic_and_scored_leave_one_out() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let manifest = labelled_manifest(dir.path())?;
    let dev = Device::Cpu;
    let set = EvalSet::load(&manifest, 64, [16, 64, 64], &dev)?;
    assert_eq!(set.groups.len(), 2);
    let g2 = &set.groups[0];
    assert_eq!((g2.modality, g2.inputs.dims(), g2.labels.clone()), (Modality::Image2d, &[4usize, 3, 64, 64][..], vec![0, 0, 1, 1]));
    let g3 = &set.groups[1];
    assert_eq!((g3.modality, g3.inputs.dims(), g3.labels.clone()), (Modality::Volume3d, &[6usize, 1, 16, 64, 64][..], vec![0, 0, 0, 1, 1, 1]));
    // 2D in [0, 1]; 3D is HU/1024 (air ≈ −1)
    let v2: Vec<f32> = g2.inputs.flatten_all()?.to_vec1()?;
    assert!(v2.iter().all(|v| (0.0..=1.0).contains(v)));
    let v3: Vec<f32> = g3.inputs.flatten_all()?.to_vec1()?;
    let min3 = v3.iter().copied().fold(f32::INFINITY, f32::min);
    assert!((-1.3..-0.8).contains(&min3), "3D minimum {min3} is not air/1024");
    // at its own size the 2D eval input is the image itself, repeated to 3 channels
    let img = unimiss_data::read_image(sample_dir().join("cxr/00000001_000.png"))?;
    let same = eval_input_2d(&sample_dir().join("cxr/00000001_000.png"), img.width)?;
    let plane = img.rgb_plane(0);
    let worst = same.iter().enumerate().map(|(i, v)| (v - plane[i % plane.len()]).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-5, "identity resize differs by {worst}");

    let cfg = MitConfig::preset(Arch::Tiny).with_img_size_2d(64).with_img_size_3d([16, 64, 64]);
    let vm = VarMap::new();
    let mit = Mit::new(&cfg, SeededVarMap::var_builder(&vm, 0, DType::F32, &dev).pp("backbone"))?;
    let p = KnnParams::default();
    let a = set.records(&mit, &p, 3, 40)?;
    let b = set.records(&mit, &p, 3, 40)?;
    assert_eq!(a, b, "two evaluations of the same weights differ");
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].modality.name(), a[0].n, a[0].k, a[0].majority), ("2d", 4, 3, 0.5));
    assert_eq!((a[1].modality.name(), a[1].n, a[1].k, a[1].majority), ("3d", 6, 5, 0.5));
    for r in &a {
        assert!((0.0..=1.0).contains(&r.accuracy) && (r.accuracy * r.n as f64).fract() == 0.0, "{r:?}");
        assert_eq!((r.epoch, r.step), (3, 40));
    }
    Ok(())
}

#[test]
fn eval_manifest_without_labels_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("eval.tsv");
    std::fs::write(&p, format!("{}\t2d\t-\n", sample_dir().join("cxr/00000001_000.png").display()))?;
    let e = EvalSet::load(&p, 64, [16, 64, 64], &Device::Cpu).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("eval.tsv") && e.contains("no label"), "{e}");
    Ok(())
}
