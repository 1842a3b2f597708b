//! The pretraining configuration (TOML, serde). `Default` is the paper's recipe (reference §3.1);
//! [`TrainConfig::sample`] is the quick run on the shipped sample. Every field can be
//! overridden with [`TrainConfig::set`] (`--set optim.lr=5e-4`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::anticollapse::Centering;
use crate::error::{Result, SslError};
pub use unimiss_runtime::overrides::{apply_overrides, positive, real, set_field};
use unimiss_data::OnBadSample;
use unimiss_model::Arch;

/// Model sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny` or `small`.
    pub arch: Arch,
    pub img_size_2d: usize,
    /// `[D, H, W]`.
    pub img_size_3d: [usize; 3],
    /// Head output width K (official 65536).
    pub out_dim: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self { arch: Arch::Small, img_size_2d: 224, img_size_3d: [16, 96, 96], out_dim: 65536 }
    }
}

/// Optimisation and schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    pub epochs: usize,
    /// Per device (per rank).
    pub batch_size: usize,
    /// Blocks of `interval` 2D epochs then `interval` 3D epochs.
    pub interval: usize,
    /// Reference lr for a global batch of 256 (linear scaling rule).
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_epochs: usize,
    pub weight_decay: f64,
    pub weight_decay_end: f64,
    pub momentum_teacher: f64,
    /// Per-parameter gradient clip norm; 0 disables.
    pub clip_grad: f64,
    /// Epochs during which the last head layer gets no update.
    pub freeze_last_layer: usize,
    /// Also freeze it for the first N optimiser steps of the run (short runs; 0 = off).
    pub freeze_last_layer_steps: u64,
    /// Batch size of the 3D epochs (0 = `batch_size`); the lr is scaled by `batch_size`.
    pub batch_size_3d: usize,
    /// Where the teacher momentum's cosine ends (official 1.0; below 1 the teacher keeps
    /// following the student to the end of a short run).
    pub momentum_teacher_end: f64,
    /// The dtype of the backbones' forward and backward: `f32` (official without `--use_fp16`),
    /// or `bf16` (mixed precision; the official `--use_fp16` with bfloat16 instead of float16).
    pub precision: Precision,
}

/// The backbones' compute dtype. In `bf16` the student and teacher backbones run in bfloat16
/// from bf16 casts of the f32 master weights (gradients flow back through the casts), while
/// the norms and the attention softmax inside them, the heads (weight norm included), the loss,
/// centring, clipping, AdamW and its state stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("precision {other:?}: expected f32 or bf16")),
        }
    }
}

impl Precision {
    pub fn dtype(self) -> candle::DType {
        match self {
            Precision::F32 => candle::DType::F32,
            Precision::Bf16 => candle::DType::BF16,
        }
    }
}

impl OptimSection {
    /// The batch size of `m`'s epochs.
    pub fn batch_size_of(&self, m: crate::Modality) -> usize {
        match m {
            crate::Modality::Volume3d if self.batch_size_3d > 0 => self.batch_size_3d,
            _ => self.batch_size,
        }
    }
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 24,
            interval: 2,
            lr: 8e-4,
            min_lr: 1e-6,
            warmup_epochs: 10,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            momentum_teacher: 0.996,
            clip_grad: 0.3,
            freeze_last_layer: 1,
            freeze_last_layer_steps: 0,
            batch_size_3d: 0,
            momentum_teacher_end: 1.0,
            precision: Precision::F32,
        }
    }
}

/// DINO loss temperatures and centre momentum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSection {
    pub student_temp: f64,
    pub warmup_teacher_temp: f64,
    pub teacher_temp: f64,
    pub warmup_teacher_temp_epochs: usize,
    pub center_momentum: f64,
    /// `mean` (official momentum centre) or `sinkhorn_knopp` (DINOv2).
    pub centering: Centering,
    /// Sinkhorn-Knopp iterations (DINOv2: 3).
    pub sinkhorn_iterations: usize,
    /// Weight of the KoLeo term on the student features (0 = off; DINOv2: 0.1).
    pub koleo_weight: f64,
}

impl Default for LossSection {
    fn default() -> Self {
        let d = crate::loss::DinoLossConfig::default();
        let (student_temp, warmup_teacher_temp, teacher_temp) = (d.student_temp, d.warmup_teacher_temp, d.teacher_temp);
        let (warmup_teacher_temp_epochs, center_momentum, centering) = (d.warmup_teacher_temp_epochs, d.center_momentum, d.centering);
        let (sinkhorn_iterations, koleo_weight) = (d.sinkhorn_iterations, d.koleo_weight);
        Self { student_temp, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, center_momentum, centering, sinkhorn_iterations, koleo_weight }
    }
}

impl LossSection {
    /// The loss settings for a head of width `out_dim`.
    pub fn dino(&self, out_dim: usize) -> crate::loss::DinoLossConfig {
        let Self { student_temp, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, center_momentum, centering, sinkhorn_iterations, koleo_weight } = *self;
        crate::loss::DinoLossConfig { out_dim, student_temp, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, center_momentum, centering, sinkhorn_iterations, koleo_weight }
    }
}

/// Data loading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// TSV manifest (relative paths resolve against the working directory, then `UNIMISS_ROOT`).
    pub manifest: PathBuf,
    pub threads: usize,
    pub prefetch: usize,
    /// `fail` or `skip`.
    pub on_bad_sample: OnBadSample,
}

impl Default for DataSection {
    fn default() -> Self {
        Self { manifest: PathBuf::from("data-manifests/sample.tsv"), threads: 2, prefetch: 2, on_bad_sample: OnBadSample::Fail }
    }
}

/// Checkpointing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Write a checkpoint after every N epochs (official: every epoch); 0 = only at the end.
    pub every_epochs: usize,
    /// Also write one every N optimiser steps; 0 = off.
    pub every_steps: u64,
    /// Numbered checkpoints kept (older ones are deleted); at least 1.
    pub keep: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { every_epochs: 1, every_steps: 0, keep: 3 }
    }
}

/// Fixes of the official code's oddities (reference §8), all off by default. §8.4 (resume
/// shifts the 2D/3D phase) is always fixed: checkpoints store the phase and position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixesSection {
    /// §8.1: apply the stochastic depth `main.py` asks for (0.1) to the student.
    pub drop_path: bool,
    /// §8.2: per-iteration schedules (niter = batches per epoch of each modality) instead of
    /// the dataset-length index; removes the IndexError when the 2D set is larger.
    pub per_batch_schedule: bool,
    /// §8.3: `zero_grad(set_to_none=True)`: 3D-only parameters are not moved in 2D epochs.
    pub frozen_3d_untouched: bool,
}

/// The divergence guard: stop before a step's parameters are checkpointed when they are
/// non-finite or their global norm exceeds `max_param_norm_ratio` × the norm at the start of
/// the run (or of the resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSection {
    /// 0 disables the growth check (non-finite parameters always stop the run).
    pub max_param_norm_ratio: f64,
}

impl Default for GuardSection {
    fn default() -> Self {
        Self { max_param_norm_ratio: 100.0 }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run directory: checkpoints, `log.jsonl`, `loss.png`, `config.toml`.
    pub output: PathBuf,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Seed of the model initialisation and of the data order/augmentations.
    pub seed: u64,
    /// Student initial weights (safetensors or `.pth`; absent or `""` = random initialisation).
    #[serde(deserialize_with = "empty_is_none", skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Stop after this many optimiser steps in total (0 = run every epoch); for tests/benches.
    pub max_steps: u64,
    pub model: ModelSection,
    pub optim: OptimSection,
    pub loss: LossSection,
    pub data: DataSection,
    pub checkpoint: CheckpointSection,
    pub fixes: FixesSection,
    pub guard: GuardSection,
    pub eval: crate::monitor::EvalSection,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            output: PathBuf::from("runs/paper"),
            device: "cpu".into(),
            seed: 0,
            init: None,
            max_steps: 0,
            model: ModelSection::default(),
            optim: OptimSection::default(),
            loss: LossSection::default(),
            data: DataSection::default(),
            checkpoint: CheckpointSection::default(),
            fixes: FixesSection::default(),
            guard: GuardSection::default(),
            eval: crate::monitor::EvalSection::default(),
        }
    }
}

impl TrainConfig {
    /// Parse a TOML document; missing fields take the paper defaults.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| SslError::Config(e.to_string()))
    }

    /// Read a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        Self::from_toml(&text).map_err(|e| SslError::Config(format!("{}: {e}", path.display())))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| SslError::Config(e.to_string()))
    }

    /// Override one field by its dotted path, e.g. `optim.lr`, `model.img_size_3d`,
    /// `fixes.per_batch_schedule` (see [`set_field`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        Ok(set_field(self, key, value)?)
    }

    /// Check every value before anything runs: counts at least 1, every real number finite and
    /// in its range, names from their lists.
    pub fn validate(&self) -> Result<()> {
        let o = &self.optim;
        let l = &self.loss;
        positive("optim.epochs", o.epochs)?;
        positive("optim.batch_size", o.batch_size)?;
        positive("optim.interval", o.interval)?;
        positive("checkpoint.keep", self.checkpoint.keep)?;
        positive("model.img_size_2d", self.model.img_size_2d)?;
        positive("model.out_dim", self.model.out_dim)?;
        if self.model.img_size_3d.contains(&0) {
            return Err(SslError::Config(format!("model.img_size_3d {:?} must be positive", self.model.img_size_3d)));
        }
        real("optim.lr", o.lr, 0.0, f64::MAX, false)?;
        real("optim.min_lr", o.min_lr, 0.0, f64::MAX, true)?;
        real("optim.weight_decay", o.weight_decay, 0.0, f64::MAX, true)?;
        real("optim.weight_decay_end", o.weight_decay_end, 0.0, f64::MAX, true)?;
        real("optim.momentum_teacher", o.momentum_teacher, 0.0, 1.0, true)?;
        real("optim.clip_grad", o.clip_grad, 0.0, f64::MAX, true)?;
        real("loss.student_temp", l.student_temp, 0.0, f64::MAX, false)?;
        real("loss.teacher_temp", l.teacher_temp, 0.0, f64::MAX, false)?;
        real("loss.warmup_teacher_temp", l.warmup_teacher_temp, 0.0, f64::MAX, false)?;
        real("loss.center_momentum", l.center_momentum, 0.0, 1.0, true)?;
        real("loss.koleo_weight", l.koleo_weight, 0.0, f64::MAX, true)?;
        real("optim.momentum_teacher_end", o.momentum_teacher_end, o.momentum_teacher, 1.0, true)?;
        if l.koleo_weight > 0.0 && (o.batch_size < 2 || o.batch_size_of(crate::Modality::Volume3d) < 2) {
            return Err(SslError::Config(format!(
                "loss.koleo_weight = {} needs at least 2 samples per batch (each sample's nearest neighbour); optim.batch_size is {} and the 3D batch {}",
                l.koleo_weight,
                o.batch_size,
                o.batch_size_of(crate::Modality::Volume3d)
            )));
        }
        if l.centering == Centering::SinkhornKnopp {
            positive("loss.sinkhorn_iterations", l.sinkhorn_iterations)?;
        }
        if self.guard.max_param_norm_ratio != 0.0 {
            real("guard.max_param_norm_ratio (0 = off)", self.guard.max_param_norm_ratio, 1.0, f64::MAX, true)?;
        }
        Ok(())
    }
}

/// A path field where `""` (written by builds before it was optional) means none.
fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<PathBuf>, D::Error> {
    let p: Option<PathBuf> = Option::deserialize(d)?;
    Ok(p.filter(|p| !p.as_os_str().is_empty()))
}

mod presets;
#[cfg(test)]
mod tests;
