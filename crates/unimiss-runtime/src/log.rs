//! The JSON-lines run log `RUN_DIR/log.jsonl` of the training runtime: records (each caller
//! has its own types, tagged by `kind`) written and flushed line by line, mirrored as
//! TensorBoard scalars; on resume the log is rolled back to the checkpoint's step so every step
//! appears once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, RuntimeError, io_err};

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
    ///
    /// The TensorBoard events are rebuilt the same way: the run's earlier event files are
    /// replaced by one that holds the kept records' scalars, so no step is drawn twice (the
    /// configuration text and the preview image are added again at the resumed step).
    pub fn open_resumed(run: &Path, step: u64, epoch: usize) -> Result<Self> {
        let path = run.join("log.jsonl");
        let mut kept_records = Vec::new();
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let mut kept = String::with_capacity(text.len());
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A torn last line (killed mid-write) is not JSON: dropped with what follows it.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if before(&v, step, epoch) {
                    kept.push_str(line);
                    kept.push('\n');
                    kept_records.push(v);
                }
            }
            let tmp = run.join(".tmp-log.jsonl");
            std::fs::write(&tmp, kept).map_err(io_err(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        }
        let old = crate::tensorboard::event_files(run)?;
        let mut log = Self::open(run)?;
        for v in kept_records.iter().filter(|v| v.get("step").is_some_and(serde_json::Value::is_u64)) {
            log.events.record(v)?;
        }
        log.events.flush()?;
        for f in old.iter().filter(|f| f.as_path() != log.events.path()) {
            std::fs::remove_file(f).map_err(io_err(f))?;
        }
        Ok(log)
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
        let bad = |msg: String| RuntimeError::Parse { path: path.to_path_buf(), line: n + 1, msg };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if v.get("kind").and_then(|k| k.as_str()) == Some(kind) {
            out.push(serde_json::from_value(v).map_err(|e| bad(e.to_string()))?);
        }
    }
    Ok(out)
}

/// Keep the last record of each key (a log written before rollback existed may repeat steps
/// after a resume), in key order.
pub fn last_by<T, K: Ord>(v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut m = BTreeMap::new();
    for r in v {
        m.insert(key(&r), r);
    }
    m.into_values().collect()
}

