//! Segmentation data, loss, inference and outputs (`seg3d`, `seg2d`).
//!
//! - Inputs: whole images/volumes resized to the task's input (as the classification tasks), the
//!   3D label map or 2D masks resized nearest. (The official BCV trainer samples native-spacing
//!   patches and infers with a sliding window; see `docs/tasks.md`.)
//! - Loss: 3D nnU-Net Dice+CE with deep supervision; 2D BCE + Dice (soft, or the official
//!   thresholded term).
//! - Inference: probabilities at the input size, resized linearly back to the native grid, then
//!   argmax (3D, background included) or `≥ 0.5` per label (2D).
//! - Outputs: NIfTI label maps with the input's header geometry (affine, spacing), PNG masks.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use serde_json::Value;
use unimiss_data::nifti::{Datatype, OutputType, read_nifti_image};

use crate::augment::{Augmenter, SampleArrays};
use crate::config::FinetuneConfig;
use crate::dataset::{load_image, load_label_volume, load_masks_2d, load_volume, resize_linear};
use crate::error::{Result, TaskError};
use crate::labelled::{LabelledManifest, LabelledSample};
use crate::losses::{bce_dice, deep_supervision, dice_ce};
use crate::metrics::segmentation::{SegCase, SegMetricOptions, segmentation_case, segmentation_report};
use crate::nets::{SegNet, Task};
use crate::phantoms::{write_png, write_volume};

/// Number of output channels of a segmentation manifest: label-map classes (background first)
/// for 3D, mask columns for 2D.
pub fn seg_channels(task: Task, m: &LabelledManifest, origin: &Path) -> Result<Vec<String>> {
    let masks = m.samples.first().map(|s| s.masks.len()).unwrap_or(0);
    if let Some(s) = m.samples.iter().find(|s| s.masks.is_empty() || s.masks.len() != masks) {
        return Err(TaskError::file(origin, format!("{}: every sample needs the same number of mask columns ({masks})", s.sample.path.display())));
    }
    match task {
        Task::Seg3d => {
            if masks != 1 {
                return Err(TaskError::file(origin, "seg3d needs exactly one label-map column"));
            }
            if m.classes.len() < 2 {
                return Err(TaskError::file(origin, "seg3d needs a #classes= header (background first, at least 2 names)"));
            }
            Ok(m.classes.clone())
        }
        _ => {
            if !m.classes.is_empty() && m.classes.len() != masks {
                return Err(TaskError::file(origin, format!("#classes= names {} labels but samples have {masks} masks", m.classes.len())));
            }
            Ok(if m.classes.is_empty() { (0..masks).map(|i| format!("label{i}")).collect() } else { m.classes.clone() })
        }
    }
}

/// One training pair at the input size: image `(C, …)` and target (3D: label indices as f32
/// `(1, D, H, W)`; 2D: `(K, H, W)` 0/1), with the spatial dims `(D, H, W)`.
pub fn seg_pair(task: Task, s: &LabelledSample, classes: usize, cfg: &FinetuneConfig) -> Result<SampleArrays> {
    let p = &s.sample.path;
    match task {
        Task::Seg3d => {
            let size = cfg.input_3d;
            let (x, dims, spacing) = load_volume(p, size)?;
            let y = load_label_volume(&s.masks[0], dims, spacing, size, classes)?;
            Ok(SampleArrays { image: x, image_channels: 1, target: y.into_iter().map(|v| v as f32).collect(), target_channels: 1, dims: size, labels: true })
        }
        _ => {
            let n = cfg.input_2d;
            let x = load_image(p, n)?;
            let y = load_masks_2d(&s.masks, p, n)?;
            Ok(SampleArrays { image: x, image_channels: 3, target: y, target_channels: s.masks.len(), dims: [1, n, n], labels: false })
        }
    }
}

fn input_shape(task: Task, a: &SampleArrays) -> Vec<usize> {
    let [d, h, w] = a.dims;
    match task {
        Task::Seg3d => vec![a.image_channels, d, h, w],
        _ => vec![a.image_channels, h, w],
    }
}

/// A batch of augmented training pairs: `(x, target)`; target u32 `(B, D, H, W)` for 3D, f32
/// `(B, K, H, W)` for 2D. `aug` (when given) is applied per sample with `(epoch, index)`.
pub fn seg_batch(
    task: Task,
    samples: &[&LabelledSample],
    indices: &[usize],
    classes: usize,
    cfg: &FinetuneConfig,
    aug: Option<(&Augmenter, usize)>,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(samples.len());
    let mut ys = Vec::with_capacity(samples.len());
    for (s, &idx) in samples.iter().zip(indices) {
        let mut a = seg_pair(task, s, classes, cfg)?;
        if let Some((au, epoch)) = aug {
            au.apply(&mut a, epoch, idx);
        }
        let shape = input_shape(task, &a);
        let [d, h, w] = a.dims;
        xs.push(Tensor::from_vec(a.image, shape, dev)?);
        ys.push(match task {
            Task::Seg3d => Tensor::from_vec(a.target.iter().map(|&v| v as u32).collect::<Vec<u32>>(), (d, h, w), dev)?,
            _ => Tensor::from_vec(a.target, (a.target_channels, h, w), dev)?,
        });
    }
    Ok((Tensor::stack(&xs, 0)?, Tensor::stack(&ys, 0)?))
}

/// The training loss of a batch.
pub fn seg_loss(net: &SegNet, task: Task, x: &Tensor, y: &Tensor, cfg: &FinetuneConfig) -> Result<Tensor> {
    let outs = net.forward_t(x, true)?;
    match task {
        Task::Seg3d => deep_supervision(&outs, y, dice_ce),
        _ => bce_dice(&outs[0], y, cfg.dice_term),
    }
}

/// A prediction at the native grid.
#[derive(Debug, Clone)]
pub struct SegPrediction {
    /// Per-channel binary masks (3D: classes incl. background, from the argmax; 2D: labels).
    pub masks: Vec<Vec<bool>>,
    /// 3D label map (argmax), empty for 2D.
    pub labels: Vec<u32>,
    /// Native `(D, H, W)` (`D = 1` for 2D).
    pub dims: [usize; 3],
    /// Native spacing `[D, H, W]` (3D), `None` for 2D.
    pub spacing: Option<[f64; 3]>,
}

/// Predicts one file at its native grid.
pub fn predict_seg(net: &SegNet, task: Task, path: &Path, cfg: &FinetuneConfig, dev: &Device) -> Result<SegPrediction> {
    let (x, shape, native, spacing) = match task {
        Task::Seg3d => {
            let s = cfg.input_3d;
            let (x, dims, sp) = load_volume(path, s)?;
            (x, vec![1, 1, s[0], s[1], s[2]], dims, Some(sp))
        }
        _ => {
            let n = cfg.input_2d;
            let img = unimiss_data::read_image(path).map_err(|e| TaskError::file(path, e))?;
            (load_image(path, n)?, vec![1, 3, n, n], [1, img.height, img.width], None)
        }
    };
    let logits = net.forward(&Tensor::from_vec(x, shape.clone(), dev)?)?;
    let k = logits.dim(1)?;
    let probs = match task {
        Task::Seg3d => candle_nn::ops::softmax(&logits, 1)?,
        _ => candle_nn::ops::sigmoid(&logits)?,
    };
    let probs = probs.squeeze(0)?.to_dtype(DType::F32)?.flatten_from(1)?.to_vec2::<f32>()?;
    let from = match task {
        Task::Seg3d => [shape[2], shape[3], shape[4]],
        _ => [1, shape[2], shape[3]],
    };
    let native_probs: Vec<Vec<f32>> = probs.iter().map(|p| resize_linear(p, from, native)).collect();
    let n: usize = native.iter().product();
    let (masks, labels) = match task {
        Task::Seg3d => {
            let labels: Vec<u32> = (0..n)
                .map(|i| {
                    let mut best = 0;
                    for c in 1..k {
                        if native_probs[c][i] > native_probs[best][i] {
                            best = c;
                        }
                    }
                    best as u32
                })
                .collect();
            let masks = (0..k).map(|c| labels.iter().map(|&l| l as usize == c).collect()).collect();
            (masks, labels)
        }
        _ => (native_probs.iter().map(|p| p.iter().map(|&v| v >= 0.5).collect()).collect(), vec![]),
    };
    Ok(SegPrediction { masks, labels, dims: native, spacing })
}

/// Ground-truth masks of a labelled sample at its native grid (same layout as
/// [`SegPrediction::masks`]).
pub fn ground_truth(task: Task, s: &LabelledSample, classes: usize) -> Result<(Vec<Vec<bool>>, [usize; 3])> {
    match task {
        Task::Seg3d => {
            let v = unimiss_data::read_nifti(&s.sample.path).map_err(|e| TaskError::file(&s.sample.path, e))?;
            let labels = load_label_volume(&s.masks[0], v.dims, v.spacing, v.dims, classes)?;
            Ok(((0..classes).map(|c| labels.iter().map(|&l| l as usize == c).collect()).collect(), v.dims))
        }
        _ => {
            let mut out = Vec::with_capacity(s.masks.len());
            let mut dims = [1, 0, 0];
            for m in &s.masks {
                let (mask, [h, w]) = crate::dataset::read_mask_2d(m)?;
                dims = [1, h, w];
                out.push(mask);
            }
            Ok((out, dims))
        }
    }
}

/// Per-case metrics of every sample of `m` (3D: foreground classes only, HD95 in mm; 2D: every
/// label, Dice/Jaccard smoothed by 0.01 as the official JSRT test).
pub fn seg_cases(net: &SegNet, task: Task, m: &LabelledManifest, classes: usize, cfg: &FinetuneConfig, dev: &Device) -> Result<Vec<SegCase>> {
    let mut cases = Vec::with_capacity(m.samples.len());
    for s in &m.samples {
        let pred = predict_seg(net, task, &s.sample.path, cfg, dev)?;
        let (gt, dims) = ground_truth(task, s, classes)?;
        if dims != pred.dims {
            return Err(TaskError::file(&s.masks[0], format!("mask grid {dims:?} differs from the image's {:?}", pred.dims)));
        }
        let (p, g, opts) = match task {
            Task::Seg3d => (&pred.masks[1..], &gt[1..], SegMetricOptions { smooth: 0.0, hd95_spacing: pred.spacing }),
            _ => (&pred.masks[..], &gt[..], SegMetricOptions { smooth: 0.01, hd95_spacing: None }),
        };
        cases.push(segmentation_case(&s.sample.path.display().to_string(), p, g, dims, opts)?);
    }
    Ok(cases)
}

/// Mean Dice over cases and classes (defined values only), the validation metric.
pub fn mean_dice(cases: &[SegCase]) -> f64 {
    let v: Vec<f64> = cases.iter().flat_map(|c| c.dice.iter().flatten().copied()).collect();
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// The evaluation report (`dice_mean`, `dice`, `hd95` for 3D, per-case rows).
pub fn seg_report(net: &SegNet, task: Task, classes: &[String], m: &LabelledManifest, cfg: &FinetuneConfig, dev: &Device) -> Result<Value> {
    let cases = seg_cases(net, task, m, classes.len(), cfg, dev)?;
    let names = match task {
        Task::Seg3d => &classes[1..],
        _ => classes,
    };
    segmentation_report(names, &cases)
}

/// Writes the prediction of `path` under `out`: a NIfTI label map with the input's header
/// geometry (3D), or one PNG mask (0/255) per label (2D). Returns the written files.
pub fn write_seg_prediction(task: Task, path: &Path, pred: &SegPrediction, classes: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    let stem = file_stem(path);
    match task {
        Task::Seg3d => {
            let img = read_nifti_image(path).map_err(|e| TaskError::file(path, e))?;
            let mut h = img.header.clone();
            h.datatype = Datatype::I16;
            h.scl_slope = 1.0;
            h.scl_inter = 0.0;
            let dst = out.join(format!("{stem}_seg.nii.gz"));
            let data: Vec<f32> = pred.labels.iter().map(|&l| l as f32).collect();
            write_volume(&dst, &data, pred.dims, &h, OutputType::Int16)?;
            Ok(vec![dst])
        }
        _ => {
            let [_, hh, ww] = pred.dims;
            let mut files = Vec::with_capacity(pred.masks.len());
            for (m, name) in pred.masks.iter().zip(classes) {
                let dst = out.join(format!("{stem}_{name}.png"));
                let bytes: Vec<u8> = m.iter().map(|&b| if b { 255 } else { 0 }).collect();
                write_png(&dst, &bytes, [hh, ww])?;
                files.push(dst);
            }
            Ok(files)
        }
    }
}

fn file_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
    for ext in [".nii.gz", ".nii", ".png", ".jpg", ".jpeg"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s.to_string();
        }
    }
    name
}
