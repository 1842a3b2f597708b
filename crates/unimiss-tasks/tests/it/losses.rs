use candle::{Device, Tensor, Var};
use unimiss_tasks::TaskError;
use unimiss_tasks::losses::*;

use crate::close;

fn scalar(t: &Tensor) -> Result<f64, TaskError> {
    Ok(t.to_dtype(candle::DType::F64)?.to_scalar::<f64>()?)
}

#[test]
fn cross_entropy_by_hand() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let logits = Tensor::new(&[[1f32, 2., 3.], [0., 0., 0.]], &dev)?;
    let target = Tensor::new(&[0u32, 2], &dev)?;
    // −log softmax: log(1 + e + e²) and log 3
    let expected = ((1.0 + 1f64.exp() + 2f64.exp()).ln() + 3f64.ln()) / 2.0;
    close(scalar(&cross_entropy(&logits, &target)?)?, expected, 1e-6, "ce");
    // segmentation layout (B, C, W): same numbers per voxel
    let seg = Tensor::new(&[[[1f32, 0.], [2., 0.], [3., 0.]]], &dev)?;
    let t = Tensor::new(&[[0u32, 2]], &dev)?;
    close(scalar(&cross_entropy(&seg, &t)?)?, expected, 1e-6, "ce spatial");
    assert!(matches!(cross_entropy(&seg, &target), Err(TaskError::ShapeMismatch { .. })));
    Ok(())
}

#[test]
fn soft_dice_by_hand() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    // zero logits: p = 0.5 everywhere; target [1, 0] → class 1: tp .5, Σp 1, Σy 1
    let logits = Tensor::zeros((1, 2, 2), candle::DType::F32, &dev)?;
    let target = Tensor::new(&[[1u32, 0]], &dev)?;
    let s = 1e-5;
    let expected = -(1.0 + s) / (2.0 + s + 1e-8);
    close(scalar(&soft_dice(&logits, &target)?)?, expected, 1e-6, "soft dice");
    close(scalar(&dice_ce(&logits, &target)?)?, expected + 2f64.ln(), 1e-6, "dice + ce");
    Ok(())
}

#[test]
fn soft_dice_has_a_gradient() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let v = Var::from_tensor(&Tensor::new(&[[[0.3f32, -0.2, 0.1], [0.1, 0.4, -0.5], [0.0, 0.2, 0.3]]], &dev)?)?;
    let target = Tensor::new(&[[1u32, 2, 0]], &dev)?;
    let g = soft_dice(v.as_tensor(), &target)?.backward()?;
    let gv = g.get(v.as_tensor()).ok_or_else(|| TaskError::Invalid("no gradient".into()))?;
    let n = scalar(&gv.abs()?.sum_all()?)?;
    assert!(n > 1e-4 && n.is_finite(), "gradient norm {n}");
    Ok(())
}

#[test]
fn deep_supervision_weights_match_nnunet() {
    let w = deep_supervision_weights(5);
    let e = [1.0, 0.5, 0.25, 0.125, 0.0].map(|x| x / 1.875);
    for (a, b) in w.iter().zip(e) {
        close(*a, b, 1e-12, "ds weight");
    }
    assert_eq!(deep_supervision_weights(1), vec![1.0]);
}

#[test]
fn nearest_label_downsampling() -> Result<(), TaskError> {
    let t = Tensor::new(&[[0u32, 1, 2, 3, 4, 5, 6, 7]], &Device::Cpu)?;
    let r = resize_labels_nearest(&t, &[4])?;
    assert_eq!(r.to_vec2::<u32>()?, vec![vec![1, 3, 5, 7]]);
    Ok(())
}

#[test]
fn deep_supervision_loss_is_the_weighted_sum() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let full = Tensor::new(&[[[1f32, 0., 2., 0.], [0., 1., 0., 3.]]], &dev)?;
    let half = Tensor::new(&[[[0.5f32, 0.], [0., 0.7]]], &dev)?;
    let quarter = Tensor::new(&[[[0.2f32], [0.1]]], &dev)?;
    let target = Tensor::new(&[[0u32, 1, 0, 1]], &dev)?;
    let l = deep_supervision(&[full.clone(), half.clone(), quarter], &target, cross_entropy)?;
    // weights [1, .5, 0] / 1.5; the half-resolution target is [1, 1]
    let e = (scalar(&cross_entropy(&full, &target)?)? + 0.5 * scalar(&cross_entropy(&half, &Tensor::new(&[[1u32, 1]], &dev)?)?)?) / 1.5;
    close(scalar(&l)?, e, 1e-6, "deep supervision");
    Ok(())
}

#[test]
fn bce_dice_variants() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let y = Tensor::new(&[[[1f32, 0.], [1., 1.]]], &dev)?;
    // zero logits: BCE = ln 2; soft dice per label: (2·Σ.5y + 1)/(Σ.5 + Σy + 1)
    let z = Tensor::zeros((1, 2, 2), candle::DType::F32, &dev)?;
    let d0 = (2.0 * 0.5 + 1.0) / (1.0 + 1.0 + 1.0);
    let d1 = (2.0 * 1.0 + 1.0) / (1.0 + 2.0 + 1.0);
    let soft = 2f64.ln() + 1.0 - (d0 + d1) / 2.0;
    close(scalar(&bce_dice(&z, &y, DiceTerm::Soft)?)?, soft, 1e-6, "soft");
    // thresholded: sigmoid(0) = .5 ≥ .5 → predictions all 1: (2·1 + 1)/(2 + 1 + 1), (2·2 + 1)/(2 + 2 + 1)
    let t0 = 3.0 / 4.0;
    let t1 = 5.0 / 5.0;
    close(scalar(&bce_dice(&z, &y, DiceTerm::OfficialThresholded)?)?, 2f64.ln() + 1.0 - (t0 + t1) / 2.0, 1e-6, "thresholded");
    // the official variant trains on BCE alone: identical gradients
    let v = Var::from_tensor(&Tensor::new(&[[[0.3f32, -1.], [2., -0.4]]], &dev)?)?;
    let grad = |l: Tensor| -> Result<Vec<f32>, TaskError> {
        let g = l.backward()?;
        let gv = g.get(v.as_tensor()).ok_or_else(|| TaskError::Invalid("no gradient".into()))?;
        Ok(gv.flatten_all()?.to_vec1::<f32>()?)
    };
    let g_off = grad(bce_dice(v.as_tensor(), &y, DiceTerm::OfficialThresholded)?)?;
    let g_bce = grad(bce_with_logits(v.as_tensor(), &y)?)?;
    let g_soft = grad(bce_dice(v.as_tensor(), &y, DiceTerm::Soft)?)?;
    for ((a, b), c) in g_off.iter().zip(&g_bce).zip(&g_soft) {
        close(*a as f64, *b as f64, 1e-7, "official gradient = BCE gradient");
        assert!((c - b).abs() > 1e-4, "soft Dice must add a gradient ({c} vs {b})");
    }
    Ok(())
}
