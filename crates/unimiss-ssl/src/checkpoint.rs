//! Training checkpoints: written atomically (temporary directory, fsync, rename), numbered by
//! step, the newest K kept, `latest` pointing at the newest.
//!
//! ```text
//! RUN_DIR/checkpoints/ckpt-00000042/
//!     weights.safetensors    student.<key>, teacher.<key> (official keys; readable by
//!                            unimiss_model::checkpoint::load(path, Which::Teacher))
//!     optimizer.safetensors  exp_avg.<key>, exp_avg_sq.<key>, center
//!     state.json             position (epoch, batch, phase, step), seed, per-parameter
//!                            step counts and grad flags, the configuration
//! RUN_DIR/checkpoints/latest  name of the newest checkpoint
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, SslError, io_err};
use crate::optim::{AdamW, ParamState};
use crate::Modality;

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

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CkptState {
    pub format: u32,
    pub position: Position,
    /// Modality of `position.epoch` (stored so resume never shifts the 2D/3D phase, §8.4).
    pub phase: Modality,
    /// The run's seed; data order and augmentations are functions of (seed, epoch, sample), so
    /// this is the whole random state of a run without stochastic depth.
    pub seed: u64,
    pub params: BTreeMap<String, ParamMeta>,
    pub config: TrainConfig,
}

/// What a checkpoint holds, borrowed from the trainer.
pub struct Snapshot<'a> {
    pub student: &'a BTreeMap<String, Var>,
    pub teacher: &'a BTreeMap<String, Var>,
    pub optim: &'a AdamW,
    pub center: &'a Tensor,
    pub state: CkptState,
}

const FORMAT: u32 = 1;

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

fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle::safetensors::save(&map, path)?;
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

/// Write a checkpoint atomically and prune old ones; returns its directory.
pub fn save(run: &Path, snap: &Snapshot<'_>, keep: usize) -> Result<PathBuf> {
    let dir = checkpoints_dir(run);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = format!("ckpt-{:08}", snap.state.position.step);
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;

    let mut weights = Vec::new();
    for (prefix, vars) in [("student", snap.student), ("teacher", snap.teacher)] {
        for (k, v) in vars {
            weights.push((format!("{prefix}.{k}"), v.as_tensor().clone()));
        }
    }
    save_tensors(&tmp.join("weights.safetensors"), weights)?;

    let mut opt = vec![("center".to_string(), snap.center.clone())];
    for p in snap.optim.params() {
        if let Some(s) = &p.state {
            opt.push((format!("exp_avg.{}", p.name), s.exp_avg.clone()));
            opt.push((format!("exp_avg_sq.{}", p.name), s.exp_avg_sq.clone()));
        }
    }
    save_tensors(&tmp.join("optimizer.safetensors"), opt)?;

    let json = serde_json::to_vec_pretty(&snap.state).map_err(|e| SslError::Config(e.to_string()))?;
    write_synced(&tmp.join("state.json"), &json)?;
    fsync_dir(&tmp)?;

    let fin = dir.join(&name);
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(io_err(&fin))?;
    }
    std::fs::rename(&tmp, &fin).map_err(io_err(&fin))?;
    let latest_tmp = dir.join(".latest.tmp");
    write_synced(&latest_tmp, name.as_bytes())?;
    std::fs::rename(&latest_tmp, dir.join("latest")).map_err(io_err(dir.join("latest")))?;
    fsync_dir(&dir)?;
    prune(&dir, keep)?;
    Ok(fin)
}

/// Numbered checkpoint directories, oldest first.
pub fn list(run: &Path) -> Result<Vec<PathBuf>> {
    let dir = checkpoints_dir(run);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-")))
        .collect();
    v.sort();
    Ok(v)
}

fn prune(dir: &Path, keep: usize) -> Result<()> {
    let all = list(dir.parent().unwrap_or(dir))?;
    for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_dir_all(old).map_err(io_err(old))?;
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
    list(path)?.pop().ok_or_else(|| SslError::Checkpoint {
        path: path.to_path_buf(),
        msg: "no checkpoint here (expected state.json or checkpoints/ckpt-*)".into(),
    })
}

/// A checkpoint read back.
pub struct Loaded {
    pub dir: PathBuf,
    pub state: CkptState,
    pub student: HashMap<String, Tensor>,
    pub teacher: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

/// Read the checkpoint at `path` (see [`resolve`]) onto `dev`.
pub fn load(path: &Path, dev: &Device) -> Result<Loaded> {
    let dir = resolve(path)?;
    let err = |msg: String| SslError::Checkpoint { path: dir.clone(), msg };
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
    let state: CkptState = serde_json::from_str(&text).map_err(|e| err(format!("state.json: {e}")))?;
    if state.format != FORMAT {
        return Err(err(format!("format {} (this build reads {FORMAT})", state.format)));
    }
    let weights = candle::safetensors::load(dir.join("weights.safetensors"), dev)?;
    let mut student = HashMap::new();
    let mut teacher = HashMap::new();
    for (k, t) in weights {
        if let Some(s) = k.strip_prefix("student.") {
            student.insert(s.to_string(), t);
        } else if let Some(s) = k.strip_prefix("teacher.") {
            teacher.insert(s.to_string(), t);
        } else {
            return Err(err(format!("weights.safetensors: unexpected key {k}")));
        }
    }
    let optimizer = candle::safetensors::load(dir.join("optimizer.safetensors"), dev)?;
    Ok(Loaded { dir, state, student, teacher, optimizer })
}

fn copy_into(dir: &Path, what: &str, vars: &BTreeMap<String, Var>, src: &HashMap<String, Tensor>) -> Result<()> {
    if vars.len() != src.len() {
        return Err(SslError::Checkpoint {
            path: dir.to_path_buf(),
            msg: format!("{what} has {} tensors, the model {}", src.len(), vars.len()),
        });
    }
    for (k, v) in vars {
        let t = src.get(k).ok_or_else(|| SslError::Checkpoint {
            path: dir.to_path_buf(),
            msg: format!("{what} lacks {k}"),
        })?;
        if t.dims() != v.dims() {
            return Err(SslError::Checkpoint {
                path: dir.to_path_buf(),
                msg: format!("{what}.{k}: shape {:?}, model {:?}", t.dims(), v.dims()),
            });
        }
        v.set(t)?;
    }
    Ok(())
}

impl Loaded {
    /// Copy weights and optimiser state into the trainer's variables; returns the centre.
    pub fn restore(
        &self,
        student: &BTreeMap<String, Var>,
        teacher: &BTreeMap<String, Var>,
        optim: &mut AdamW,
    ) -> Result<Tensor> {
        copy_into(&self.dir, "student", student, &self.student)?;
        copy_into(&self.dir, "teacher", teacher, &self.teacher)?;
        let err = |msg: String| SslError::Checkpoint { path: self.dir.clone(), msg };
        for p in optim.params_mut() {
            let meta = self.state.params.get(&p.name).copied().unwrap_or(ParamMeta { step: 0, has_grad: false });
            p.has_grad = meta.has_grad;
            p.state = match (self.optimizer.get(&format!("exp_avg.{}", p.name)), self.optimizer.get(&format!("exp_avg_sq.{}", p.name))) {
                (Some(m), Some(v)) => Some(ParamState { exp_avg: m.clone(), exp_avg_sq: v.clone(), step: meta.step }),
                (None, None) if meta.step == 0 => None,
                _ => return Err(err(format!("optimizer state of {} is incomplete", p.name))),
            };
        }
        self.optimizer.get("center").cloned().ok_or_else(|| err("optimizer.safetensors lacks center".into()))
    }
}

/// Per-parameter bookkeeping of `optim` for [`CkptState::params`].
pub fn param_meta(optim: &AdamW) -> BTreeMap<String, ParamMeta> {
    optim
        .params()
        .iter()
        .map(|p| (p.name.clone(), ParamMeta { step: p.state.as_ref().map_or(0, |s| s.step), has_grad: p.has_grad }))
        .collect()
}

/// `FORMAT` for new states.
pub fn format_version() -> u32 {
    FORMAT
}
