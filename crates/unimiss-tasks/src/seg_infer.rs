//! Segmentation inference, metrics and outputs (`seg3d`, `seg2d`).
//!
//! - Inference runs at native resolution with the nnU-Net sliding window ([`SlidingWindow`],
//!   reference §5.2): windows of the training patch (`input_3d`, or `1 × input_2d × input_2d`),
//!   step `sw_step` (0.5) of the patch, Gaussian importance map σ = patch/8, mirroring when
//!   `sw_mirror`, images smaller than the patch padded and cropped back, `batch_size` windows
//!   per network call. 3D: softmax, then argmax (background included); 2D: sigmoid per label,
//!   then `≥ 0.5`. A 2D image is a depth-1 volume to the stitcher (flipped in H and W only).
//! - Metrics per class: Dice, Jaccard and HD95. 3D: foreground classes, HD95 in mm with the
//!   volume's spacing, no smoothing (nnU-Net); 2D: every label, HD95 in pixels, Dice/Jaccard
//!   smoothed by 0.01 (the official JSRT test).
//! - Outputs: NIfTI label maps with the input's header geometry (affine, spacing), PNG masks.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use unimiss_data::nifti::{Datatype, OutputType, read_nifti_image};
use unimiss_model::Modality;

use crate::config::FinetuneConfig;
use unimiss_data::dataset::{load_image_native, load_label_volume, load_masks_2d, load_volume_native};
use crate::error::{Result, TaskError};
use unimiss_data::labelled::{LabelledManifest, LabelledSample};
use crate::metrics::segmentation::{SegCase, SegMetricOptions, SegSummary, segmentation_case, segmentation_report};
use crate::nets::{SegNet, Task};
use unimiss_data::write::{write_png, write_volume};
use crate::sliding::SlidingWindow;

/// A segmentation on an image's native grid (a prediction or a ground truth).
#[derive(Debug, Clone, PartialEq)]
pub struct SegMaps {
    /// `(D, H, W)`, `D = 1` for 2D.
    pub dims: [usize; 3],
    /// Voxel size `[D, H, W]` in mm (3D), `None` for 2D.
    pub spacing: Option<[f64; 3]>,
    /// 3D: the label map (one class index per voxel, background 0); empty for 2D.
    pub labels: Vec<u32>,
    /// 2D: one mask per label (multi-label); empty for 3D.
    pub masks: Vec<Vec<bool>>,
}

impl SegMaps {
    /// The binary mask of channel `c` (3D: voxels labelled `c`; 2D: mask `c`).
    pub fn mask(&self, c: usize) -> Cow<'_, [bool]> {
        if self.labels.is_empty() {
            Cow::Borrowed(self.masks.get(c).map(Vec::as_slice).unwrap_or(&[]))
        } else {
            Cow::Owned(self.labels.iter().map(|&l| l as usize == c).collect())
        }
    }
}

/// The network input (= training patch and sliding-window) size `(D, H, W)`; `D = 1` for 2D.
pub fn patch_size(task: Task, cfg: &FinetuneConfig) -> [usize; 3] {
    match task.modality() {
        Modality::Volume3d => cfg.input_3d,
        Modality::Image2d => [1, cfg.input_2d, cfg.input_2d],
    }
}

/// The sliding window of a task configuration (patch = training patch, Gaussian weighting).
pub fn sliding_window(task: Task, cfg: &FinetuneConfig) -> SlidingWindow {
    SlidingWindow { patch: patch_size(task, cfg), step: cfg.sw_step, gaussian: true, mirror: cfg.sw_mirror, batch: cfg.batch_size.max(1) }
}

/// The network input of `path` at native resolution as `(C, D, H, W)` (2D: `(3, 1, H, W)`) on
/// `dev`, with its dims and spacing (3D).
pub fn native_input(task: Task, path: &Path, dev: &Device) -> Result<(Tensor, [usize; 3], Option<[f64; 3]>)> {
    match task.modality() {
        Modality::Volume3d => {
            let (x, dims, spacing) = load_volume_native(path)?;
            Ok((Tensor::from_vec(x, (1, dims[0], dims[1], dims[2]), dev)?, dims, Some(spacing)))
        }
        Modality::Image2d => {
            let (x, [h, w]) = load_image_native(path)?;
            Ok((Tensor::from_vec(x, (3, 1, h, w), dev)?, [1, h, w], None))
        }
    }
}

/// Per-channel probabilities `(K, D, H, W)` (f32, CPU) of a native-resolution input
/// `(C, D, H, W)`, window by window: softmax over classes (3D) or sigmoid per label (2D).
pub fn seg_probabilities(net: &SegNet, task: Task, image: &Tensor, cfg: &FinetuneConfig) -> Result<Tensor> {
    let sw = sliding_window(task, cfg);
    let mut model = |b: &Tensor| -> Result<Tensor> {
        match task.modality() {
            Modality::Image2d => Ok(candle_nn::ops::sigmoid(&net.forward(&b.squeeze(2)?)?)?.unsqueeze(2)?),
            Modality::Volume3d => Ok(candle_nn::ops::softmax(&net.forward(b)?, 1)?),
        }
    };
    sw.run(image, &mut model)
}

/// Predicts one file at its native grid.
pub fn predict_seg(net: &SegNet, task: Task, path: &Path, cfg: &FinetuneConfig, dev: &Device) -> Result<SegMaps> {
    let (x, dims, spacing) = native_input(task, path, dev)?;
    let probs = seg_probabilities(net, task, &x, cfg)?;
    drop(x);
    let k = probs.dim(0)?;
    let probs: Vec<f32> = probs.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let n: usize = dims.iter().product();
    let channel = |c: usize| &probs[c * n..(c + 1) * n];
    match task.modality() {
        Modality::Volume3d => {
            let labels = (0..n)
                .map(|i| {
                    let mut best = 0;
                    for c in 1..k {
                        if channel(c)[i] > channel(best)[i] {
                            best = c;
                        }
                    }
                    best as u32
                })
                .collect();
            Ok(SegMaps { dims, spacing, labels, masks: vec![] })
        }
        Modality::Image2d => Ok(SegMaps { dims, spacing, labels: vec![], masks: (0..k).map(|c| channel(c).iter().map(|&v| v >= 0.5).collect()).collect() }),
    }
}

/// The ground truth of a labelled sample, checked against the image grid `dims` (and `spacing`
/// in 3D).
pub fn ground_truth(task: Task, s: &LabelledSample, classes: usize, dims: [usize; 3], spacing: Option<[f64; 3]>) -> Result<SegMaps> {
    let p = &s.sample.path;
    let mask0 = s.masks.first().ok_or_else(|| TaskError::file(p, "the sample has no mask column"))?;
    match (task.modality(), spacing) {
        (Modality::Volume3d, Some(sp)) => {
            let labels = load_label_volume(mask0, dims, sp, dims, classes)?;
            Ok(SegMaps { dims, spacing, labels, masks: vec![] })
        }
        (Modality::Volume3d, None) => Err(TaskError::file(p, "a 3D ground truth needs the image spacing")),
        (Modality::Image2d, _) => Ok(SegMaps { dims, spacing: None, labels: vec![], masks: load_masks_2d(&s.masks, p, [dims[1], dims[2]])? }),
    }
}

/// Metrics of one case, class by class (3D: foreground classes `1..K`, HD95 in mm; 2D: every
/// label, HD95 in pixels, Dice/Jaccard smoothed by 0.01).
pub fn case_metrics(task: Task, name: &str, pred: &SegMaps, gt: &SegMaps, classes: usize) -> Result<SegCase> {
    if pred.dims != gt.dims {
        return Err(TaskError::ShapeMismatch { what: format!("{name}: prediction vs ground-truth grid"), got: pred.dims.to_vec(), expected: gt.dims.to_vec() });
    }
    let (first, opts) = match task.modality() {
        Modality::Volume3d => (1, SegMetricOptions { smooth: 0.0, hd95_spacing: Some(pred.spacing.unwrap_or([1.0; 3])) }),
        Modality::Image2d => (0, SegMetricOptions { smooth: 0.01, hd95_spacing: Some([1.0; 3]) }),
    };
    let mut case = SegCase { case: name.into(), dice: vec![], jaccard: vec![], hd95: Some(vec![]) };
    for c in first..classes {
        let one = segmentation_case(name, &[pred.mask(c).into_owned()], &[gt.mask(c).into_owned()], pred.dims, opts)?;
        case.dice.extend(one.dice);
        case.jaccard.extend(one.jaccard);
        if let (Some(all), Some(h)) = (case.hd95.as_mut(), one.hd95) {
            all.extend(h);
        }
    }
    Ok(case)
}

/// Per-case metrics of every sample of `m` ([`case_metrics`]), each predicted with the sliding
/// window at native resolution.
pub fn seg_cases(net: &SegNet, task: Task, m: &LabelledManifest, classes: usize, cfg: &FinetuneConfig, dev: &Device) -> Result<Vec<SegCase>> {
    let mut cases = Vec::with_capacity(m.samples.len());
    for s in &m.samples {
        let pred = predict_seg(net, task, &s.sample.path, cfg, dev)?;
        let gt = ground_truth(task, s, classes, pred.dims, pred.spacing)?;
        cases.push(case_metrics(task, &s.sample.path.display().to_string(), &pred, &gt, classes)?);
    }
    Ok(cases)
}

/// Mean Dice over cases and classes (defined values only), the validation metric.
pub fn mean_dice(cases: &[SegCase]) -> f64 {
    let v: Vec<f64> = cases.iter().flat_map(|c| c.dice.iter().flatten().copied()).collect();
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// The evaluation report: `dice_mean`, `dice`, `jaccard_mean`, `jaccard`, `hd95_mean`, `hd95`
/// (per class), `hd95_unit` (`mm` in 3D, `px` in 2D), `hd95_null_count`, the sliding-window
/// settings under `inference`, and per-case rows under `cases`.
pub fn seg_report(net: &SegNet, task: Task, classes: &[String], m: &LabelledManifest, cfg: &FinetuneConfig, dev: &Device) -> Result<SegEvaluation> {
    let cases = seg_cases(net, task, m, classes.len(), cfg, dev)?;
    let (names, hd95_unit) = match task.modality() {
        Modality::Volume3d => (classes.get(1..).unwrap_or(&[]), "mm"),
        Modality::Image2d => (classes, "px"),
    };
    let sw = sliding_window(task, cfg);
    Ok(SegEvaluation {
        summary: segmentation_report(names, &cases)?,
        hd95_unit,
        inference: InferenceSettings { patch: sw.patch, step: sw.step, gaussian: sw.gaussian, mirror: sw.mirror },
    })
}

/// A segmentation evaluation: the metrics ([`SegSummary`]), the unit of HD95 (`mm` in 3D,
/// `px` in 2D) and the sliding-window settings it was predicted with.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegEvaluation {
    #[serde(flatten)]
    pub summary: SegSummary,
    pub hd95_unit: &'static str,
    pub inference: InferenceSettings,
}

/// The sliding-window settings of a segmentation evaluation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct InferenceSettings {
    pub patch: [usize; 3],
    pub step: f64,
    pub gaussian: bool,
    pub mirror: bool,
}

/// The files the prediction of `path` is written to under `out`, named as predictions so they
/// never take a ground truth's name: `<name>_pred.nii.gz` (3D label map) or
/// `<name>_pred_<label>.png` (2D, one per label).
pub fn prediction_files(task: Task, path: &Path, classes: &[String], out: &Path) -> Vec<PathBuf> {
    let stem = file_stem(path);
    match task.modality() {
        Modality::Volume3d => vec![out.join(format!("{stem}_pred.nii.gz"))],
        Modality::Image2d => classes.iter().map(|name| out.join(format!("{stem}_pred_{name}.png"))).collect(),
    }
}

/// Writes the prediction of `path` under `out` ([`prediction_files`]): a NIfTI label map with
/// the input's header geometry (3D), or one PNG mask (0/255) per label (2D). Returns the files.
pub fn write_seg_prediction(task: Task, path: &Path, pred: &SegMaps, classes: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    let files = prediction_files(task, path, classes, out);
    match task.modality() {
        Modality::Volume3d => {
            let img = read_nifti_image(path).map_err(|e| TaskError::file(path, e))?;
            let mut h = img.header.clone();
            h.datatype = Datatype::I16;
            h.scl_slope = 1.0;
            h.scl_inter = 0.0;
            let data: Vec<f32> = pred.labels.iter().map(|&l| l as f32).collect();
            for dst in &files {
                write_volume(dst, &data, pred.dims, &h, OutputType::Int16)?;
            }
        }
        Modality::Image2d => {
            let [_, hh, ww] = pred.dims;
            for (m, dst) in pred.masks.iter().zip(&files) {
                let bytes: Vec<u8> = m.iter().map(|&b| if b { 255 } else { 0 }).collect();
                write_png(dst, &bytes, [hh, ww])?;
            }
        }
    }
    Ok(files)
}

/// The file extensions `predict` reads (lower case; `.nii.gz` before `.nii`).
pub const IMAGE_EXTENSIONS: [&str; 5] = [".nii.gz", ".nii", ".png", ".jpg", ".jpeg"];

/// The file name without its image extension ([`IMAGE_EXTENSIONS`], any case).
pub fn file_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
    let lower = name.to_ascii_lowercase();
    match IMAGE_EXTENSIONS.iter().find(|ext| lower.ends_with(*ext)) {
        Some(ext) => name[..name.len() - ext.len()].to_string(),
        None => name,
    }
}
