//! Is pretraining learning anything? The kNN monitor (DINO's `eval_knn` during training) and
//! the collapse watch.
//!
//! **kNN monitor.** A small labelled eval manifest (`path<TAB>2d|3d<TAB>label`, the data crate's
//! TSV) is read once, every sample preprocessed *without augmentation* at the run's sizes:
//! - 2D: the image in [0, 1] resized to `size_2d`² with the training pipeline's PIL-bicubic
//!   kernel (the training crop at scale 1, no flip, jitter or blur), grey repeated to 3 channels;
//! - 3D: HU / 1024 (the training scaling), the whole volume resized trilinearly to `size_3d`.
//!
//! Every [`EvalSection::every_epochs`] epochs the *teacher backbone* embeds every sample (the
//! decoder class token, eval mode) and the weighted kNN of [`crate::knn`] (k = 20, T = 0.07,
//! cosine on L2-normalised features) classifies each sample **leave-one-out** against the other
//! samples of its modality. Leave-one-out rather than a train/test split: the eval set is small
//! (tens of samples per modality), and a split would both halve the reference set and make the
//! figure depend on which samples landed on which side; leave-one-out uses every sample as a
//! query and all others as references, and is deterministic.
//!
//! **Collapse watch.** [`CollapseWatch`] (module `collapse`) flags an epoch in which the
//! teacher looked collapsed at every step: uniform, or no longer dependent on the input.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use unimiss_data::Manifest;
pub use unimiss_data::eval_input::{eval_input_2d, eval_input_3d};
use unimiss_model::Mit;

use crate::Modality;
use crate::error::{Result, SslError};
use crate::knn::{KnnParams, KnnScore, knn_leave_one_out, mean_cosine};

pub use crate::collapse::{CollapseWatch, MAX_FEATURE_COSINE, MIN_TEACHER_INFO};
pub use crate::log::{KnnRecord, WarningRecord};

/// `[eval]`: the kNN monitor; off while `manifest` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Labelled TSV manifest (`path  2d|3d  label`); empty = no monitor.
    pub manifest: PathBuf,
    /// Evaluate after every N epochs (and after the last one); 0 = only after the last.
    pub every_epochs: usize,
    /// Neighbours.
    pub k: usize,
    /// Temperature of the vote weights `exp(sim / T)`.
    pub temperature: f64,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { manifest: PathBuf::new(), every_epochs: 1, k: 20, temperature: 0.07 }
    }
}

impl EvalSection {
    /// Whether a manifest is configured.
    pub fn enabled(&self) -> bool {
        !self.manifest.as_os_str().is_empty()
    }

    /// Whether the monitor runs after `epoch` (0-based) of `epochs`.
    pub fn due(&self, epoch: usize, epochs: usize) -> bool {
        self.enabled() && (epoch + 1 == epochs || (self.every_epochs > 0 && (epoch + 1) % self.every_epochs == 0))
    }

    pub fn params(&self) -> KnnParams {
        KnnParams { k: self.k, temperature: self.temperature }
    }
}

/// The preprocessed samples of one modality.
pub struct EvalGroup {
    pub modality: Modality,
    /// `[N, 3, S, S]` or `[N, 1, D, H, W]`.
    pub inputs: Tensor,
    /// Class index per sample.
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}

impl EvalGroup {
    /// Accuracy of predicting the most frequent class.
    pub fn majority(&self) -> f64 {
        let mut counts = vec![0usize; self.classes.len()];
        self.labels.iter().for_each(|&l| counts[l] += 1);
        counts.into_iter().max().unwrap_or(0) as f64 / self.labels.len().max(1) as f64
    }

    /// Leave-one-out kNN of these samples' `feats`.
    fn score(&self, feats: &[Vec<f32>], params: &KnnParams) -> Result<GroupScore> {
        Ok(GroupScore {
            modality: self.modality,
            knn: knn_leave_one_out(feats, &self.labels, self.classes.len(), params)?,
            majority: self.majority(),
            mean_cosine: mean_cosine(feats)?,
        })
    }
}

/// The kNN result of one modality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupScore {
    pub modality: Modality,
    pub knn: KnnScore,
    pub majority: f64,
    pub mean_cosine: f64,
}

/// The labelled eval set, preprocessed once.
pub struct EvalSet {
    pub groups: Vec<EvalGroup>,
}

/// Class indices of free-text labels: numeric order when every label is an integer, else
/// lexicographic.
fn class_indices(labels: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut classes: Vec<String> = labels.to_vec();
    if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
        classes.sort_by_key(|l| l.parse::<i64>().unwrap_or(0));
    } else {
        classes.sort();
    }
    classes.dedup();
    let idx = labels.iter().map(|l| classes.iter().position(|c| c == l).unwrap_or(0)).collect();
    (idx, classes)
}

impl EvalSet {
    /// Reads and preprocesses every labelled sample of `manifest`. A modality with fewer than
    /// two samples or a single class is left out (nothing to classify); a manifest with no
    /// usable modality, or a sample without a label, is an error naming the file.
    pub fn load(manifest: &Path, size_2d: usize, size_3d: [usize; 3], dev: &Device) -> Result<Self> {
        let m = Manifest::read(manifest)?;
        let mut groups = Vec::new();
        for (dm, modality) in [(unimiss_data::Modality::Image2d, Modality::Image2d), (unimiss_data::Modality::Volume3d, Modality::Volume3d)] {
            let samples = m.of_modality(dm);
            if samples.is_empty() {
                continue;
            }
            let mut labels = Vec::with_capacity(samples.len());
            let mut inputs = Vec::with_capacity(samples.len());
            for s in &samples {
                let label = s.label.clone().ok_or_else(|| {
                    SslError::Config(format!("eval manifest {}: {} has no label", manifest.display(), s.path.display()))
                })?;
                labels.push(label);
                inputs.push(match modality {
                    Modality::Image2d => Tensor::from_vec(eval_input_2d(&s.path, size_2d)?, (3, size_2d, size_2d), &Device::Cpu)?,
                    Modality::Volume3d => eval_input_3d(&s.path, size_3d)?,
                });
            }
            let (labels, classes) = class_indices(&labels);
            if labels.len() < 2 || classes.len() < 2 {
                continue;
            }
            groups.push(EvalGroup { modality, inputs: Tensor::stack(&inputs, 0)?.to_device(dev)?, labels, classes });
        }
        if groups.is_empty() {
            return Err(SslError::Config(format!(
                "eval manifest {}: no modality with at least two labelled samples of two classes",
                manifest.display()
            )));
        }
        Ok(Self { groups })
    }

    /// Embeds every group with `backbone` (class token) and scores it leave-one-out.
    pub fn evaluate(&self, backbone: &Mit, params: &KnnParams) -> Result<Vec<GroupScore>> {
        self.groups
            .iter()
            .map(|g| g.score(&embed(backbone, &g.inputs, g.modality)?, params))
            .collect()
    }

    /// The raw-pixel floor: each sample's preprocessed pixels, minus their mean, as its feature
    /// (the same kNN, leave-one-out). What a representation must beat to have learnt anything
    /// pixels do not already show.
    pub fn evaluate_pixels(&self, params: &KnnParams) -> Result<Vec<GroupScore>> {
        self.groups
            .iter()
            .map(|g| {
                let x = g.inputs.reshape((g.inputs.dim(0)?, ()))?.to_dtype(DType::F32)?;
                g.score(&x.broadcast_sub(&x.mean_keepdim(1)?)?.to_vec2::<f32>()?, params)
            })
            .collect()
    }

    /// [`EvalSet::evaluate`] as log records.
    pub fn records(&self, backbone: &Mit, params: &KnnParams, epoch: usize, step: u64) -> Result<Vec<KnnRecord>> {
        Ok(self
            .evaluate(backbone, params)?
            .into_iter()
            .map(|g| KnnRecord {
                epoch,
                step,
                modality: g.modality,
                accuracy: g.knn.accuracy,
                k: g.knn.k,
                n: g.knn.n,
                majority: g.majority,
                mean_cosine: g.mean_cosine,
            })
            .collect())
    }
}

/// Class-token features of a batch of inputs, in chunks (8 images or 2 volumes per forward).
pub fn embed(backbone: &Mit, inputs: &Tensor, modality: Modality) -> Result<Vec<Vec<f32>>> {
    let n = inputs.dim(0)?;
    let chunk = match modality {
        Modality::Image2d => 8,
        Modality::Volume3d => 2,
    };
    let mut out = Vec::with_capacity(n);
    for i in (0..n).step_by(chunk) {
        let f = backbone.forward(&inputs.narrow(0, i, chunk.min(n - i))?)?;
        out.extend(f.to_dtype(candle::DType::F32)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_schedule_and_labels() {
        let mut e = EvalSection::default();
        assert!(!e.due(0, 4));
        e.manifest = PathBuf::from("eval.tsv");
        e.every_epochs = 2;
        let due: Vec<usize> = (0..5).filter(|&ep| e.due(ep, 5)).collect();
        assert_eq!(due, vec![1, 3, 4]);
        let (idx, classes) = class_indices(&["10".into(), "2".into(), "2".into()]);
        assert_eq!((idx, classes), (vec![1, 0, 0], vec!["2".to_string(), "10".to_string()]));
        let (idx, _) = class_indices(&["lesion".into(), "clear".into()]);
        assert_eq!(idx, vec![1, 0]);
    }
}
