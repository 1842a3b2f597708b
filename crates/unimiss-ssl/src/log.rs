//! The JSON-lines run log `RUN_DIR/log.jsonl` of the training runtime: typed records, one per
//! step and one per epoch (pretraining and fine-tuning have their own record types), written
//! and flushed line by line; on resume the log is rolled back to the checkpoint's step so every
//! step appears once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;

use crate::collapse::WarningRecord;
use crate::error::{Result, SslError, io_err};
use crate::monitor::KnnRecord;
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

/// Resident set size of this process in MB (`/proc/self/status` VmRSS), 0 where unavailable.
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Appends records to `log.jsonl` (flushed per line).
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
    /// The same records as TensorBoard scalars, in the run directory's event file.
    events: crate::tensorboard::EventWriter,
}

/// Whether a log line belongs before a resume point: its `step` is at most `step`; a line
/// without a step (written by an older build) is kept when its epoch is before `epoch`.
fn before(line: &serde_json::Value, step: u64, epoch: usize) -> bool {
    match line.get("step").and_then(serde_json::Value::as_u64) {
        Some(s) if line.get("kind").and_then(|k| k.as_str()) == Some("epoch") => s <= step && line.get("epoch").and_then(serde_json::Value::as_u64).is_some_and(|e| (e as usize) < epoch),
        Some(s) => s <= step,
        None => line.get("epoch").and_then(serde_json::Value::as_u64).is_some_and(|e| (e as usize) < epoch),
    }
}

impl JsonlLog {
    /// Open `RUN_DIR/log.jsonl` for a fresh run (created, or appended to when it exists).
    pub fn open(run: &Path) -> Result<Self> {
        let path = run.join("log.jsonl");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        Ok(Self { path, file, events: crate::tensorboard::EventWriter::create(run)? })
    }

    /// Open the log of a run resumed at `step` (the first epoch not finished is `epoch`): lines
    /// written after that checkpoint by the interrupted process are dropped (the file is
    /// rewritten atomically), so each step and epoch appears once.
    pub fn open_resumed(run: &Path, step: u64, epoch: usize) -> Result<Self> {
        let path = run.join("log.jsonl");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let mut kept = String::with_capacity(text.len());
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A torn last line (killed mid-write) is not JSON: dropped with what follows it.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if before(&v, step, epoch) {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            let tmp = run.join(".tmp-log.jsonl");
            std::fs::write(&tmp, kept).map_err(io_err(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        }
        Self::open(run)
    }

    pub fn write<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        let mut line = serde_json::to_string(rec)?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        self.file.flush().map_err(io_err(&self.path))?;
        self.events.record(rec)?;
        self.events.flush()
    }

    /// The run's TensorBoard event file (every record written here is in it as scalars), for
    /// the images and text a run adds.
    pub fn events(&mut self) -> &mut crate::tensorboard::EventWriter {
        &mut self.events
    }
}

/// Every line of `path` whose `kind` is `kind`, as `T`, in file order. Other kinds are skipped;
/// a line that does not parse is an error naming the file and line.
pub fn read_kind<T: DeserializeOwned>(path: &Path, kind: &str) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| SslError::Parse { path: path.to_path_buf(), line: n + 1, msg };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if v.get("kind").and_then(|k| k.as_str()) == Some(kind) {
            out.push(serde_json::from_value(v).map_err(|e| bad(e.to_string()))?);
        }
    }
    Ok(out)
}

/// Keep the last record of each key (a log written before rollback existed may repeat steps
/// after a resume), in key order.
fn last_by<T, K: Ord>(v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut m = BTreeMap::new();
    for r in v {
        m.insert(key(&r), r);
    }
    m.into_values().collect()
}

/// Read a pretraining log: step records in step order, epoch records in epoch order.
pub fn read(path: &Path) -> Result<(Vec<StepRecord>, Vec<EpochRecord>)> {
    let steps = last_by(read_kind::<StepRecord>(path, "step")?, |s| s.step);
    let epochs = last_by(read_kind::<EpochRecord>(path, "epoch")?, |e| e.epoch);
    Ok((steps, epochs))
}

/// Read a fine-tuning log: step records in step order, epoch records in epoch order.
pub fn read_task(path: &Path) -> Result<(Vec<TaskStepRecord>, Vec<TaskEpochRecord>)> {
    let steps = last_by(read_kind::<TaskStepRecord>(path, "step")?, |s| s.step);
    let epochs = last_by(read_kind::<TaskEpochRecord>(path, "epoch")?, |e| e.epoch);
    Ok((steps, epochs))
}
