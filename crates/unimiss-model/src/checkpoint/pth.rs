//! Reading official PyTorch `.pth` checkpoints (zip + pickle) without executing anything: the
//! pickle is interpreted by candle's restricted reader, tensors are read from the zip entries.

use std::io::BufReader;
use std::path::Path;

use candle::pickle::{Object, PthTensors, Stack};
use candle::{Error, Result, Tensor, bail};

use super::Which;

/// The top level of a `.pth` file.
enum TopLevel {
    /// A state_dict: tensors keyed by parameter name.
    StateDict,
    /// A dict holding other entries (e.g. `teacher`, `student`, `optimizer`, `epoch`, `args`).
    Container { keys: Vec<String> },
}

fn with_path(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{}: {e}", path.display()))
}

fn top_level(path: &Path) -> Result<TopLevel> {
    let file = std::fs::File::open(path).map_err(|e| with_path(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| with_path(path, format!("not a PyTorch zip checkpoint: {e}")))?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).and_then(|n| n.ok()).map(|n| (i, n.to_string())))
        .find(|(_, n)| n.ends_with("data.pkl"))
        .map(|(i, _)| i)
        .ok_or_else(|| with_path(path, "no data.pkl entry (not a torch.save file)"))?;
    let entry = zip.by_index(pkl).map_err(|e| with_path(path, e))?;
    let mut stack = Stack::empty();
    stack.read_loop(&mut BufReader::new(entry)).map_err(|e| with_path(path, format!("reading the pickle: {e}")))?;
    match stack.finalize().map_err(|e| with_path(path, e))? {
        Object::Dict(entries) => {
            let nested = entries.iter().any(|(_, v)| matches!(v, Object::Dict(_)));
            if !nested {
                return Ok(TopLevel::StateDict);
            }
            let keys = entries
                .iter()
                .map(|(k, _)| match k {
                    Object::Unicode(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            Ok(TopLevel::Container { keys })
        }
        other => bail!("{}: the pickle holds no dict at the top level ({})", path.display(), variant_name(&other)),
    }
}

fn variant_name(o: &Object) -> &'static str {
    match o {
        Object::Class { .. } => "a class",
        Object::Int(_) | Object::Long(_) => "an integer",
        Object::Float(_) => "a float",
        Object::Unicode(_) => "a string",
        Object::Bool(_) => "a bool",
        Object::None => "None",
        Object::Tuple(_) => "a tuple",
        Object::List(_) => "a list",
        Object::Mark => "a mark",
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } => "a reduce call",
        Object::Build { .. } => "a build call",
        Object::PersistentLoad(_) => "a persistent load",
    }
}

/// Reads the state_dict chosen by `which` (or the bare state_dict) as `(key, tensor)` pairs with
/// the keys as stored. Zero tensors is an error, as is a missing `teacher`/`student` entry (the
/// error lists the keys the file has).
pub(crate) fn read(path: &Path, which: Which) -> Result<Vec<(String, Tensor)>> {
    let key = match top_level(path)? {
        TopLevel::StateDict => None,
        TopLevel::Container { keys } => {
            if !keys.iter().any(|k| k == which.key()) {
                bail!("{}: no `{}` state_dict in this checkpoint; its top-level keys are {keys:?}", path.display(), which.key())
            }
            Some(which.key())
        }
    };
    let pth = PthTensors::new(path, key).map_err(|e| with_path(path, e))?;
    let mut names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match pth.get(&name).map_err(|e| with_path(path, format!("tensor {name}: {e}")))? {
            Some(t) => out.push((name, t)),
            None => bail!("{}: tensor {name} is listed but cannot be read", path.display()),
        }
    }
    if out.is_empty() {
        bail!(
            "{}: read zero tensors{}",
            path.display(),
            key.map(|k| format!(" from `{k}`")).unwrap_or_default()
        )
    }
    Ok(out)
}
