//! Task networks on the model crate's MiT, and pretrained-weight loading.
//!
//! - [`Task::Cls3d`] / [`Task::Cls2d`]: [`ClsNet`], the MiT encoder path of one modality with the
//!   RICORD head (reference §5.1): `LayerNorm(512, eps 1e-6)` on the stage-4 tokens, one
//!   `Linear(512 → classes)` applied to the class token and to the mean patch token, averaged.
//!   For 2D this adapts the MiT+ head of §5.3 (raw class token, no norm) to MiT: see
//!   `docs/tasks.md`.
//! - [`Task::Seg3d`] / [`Task::Seg2d`]: [`SegNet`], the MiT encoder + decoder without class
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// One class per image or volume ([`ClsNet`]).
    Classification,
    /// A label per pixel or voxel ([`SegNet`]).
    Segmentation,
}

/// The four downstream tasks: a [`TaskKind`] on a [`Modality`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cls3d,
    Seg3d,
    Cls2d,
    Seg2d,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Cls3d, Task::Seg3d, Task::Cls2d, Task::Seg2d];

    /// The modality the task runs on.
    pub fn modality(self) -> Modality {
        match self {
            Task::Cls3d | Task::Seg3d => Modality::Volume3d,
            Task::Cls2d | Task::Seg2d => Modality::Image2d,
        }
    }

    /// Classification or segmentation.
    pub fn kind(self) -> TaskKind {
        match self {
            Task::Cls3d | Task::Cls2d => TaskKind::Classification,
            Task::Seg3d | Task::Seg2d => TaskKind::Segmentation,
        }
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
        match self.modality() {
            Modality::Image2d => Modality::Volume3d.tag(),
            Modality::Volume3d => Modality::Image2d.tag(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Task::Cls3d => "cls3d",
            Task::Seg3d => "seg3d",
            Task::Cls2d => "cls2d",
            Task::Seg2d => "seg2d",
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

impl std::str::FromStr for Task {
    type Err = crate::TaskError;
    fn from_str(s: &str) -> crate::Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| crate::TaskError::Invalid(format!("unknown task {s:?} (expected cls3d, seg3d, cls2d or seg2d)")))
    }
}
