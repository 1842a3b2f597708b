//! Augmentation statistics, official parameters and determinism.

use unimiss_data::augment::intensity::{VIEWS_3D, augment_intensity};
use unimiss_data::augment::view2d::{CROP_RATIO, CROP_SCALE, crop_params};
use unimiss_data::augment::view3d::{HU_SCALE, context_crop, global_view, pad_target};
use unimiss_data::augment::{Stream, sample_rng};
use unimiss_data::{Modality, Pipeline, Volume, read_nifti};

use crate::common::manifests;

#[test]
fn random_resized_crop_statistics() {
    let (mut n, mut area_sum) = (0usize, 0.0f64);
    for i in 0..4000 {
        let mut rng = sample_rng(1, 0, i, Stream::View(0));
        let (top, left, h, w) = crop_params(&mut rng, 512, 512);
        assert!(top + h <= 512 && left + w <= 512 && h > 0 && w > 0);
        let area = (h * w) as f64 / (512.0 * 512.0);
        let ratio = w as f64 / h as f64;
        // Rounding of w and h widens the bounds slightly.
        assert!(
            area >= CROP_SCALE.0 - 0.01 && area <= CROP_SCALE.1 + 0.01,
            "area {area}"
        );
        assert!(
            ratio >= CROP_RATIO.0 - 0.02 && ratio <= CROP_RATIO.1 + 0.02,
            "ratio {ratio}"
        );
        area_sum += area;
        n += 1;
    }
    // torchvision get_params simulated in Python (200k draws): mean area 0.5084.
    let mean = area_sum / n as f64;
    assert!((0.49..0.53).contains(&mean), "mean crop area {mean}");
}

fn sample_volume() -> Volume {
    read_nifti(manifests().join("sample/ct/000001_02_01_008-023_dep3.nii.gz")).unwrap()
}

#[test]
fn context_crop_follows_crop_scale0() {
    let vol = sample_volume();
    assert_eq!(pad_target(96), 256);
    for i in 0..200 {
        let mut rng = sample_rng(5, 1, i, Stream::Context);
        let ctx = context_crop(&vol, [16, 96, 96], &mut rng);
        let [d, h, w] = ctx.dims;
        assert_eq!(d, 24, "all depth slices kept");
        assert!(
            (134..=172).contains(&h) && (134..=172).contains(&w),
            "context {h}x{w}"
        );
        // Scaled by 1/1024 with no clipping; padding (0 HU) gives exact zeros.
        assert!(
            ctx.data
                .iter()
                .all(|v| (-1.0..=1024.0 / HU_SCALE).contains(v))
        );
    }
    // Depth padding: a 10-slice volume is padded symmetrically to 16.
    let short = Volume {
        data: vec![1024.0; 10 * 300 * 300],
        dims: [10, 300, 300],
        ..vol
    };
    let ctx = context_crop(
        &short,
        [16, 96, 96],
        &mut sample_rng(0, 0, 0, Stream::Context),
    );
    assert_eq!(ctx.dims[0], 16);
    let plane = ctx.dims[1] * ctx.dims[2];
    let slice_sum = |z: usize| -> f32 { ctx.data[z * plane..(z + 1) * plane].iter().sum() };
    let full = plane as f32;
    assert_eq!(
        (slice_sum(2), slice_sum(3), slice_sum(12), slice_sum(13)),
        (0.0, full, full, 0.0)
    );
}

#[test]
fn intensity_transforms_per_slice_statistics() {
    // Constant slices with distinct values: contrast and gamma keep each slice's range, the
    // multiplicative/additive brightness changes slices independently.
    let (s, h, w) = (16, 24, 24);
    let mut diffs = Vec::new();
    for i in 0..50 {
        let mut x: Vec<f32> = (0..s * h * w)
            .map(|k| ((k / (h * w)) as f32) * 0.05 + ((k % w) as f32) * 0.01)
            .collect();
        let before = x.clone();
        augment_intensity(
            &mut x,
            s,
            h,
            w,
            &VIEWS_3D[1],
            &mut sample_rng(9, 0, i, Stream::View(1)),
        );
        assert!(x.iter().all(|v| v.is_finite()));
        // Per-slice offsets differ between slices (independent per-slice parameters).
        let off: Vec<f32> = (0..s)
            .map(|z| x[z * h * w + 5] - before[z * h * w + 5])
            .collect();
        let spread = off.iter().cloned().fold(f32::MIN, f32::max)
            - off.iter().cloned().fold(f32::MAX, f32::min);
        diffs.push(spread);
    }
    let mean_spread = diffs.iter().sum::<f32>() / diffs.len() as f32;
    assert!(
        mean_spread > 0.1,
        "slices are not augmented independently: {mean_spread}"
    );
}

#[test]
fn views_are_deterministic_and_shaped() {
    let p3 = Pipeline::new(Modality::Volume3d, 64, [16, 96, 96]);
    let path = manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz");
    let a = p3.views(&path, 7, 2, 11).unwrap();
    let b = p3.views(&path, 7, 2, 11).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].len(), 16 * 96 * 96);
    assert_ne!(a[0], a[1], "the two views differ");
    assert_ne!(
        a,
        p3.views(&path, 7, 3, 11).unwrap(),
        "the epoch changes the views"
    );
    assert_ne!(
        a,
        p3.views(&path, 8, 2, 11).unwrap(),
        "the seed changes the views"
    );
    let p2 = Pipeline::new(Modality::Image2d, 224, [16, 96, 96]);
    let img = manifests().join("sample/cxr/00000001_000.png");
    let v = p2.views(&img, 7, 2, 11).unwrap();
    assert_eq!(v, p2.views(&img, 7, 2, 11).unwrap());
    assert_eq!(v[0].len(), 3 * 224 * 224);
    assert!(v.iter().flatten().all(|x| (0.0..=1.0).contains(x)));
}

#[test]
fn view_statistics_3d() {
    // Over many views of one real volume, the mean stays near the HU/1024 mean of the tissue
    // (the augmentations are mean-preserving on average) and the global crop flips are 0.8.
    let p = Pipeline::new(Modality::Volume3d, 64, [8, 32, 32]);
    let path = manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz");
    let mut means = Vec::new();
    for i in 0..40 {
        for v in p.views(&path, 1, 0, i).unwrap() {
            assert_eq!(v.len(), 8 * 32 * 32);
            means.push(v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64);
        }
    }
    let m = means.iter().sum::<f64>() / means.len() as f64;
    // The volume's mean is -430.9 HU -> -0.42; augmentations add zero-mean brightness shifts.
    assert!((-0.7..-0.15).contains(&m), "mean of views {m}");
    let flips = (0..2000)
        .filter(|&i| {
            let ctx = unimiss_data::augment::view3d::Context {
                data: (0..24 * 40 * 40).map(|k| (k % 40) as f32).collect(),
                dims: [24, 40, 40],
            };
            let no_intensity = unimiss_data::augment::intensity::IntensityParams {
                blur_p: (0.0, 0.0),
                mult_p: 0.0,
                add_p: 0.0,
                gamma_p: 0.0,
            };
            let v = global_view(
                &ctx,
                [1, 4, 4],
                &no_intensity,
                &mut sample_rng(2, 0, i, Stream::View(0)),
            );
            // W ramp: flipped when the first column is larger than the last (contrast keeps order).
            v[0] > v[3]
        })
        .count();
    assert!(
        (1500..1700).contains(&flips),
        "W flips {flips}/2000 (expect 0.8)"
    );
}
