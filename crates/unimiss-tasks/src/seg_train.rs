//! Segmentation data and loss (`seg3d`, `seg2d`); inference, metrics and outputs are in
//! [`crate::seg_infer`].
//!
//! - Training pairs stay at native resolution; each step crops one patch of the network input
//!   size per sample as nnU-Net does ([`crate::patches`]: random or foreground-centred, padded
//!   when the image is smaller), then applies the task's augmentation to the patch.
//! - Loss: 3D nnU-Net Dice+CE with deep supervision; 2D BCE + Dice (soft, or the official
//!   thresholded term).

use std::path::Path;

use candle::{Device, Tensor};
use unimiss_data::augment::{Stream, sample_rng};
use unimiss_model::Modality;

use unimiss_data::augment::spatial::{Augmenter, SampleArrays};
use crate::config::FinetuneConfig;
use unimiss_data::dataset::{load_image_native, load_label_volume, load_masks_2d, load_volume_native};
use crate::error::{Result, TaskError};
use unimiss_data::labelled::{LabelledManifest, LabelledSample};
use crate::losses::{bce_dice, deep_supervision, dice_ce};
use crate::nets::{SegNet, Task};
use crate::patches::{forces_foreground, sample_patch};

use crate::seg_infer::patch_size;

/// Number of output channels of a segmentation manifest: label-map classes (background first)
/// for 3D, mask columns for 2D.
pub fn seg_channels(task: Task, m: &LabelledManifest, origin: &Path) -> Result<Vec<String>> {
    let masks = m.samples.first().map(|s| s.masks.len()).unwrap_or(0);
    if let Some(s) = m.samples.iter().find(|s| s.masks.is_empty() || s.masks.len() != masks) {
        return Err(TaskError::file(origin, format!("{}: every sample needs the same number of mask columns ({masks})", s.sample.path.display())));
    }
    match task.modality() {
        Modality::Volume3d => {
            if masks != 1 {
                return Err(TaskError::file(origin, "seg3d needs exactly one label-map column"));
            }
            if m.classes.len() < 2 {
                return Err(TaskError::file(origin, "seg3d needs a #classes= header (background first, at least 2 names)"));
            }
            Ok(m.classes.clone())
        }
        Modality::Image2d => {
            if !m.classes.is_empty() && m.classes.len() != masks {
                return Err(TaskError::file(origin, format!("#classes= names {} labels but samples have {masks} masks", m.classes.len())));
            }
            Ok(if m.classes.is_empty() { (0..masks).map(|i| format!("label{i}")).collect() } else { m.classes.clone() })
        }
    }
}

/// One whole training pair at native resolution: image `(C, …)` and target (3D: label indices
/// as f32 `(1, D, H, W)`; 2D: `(K, H, W)` 0/1), with the spatial dims `(D, H, W)` (`D = 1` in 2D).
pub fn seg_pair(task: Task, s: &LabelledSample, classes: usize) -> Result<SampleArrays> {
    let p = &s.sample.path;
    let mask0 = s.masks.first().ok_or_else(|| TaskError::file(p, "the sample has no mask column"))?;
    match task.modality() {
        Modality::Volume3d => {
            let (x, dims, spacing) = load_volume_native(p)?;
            let y = load_label_volume(mask0, dims, spacing, dims, classes)?;
            Ok(SampleArrays { image: x, image_channels: 1, target: y.into_iter().map(|v| v as f32).collect(), target_channels: 1, dims, labels: true })
        }
        Modality::Image2d => {
            let (x, [h, w]) = load_image_native(p)?;
            let masks = load_masks_2d(&s.masks, p, [h, w])?;
            let target = masks.iter().flat_map(|m| m.iter().map(|&b| b as u8 as f32)).collect();
            Ok(SampleArrays { image: x, image_channels: 3, target, target_channels: s.masks.len(), dims: [1, h, w], labels: false })
        }
    }
}

fn input_shape(task: Task, a: &SampleArrays) -> Vec<usize> {
    let [d, h, w] = a.dims;
    match task.modality() {
        Modality::Volume3d => vec![a.image_channels, d, h, w],
        Modality::Image2d => vec![a.image_channels, h, w],
    }
}

/// A batch of training patches: `(x, target)`; x `(B, C, patch…)`, target u32 `(B, D, H, W)` for
/// 3D, f32 `(B, K, H, W)` for 2D.
///
/// Sample `samples[b]` (dataset index `indices[b]`) is read at native resolution and one patch of
/// the network input size is cropped from it ([`crate::patches`]; the last third of the batch
/// positions are centred on foreground, as nnU-Net), with the RNG
/// `sample_rng(cfg.seed, epoch, index, Stream::Context)`. `aug` `(augmenter, epoch)` then
/// augments the patch with `(epoch, index)`; without it the patches are those of epoch 0.
pub fn seg_batch(
    task: Task,
    samples: &[&LabelledSample],
    indices: &[usize],
    classes: usize,
    cfg: &FinetuneConfig,
    aug: Option<(&Augmenter, usize)>,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    if samples.len() != indices.len() {
        return Err(TaskError::ShapeMismatch { what: "segmentation batch: samples vs indices".into(), got: vec![samples.len()], expected: vec![indices.len()] });
    }
    let patch = patch_size(task, cfg);
    let epoch = aug.map_or(0, |(_, e)| e);
    let mut xs = Vec::with_capacity(samples.len());
    let mut ys = Vec::with_capacity(samples.len());
    for (pos, (s, &idx)) in samples.iter().zip(indices).enumerate() {
        let whole = seg_pair(task, s, classes)?;
        let mut rng = sample_rng(cfg.seed, epoch, idx, Stream::Context);
        let mut a = sample_patch(&whole, patch, forces_foreground(pos, samples.len()), &mut rng);
        if let Some((au, epoch)) = aug {
            au.apply(&mut a, epoch, idx);
        }
        let shape = input_shape(task, &a);
        let [d, h, w] = a.dims;
        xs.push(Tensor::from_vec(a.image, shape, dev)?);
        ys.push(match task.modality() {
            Modality::Volume3d => Tensor::from_vec(a.target.iter().map(|&v| v as u32).collect::<Vec<u32>>(), (d, h, w), dev)?,
            Modality::Image2d => Tensor::from_vec(a.target, (a.target_channels, h, w), dev)?,
        });
    }
    Ok((Tensor::stack(&xs, 0)?, Tensor::stack(&ys, 0)?))
}

/// The training loss of a batch.
pub fn seg_loss(net: &SegNet, task: Task, x: &Tensor, y: &Tensor, cfg: &FinetuneConfig) -> Result<Tensor> {
    let outs = net.forward_t(x, true)?;
    match task.modality() {
        Modality::Volume3d => deep_supervision(&outs, y, dice_ce),
        Modality::Image2d => bce_dice(&outs[0], y, cfg.dice_term),
    }
}
