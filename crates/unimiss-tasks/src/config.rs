//! Fine-tuning configuration: the official per-task hyper-parameters as presets (reference §5),
//! a `ci` preset sized for the phantoms on a CPU, TOML files that override any field.

use serde::{Deserialize, Serialize};

use unimiss_model::Arch;
use unimiss_model::checkpoint::Which;
use unimiss_runtime::schedule::poly;

use crate::error::{Result, TaskError};
use crate::losses::DiceTerm;
use crate::nets::Task;

/// How the learning rate evolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Fixed learning rate (RICORD: the poly schedule is commented out upstream).
    Constant,
    /// `lr·(1 − epoch/epochs)^0.9`, set at the start of each epoch (nnU-Net / BCV).
    PolyEpoch,
    /// `lr·(1 − step/steps)^0.9`, every iteration (CXR, JSRT).
    PolyIter,
}

/// What a finished run keeps of its checkpoints (`best.safetensors` and the log stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishedKeep {
    /// The last checkpoint (weights and AdamW moments): the run can be extended with
    /// `--resume DIR --epochs N`.
    Checkpoint,
    /// No checkpoint: only the weights of `best.safetensors`; the run cannot be extended.
    Best,
}

/// Everything that shapes a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// `tiny` or `small` (official: small).
    pub arch: Arch,
    /// Square 2D input side.
    pub input_2d: usize,
    /// 3D input `[D, H, W]`.
    pub input_3d: [usize; 3],
    pub batch_size: usize,
    pub epochs: usize,
    /// Iterations per epoch; 0 = one pass over the training list.
    pub iters_per_epoch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub adam_eps: f64,
    pub schedule: Schedule,
    /// Global gradient-norm clipping (BCV: 12); 0 disables.
    pub clip_global_norm: f64,
    /// Stop after this many validations without improvement; 0 disables.
    pub patience: usize,
    pub seed: u64,
    /// JSRT Dice term (`soft` trains, `official_thresholded` has no gradient).
    pub dice_term: DiceTerm,
    /// Sliding-window step as a fraction of the patch (3D segmentation inference).
    pub sw_step: f64,
    /// Mirror test-time augmentation in 3D sliding-window inference.
    pub sw_mirror: bool,
    /// 2D classification test: ten-crop × flips as the official CXR test.
    pub tta_2d: bool,
    /// Which pretrained state_dict to read (`student`, as official, or `teacher`).
    pub which: Which,
    /// Newest checkpoints kept while the run goes (at least 1; each is written atomically).
    pub keep_checkpoints: usize,
    /// What the run keeps once it has finished ([`FinishedKeep`]).
    pub finished_keep: FinishedKeep,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self::official(Task::CLS2D)
    }
}

impl FinetuneConfig {
    /// The official hyper-parameters of `task` (reference §5.1–§5.4).
    pub fn official(task: Task) -> Self {
        let base = Self {
            arch: Arch::Small,
            input_2d: 224,
            input_3d: [64, 128, 128],
            batch_size: 8,
            epochs: 200,
            iters_per_epoch: 0,
            lr: 1e-5,
            weight_decay: 5e-3,
            adam_eps: 1e-8,
            schedule: Schedule::Constant,
            clip_global_norm: 0.0,
            patience: 30,
            seed: 1234,
            dice_term: DiceTerm::Soft,
            sw_step: 0.5,
            sw_mirror: true,
            tta_2d: true,
            which: Which::Student,
            keep_checkpoints: 2,
            finished_keep: FinishedKeep::Checkpoint,
        };
        match task {
            Task::CLS3D => base,
            Task::SEG3D => Self {
                input_3d: [48, 192, 192],
                batch_size: 2,
                epochs: 100,
                iters_per_epoch: 250,
                lr: 1e-4,
                weight_decay: 3e-5,
                schedule: Schedule::PolyEpoch,
                clip_global_norm: 12.0,
                patience: 0,
                ..base
            },
            Task::CLS2D => Self { batch_size: 32, epochs: 30, lr: 1e-4, weight_decay: 3e-5, schedule: Schedule::PolyIter, patience: 0, ..base },
            Task::SEG2D => Self {
                batch_size: 32,
                epochs: 200,
                lr: 1e-4,
                weight_decay: 3e-5,
                adam_eps: 1e-4,
                schedule: Schedule::PolyIter,
                patience: 0,
                ..base
            },
        }
    }

    /// Small sizes for the phantoms on a CPU (tiny MiT, 64² images, 32×64×64 volumes, a few
    /// epochs); optimiser settings as official except a larger learning rate for the short run.
    pub fn ci(task: Task) -> Self {
        Self {
            arch: Arch::Tiny,
            input_2d: 64,
            input_3d: [32, 64, 64],
            batch_size: 4,
            epochs: 4,
            iters_per_epoch: 0,
            lr: 2e-4,
            patience: 0,
            tta_2d: false,
            sw_mirror: false,
            ..Self::official(task)
        }
    }

    /// A preset name (`official`, `ci`) or a TOML file whose fields override the official preset.
    pub fn resolve(task: Task, spec: Option<&str>) -> Result<Self> {
        match spec {
            None | Some("official") => Ok(Self::official(task)),
            Some("ci") => Ok(Self::ci(task)),
            Some(path) => {
                if !std::path::Path::new(path).is_file() {
                    let hint = match path {
                        "sample" | "paper" => format!("`{path}` is a pretraining preset (`pretrain --preset {path}`)"),
                        _ => "--config takes a TOML file".into(),
                    };
                    return Err(TaskError::Invalid(format!(
                        "--config {path}: no such preset or file; the fine-tuning presets are `official` and `ci`; {hint}"
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| TaskError::file(path, e))?;
                Self::from_toml(task, &text).map_err(|e| TaskError::file(path, e))
            }
        }
    }

    /// Parses TOML on top of the preset named by its optional `preset = "…"` line
    /// (default `official`).
    pub fn from_toml(task: Task, text: &str) -> std::result::Result<Self, String> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let preset = match table.remove("preset") {
            None => "official".to_string(),
            Some(toml::Value::String(s)) => s,
            Some(v) => return Err(format!("preset must be a string, got {v}")),
        };
        let base = match preset.as_str() {
            "official" => Self::official(task),
            "ci" => Self::ci(task),
            other => return Err(format!("unknown preset {other:?} (official or ci)")),
        };
        let toml::Value::Table(mut merged) = toml::Value::try_from(&base).map_err(|e| e.to_string())? else {
            return Err("preset did not serialise to a table".into());
        };
        for (k, v) in table {
            if !merged.contains_key(&k) {
                return Err(format!("unknown field {k:?}"));
            }
            merged.insert(k, v);
        }
        let cfg: Self = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// The names `--set` takes (the fields, sorted).
    pub fn keys() -> Vec<String> {
        match toml::Value::try_from(Self::default()) {
            Ok(toml::Value::Table(t)) => t.keys().cloned().collect(),
            _ => vec![],
        }
    }

    /// Apply `KEY=VALUE` pairs (the `--set` flags); an unknown key is an error that lists the
    /// valid ones.
    pub fn apply_overrides(&mut self, pairs: &[String]) -> Result<()> {
        for kv in pairs {
            let (k, v) = kv.split_once('=').ok_or_else(|| TaskError::Invalid(format!("--set {kv:?}: expected KEY=VALUE")))?;
            let keys = Self::keys();
            if !keys.iter().any(|key| key == k.trim()) {
                let dotted = if k.contains('.') { " (dotted keys such as optim.lr are pretraining keys, for `pretrain --set`)" } else { "" };
                return Err(TaskError::Invalid(format!("--set {kv}: unknown key {:?}; fine-tuning keys are {}{dotted}", k.trim(), keys.join(", "))));
            }
            unimiss_runtime::overrides::set_field(self, k.trim(), v.trim())?;
        }
        Ok(())
    }

    /// Override one field by name (`--set lr=1e-4`), then validate.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        unimiss_runtime::overrides::set_field(self, key, value)?;
        self.validate()
    }

    /// Check every value before anything runs: counts at least 1, real numbers finite and in
    /// range, names from their lists.
    pub fn validate(&self) -> Result<()> {
        use unimiss_runtime::overrides::{positive, real};
        positive("batch_size", self.batch_size)?;
        positive("epochs", self.epochs)?;
        positive("input_2d", self.input_2d)?;
        positive("keep_checkpoints", self.keep_checkpoints)?;
        if self.input_3d.contains(&0) {
            return Err(TaskError::Invalid(format!("input_3d {:?} must be positive", self.input_3d)));
        }
        real("lr", self.lr, 0.0, f64::MAX, false)?;
        real("weight_decay", self.weight_decay, 0.0, f64::MAX, true)?;
        real("adam_eps", self.adam_eps, 0.0, f64::MAX, false)?;
        real("clip_global_norm", self.clip_global_norm, 0.0, f64::MAX, true)?;
        real("sw_step", self.sw_step, 0.0, 1.0, false)?;
        Ok(())
    }

    /// Learning rate at `epoch` / global `step` of `steps`.
    pub fn lr_at(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::PolyEpoch => poly(self.lr, epoch, self.epochs, 0.9),
            Schedule::PolyIter => poly(self.lr, step, steps, 0.9),
        }
    }
}
