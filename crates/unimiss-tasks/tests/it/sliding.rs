use candle::{DType, Device, Tensor};
use unimiss_tasks::TaskError;
use unimiss_tasks::sliding::SlidingWindow;

use crate::close;

#[test]
fn nnunet_steps() {
    let sw = SlidingWindow::new([4, 4, 4]);
    let [a, b, c] = sw.steps([10, 11, 4]);
    assert_eq!(a, vec![0, 2, 4, 6]);
    // 7/4 = 1.75: 0, 1.75, 3.5, 5.25, 7 → round half to even
    assert_eq!(b, vec![0, 2, 4, 5, 7]);
    assert_eq!(c, vec![0]);
}

#[test]
fn overlap_weights_sum_by_hand() -> Result<(), TaskError> {
    // 1-D along W: patch 4, σ = 0.5, centre 2: weights e^-8, e^-2, 1, e^-2; tiles at 0 and 2
    let sw = SlidingWindow { patch: [1, 1, 4], step: 0.5, gaussian: true, mirror: false, batch: 1 };
    let g = sw.importance_map();
    let (e8, e2) = ((-8f64).exp(), (-2f64).exp());
    for (a, b) in g.iter().zip([e8, e2, 1.0, e2]) {
        close(*a as f64, b, 1e-7, "importance");
    }
    let s = sw.weight_sum([1, 1, 6])?;
    for (a, b) in s.iter().zip([e8, e2, 1.0 + e8, 2.0 * e2, 1.0, e2]) {
        close(*a as f64, b, 1e-7, "weight sum");
    }
    // uniform weighting counts the tiles
    let u = SlidingWindow { gaussian: false, ..sw };
    assert_eq!(u.weight_sum([1, 1, 6])?, vec![1., 1., 2., 2., 1., 1.]);
    Ok(())
}

#[test]
fn gaussian_edges_stay_inside_the_truncation() {
    // σ = p/8 and radius int(4σ + 0.5) ≥ the largest offset, so the edge weight of an even patch
    // is exp(−0.5·(p/2)²/(p/8)²) = e^−8 and no weight is zero
    for p in [4, 16, 17] {
        let sw = SlidingWindow { patch: [1, 1, p], step: 0.5, gaussian: true, mirror: false, batch: 1 };
        let g = sw.importance_map();
        let c = (p / 2) as f64;
        let sigma = p as f64 / 8.0;
        close(g[0] as f64, (-0.5 * c * c / (sigma * sigma)).exp(), 1e-9, "edge weight");
        close(g[p / 2] as f64, 1.0, 0.0, "centre weight");
        assert!(g.iter().all(|&v| v > 0.0));
    }
}

#[test]
fn constant_model_reproduces_the_constant() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let img = Tensor::randn(0f32, 1., (1, 5, 9, 11), &dev)?;
    for mirror in [false, true] {
        let sw = SlidingWindow { patch: [4, 4, 4], step: 0.5, gaussian: true, mirror, batch: 3 };
        let mut model = |x: &Tensor| -> Result<Tensor, TaskError> {
            let (b, _, d, h, w) = x.dims5()?;
            Ok(Tensor::new(&[0.3f32, 0.7], &dev)?.reshape((1, 2, 1, 1, 1))?.broadcast_as((b, 2, d, h, w))?.contiguous()?)
        };
        let out = sw.run(&img, &mut model)?;
        assert_eq!(out.dims(), &[2, 5, 9, 11]);
        let v: Vec<f32> = out.flatten_all()?.to_vec1()?;
        for (i, x) in v.iter().enumerate() {
            close(*x as f64, if i < 495 { 0.3 } else { 0.7 }, 1e-6, "constant");
        }
    }
    Ok(())
}

#[test]
fn identity_model_reproduces_the_image_with_mirroring_and_padding() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    for dims in [(1, 7, 10, 9), (1, 2, 3, 3)] {
        let img = Tensor::randn(0f32, 1., dims, &dev)?;
        let sw = SlidingWindow { patch: [4, 4, 4], step: 0.5, gaussian: true, mirror: true, batch: 2 };
        let mut model = |x: &Tensor| -> Result<Tensor, TaskError> { Ok(x.clone()) };
        let out = sw.run(&img, &mut model)?;
        let diff = (out - &img)?.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        assert!(diff < 1e-5, "identity stitching off by {diff} for {dims:?}");
    }
    Ok(())
}

#[test]
fn wrong_model_output_is_an_error() -> Result<(), TaskError> {
    let img = Tensor::zeros((1, 4, 4, 4), DType::F32, &Device::Cpu)?;
    let sw = SlidingWindow { patch: [4, 4, 4], step: 0.5, gaussian: false, mirror: false, batch: 1 };
    let mut model = |x: &Tensor| -> Result<Tensor, TaskError> { Ok(x.narrow(2, 0, 2)?) };
    assert!(matches!(sw.run(&img, &mut model), Err(TaskError::ShapeMismatch { .. })));
    Ok(())
}

#[test]
fn gaussian_map_by_hand_per_axis() {
    // σ = patch/8 per axis: (2, 4, 8) → σ = 0.25, 0.5, 1; centres 1, 2, 4;
    // map = exp(−½ Σ_a (i_a − c_a)² / σ_a²), maximum 1 at the centre
    let sw = SlidingWindow { patch: [2, 4, 8], step: 0.5, gaussian: true, mirror: false, batch: 1 };
    let g = sw.importance_map();
    assert_eq!(g.len(), 64);
    let at = |d: usize, h: usize, w: usize| g[(d * 4 + h) * 8 + w] as f64;
    close(at(1, 2, 4), 1.0, 0.0, "centre");
    // d offset −1 (σ .25 → 8), h offset −1 (σ .5 → 2), w offset −1 (σ 1 → .5)
    close(at(0, 1, 3), (-(8.0 + 2.0 + 0.5f64)).exp(), 1e-12, "(0, 1, 3)");
    // w offsets −4 and +3: 8 and 4.5
    close(at(1, 2, 0), (-8f64).exp(), 1e-9, "(1, 2, 0)");
    close(at(1, 2, 7), (-4.5f64).exp(), 1e-9, "(1, 2, 7)");
    close(at(0, 0, 0), (-24f64).exp(), 1e-15, "corner");
    // separable and symmetric about the centre where both sides exist
    close(at(1, 1, 3), at(1, 3, 5), 0.0, "symmetry");
}

#[test]
fn mirroring_a_2d_patch_flips_only_height_and_width() -> Result<(), TaskError> {
    // a model that counts its calls: a 2D patch [1, h, w] needs 4 flip variants, not 8
    let img = Tensor::randn(0f32, 1., (3, 1, 8, 8), &Device::Cpu)?;
    let sw = SlidingWindow { patch: [1, 8, 8], step: 0.5, gaussian: true, mirror: true, batch: 1 };
    let mut calls = 0;
    let mut model = |x: &Tensor| -> Result<Tensor, TaskError> {
        calls += 1;
        Ok(x.clone())
    };
    let out = sw.run(&img, &mut model)?;
    assert_eq!(calls, 4);
    let diff = (out - &img)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(diff < 1e-6, "identity through 4 mirrored calls off by {diff}");
    Ok(())
}
