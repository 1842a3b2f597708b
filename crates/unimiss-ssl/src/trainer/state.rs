//! The pretraining checkpoint's `state.json` (the runtime's checkpoint stores it as given).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use unimiss_runtime::checkpoint::{ParamMeta, Position};

use crate::Modality;
use crate::config::TrainConfig;

/// The pretraining `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CkptState {
    pub format: u32,
    pub position: Position,
    /// Modality of `position.epoch` (stored so resume never shifts the 2D/3D phase, §8.4).
    pub phase: Modality,
    /// The run's seed; data order and augmentations are functions of (seed, epoch, sample), so
    /// this is the whole random state of a run without stochastic depth.
    pub seed: u64,
    pub params: BTreeMap<String, ParamMeta>,
    pub config: TrainConfig,
}

