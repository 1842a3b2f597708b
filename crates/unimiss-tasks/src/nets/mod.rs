//! Task networks on the model crate's MiT, and pretrained-weight loading.
//!
//! - [`Task::CLS3D`] / [`Task::CLS2D`]: [`ClsNet`], the MiT encoder path of one modality with the
//!   RICORD head (reference §5.1): `LayerNorm(512, eps 1e-6)` on the stage-4 tokens, one
//!   `Linear(512 → classes)` applied to the class token and to the mean patch token, averaged.
//!   For 2D this adapts the MiT+ head of §5.3 (raw class token, no norm) to MiT: see
//!   `docs/tasks.md`.
//! - [`Task::SEG3D`] / [`Task::SEG2D`]: [`SegNet`], the MiT encoder + decoder without class
//!   tokens with the BCV segmentation head (reference §5.2), mirrored in 2D (see `docs/tasks.md`).

pub mod cls;
pub mod pretrained;
pub mod seg;

use std::path::Path;

use unimiss_data::augment::spatial::Augmenter;
use unimiss_data::labelled::{LabelledManifest, Targets};
use unimiss_model::Modality;

pub use cls::ClsNet;
pub use seg::SegNet;
pub use pretrained::{LoadReport, load_pretrained, pretrained_file};

/// A task network of either kind.
// One per run, never in a collection: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TaskNet {
    Cls(ClsNet),
    Seg(SegNet),
}

/// What a task predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// One class per image or volume ([`ClsNet`]).
    Classification,
    /// A label per pixel or voxel ([`SegNet`]).
    Segmentation,
}

/// A downstream task: a [`TaskKind`] on a [`Modality`]. Written `cls3d`, `seg3d`, `cls2d`,
/// `seg2d` (command line, `job.json`, task weight files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Task {
    pub kind: TaskKind,
    pub modality: Modality,
}

impl Task {
    pub const CLS3D: Task = Task { kind: TaskKind::Classification, modality: Modality::Volume3d };
    pub const SEG3D: Task = Task { kind: TaskKind::Segmentation, modality: Modality::Volume3d };
    pub const CLS2D: Task = Task { kind: TaskKind::Classification, modality: Modality::Image2d };
    pub const SEG2D: Task = Task { kind: TaskKind::Segmentation, modality: Modality::Image2d };
    pub const ALL: [Task; 4] = [Task::CLS3D, Task::SEG3D, Task::CLS2D, Task::SEG2D];

    /// The modality the task runs on.
    pub fn modality(self) -> Modality {
        self.modality
    }

    /// Classification or segmentation.
    pub fn kind(self) -> TaskKind {
        self.kind
    }

    pub fn is_segmentation(self) -> bool {
        self.kind() == TaskKind::Segmentation
    }

    /// What the task's labelled manifests must provide: class indices, one label map (3D
    /// segmentation) or one mask per label (2D segmentation).
    pub fn targets(self) -> Targets {
        match (self.kind(), self.modality()) {
            (TaskKind::Classification, _) => Targets::ClassIndex,
            (TaskKind::Segmentation, Modality::Volume3d) => Targets::LabelMap,
            (TaskKind::Segmentation, Modality::Image2d) => Targets::Masks,
        }
    }

    /// Reads a labelled manifest (training, validation or test alike) and checks it fits the
    /// task: modality, label or mask columns. Errors name the manifest and the sample.
    pub fn read_manifest(self, path: &Path) -> crate::Result<LabelledManifest> {
        Ok(LabelledManifest::read_checked(path, self.modality(), self.targets())?)
    }

    /// The training augmentation of the task preset: flips for classification; rotation,
    /// scaling and flips for segmentation ([`Augmenter::segmentation`]).
    pub fn augmenter(self, seed: u64) -> Augmenter {
        match self.kind() {
            TaskKind::Classification => Augmenter::classification(seed),
            TaskKind::Segmentation => Augmenter::segmentation(self.modality(), seed),
        }
    }

    /// Whether the forward pass of the task network uses the parameter `key` (the model crate's
    /// `Mit` also holds the other modality's modules, and the decoder, which a classification
    /// network never runs). Only these are trained.
    pub fn uses(self, key: &str) -> bool {
        let other = self.other_tag();
        match key.strip_prefix("backbone.") {
            Some(rest) => (rest.starts_with("transformer.") || (self.is_segmentation() && is_decoder_key(rest))) && !rest.contains(other),
            None => true,
        }
    }

    /// The key infix of the modality the task does not run (`3D` for 2D tasks, `2D` for 3D).
    pub fn other_tag(self) -> &'static str {
        self.modality.other().tag()
    }

    /// `cls3d`, `seg3d`, `cls2d` or `seg2d`.
    pub fn name(self) -> &'static str {
        match (self.kind, self.modality) {
            (TaskKind::Classification, Modality::Volume3d) => "cls3d",
            (TaskKind::Segmentation, Modality::Volume3d) => "seg3d",
            (TaskKind::Classification, Modality::Image2d) => "cls2d",
            (TaskKind::Segmentation, Modality::Image2d) => "seg2d",
        }
    }
}

/// Whether `key` (below `backbone.`) is a decoder parameter: `DecEmbed*`, `DecPosEmbed*`,
/// `Decblock*`, the final `norm`, or a decoder `cls_tokens*` projection.
pub fn is_decoder_key(key: &str) -> bool {
    key.starts_with("Dec") || key.starts_with("norm.") || key.starts_with("cls_tokens")
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Task> for String {
    fn from(t: Task) -> String {
        t.name().to_string()
    }
}

impl TryFrom<String> for Task {
    type Error = crate::TaskError;
    fn try_from(s: String) -> crate::Result<Self> {
        s.parse()
    }
}

impl std::str::FromStr for Task {
    type Err = crate::TaskError;
    fn from_str(s: &str) -> crate::Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| crate::TaskError::Invalid(format!("unknown task {s:?} (expected cls3d, seg3d, cls2d or seg2d)")))
    }
}
