//! The pretraining records of the run log `RUN_DIR/log.jsonl` (the runtime's
//! [`JsonlLog`] writes them): one per step, one per epoch, the kNN monitor's and the collapse
//! watch's, tagged by `kind`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use unimiss_runtime::log::{JsonlLog, last_by, read_kind, rss_mb};

use crate::error::Result;
use crate::Modality;

/// One pretraining optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: usize,
    pub batch: usize,
    pub modality: Modality,
    /// The total loss (3D: the sum of the four terms).
    pub loss: f64,
    /// Every term: `dino` (2D) or `vv`, `sv`, `ss`, `vs` (3D).
    pub terms: BTreeMap<String, f64>,
    pub lr: f64,
    pub wd: f64,
    pub momentum: f64,
    pub teacher_temp: f64,
    pub samples_per_s: f64,
    /// Mean per-row entropy (nats) of the teacher's sharpened, centred distribution.
    pub teacher_entropy: f64,
    /// Entropy of the batch-averaged teacher distribution.
    pub teacher_mean_entropy: f64,
    /// `teacher_mean_entropy − teacher_entropy` (nats): how much the teacher's output tells
    /// about which input it saw; → 0 is a collapse whatever the loss does.
    #[serde(default)]
    pub teacher_info: f64,
    /// Mean cosine between the teacher backbone features of the batch's inputs; → 1 is a
    /// collapse. Absent for a batch of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_cosine: Option<f64>,
    /// Resident memory of the process after the step (MB; 0 where it cannot be read).
    #[serde(default)]
    pub rss_mb: f64,
}

/// One finished pretraining epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Optimiser steps done at the end of the epoch.
    #[serde(default)]
    pub step: u64,
    pub modality: Modality,
    pub steps: usize,
    pub loss_mean: f64,
    pub terms_mean: BTreeMap<String, f64>,
    /// Mean per-row entropy (nats) of the teacher's sharpened, centred distribution; near 0 is a
    /// one-hot collapse, near ln K a uniform one.
    pub teacher_entropy: f64,
    /// Entropy of the batch-averaged teacher distribution (low = every sample on the same
    /// dimensions).
    pub teacher_mean_entropy: f64,
    /// Epoch mean of the steps' `teacher_info`.
    #[serde(default)]
    pub teacher_info: f64,
    /// Epoch mean of the steps' `feature_cosine` (absent when no step measured it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_cosine: Option<f64>,
    /// ‖centre‖₂.
    pub center_norm: f64,
    pub seconds: f64,
    /// Samples left out with `on_bad_sample = "skip"`.
    pub skipped: Vec<String>,
}

/// A line of a pretraining log, tagged by its `kind`: `{"kind": "step", …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Step(StepRecord),
    Epoch(EpochRecord),
    /// The kNN monitor ([`crate::monitor`]).
    Knn(KnnRecord),
    /// The collapse watch ([`crate::collapse`]).
    Warning(WarningRecord),
}

/// One kNN evaluation in `log.jsonl` (`{"kind": "knn", …}` as [`Record::Knn`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnRecord {
    /// 0-based epoch after which it ran.
    pub epoch: usize,
    /// Global optimiser steps done.
    pub step: u64,
    pub modality: Modality,
    pub accuracy: f64,
    /// Neighbours used.
    pub k: usize,
    /// Samples classified.
    pub n: usize,
    /// Accuracy of always answering the most frequent class (the floor to beat).
    pub majority: f64,
    /// Mean cosine similarity between the features of different samples (→ 1: every input
    /// gives the same feature).
    pub mean_cosine: f64,
}

/// A collapse warning in `log.jsonl` (`{"kind": "warning", …}` as [`Record::Warning`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningRecord {
    pub epoch: usize,
    pub step: u64,
    pub modality: Modality,
    pub message: String,
}

/// Read a pretraining log: step records in step order, epoch records in epoch order.
pub fn read(path: &Path) -> Result<(Vec<StepRecord>, Vec<EpochRecord>)> {
    let steps = last_by(read_kind::<StepRecord>(path, "step")?, |s| s.step);
    let epochs = last_by(read_kind::<EpochRecord>(path, "epoch")?, |e| e.epoch);
    Ok((steps, epochs))
}

