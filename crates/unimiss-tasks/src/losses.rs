//! Training losses of the downstream tasks, all differentiable through candle autograd.
//!
//! - [`cross_entropy`]: mean cross-entropy over every sample and voxel (RICORD, CXR, and the CE
//!   half of nnU-Net's `DC_and_CE_loss`).
//! - [`soft_dice`] + [`dice_ce`]: nnU-Net v1 `SoftDiceLoss` (batch Dice, smooth 1e-5, background
//!   excluded, `+1e-8` in the denominator) plus CE, and [`deep_supervision_weights`].
//! - [`bce_dice`]: BCE-with-logits plus a Dice term for multi-label masks (JSRT). The Dice term
//!   is soft by default (it trains); [`DiceTerm::OfficialThresholded`] reproduces the official
//!   code, where the Dice is computed on `sigmoid ≥ 0.5` and carries no gradient.

use candle::{D, DType, Tensor};

use crate::error::{Result, TaskError};

/// Mean cross-entropy. `logits`: (B, C, spatial…) or (B, C); `target`: (B, spatial…) or (B,),
/// class indices (u32).
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_target(logits, target)?;
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let picked = logp.gather(&target.to_dtype(DType::U32)?.unsqueeze(1)?.contiguous()?, 1)?;
    Ok(picked.mean_all()?.neg()?)
}

fn check_target(logits: &Tensor, target: &Tensor) -> Result<()> {
    let ld = logits.dims();
    let mut expected = vec![ld[0]];
    expected.extend_from_slice(&ld[2.min(ld.len())..]);
    if ld.len() < 2 || target.dims() != expected.as_slice() {
        return Err(TaskError::ShapeMismatch {
            what: "segmentation/classification target vs logits (B, C, …)".into(),
            got: target.dims().to_vec(),
            expected,
        });
    }
    Ok(())
}

/// One-hot (B, C, spatial…) f32 of a (B, spatial…) index target.
pub fn one_hot(target: &Tensor, classes: usize) -> Result<Tensor> {
    let rank = target.rank() + 1;
    let mut shape = vec![1usize; rank];
    shape[1] = classes;
    let ids = Tensor::arange(0u32, classes as u32, target.device())?.reshape(shape)?;
    Ok(target.to_dtype(DType::U32)?.unsqueeze(1)?.broadcast_eq(&ids)?.to_dtype(DType::F32)?)
}

/// nnU-Net v1 soft Dice loss with `batch_dice = true`, `do_bg = false`, `smooth = 1e-5` on the
/// softmax of `logits` (B, C, spatial…): `−mean_c≥1 (2tp + s) / (2tp + fp + fn + s + 1e-8)`.
pub fn soft_dice(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_target(logits, target)?;
    let classes = logits.dim(1)?;
    if classes < 2 {
        return Err(TaskError::Invalid("soft Dice needs at least two classes (background + one)".into()));
    }
    let p = candle_nn::ops::softmax(logits, 1)?;
    let y = one_hot(target, classes)?.to_dtype(p.dtype())?;
    let sum_but_c = |t: &Tensor| -> Result<Tensor> {
        let t = t.transpose(0, 1)?.contiguous()?.flatten_from(1)?;
        Ok(t.sum(1)?)
    };
    let tp = sum_but_c(&(&p * &y)?)?;
    let sp = sum_but_c(&p)?;
    let sy = sum_but_c(&y)?;
    let smooth = 1e-5;
    // 2tp + fp + fn = sp + sy
    let dc = ((tp * 2.0)? + smooth)?.div(&((sp + sy)? + (smooth + 1e-8))?)?;
    Ok(dc.narrow(0, 1, classes - 1)?.mean_all()?.neg()?)
}

/// nnU-Net `DC_and_CE_loss`: cross-entropy + soft Dice loss (weights 1 and 1).
pub fn dice_ce(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok((cross_entropy(logits, target)? + soft_dice(logits, target)?)?)
}

/// nnU-Net deep-supervision weights for `n` outputs (full resolution first): `w_i ∝ 1/2^i`,
/// the lowest-resolution one set to 0, renormalised to sum 1. `n = 1` gives `[1]`.
pub fn deep_supervision_weights(n: usize) -> Vec<f64> {
    let mut w: Vec<f64> = (0..n).map(|i| 0.5f64.powi(i as i32)).collect();
    if n > 1 {
        w[n - 1] = 0.0;
    }
    let s: f64 = w.iter().sum();
    w.iter().map(|x| x / s).collect()
}

/// Nearest-neighbour resize of an index target (B, spatial…) to `size` (one entry per spatial
/// axis); source index `floor((o + 0.5)·in/out)`, which for factor-2 reductions picks the same
/// voxels as nnU-Net's order-0 target downsampling.
pub fn resize_labels_nearest(target: &Tensor, size: &[usize]) -> Result<Tensor> {
    let dims = target.dims().to_vec();
    if dims.len() != size.len() + 1 {
        return Err(TaskError::ShapeMismatch { what: "label resize size".into(), got: size.to_vec(), expected: dims[1..].to_vec() });
    }
    let mut t = target.clone();
    for (a, (&n_in, &n_out)) in dims[1..].iter().zip(size).enumerate() {
        if n_in == n_out {
            continue;
        }
        let idx: Vec<u32> = (0..n_out)
            .map(|o| (((o as f64 + 0.5) * n_in as f64 / n_out as f64).floor() as usize).min(n_in - 1) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, n_out, t.device())?;
        t = t.contiguous()?.index_select(&idx, a + 1)?;
    }
    Ok(t)
}

/// Deep-supervision loss: `Σ w_i · loss(outputs[i], target resized to outputs[i])`, with
/// [`deep_supervision_weights`]; outputs full resolution first. Zero-weight outputs are skipped.
pub fn deep_supervision(outputs: &[Tensor], target: &Tensor, loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let w = deep_supervision_weights(outputs.len());
    let mut total: Option<Tensor> = None;
    for (o, &wi) in outputs.iter().zip(&w) {
        if wi == 0.0 {
            continue;
        }
        let t = resize_labels_nearest(target, &o.dims()[2..])?;
        let l = (loss(o, &t)? * wi)?;
        total = Some(match total {
            None => l,
            Some(s) => (s + l)?,
        });
    }
    total.ok_or_else(|| TaskError::Invalid("deep supervision: no outputs".into()))
}

/// The Dice term of [`bce_dice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiceTerm {
    /// Soft Dice on `sigmoid(logits)`: has a gradient.
    #[default]
    Soft,
    /// The official JSRT term: Dice on `sigmoid ≥ 0.5`, no gradient (only BCE trains).
    OfficialThresholded,
}

/// Mean BCE-with-logits (numerically stable form).
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    if logits.dims() != target.dims() {
        return Err(TaskError::ShapeMismatch { what: "BCE target vs logits".into(), got: target.dims().to_vec(), expected: logits.dims().to_vec() });
    }
    let y = target.to_dtype(logits.dtype())?;
    // max(x, 0) − x·y + log(1 + exp(−|x|))
    let l = ((logits.relu()? - (logits * &y)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok(l.mean_all()?)
}

/// BCE-with-logits + (1 − Dice) for multi-label masks. `logits`, `target`: (B, K, spatial…),
/// target in {0, 1}. Dice per label over the batch, smoothing 1, averaged over labels.
pub fn bce_dice(logits: &Tensor, target: &Tensor, term: DiceTerm) -> Result<Tensor> {
    let bce = bce_with_logits(logits, target)?;
    let p = candle_nn::ops::sigmoid(logits)?;
    let p = match term {
        DiceTerm::Soft => p,
        DiceTerm::OfficialThresholded => p.ge(0.5)?.to_dtype(logits.dtype())?.detach(),
    };
    let y = target.to_dtype(logits.dtype())?;
    let per_label = |t: &Tensor| -> Result<Tensor> { Ok(t.transpose(0, 1)?.contiguous()?.flatten_from(1)?.sum(D::Minus1)?) };
    let inter = per_label(&(&p * &y)?)?;
    let dice = ((inter * 2.0)? + 1.0)?.div(&((per_label(&p)? + per_label(&y)?)? + 1.0)?)?;
    let dice_loss = dice.mean_all()?.affine(-1.0, 1.0)?;
    Ok((bce + dice_loss)?)
}
