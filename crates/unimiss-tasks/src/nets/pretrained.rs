//! Loading pretrained MiT weights into a task network as the official downstream code does
//! (reference §5): read the `student` state_dict by default (`teacher` allowed), keep the encoder
//! (`transformer.*`) keys of the task's modality, resize positional tables whose length differs
//! with the 1-D linear zoom of [`crate::zoom`], load what matches and list the rest.
//!
//! Accepts our pretraining checkpoints, our exported backbones and official `.pth` files (the
//! model crate's [`unimiss_model::checkpoint::load`] normalises their keys to
//! `backbone.transformer.…`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle::Tensor;
use candle_nn::VarMap;
use unimiss_model::checkpoint::{self, Which};

use super::Task;
use crate::error::{Result, TaskError};
use crate::zoom::{ClassEntry, zoom_pos_table};

/// What [`load_pretrained`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Keys copied (possibly after a zoom).
    pub loaded: Vec<String>,
    /// Positional tables resized: key, old length, new length.
    pub zoomed: Vec<(String, usize, usize)>,
    /// Model parameters the file did not provide (kept at their initialisation).
    pub new_keys: Vec<String>,
    /// File tensors the task does not use.
    pub unused: Vec<String>,
}

impl LoadReport {
    /// A human-readable summary, one line per category plus the key lists.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "pretrained: {} loaded ({} positional tables zoomed), {} new, {} unused\n",
            self.loaded.len(),
            self.zoomed.len(),
            self.new_keys.len(),
            self.unused.len()
        );
        for (k, a, b) in &self.zoomed {
            s.push_str(&format!("  zoomed {k}: {a} -> {b}\n"));
        }
        for k in &self.new_keys {
            s.push_str(&format!("  new {k}\n"));
        }
        for k in &self.unused {
            s.push_str(&format!("  unused {k}\n"));
        }
        s
    }
}

/// The weight file `path` names: the file itself, or, for a directory, the weights of its newest
/// checkpoint (a pretraining run directory or one checkpoint directory), as `export --run` and
/// `--resume` take them.
pub fn pretrained_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let weights = unimiss_runtime::checkpoint::resolve(path).map(|ck| ck.join("weights.safetensors")).map_err(|_| {
        TaskError::file(
            path,
            "a directory without a checkpoint: --pretrained takes a pretraining run directory, one of its checkpoint \
             directories, an exported backbone (.safetensors) or an official .pth",
        )
    })?;
    if weights.is_file() { Ok(weights) } else { Err(TaskError::file(&weights, "missing: the checkpoint has no weights file")) }
}

/// The key rule of one task: `Some(target key)` when the file tensor `key` is used.
///
/// Classification keeps the encoder (`backbone.transformer.*`) of its modality (§5.1, §5.3).
/// Segmentation also keeps the decoder (`DecEmbed`, `DecPosEmbed`, `Decblock`, `norm`) and drops
/// every class-token projection (§5.2: the BCV network has none). Our networks keep the `3D`/`2D`
/// infix (the model crate holds both modalities), so the official BCV rename "remove `3D`" is the
/// identity here; official `.pth` keys are normalised to `backbone.…` by the model crate.
pub fn target_key(task: Task, key: &str) -> Option<String> {
    let rest = key.strip_prefix("backbone.")?;
    if rest.contains(task.other_tag()) {
        return None;
    }
    let keep = match task.is_segmentation() {
        false => rest.starts_with("transformer."),
        true => {
            let enc = rest.strip_prefix("transformer.");
            let cls = enc.unwrap_or(rest).starts_with("cls_tokens");
            !cls && (enc.is_some() || super::is_decoder_key(rest))
        }
    };
    keep.then(|| key.to_string())
}

/// How the class entry of the file's table `key` is treated when zooming to the task's table:
/// classification keeps class tokens (zoom the whole table); segmentation zooms encoder tables
/// 1–3 whole and drops the class entry of `pos_embed*4` and the decoder tables (§5.2).
pub fn class_entry(task: Task, key: &str) -> ClassEntry {
    if !task.is_segmentation() {
        return ClassEntry::Include;
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    if last.starts_with("DecPosEmbed") || last.ends_with('4') {
        ClassEntry::Drop
    } else {
        ClassEntry::Include
    }
}

fn is_pos_table(key: &str) -> bool {
    key.rsplit('.').next().is_some_and(|last| last.starts_with("pos_embed") || last.starts_with("DecPosEmbed"))
}

/// Loads `path` into the variables of `vm` (built for `task`). A tensor whose shape differs and
/// is not a positional table, or a file from which nothing matches, is a wrong-architecture error
/// naming the file.
pub fn load_pretrained(vm: &VarMap, path: &Path, which: Which, task: Task) -> Result<LoadReport> {
    let file = pretrained_file(path)?;
    let path = file.as_path();
    let sd = checkpoint::load(path, which).map_err(|e| TaskError::file(path, format!("cannot read pretrained weights: {e}")))?;
    let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
    let mut report = LoadReport::default();
    let mut set: BTreeSet<String> = BTreeSet::new();
    for (key, t) in sd.tensors() {
        let Some(target) = target_key(task, key) else {
            report.unused.push(key.clone());
            continue;
        };
        let Some(var) = data.get(&target) else {
            report.unused.push(key.clone());
            continue;
        };
        let want = var.dims().to_vec();
        let t: Tensor = if t.dims() == want.as_slice() {
            t.clone()
        } else if is_pos_table(&target) && t.rank() == 3 && want.len() == 3 && t.dim(2)? == want[2] {
            let z = zoom_pos_table(t, want[1], class_entry(task, &target))?;
            report.zoomed.push((target.clone(), t.dim(1)?, want[1]));
            z
        } else {
            return Err(TaskError::file(
                path,
                format!("wrong architecture for {task}: {key} has shape {:?}, the model expects {want:?}", t.dims()),
            ));
        };
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        report.loaded.push(target.clone());
        set.insert(target);
    }
    if report.loaded.is_empty() {
        return Err(TaskError::file(
            path,
            format!("no tensor of this file fits the {task} network (is it a MiT checkpoint? first keys: {:?})", sd.tensors().keys().take(3).collect::<Vec<_>>()),
        ));
    }
    let mut new_keys: Vec<String> = data.keys().filter(|k| !set.contains(*k) && task.uses(k)).cloned().collect();
    new_keys.sort();
    report.new_keys = new_keys;
    Ok(report)
}
