//! Labelled manifests (same parser as the pretraining manifest), their checks, label/mask
//! reading, resizing and the fine-tuning augmentation.

use std::path::{Path, PathBuf};

use unimiss_data::augment::spatial::{Augmenter, SampleArrays, random_flips};
use unimiss_data::augment::{Stream, sample_rng};
use unimiss_data::dataset::{load_label_volume, load_masks_2d, resize_linear, resize_nearest};
use unimiss_data::labelled::{LabelledManifest, Targets};
use unimiss_data::{DataError, Manifest, Modality, read_dir_sorted};

const SEG3D: &str = "#classes=background,liver\npath\tmodality\tlabel\tspacing\tmask\nct/a.nii.gz\t3d\t-\t1.2,1.2,2.5\tct/a_seg.nii.gz\n/abs/b.nii\t3D\t\t-\tb_seg.nii\n";

#[test]
fn one_parser_labels_masks_classes_round_trip() {
    let m = LabelledManifest::parse(SEG3D, Path::new("/d"), Path::new("m.tsv")).unwrap();
    assert_eq!(m.classes, ["background", "liver"]);
    assert_eq!(m.samples.len(), 2);
    assert_eq!(m.samples[0].sample.path, PathBuf::from("/d/ct/a.nii.gz"));
    assert_eq!(m.samples[0].sample.spacing, Some([1.2, 1.2, 2.5]));
    assert_eq!(m.samples[0].masks, [PathBuf::from("/d/ct/a_seg.nii.gz")]);
    assert_eq!(m.samples[1].masks, [PathBuf::from("/d/b_seg.nii")]);
    assert_eq!(m.samples[1].sample.label, None);
    let again = LabelledManifest::parse(&m.to_tsv(Path::new("/d")), Path::new("/d"), Path::new("again.tsv")).unwrap();
    assert_eq!(again, m);
    m.check(Path::new("m.tsv"), Modality::Volume3d, Targets::LabelMap).unwrap();
    // The pretraining manifest reads the same rows without masks and refuses mask columns.
    let e = Manifest::parse(SEG3D, Path::new("/d"), Path::new("m.tsv")).unwrap_err();
    assert!(e.to_string().starts_with("m.tsv:3: expected 2 to 4"), "{e}");
    let cls = "#classes=no,yes\nx.png\t2d\t1\n";
    let p = Manifest::parse(cls, Path::new("/d"), Path::new("c.tsv")).unwrap();
    let l = LabelledManifest::parse(cls, Path::new("/d"), Path::new("c.tsv")).unwrap();
    assert_eq!(p.samples, [l.samples[0].sample.clone()]);
    let e = LabelledManifest::parse("x.png\t4d\t1\n", Path::new("/d"), Path::new("c.tsv")).unwrap_err();
    assert_eq!(e.to_string(), "c.tsv:1: modality \"4d\" is neither 2d nor 3d");
}

fn check_err(text: &str, modality: Modality, targets: Targets) -> String {
    let m = LabelledManifest::parse(text, Path::new("/d"), Path::new("val.tsv")).unwrap();
    m.check(Path::new("val.tsv"), modality, targets).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn manifests_unfit_for_the_task_are_errors_naming_file_and_sample() {
    // A segmentation validation manifest without masks (the old `masks[0]` panic).
    let e = check_err("a.nii.gz\t3d\n", Modality::Volume3d, Targets::LabelMap);
    assert_eq!(e, "val.tsv: /d/a.nii.gz: 0 mask columns; a label map needs exactly one");
    let e = check_err("a.png\t2d\n", Modality::Image2d, Targets::Masks);
    assert!(e.starts_with("val.tsv: /d/a.png: no mask column"), "{e}");
    let e = check_err("a.png\t2d\t-\t-\tm0.png\tm1.png\nb.png\t2d\t-\t-\tm0.png\n", Modality::Image2d, Targets::Masks);
    assert!(e.contains("b.png: 1 mask columns where the first sample has 2"), "{e}");
    let e = check_err("#classes=a,b,c\na.png\t2d\t-\t-\tm0.png\n", Modality::Image2d, Targets::Masks);
    assert!(e.contains("names 3 labels but samples have 1 masks"), "{e}");
    let e = check_err("a.png\t2d\t1\n", Modality::Volume3d, Targets::ClassIndex);
    assert!(e.contains("a.png: modality 2d where 3d is needed"), "{e}");
    let e = check_err("a.png\t2d\n", Modality::Image2d, Targets::ClassIndex);
    assert!(e.contains("a.png: no label"), "{e}");
    let e = check_err("a.png\t2d\tcat\n", Modality::Image2d, Targets::ClassIndex);
    assert!(e.contains("label \"cat\" is not a class index"), "{e}");
    let e = check_err("#classes=a,b\na.png\t2d\t2\n", Modality::Image2d, Targets::ClassIndex);
    assert!(e.contains("label 2 outside the class range 0..2"), "{e}");
    assert_eq!(check_err("#classes=a,b\na.png\t2d\t1\n", Modality::Image2d, Targets::ClassIndex), "");
}

#[test]
fn reading_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.tsv");
    std::fs::write(&p, "#classes=a,b\npath\tmodality\tlabel\n").unwrap();
    let e = LabelledManifest::read(&p).unwrap_err().to_string();
    assert!(e.contains("empty.tsv") && e.contains("no samples"), "{e}");
    std::fs::write(&p, "x.png\t2d\t5\n").unwrap();
    let m = LabelledManifest::read(&p).unwrap();
    assert!(matches!(m.class_index(0, 2, &p), Err(DataError::LabelOutOfRange { label: 5, classes: 2, .. })));
    assert!(m.class_index(1, 2, &p).is_err(), "a sample index past the end is an error");
    assert_eq!(m.class_indices(6, &p).unwrap(), [5]);
    let e = LabelledManifest::read_checked(&p, Modality::Image2d, Targets::Masks).unwrap_err().to_string();
    assert!(e.contains("empty.tsv") && e.contains("no mask column"), "{e}");
}

#[test]
fn directory_listing_is_sorted_and_propagates_errors() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["b.png", "a.nii.gz"] {
        std::fs::write(dir.path().join(n), b"").unwrap();
    }
    assert_eq!(read_dir_sorted(dir.path()).unwrap(), [dir.path().join("a.nii.gz"), dir.path().join("b.png")]);
    let missing = dir.path().join("nope");
    let e = read_dir_sorted(&missing).unwrap_err();
    assert_eq!(e.path(), Some(missing.as_path()));
}

#[test]
fn masks_and_label_maps_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.png");
    image::GrayImage::from_fn(4, 2, |x, _| image::Luma([x as u8 * 60])).save(&img).unwrap();
    let mask = dir.path().join("m.png");
    image::GrayImage::from_fn(4, 2, |x, y| image::Luma([if x + y == 0 { 0 } else { 255 }])).save(&mask).unwrap();
    assert_eq!(load_masks_2d(std::slice::from_ref(&mask), &img, [2, 4]).unwrap(), [[false, true, true, true, true, true, true, true]]);
    let small = dir.path().join("s.png");
    image::GrayImage::new(2, 2).save(&small).unwrap();
    let e = load_masks_2d(&[small], &img, [2, 4]).unwrap_err().to_string();
    assert!(e.contains("s.png") && e.contains("mask is 2×2 but the image"), "{e}");
    // A label map whose voxel is outside the class range names the voxel.
    let vol = read_sample_volume();
    let e = load_label_volume(&vol.0, vol.1, vol.2, [2, 2, 2], 2).unwrap_err();
    assert!(matches!(e, DataError::LabelOutOfRange { classes: 2, .. }), "{e}");
    assert!(e.to_string().contains("voxel (d, h, w)"), "{e}");
}

/// A shipped CT sub-volume used as a "label map" (HU values far outside any class range).
fn read_sample_volume() -> (PathBuf, [usize; 3], [f64; 3]) {
    let p = crate::common::manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz");
    let v = unimiss_data::read_nifti(&p).unwrap();
    (p, v.dims, v.spacing)
}

/// Direct trilinear interpolation with half-pixel centres and clamped edges.
fn trilinear_reference(x: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    let src = |o: usize, a: usize| {
        let s = ((o as f64 + 0.5) * from[a] as f64 / to[a] as f64 - 0.5).clamp(0.0, (from[a] - 1) as f64);
        let i = s.floor() as usize;
        (i, (i + 1).min(from[a] - 1), s - i as f64)
    };
    let at = |z: usize, y: usize, w: usize| x[(z * from[1] + y) * from[2] + w] as f64;
    let mut out = Vec::new();
    for z in 0..to[0] {
        let (z0, z1, a) = src(z, 0);
        for y in 0..to[1] {
            let (y0, y1, b) = src(y, 1);
            for w in 0..to[2] {
                let (w0, w1, c) = src(w, 2);
                let plane = |z| (at(z, y0, w0) * (1.0 - c) + at(z, y0, w1) * c) * (1.0 - b) + (at(z, y1, w0) * (1.0 - c) + at(z, y1, w1) * c) * b;
                out.push((plane(z0) * (1.0 - a) + plane(z1) * a) as f32);
            }
        }
    }
    out
}

#[test]
fn resizing_linear_and_nearest() {
    // [0, 2] → 4 samples at (o + .5)/2 − .5 = −.25, .25, .75, 1.25 (clamped) → 0, .5, 1.5, 2
    assert_eq!(resize_linear(&[0.0, 2.0], [1, 1, 2], [1, 1, 4]), [0.0, 0.5, 1.5, 2.0]);
    assert_eq!(resize_nearest(&[1u32, 2, 3, 4], [1, 1, 4], [1, 1, 2]), [2, 4]);
    let from = [3, 5, 7];
    let x: Vec<f32> = (0..105).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
    for to in [[6, 4, 9], [1, 5, 7], [3, 10, 3], [5, 5, 5]] {
        let got = resize_linear(&x, from, to);
        let want = trilinear_reference(&x, from, to);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(got.len() == want.len() && err < 1e-5, "{from:?} → {to:?}: max error {err}");
    }
    assert_eq!(resize_linear(&x, from, from), x);
}

fn arrays() -> SampleArrays {
    let (h, w) = (24, 32);
    let mut target = vec![0f32; h * w];
    for y in 5..15 {
        for x in 8..26 {
            target[y * w + x] = 1.0;
        }
    }
    SampleArrays { image: target.clone(), image_channels: 1, target, target_channels: 1, dims: [1, h, w], labels: false }
}

#[test]
fn augmentation_is_deterministic_and_keeps_image_and_mask_aligned() {
    let aug = Augmenter { p_rotation: 1.0, p_scale: 1.0, ..Augmenter::segmentation(Modality::Image2d, 11) };
    let (mut a, mut b, mut c) = (arrays(), arrays(), arrays());
    aug.apply(&mut a, 2, 5);
    aug.apply(&mut b, 2, 5);
    aug.apply(&mut c, 2, 6);
    assert_eq!(a, b, "same (seed, epoch, index) → same sample");
    assert_ne!(a.target, c.target, "another index draws another transform");
    assert_ne!(a.target, arrays().target, "the transform changed the sample");
    // masks stay binary (nearest) and follow the image (linear) on the same coordinates
    assert!(a.target.iter().all(|&v| v == 0.0 || v == 1.0));
    let agree = a.image.iter().zip(&a.target).filter(|(i, t)| (**i > 0.5) == (**t > 0.5)).count();
    assert!(agree as f64 >= 0.97 * a.image.len() as f64, "image and mask agree on {agree} of {} pixels", a.image.len());
    let fg = a.target.iter().filter(|&&v| v > 0.0).count();
    assert!((110..=260).contains(&fg), "foreground {fg} px after rotation ±10° and scale 0.9–1.1 of 180 px");
    // The RNG is the data crate's per-sample stream, apart from the pretraining views'.
    assert_eq!(aug.rng(2, 5), sample_rng(11, 2, 5, Stream::Labelled));
    assert_ne!(sample_rng(11, 2, 5, Stream::Labelled), sample_rng(11, 2, 5, Stream::View(0)));
}

#[test]
fn classification_augmentation_flips_only() {
    let aug = Augmenter::classification(4);
    let base: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
    let mut flipped = 0;
    for index in 0..16 {
        let mut x = base.clone();
        aug.apply_image(&mut x, 2, [1, 3, 4], 0, index);
        let mut y = base.clone();
        aug.apply_image(&mut y, 2, [1, 3, 4], 0, index);
        assert_eq!(x, y, "deterministic");
        let mut sorted = x.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, base, "a permutation of the pixels");
        // Channel planes stay apart: the first plane keeps values 0..12.
        assert!(x[..12].iter().all(|&v| v < 12.0));
        flipped += usize::from(x != base);
    }
    assert!((8..16).contains(&flipped), "{flipped} of 16 samples flipped (3 of 4 expected)");
    let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
    let mut y = x.clone();
    let mut rng = sample_rng(3, 0, 0, Stream::Labelled);
    for _ in 0..8 {
        random_flips(&mut [(&mut x, 1), (&mut y, 1)], [1, 2, 2], &mut rng);
        assert_eq!(x, y, "flips are applied identically to image and target");
    }
}
