//! Task weight files: safetensors holding every parameter under its name plus one `u8` tensor
//! `task_meta` with the JSON [`TaskMeta`] (task, classes, configuration), so a weight file alone
//! is enough to evaluate or predict. Files are written atomically by the training runtime
//! (`unimiss_runtime::checkpoint::save_tensors_atomic`): an interrupted run never leaves a
//! half-written `best.safetensors`.

use std::collections::HashMap;
use std::path::Path;

use candle::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::config::FinetuneConfig;
use crate::error::{Result, TaskError};
use crate::nets::Task;

/// The name of the metadata tensor.
pub const META_KEY: &str = "task_meta";

/// What a task weight file is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMeta {
    pub task: Task,
    pub classes: Vec<String>,
    pub config: FinetuneConfig,
}

/// Saves named tensors (+ optional metadata) atomically as safetensors.
pub fn save_tensors(path: &Path, mut tensors: HashMap<String, Tensor>, meta: Option<&TaskMeta>) -> Result<()> {
    if let Some(m) = meta {
        let json = serde_json::to_vec(m)?;
        let n = json.len();
        tensors.insert(META_KEY.into(), Tensor::from_vec(json, n, &Device::Cpu)?);
    }
    Ok(unimiss_runtime::checkpoint::save_tensors_atomic(path, tensors.into_iter().collect())?)
}

/// Saves every variable of `vm` with the metadata.
pub fn save_weights(path: &Path, vm: &VarMap, meta: &TaskMeta) -> Result<()> {
    let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
    let tensors = data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    drop(data);
    save_tensors(path, tensors, Some(meta))
}

/// Reads a task weight file: its tensors (on `dev`, metadata removed) and metadata.
pub fn load_weights(path: &Path, dev: &Device) -> Result<(HashMap<String, Tensor>, TaskMeta)> {
    let mut t = candle::safetensors::load(path, dev).map_err(|e| TaskError::file(path, format!("cannot read task weights: {e}")))?;
    let meta = t
        .remove(META_KEY)
        .ok_or_else(|| TaskError::file(path, "not a task weight file (no task_meta); was it written by `cargo xtask finetune`?"))?;
    let bytes: Vec<u8> = meta.to_dtype(DType::U8)?.to_vec1()?;
    let meta: TaskMeta = serde_json::from_slice(&bytes).map_err(|e| TaskError::file(path, format!("bad task_meta: {e}")))?;
    Ok((t, meta))
}

/// The metadata of a task weight file, checked against the task the user named: wrong weights
/// stop a command before any work (`weights are for cls2d, not cls3d`).
pub fn expect_task(path: &Path, task: Task) -> Result<TaskMeta> {
    let (_, meta) = load_weights(path, &Device::Cpu)?;
    if meta.task != task {
        return Err(TaskError::file(path, format!("weights are for {}, not {task}: give --task {} or weights fine-tuned for {task}", meta.task, meta.task)));
    }
    Ok(meta)
}

/// Copies `tensors` into the variables of `vm`; every variable must be present with its shape.
pub fn assign(vm: &VarMap, tensors: &HashMap<String, Tensor>, origin: &Path) -> Result<()> {
    let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
    for (k, var) in data.iter() {
        let t = tensors.get(k).ok_or_else(|| TaskError::file(origin, format!("missing tensor {k}")))?;
        if t.dims() != var.dims() {
            return Err(TaskError::file(origin, format!("{k}: shape {:?}, the model expects {:?}", t.dims(), var.dims())));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}
