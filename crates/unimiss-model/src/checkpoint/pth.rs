//! Reading official PyTorch `.pth` checkpoints (zip + pickle) without executing anything: the
//! pickle is first scanned with bounded depth and memory ([`pickle_scan`]), then interpreted by
//! candle's restricted reader; tensors are read from the zip entries here, every size and index
//! checked (candle's own tensor-info path indexes tuples unchecked and trusts declared sizes).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use candle::pickle::{Object, Stack};
use candle::{DType, Device, Error, Result, Tensor, bail};

use super::Which;
use super::pickle_scan;

/// Largest `data.pkl` read (a training checkpoint's pickle is well under 10 MB).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

type Zip = zip::ZipArchive<BufReader<File>>;

fn with_path(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{}: {e}", path.display()))
}

/// The zip and its `…/data.pkl` entry name.
fn open(path: &Path) -> Result<(Zip, String)> {
    let file = File::open(path).map_err(|e| with_path(path, e))?;
    let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| with_path(path, format!("not a PyTorch zip checkpoint: {e}")))?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).and_then(|n| n.ok()).map(|n| n.to_string()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| with_path(path, "no data.pkl entry (not a torch.save file)"))?;
    Ok((zip, pkl))
}

/// Parses the pickle, refusing one that nests too deep or would take too much memory.
fn read_pickle(path: &Path, zip: &mut Zip, pkl: &str) -> Result<Object> {
    let mut bytes = Vec::new();
    let entry = zip.by_name(pkl).map_err(|e| with_path(path, format!("{pkl}: {e}")))?;
    entry.take(MAX_PICKLE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| with_path(path, format!("{pkl}: {e}")))?;
    if bytes.len() as u64 > MAX_PICKLE_BYTES {
        bail!("{}: {pkl} is larger than {} MiB; not a checkpoint pickle", path.display(), MAX_PICKLE_BYTES >> 20)
    }
    pickle_scan::check(&bytes).map_err(|e| with_path(path, format!("refusing {pkl}: {e}")))?;
    let mut stack = Stack::empty();
    stack.read_loop(&mut bytes.as_slice()).map_err(|e| with_path(path, format!("reading the pickle: {e}")))?;
    stack.finalize().map_err(|e| with_path(path, e))
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

fn is_class(o: &Object, module: &str, class: &str) -> bool {
    matches!(o, Object::Class { module_name, class_name } if module_name == module && class_name == class)
}

/// The state_dict entries chosen by `which`: the top-level dict itself when it is a bare
/// state_dict, else its `teacher`/`student` entry (the error lists the keys the file has).
fn state_dict(path: &Path, top: Object, which: Which) -> Result<(Vec<(Object, Object)>, Option<&'static str>)> {
    // A TorchScript-style module wraps its dict in BUILD(REDUCE(__torch__.Module), dict).
    let top = match top {
        Object::Build { callable, args } if matches!(&*callable, Object::Reduce { callable: c, .. } if is_class(c, "__torch__", "Module")) => *args,
        other => other,
    };
    let entries = match top {
        Object::Dict(entries) => entries,
        other => bail!("{}: the pickle holds no dict at the top level ({})", path.display(), variant_name(&other)),
    };
    if !entries.iter().any(|(_, v)| matches!(v, Object::Dict(_))) {
        return Ok((entries, None));
    }
    let keys: Vec<String> = entries
        .iter()
        .map(|(k, _)| match k {
            Object::Unicode(s) => s.clone(),
            other => variant_name(other).to_string(),
        })
        .collect();
    let wanted = which.key();
    match entries.into_iter().find(|(k, _)| matches!(k, Object::Unicode(s) if s == wanted)) {
        Some((_, Object::Dict(sd))) => Ok((sd, Some(wanted))),
        Some((_, other)) => bail!("{}: `{wanted}` is {}, not a state_dict", path.display(), variant_name(&other)),
        None => bail!("{}: no `{wanted}` state_dict in this checkpoint; its top-level keys are {keys:?}", path.display()),
    }
}

/// Where and how one tensor is stored (`torch._utils._rebuild_tensor_v2` arguments).
struct TensorInfo {
    entry: String,
    dtype: DType,
    dims: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

fn usizes(o: Object, what: &str) -> std::result::Result<Vec<usize>, String> {
    match o {
        Object::Tuple(v) => v
            .into_iter()
            .map(|x| match x {
                Object::Int(i) if i >= 0 => Ok(i as usize),
                Object::Long(i) if i >= 0 => Ok(i as usize),
                other => Err(format!("{what} holds {}, not a non-negative integer", variant_name(&other))),
            })
            .collect(),
        other => Err(format!("{what} is {}, not a tuple", variant_name(&other))),
    }
}

/// `Ok(None)` for entries that are not tensors (candle skips them too).
fn tensor_info(value: Object, dir: &str) -> std::result::Result<Option<TensorInfo>, String> {
    let Object::Reduce { callable, args } = value else { return Ok(None) };
    let (callable, args) = if is_class(&callable, "torch._utils", "_rebuild_parameter") {
        match *args {
            Object::Tuple(mut a) if !a.is_empty() => match a.swap_remove(0) {
                Object::Reduce { callable, args } => (callable, args),
                other => return Err(format!("_rebuild_parameter wraps {}, not a tensor", variant_name(&other))),
            },
            other => return Err(format!("_rebuild_parameter takes {}", variant_name(&other))),
        }
    } else {
        (callable, args)
    };
    if !is_class(&callable, "torch._utils", "_rebuild_tensor_v2") {
        return Ok(None);
    }
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks, …)
    let Object::Tuple(mut a) = *args else { return Err("_rebuild_tensor_v2 arguments are not a tuple".into()) };
    if a.len() < 4 {
        return Err(format!("_rebuild_tensor_v2 has {} arguments, expected at least 4", a.len()));
    }
    a.truncate(4);
    let strides = usizes(a.pop().unwrap_or(Object::None), "stride")?;
    let dims = usizes(a.pop().unwrap_or(Object::None), "size")?;
    let offset = match a.pop() {
        Some(Object::Int(i)) if i >= 0 => i as usize,
        Some(Object::Long(i)) if i >= 0 => i as usize,
        _ => return Err("storage offset is not a non-negative integer".into()),
    };
    // storage: persistent id ('storage', <class>, key, location, numel)
    let storage = match a.pop() {
        Some(Object::PersistentLoad(id)) => match *id {
            Object::Tuple(s) if s.len() >= 3 => s,
            _ => return Err("the storage id is not a ('storage', class, key, …) tuple".into()),
        },
        _ => return Err("the storage is not a persistent id".into()),
    };
    let key = match &storage[2] {
        Object::Unicode(k) => k.clone(),
        other => return Err(format!("the storage key is {}", variant_name(other))),
    };
    let dtype = match &storage[1] {
        Object::Class { class_name, .. } => match class_name.as_str() {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "ByteStorage" => DType::U8,
            "LongStorage" => DType::I64,
            other => return Err(format!("unsupported storage type {other}")),
        },
        other => return Err(format!("the storage type is {}", variant_name(other))),
    };
    if strides.len() != dims.len() {
        return Err(format!("size {dims:?} and stride {strides:?} differ in rank"));
    }
    Ok(Some(TensorInfo { entry: format!("{dir}/{key}"), dtype, dims, strides, offset }))
}

/// Row-major (`false`) or column-major (`true`) layout; anything else is refused.
fn column_major(info: &TensorInfo) -> std::result::Result<bool, String> {
    let packed = |order: &mut dyn Iterator<Item = usize>| {
        let mut expect = 1usize;
        for i in order {
            if info.dims[i] > 1 && info.strides[i] != expect {
                return false;
            }
            expect = expect.saturating_mul(info.dims[i]);
        }
        true
    };
    let rank = info.dims.len();
    if packed(&mut (0..rank).rev()) {
        Ok(false)
    } else if packed(&mut (0..rank)) {
        Ok(true)
    } else {
        Err(format!("non-contiguous layout: size {:?}, stride {:?}", info.dims, info.strides))
    }
}

fn read_tensor(zip: &mut Zip, info: &TensorInfo) -> std::result::Result<Tensor, String> {
    let fortran = column_major(info)?;
    let elems = info.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let width = info.dtype.size_in_bytes();
    let (Some(len), Some(skip)) = (elems.and_then(|n| n.checked_mul(width)), info.offset.checked_mul(width)) else {
        return Err(format!("size {:?} at offset {} overflows", info.dims, info.offset));
    };
    let mut entry = zip.by_name(&info.entry).map_err(|e| format!("storage {}: {e}", info.entry))?;
    let skipped = std::io::copy(&mut entry.by_ref().take(skip as u64), &mut std::io::sink()).map_err(|e| e.to_string())?;
    // Read what is really there (never allocate a declared size up front).
    let mut bytes = Vec::new();
    entry.take(len as u64).read_to_end(&mut bytes).map_err(|e| format!("storage {}: {e}", info.entry))?;
    if skipped < skip as u64 || bytes.len() < len {
        return Err(format!(
            "storage {} is too short: size {:?} at offset {} needs {} bytes from byte {skip}",
            info.entry, info.dims, info.offset, len
        ));
    }
    let dims: Vec<usize> = if fortran { info.dims.iter().rev().copied().collect() } else { info.dims.clone() };
    let t = Tensor::from_raw_buffer(&bytes, info.dtype, &dims, &Device::Cpu).map_err(|e| e.to_string())?;
    if fortran && dims.len() > 1 {
        let rev: Vec<usize> = (0..dims.len()).rev().collect();
        return t.permute(rev).and_then(|t| t.contiguous()).map_err(|e| e.to_string());
    }
    Ok(t)
}

/// Reads the state_dict chosen by `which` (or the bare state_dict) as `(key, tensor)` pairs with
/// the keys as stored, sorted. Zero tensors is an error, as is a missing `teacher`/`student`
/// entry (the error lists the keys the file has) or a malformed tensor (named).
pub(crate) fn read(path: &Path, which: Which) -> Result<Vec<(String, Tensor)>> {
    let (mut zip, pkl) = open(path)?;
    let top = read_pickle(path, &mut zip, &pkl)?;
    let (sd, key) = state_dict(path, top, which)?;
    let dir = pkl.strip_suffix(".pkl").unwrap_or(&pkl).to_string();
    let mut out = Vec::with_capacity(sd.len());
    for (name, value) in sd {
        let Object::Unicode(name) = name else { continue };
        let info = tensor_info(value, &dir).map_err(|e| with_path(path, format!("tensor {name}: {e}")))?;
        if let Some(info) = info {
            let t = read_tensor(&mut zip, &info).map_err(|e| with_path(path, format!("tensor {name}: {e}")))?;
            out.push((name, t));
        }
    }
    if out.is_empty() {
        let from = key.map(|k| format!(" from `{k}`")).unwrap_or_default();
        bail!("{}: read zero tensors{from}", path.display())
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
