//! The fine-tuning records of the run log `RUN_DIR/log.jsonl` (written by the runtime's
//! `JsonlLog`): one per step, one per epoch with its validation, tagged by `kind`.

use serde::{Deserialize, Serialize};

/// One fine-tuning optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStepRecord {
    pub step: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    pub samples_per_s: f64,
    /// Resident memory of the process after the step (MB; 0 where it cannot be read).
    pub rss_mb: f64,
}

/// A line of a fine-tuning log, tagged by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaskRecord {
    Step(TaskStepRecord),
    Epoch(TaskEpochRecord),
}

/// One finished fine-tuning epoch with its validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEpochRecord {
    pub epoch: usize,
    /// Optimiser steps done at the end of the epoch.
    pub step: u64,
    pub train_loss: f64,
    /// What `val_metric` is: `auc`, `accuracy` (AUC undefined: one class) or `dice`.
    pub metric: String,
    pub val_metric: f64,
    /// Best validation metric so far.
    pub best: f64,
    pub seconds: f64,
}
