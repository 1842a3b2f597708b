//! The real segmentation inference path (`seg_infer`) on volumes larger than the training patch.

use candle::{DType, Device, Tensor};
use candle_nn::VarMap;
use unimiss_model::{MitConfig, Modality, SeededVarMap};
use unimiss_tasks::TaskError;
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::nets::{SegNet, Task};
use unimiss_tasks::seg_infer::{seg_probabilities, sliding_window};

const PATCH: [usize; 3] = [16, 64, 64];

fn net() -> Result<SegNet, TaskError> {
    let cfg = MitConfig::tiny().with_img_size_3d(PATCH);
    let vm = VarMap::new();
    SegNet::new(&cfg, Modality::Volume3d, 3, SeededVarMap::var_builder(&vm, 5, DType::F32, &Device::Cpu))
}

/// `x` (C, pd, ph, pw) repeated to `size`, cut at the far ends.
fn tile(x: &Tensor, size: [usize; 3]) -> Result<Tensor, TaskError> {
    let mut t = x.clone();
    for a in 0..3 {
        let p = t.dim(a + 1)?;
        let reps = size[a].div_ceil(p);
        t = Tensor::cat(&vec![t.clone(); reps], a + 1)?.narrow(a + 1, 0, size[a])?;
    }
    Ok(t)
}

#[test]
fn a_tiled_volume_gives_each_aligned_tile_the_patch_prediction_up_to_seam_blending() -> Result<(), TaskError> {
    let net = net()?;
    let cfg = FinetuneConfig { input_3d: PATCH, sw_mirror: true, ..FinetuneConfig::ci(Task::SEG3D) };
    let patch = Tensor::randn(0f32, 1.0, (1, PATCH[0], PATCH[1], PATCH[2]), &Device::Cpu)?;
    // 1.5 × 1.5 × 2.5 patches: not a multiple of the patch on any axis
    let size = [24, 96, 160];
    let vol = tile(&patch, size)?;
    let own = seg_probabilities(&net, Task::SEG3D, &patch, &cfg)?;
    let all = seg_probabilities(&net, Task::SEG3D, &vol, &cfg)?;
    assert_eq!(all.dims(), &[3, 24, 96, 160], "the label probabilities keep the input's shape");
    let own: Vec<f32> = own.flatten_all()?.to_vec1()?;
    let all: Vec<f32> = all.flatten_all()?.to_vec1()?;
    // windows start at D {0, 8}, H {0, 32}, W {0, 32, 64, 96}: the tiles at (0, 0, 0) and
    // (0, 0, 64) have a window of their own; their voxels mix the patch's own prediction (weight
    // g(v − tile)) with shifted windows (the rest of the summed weight W(v)), so
    // |p(v) − own(v − tile)| ≤ (W(v) − g(v − tile)) / W(v)
    let sw = sliding_window(Task::SEG3D, &cfg);
    let steps = sw.steps(size);
    assert_eq!(steps, [vec![0, 8], vec![0, 32], vec![0, 32, 64, 96]]);
    let g = sw.importance_map();
    let wsum = sw.weight_sum(size)?;
    let (n, pn) = (size.iter().product::<usize>(), PATCH.iter().product::<usize>());
    let (mut centre_worst, mut seam_worst) = (0f64, 0f64);
    for tile_w in [0, 64] {
        for z in 0..PATCH[0] {
            for y in 0..PATCH[1] {
                for x in 0..PATCH[2] {
                    let v = (z * size[1] + y) * size[2] + tile_w + x;
                    let local = (z * PATCH[1] + y) * PATCH[2] + x;
                    let bound = (wsum[v] - g[local]) as f64 / wsum[v] as f64;
                    for c in 0..3 {
                        let d = (all[c * n + v] - own[c * pn + local]).abs() as f64;
                        assert!(d <= bound + 1e-5, "class {c} voxel ({z}, {y}, {}): off by {d}, blending allows {bound}", tile_w + x);
                        let centre = [z, y, x].iter().zip(PATCH).all(|(&i, p)| i.abs_diff(p / 2) <= p / 16);
                        if centre {
                            centre_worst = centre_worst.max(d);
                        } else {
                            seam_worst = seam_worst.max(d);
                        }
                    }
                }
            }
        }
    }
    println!("tiled volume {size:?}: aligned tiles match the patch prediction within {centre_worst:.2e} at their centres, {seam_worst:.3} at the seams");
    // at tile centres the patch's own window dominates; near seams shifted windows really differ
    assert!(centre_worst < 0.01, "tile centres differ from the patch prediction by {centre_worst}");
    assert!(seam_worst > 10.0 * centre_worst, "seams {seam_worst} vs centres {centre_worst}: shifted windows should differ");
    Ok(())
}

#[test]
fn a_volume_smaller_than_the_patch_is_padded_and_cropped_back() -> Result<(), TaskError> {
    let net = net()?;
    let cfg = FinetuneConfig { input_3d: PATCH, sw_mirror: false, ..FinetuneConfig::ci(Task::SEG3D) };
    let vol = Tensor::randn(0f32, 1.0, (1, 10, 20, 75), &Device::Cpu)?;
    let p = seg_probabilities(&net, Task::SEG3D, &vol, &cfg)?;
    assert_eq!(p.dims(), &[3, 10, 20, 75]);
    // softmax probabilities: each voxel sums to 1
    let s = (p.sum(0)? - 1.0)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(s < 1e-5, "class probabilities sum to 1 up to {s}");
    Ok(())
}
