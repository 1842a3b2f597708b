//! nnU-Net training patches at native resolution (`unimiss_tasks::patches`).

use unimiss_data::augment::{Stream, sample_rng};
use unimiss_data::augment::spatial::SampleArrays;
use unimiss_tasks::patches::{crop_padded, forces_foreground, patch_origin, sample_patch};

#[test]
fn foreground_positions_follow_nnunet_rounding() {
    // not pos < round(batch · 0.67), Python's half-to-even round
    let fg = |b: usize| (0..b).map(|p| forces_foreground(p, b)).collect::<Vec<_>>();
    assert_eq!(fg(1), vec![false]);
    assert_eq!(fg(2), vec![false, true]);
    assert_eq!(fg(3), vec![false, false, true]);
    assert_eq!(fg(4), vec![false, false, false, true]);
    assert_eq!(fg(8).iter().filter(|&&f| f).count(), 3, "round(5.36) = 5 random, 3 foreground");
}

#[test]
fn origins_cover_the_nnunet_ranges_with_padding() {
    // D 5 < 8: pad 3, starts in [−2, −1]; H 10 ≥ 4: [0, 6]; W 3 < 4: pad 1, starts in [−1, 0]
    let (mut lo, mut hi) = ([isize::MAX; 3], [isize::MIN; 3]);
    for i in 0..400 {
        let o = patch_origin([5, 10, 3], [8, 4, 4], None, &mut sample_rng(3, 0, i, Stream::Context));
        for a in 0..3 {
            lo[a] = lo[a].min(o[a]);
            hi[a] = hi[a].max(o[a]);
        }
    }
    assert_eq!((lo, hi), ([-2, 0, -1], [-1, 6, 0]));
    // centred on a voxel: max(lb, v − p // 2), no upper clamp
    let mut rng = sample_rng(0, 0, 0, Stream::Context);
    assert_eq!(patch_origin([5, 10, 3], [8, 4, 4], Some([4, 9, 0]), &mut rng), [0, 7, -1]);
}

#[test]
fn crops_copy_inside_and_pad_with_zeros_by_hand() {
    // one 1 × 3 × 3 channel holding 1..9, patch 1 × 3 × 3 starting one row up and one column right
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let c = crop_padded(&x, 1, [1, 3, 3], [0, -1, 1], [1, 3, 3]);
    assert_eq!(c, vec![0., 0., 0., 2., 3., 0., 5., 6., 0.]);
    // two channels are cropped alike; a patch entirely outside is all zeros
    let two: Vec<f32> = x.iter().chain(x.iter()).map(|v| v * 10.0).collect();
    let c2 = crop_padded(&two, 2, [1, 3, 3], [0, -1, 1], [1, 3, 3]);
    assert_eq!(&c2[..9], &c2[9..]);
    assert!(crop_padded(&x, 1, [1, 3, 3], [0, 5, 0], [1, 2, 2]).iter().all(|&v| v == 0.0));
}

fn volume() -> SampleArrays {
    // 12 × 40 × 40 label map, class 2 in a 2 × 3 × 3 block near the far corner; image = labels
    let dims = [12, 40, 40];
    let mut t = vec![0f32; 12 * 40 * 40];
    for z in 9..11 {
        for y in 35..38 {
            for x in 36..39 {
                t[(z * 40 + y) * 40 + x] = 2.0;
            }
        }
    }
    // the image holds each voxel's index + 1, so a crop tells where every voxel came from
    let image = (0..t.len()).map(|i| (i + 1) as f32).collect();
    SampleArrays { image, image_channels: 1, target: t, target_channels: 1, dims, labels: true }
}

/// Image and target were cropped alike: every non-padded voxel's target is the source label.
fn aligned(src: &SampleArrays, patch: &SampleArrays) -> bool {
    patch.image.iter().zip(&patch.target).all(|(&i, &t)| if i == 0.0 { t == 0.0 } else { src.target[i as usize - 1] == t })
}

#[test]
fn foreground_patches_contain_foreground_and_random_ones_mostly_do_not() {
    let a = volume();
    let (mut fg_hits, mut random_hits) = (0, 0);
    for i in 0..200 {
        let f = sample_patch(&a, [8, 16, 16], true, &mut sample_rng(1, 2, i, Stream::Context));
        assert_eq!(f.dims, [8, 16, 16]);
        assert!(aligned(&a, &f), "image and target are cropped alike");
        fg_hits += f.target.contains(&2.0) as usize;
        let r = sample_patch(&a, [8, 16, 16], false, &mut sample_rng(1, 2, i, Stream::Context));
        random_hits += r.target.contains(&2.0) as usize;
    }
    assert_eq!(fg_hits, 200);
    // a random start reaches the block with probability (3/5)(5/25)(4/25) ≈ 0.019
    assert!(random_hits < 16, "random patches hit the block {random_hits}/200 times");
    // one (seed, epoch, index) gives one patch; another index another
    let p = |i| sample_patch(&a, [8, 16, 16], false, &mut sample_rng(1, 2, i, Stream::Context)).image;
    assert_eq!(p(7), p(7));
    assert!((0..20).any(|i| p(i) != p(7)));
}
