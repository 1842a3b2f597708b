//! The JSON-lines training log `RUN_DIR/log.jsonl`: one object per step and one per epoch.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, io_err};

/// One optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub kind: String,
    pub step: u64,
    pub epoch: usize,
    pub batch: usize,
    /// `"2d"` or `"3d"`.
    pub modality: String,
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
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub kind: String,
    pub epoch: usize,
    pub modality: String,
    pub steps: usize,
    pub loss_mean: f64,
    pub terms_mean: BTreeMap<String, f64>,
    /// Mean per-row entropy (nats) of the teacher's sharpened, centred distribution; near 0 is a
    /// one-hot collapse, near ln K a uniform one.
    pub teacher_entropy: f64,
    /// Entropy of the batch-averaged teacher distribution (low = every sample on the same
    /// dimensions).
    pub teacher_mean_entropy: f64,
    /// ‖centre‖₂.
    pub center_norm: f64,
    pub seconds: f64,
    /// Samples left out with `on_bad_sample = "skip"`.
    pub skipped: Vec<String>,
}

/// A line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Step(StepRecord),
    Epoch(EpochRecord),
}

/// Appends records to `log.jsonl` (flushed per line).
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonlLog {
    /// Open `RUN_DIR/log.jsonl` for appending (a resumed run continues the same file).
    pub fn open(run: &Path) -> Result<Self> {
        let path = run.join("log.jsonl");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        Ok(Self { path, file })
    }

    pub fn write<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        let mut line = serde_json::to_string(rec).map_err(|e| crate::SslError::Config(e.to_string()))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        self.file.flush().map_err(io_err(&self.path))
    }
}

/// Read a log. Lines of a step that appears twice (a run killed after its last checkpoint and
/// resumed) keep the later one; records come back in step order.
pub fn read(path: &Path) -> Result<(Vec<StepRecord>, Vec<EpochRecord>)> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut steps: BTreeMap<u64, StepRecord> = BTreeMap::new();
    let mut epochs: BTreeMap<usize, EpochRecord> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(line)
            .map_err(|e| crate::SslError::Config(format!("{}:{}: {e}", path.display(), n + 1)))?;
        match rec {
            Record::Step(s) => {
                steps.insert(s.step, s);
            }
            Record::Epoch(e) => {
                epochs.insert(e.epoch, e);
            }
        }
    }
    Ok((steps.into_values().collect(), epochs.into_values().collect()))
}
