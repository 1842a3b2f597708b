//! Export the teacher backbone of a run in the official key layout (`backbone.transformer.…`,
//! `backbone.Decblock0.…`), as the downstream tasks and `unimiss_model::checkpoint` read it.

use std::collections::HashMap;
use std::path::Path;

use candle::{Device, Tensor};

use crate::error::{Result, SslError};

/// Write the teacher backbone of the checkpoint `run` (a run directory or a checkpoint
/// directory) to `out`; returns the number of tensors written. With `with_head`, the
/// projection head (`head.*`) is included too.
pub fn export_teacher(run: &Path, out: &Path, with_head: bool) -> Result<usize> {
    let dir = crate::checkpoint::resolve(run)?;
    let weights = candle::safetensors::load(dir.join("weights.safetensors"), &Device::Cpu)?;
    let picked: HashMap<String, Tensor> = weights
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix("teacher.").map(|s| (s.to_string(), t)))
        .filter(|(k, _)| k.starts_with("backbone.") || (with_head && k.starts_with("head.")))
        .collect();
    if picked.is_empty() {
        return Err(SslError::Checkpoint { path: dir, msg: "no teacher.backbone.* tensors".into() });
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(crate::error::io_err(parent))?;
    }
    candle::safetensors::save(&picked, out)?;
    Ok(picked.len())
}
