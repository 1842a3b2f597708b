//! Checkpoints: official `.pth` files (bare state_dict, or a dict with `teacher` / `student`
//! state_dicts), and safetensors in both directions.
//!
//! Keys are normalised once on load to the official `ModuleWrapper` names: a leading `module.`
//! (DDP, student) is stripped, and a bare backbone state_dict (no `backbone.` / `head.` prefix)
//! gets `backbone.`. A [`StateDict`] is checked against the names and shapes a configuration
//! expects ([`expected_shapes`]) before a model is built from it; every missing, unexpected or
//! wrongly shaped tensor is named with both shapes.

mod pickle_scan;
mod pth;
mod shapes;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle::{DType, Device, Error, Result, Tensor, Var, bail};
use candle_nn::{VarBuilder, VarMap};

pub use shapes::{ParamCount, expected_shapes};

use crate::config::{HeadConfig, MitConfig};
use crate::head::Head;
use crate::mit::Mit;

/// Which state_dict of a training checkpoint to read (`teacher`/`student` in configs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// `checkpoint['teacher']` (keys without `module.`); the default of embed, convert, export.
    #[default]
    Teacher,
    /// `checkpoint['student']` (keys with `module.`); the official downstream default.
    Student,
}

impl Which {
    /// The checkpoint entry name.
    pub fn key(self) -> &'static str {
        match self {
            Which::Teacher => "teacher",
            Which::Student => "student",
        }
    }
}

impl std::str::FromStr for Which {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "teacher" => Ok(Which::Teacher),
            "student" => Ok(Which::Student),
            other => bail!("unknown state_dict {other:?} (expected teacher or student)"),
        }
    }
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Whether tensors the configuration does not use are an error or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPolicy {
    Exact,
    AllowUnexpected,
}

/// A state_dict with canonical keys (`backbone.*`, `head.*`).
#[derive(Clone, Debug)]
pub struct StateDict {
    tensors: BTreeMap<String, Tensor>,
}

/// Backbone, and head when the weights have one, built from a [`StateDict`].
#[derive(Clone, Debug)]
pub struct Loaded {
    pub backbone: Mit,
    pub head: Option<Head>,
    /// Keys present in the weights but not used (only with [`KeyPolicy::AllowUnexpected`]).
    pub unexpected: Vec<String>,
}

impl StateDict {
    /// Normalises keys: strips `module.`, adds `backbone.` to a bare backbone state_dict.
    pub fn from_pairs(pairs: Vec<(String, Tensor)>) -> Result<Self> {
        if pairs.is_empty() {
            bail!("state_dict has zero tensors")
        }
        let stripped: Vec<(String, Tensor)> =
            pairs.into_iter().map(|(k, t)| (k.strip_prefix("module.").map(str::to_string).unwrap_or(k), t)).collect();
        let wrapped = stripped.iter().any(|(k, _)| k.starts_with("backbone.") || k.starts_with("head."));
        let mut tensors = BTreeMap::new();
        for (k, t) in stripped {
            let k = if wrapped { k } else { format!("backbone.{k}") };
            if tensors.contains_key(&k) {
                bail!("state_dict has key {k} twice (after stripping `module.`)")
            }
            tensors.insert(k, t);
        }
        Ok(Self { tensors })
    }

    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.tensors.get(key)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The head sizes stored in the weights (`head.mlp.{0,2,4}.weight`, `head.last_layer.weight_v`),
    /// or `None` when there is no head.
    pub fn head_config(&self) -> Result<Option<HeadConfig>> {
        if !self.tensors.keys().any(|k| k.starts_with("head.")) {
            return Ok(None);
        }
        let dims2 = |k: &str| -> Result<(usize, usize)> {
            match self.tensors.get(k) {
                Some(t) => t.dims2().map_err(|e| Error::Msg(format!("{k}: {e}"))),
                None => bail!("the weights have head tensors but no {k}"),
            }
        };
        let (hidden, in_dim) = dims2("head.mlp.0.weight")?;
        let (bottleneck, _) = dims2("head.mlp.4.weight")?;
        let (out_dim, _) = dims2("head.last_layer.weight_v")?;
        Ok(Some(HeadConfig { in_dim, out_dim, hidden_dim: hidden, bottleneck_dim: bottleneck }))
    }

    /// The input sizes the positional tables were built for, when they can be read off: the 2D
    /// side from `pos_embed2D1` (`(S/4)²` patches); the 3D in-plane side from `pos_embed3D1`
    /// assuming the official depth 16 (`8 · (S/4)²` patches; the depth cannot be told apart).
    pub fn built_sizes(&self) -> (Option<usize>, Option<[usize; 3]>) {
        let patches = |k: &str| self.tensors.get(k).and_then(|t| t.dims3().ok()).map(|(_, n, _)| n.saturating_sub(1));
        let square_side = |n: usize| {
            let s = (n as f64).sqrt().round() as usize;
            (s * s == n && s > 0).then_some(s)
        };
        let s2 = patches("backbone.transformer.pos_embed2D1").and_then(square_side).map(|s| 4 * s);
        let s3 = patches("backbone.transformer.pos_embed3D1")
            .and_then(|n| (n % 8 == 0).then(|| n / 8))
            .and_then(square_side)
            .map(|s| [16, 4 * s, 4 * s]);
        (s2, s3)
    }

    /// Compares names and shapes with `expected`; returns the unused keys when allowed.
    pub fn check(&self, expected: &BTreeMap<String, Vec<usize>>, policy: KeyPolicy) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (k, shape) in expected {
            match self.tensors.get(k) {
                None => problems.push(format!("missing {k} (expected shape {shape:?})")),
                Some(t) if t.dims() != shape.as_slice() => {
                    problems.push(format!("wrong shape for {k}: expected {shape:?}, found {:?}", t.dims()))
                }
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self.tensors.keys().filter(|k| !expected.contains_key(*k)).cloned().collect();
        if policy == KeyPolicy::Exact {
            for k in &unexpected {
                problems.push(format!("unexpected {k} (shape {:?})", self.tensors[k].dims()));
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            let shown: Vec<String> = problems.into_iter().take(25).collect();
            let more = if n > 25 { format!("\n  … and {} more", n - 25) } else { String::new() };
            bail!("weights do not match the model ({n} problem(s)):\n  {}{more}", shown.join("\n  "))
        }
        Ok(unexpected)
    }

    /// A `VarBuilder` over these tensors (f32, on `dev`), for inference.
    pub fn var_builder(&self, dev: &Device) -> VarBuilder<'static> {
        let map: HashMap<String, Tensor> = self.tensors.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        VarBuilder::from_tensors(map, DType::F32, dev)
    }

    /// A trainable copy: every tensor becomes an f32 `Var` on `dev` under its key.
    pub fn to_var_map(&self, dev: &Device) -> Result<VarMap> {
        let vm = VarMap::new();
        {
            let mut data = vm.data().lock().map_err(|_| Error::Msg("var map poisoned".into()))?;
            for (k, t) in &self.tensors {
                data.insert(k.clone(), Var::from_tensor(&t.to_device(dev)?.to_dtype(DType::F32)?)?);
            }
        }
        Ok(vm)
    }

    /// Builds the backbone for `cfg` and, when the weights hold one, the head (sizes from the
    /// weights), after checking every name and shape.
    pub fn build(&self, cfg: &MitConfig, policy: KeyPolicy, dev: &Device) -> Result<Loaded> {
        let head_cfg = self.head_config()?;
        let expected = expected_shapes(cfg, head_cfg.as_ref())?;
        let unexpected = self.check(&expected, policy)?;
        let vb = self.var_builder(dev);
        let backbone = Mit::new(cfg, vb.pp("backbone"))?;
        let head = head_cfg.map(|h| Head::new(&h, vb.pp("head"))).transpose()?;
        Ok(Loaded { backbone, head, unexpected })
    }

    /// Writes every tensor to a safetensors file under its key.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        candle::safetensors::save(&self.tensors.clone().into_iter().collect::<HashMap<_, _>>(), path)
            .map_err(|e| Error::Msg(format!("{}: {e}", path.display())))
    }
}

/// Reads a `.pth` (PyTorch zip) checkpoint: the `which` state_dict of a training checkpoint, or
/// a bare state_dict.
pub fn load_pth(path: impl AsRef<Path>, which: Which) -> Result<StateDict> {
    StateDict::from_pairs(pth::read(path.as_ref(), which)?)
}

/// Reads a safetensors file. If its keys are prefixed `teacher.` / `student.` (both state_dicts
/// in one file), `which` picks one.
pub fn load_safetensors(path: impl AsRef<Path>, which: Which) -> Result<StateDict> {
    let path = path.as_ref();
    let all = candle::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
    if all.is_empty() {
        bail!("{}: zero tensors", path.display())
    }
    let nested = all.keys().any(|k| k.starts_with("teacher.") || k.starts_with("student."));
    let pairs: Vec<(String, Tensor)> = if nested {
        let prefix = format!("{}.", which.key());
        let picked: Vec<_> = all.iter().filter_map(|(k, t)| k.strip_prefix(&prefix).map(|s| (s.to_string(), t.clone()))).collect();
        if picked.is_empty() {
            let mut tops: Vec<&str> = all.keys().filter_map(|k| k.split('.').next()).collect();
            tops.sort();
            tops.dedup();
            bail!("{}: no `{}` tensors; the file's key prefixes are {tops:?}", path.display(), which.key())
        }
        picked
    } else {
        all.into_iter().collect()
    };
    StateDict::from_pairs(pairs)
}

/// Reads either format, told apart by content (a zip file is a `.pth`).
pub fn load(path: impl AsRef<Path>, which: Which) -> Result<StateDict> {
    let path = path.as_ref();
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
        f.read_exact(&mut magic).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
    }
    if magic == *b"PK\x03\x04" { load_pth(path, which) } else { load_safetensors(path, which) }
}
