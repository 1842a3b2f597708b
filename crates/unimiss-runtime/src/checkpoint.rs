//! Run-directory checkpoints of the training runtime, for pretraining and fine-tuning alike:
//! written atomically (temporary directory, fsync, one rename), numbered by step, the newest K
//! kept, `latest` pointing at the newest.
//!
//! ```text
//! RUN_DIR/checkpoints/ckpt-00000042/
//!     weights.safetensors    <set>.<key> for each variable set (pretraining: student.<key>,
//!                            teacher.<key>, readable by unimiss_model::checkpoint::load(path,
//!                            Which::Teacher); fine-tuning: model.<key>)
//!     optimizer.safetensors  exp_avg.<key>, exp_avg_sq.<key>, and extra tensors (the centre)
//!     state.json             the caller's state (position, configuration, …) plus `format` and
//!                            `params` (per-parameter step counts and grad flags)
//! RUN_DIR/checkpoints/latest  name of the newest checkpoint
//! ```
//!
//! A write that fails (disk full, permissions) removes its temporary directory, leaves the
//! previous checkpoint and `latest` untouched, and names the path and the step. Temporary
//! directories of a killed writer are removed by the next write and by [`clean_temporaries`].

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use serde::de::DeserializeOwned;

use crate::error::{Result, RuntimeError, io_err};
use crate::optim::{AdamW, ParamState};

/// Where training continues from: the next batch to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Epoch of the next batch.
    pub epoch: usize,
    /// Index of the next batch inside that epoch.
    pub batch: usize,
    /// Optimiser steps done so far.
    pub step: u64,
}

/// Optimiser bookkeeping of one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamMeta {
    pub step: u64,
    pub has_grad: bool,
}

/// What a checkpoint holds, borrowed from the trainer.
pub struct Snapshot<'a> {
    /// Variable sets, stored as `<set>.<key>` (`student`, `teacher`; `model`).
    pub sets: Vec<(&'a str, &'a BTreeMap<String, Var>)>,
    pub optim: &'a AdamW,
    /// Further tensors stored beside the moments (pretraining: `center`).
    pub extra: Vec<(&'a str, &'a Tensor)>,
    /// Optimiser steps done; names the checkpoint.
    pub step: u64,
    /// The caller's state, a JSON object; `format` and `params` are added to it.
    pub state: serde_json::Value,
}

const FORMAT: u32 = 1;
const TMP_PREFIX: &str = ".tmp-";

fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io_err(dir))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Write named tensors as safetensors and fsync the file.
pub fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle::safetensors::save(&map, path)
        .map_err(|e| RuntimeError::Checkpoint { path: path.to_path_buf(), msg: format!("cannot write: {e}") })?;
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

/// Write `tensors` to `path` atomically (temporary file beside it, fsync, rename).
pub fn save_tensors_atomic(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tensors");
    let tmp = path.with_file_name(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
    let res = save_tensors(&tmp, tensors).and_then(|()| std::fs::rename(&tmp, path).map_err(io_err(path)));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Per-parameter bookkeeping of `optim`.
pub fn param_meta(optim: &AdamW) -> BTreeMap<String, ParamMeta> {
    optim
        .params()
        .iter()
        .map(|p| (p.name.clone(), ParamMeta { step: p.state.as_ref().map_or(0, |s| s.step), has_grad: p.has_grad }))
        .collect()
}

/// Remove temporary files and directories left in `RUN_DIR/checkpoints` (and `RUN_DIR`) by a
/// writer that was killed or failed. Only one process writes a run directory.
pub fn clean_temporaries(run: &Path) -> Result<()> {
    for dir in [checkpoints_dir(run), run.to_path_buf()] {
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let p = entry.map_err(io_err(&dir))?.path();
            let temp = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX) || n == ".latest.tmp");
            if temp {
                let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                r.map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

fn write_dir(tmp: &Path, snap: &Snapshot<'_>) -> Result<()> {
    std::fs::create_dir_all(tmp).map_err(io_err(tmp))?;
    let mut weights = Vec::new();
    for (prefix, vars) in &snap.sets {
        for (k, v) in vars.iter() {
            weights.push((format!("{prefix}.{k}"), v.as_tensor().clone()));
        }
    }
    save_tensors(&tmp.join("weights.safetensors"), weights)?;
    let mut opt: Vec<(String, Tensor)> = snap.extra.iter().map(|(k, t)| (k.to_string(), (*t).clone())).collect();
    for p in snap.optim.params() {
        if let Some(s) = &p.state {
            opt.push((format!("exp_avg.{}", p.name), s.exp_avg.clone()));
            opt.push((format!("exp_avg_sq.{}", p.name), s.exp_avg_sq.clone()));
        }
    }
    save_tensors(&tmp.join("optimizer.safetensors"), opt)?;
    let mut state = snap.state.clone();
    let obj = state.as_object_mut().ok_or_else(|| RuntimeError::Config("checkpoint state must be a JSON object".into()))?;
    obj.insert("format".into(), FORMAT.into());
    obj.insert("params".into(), serde_json::to_value(param_meta(snap.optim))?);
    let json = serde_json::to_vec_pretty(&state)?;
    write_synced(&tmp.join("state.json"), &json)?;
    fsync_dir(tmp)
}

/// Write a checkpoint atomically and prune old ones; returns its directory. On failure the
/// temporary directory is removed, the previous checkpoint stays the newest, and the error
/// names the step.
pub fn save(run: &Path, snap: &Snapshot<'_>, keep: usize) -> Result<PathBuf> {
    let step = snap.step;
    let fail = |e: RuntimeError| RuntimeError::CheckpointWrite { step, source: Box::new(e) };
    let dir = checkpoints_dir(run);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir)).map_err(fail)?;
    clean_temporaries(run).map_err(fail)?;
    let name = format!("ckpt-{step:08}");
    let tmp = dir.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
    if let Err(e) = write_dir(&tmp, snap) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(e));
    }
    let fin = dir.join(&name);
    let publish = || -> Result<()> {
        if fin.exists() {
            std::fs::remove_dir_all(&fin).map_err(io_err(&fin))?;
        }
        std::fs::rename(&tmp, &fin).map_err(io_err(&fin))?;
        let latest_tmp = dir.join(".latest.tmp");
        write_synced(&latest_tmp, name.as_bytes())?;
        std::fs::rename(&latest_tmp, dir.join("latest")).map_err(io_err(dir.join("latest")))?;
        fsync_dir(&dir)
    };
    if let Err(e) = publish() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(e));
    }
    prune(run, keep)?;
    Ok(fin)
}

/// Numbered checkpoint directories, oldest first.
pub fn list(run: &Path) -> Result<Vec<PathBuf>> {
    let dir = checkpoints_dir(run);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut v = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        let p = entry.map_err(io_err(&dir))?.path();
        if p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-")) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Delete all but the newest `keep` checkpoints, never the one `latest` names.
pub fn prune(run: &Path, keep: usize) -> Result<()> {
    let latest = resolve(run).ok();
    let all = list(run)?;
    for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        if latest.as_ref() != Some(old) {
            std::fs::remove_dir_all(old).map_err(io_err(old))?;
        }
    }
    Ok(())
}

/// The checkpoint `path` names: a checkpoint directory itself, or a run directory (its
/// `latest`, else its newest numbered checkpoint).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join("state.json").exists() {
        return Ok(path.to_path_buf());
    }
    let dir = checkpoints_dir(path);
    if let Ok(name) = std::fs::read_to_string(dir.join("latest")) {
        let p = dir.join(name.trim());
        if p.join("state.json").exists() {
            return Ok(p);
        }
    }
    list(path)?.pop().ok_or_else(|| RuntimeError::Checkpoint {
        path: path.to_path_buf(),
        msg: "no checkpoint here (expected state.json or checkpoints/ckpt-*)".into(),
    })
}

/// The run directory of `path` (a run directory, or a checkpoint directory inside one): where a
/// resumed run keeps writing, wherever the run was first started.
pub fn run_dir_of(path: &Path) -> Result<PathBuf> {
    let ck = resolve(path)?;
    match ck.parent() {
        Some(p) if p.file_name().is_some_and(|n| n == "checkpoints") => Ok(p.parent().unwrap_or(Path::new(".")).to_path_buf()),
        _ => Err(RuntimeError::Checkpoint { path: ck, msg: "is not inside RUN_DIR/checkpoints/; resume from the run directory".into() }),
    }
}

/// A checkpoint read back.
pub struct Loaded {
    pub dir: PathBuf,
    /// `state.json` as written (the caller's fields, `format`, `params`).
    pub state: serde_json::Value,
    /// `weights.safetensors` by set (`student`, `teacher`, `model`) and key.
    pub sets: HashMap<String, HashMap<String, Tensor>>,
    pub optimizer: HashMap<String, Tensor>,
}

/// Read the checkpoint at `path` (see [`resolve`]) onto `dev`.
pub fn load(path: &Path, dev: &Device) -> Result<Loaded> {
    let dir = resolve(path)?;
    let err = |msg: String| RuntimeError::Checkpoint { path: dir.clone(), msg };
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("state.json: {e}")))?;
    let format = state.get("format").and_then(serde_json::Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(err(format!("state.json format {format:?} (this build reads {FORMAT})")));
    }
    let read = |name: &str| {
        let p = dir.join(name);
        candle::safetensors::load(&p, dev).map_err(|e| RuntimeError::Checkpoint { path: p, msg: e.to_string() })
    };
    let mut sets: HashMap<String, HashMap<String, Tensor>> = HashMap::new();
    for (k, t) in read("weights.safetensors")? {
        let (set, key) = k.split_once('.').ok_or_else(|| err(format!("weights.safetensors: unexpected key {k}")))?;
        sets.entry(set.to_string()).or_default().insert(key.to_string(), t);
    }
    let optimizer = read("optimizer.safetensors")?;
    Ok(Loaded { dir, state, sets, optimizer })
}

impl Loaded {
    fn err(&self, msg: String) -> RuntimeError {
        RuntimeError::Checkpoint { path: self.dir.clone(), msg }
    }

    /// `state.json` as the caller's type.
    pub fn state<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.state.clone()).map_err(|e| self.err(format!("state.json: {e}")))
    }

    /// Copy the set `set` into `vars`: the same names and shapes, nothing missing or extra.
    pub fn restore_set(&self, set: &str, vars: &BTreeMap<String, Var>) -> Result<()> {
        let src = self.sets.get(set).ok_or_else(|| self.err(format!("weights.safetensors has no {set}.* tensors")))?;
        if vars.len() != src.len() {
            return Err(self.err(format!("{set} has {} tensors, the model {}", src.len(), vars.len())));
        }
        for (k, v) in vars {
            let t = src.get(k).ok_or_else(|| self.err(format!("{set} lacks {k}")))?;
            if t.dims() != v.dims() {
                return Err(self.err(format!("{set}.{k}: shape {:?}, model {:?}", t.dims(), v.dims())));
            }
            v.set(t)?;
        }
        Ok(())
    }

    /// Restore the optimiser's moments, step counts and grad flags; every parameter must have
    /// its entry (a missing one is an error, never a silent step 0).
    pub fn restore_optim(&self, optim: &mut AdamW) -> Result<()> {
        let params: BTreeMap<String, ParamMeta> = self
            .state
            .get("params")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| self.err(format!("state.json params: {e}")))?
            .ok_or_else(|| self.err("state.json has no optimiser params".into()))?;
        for p in optim.params_mut() {
            let meta = *params.get(&p.name).ok_or_else(|| self.err(format!("state.json has no optimiser entry for {}", p.name)))?;
            p.has_grad = meta.has_grad;
            p.state = match (self.optimizer.get(&format!("exp_avg.{}", p.name)), self.optimizer.get(&format!("exp_avg_sq.{}", p.name))) {
                // Copies: the optimiser updates its moments in place.
                (Some(m), Some(v)) => Some(ParamState { exp_avg: m.copy()?, exp_avg_sq: v.copy()?, step: meta.step }),
                (None, None) if meta.step == 0 => None,
                _ => return Err(self.err(format!("optimizer state of {} is incomplete", p.name))),
            };
        }
        Ok(())
    }

    /// An extra tensor of `optimizer.safetensors` (e.g. `center`).
    pub fn extra(&self, name: &str) -> Result<Tensor> {
        self.optimizer.get(name).cloned().ok_or_else(|| self.err(format!("optimizer.safetensors lacks {name}")))
    }
}
