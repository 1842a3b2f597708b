//! The process a run lives in: its device and its torchrun-style process group with the
//! data-parallel collectives.

use std::collections::BTreeMap;

use candle::{Tensor, Var};

pub use unimiss_runtime::device::{DistEnv, parse_device};
use crate::loss::CenterReduce;

/// Data-parallel collectives (implemented with NCCL in `dist`, behind the `nccl` feature).
pub trait Collective: CenterReduce {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Average every gradient over the ranks, in place.
    fn average_grads(&self, grads: &mut BTreeMap<String, Tensor>) -> candle::Result<()>;
    /// Copy rank 0's values of `vars` to every rank.
    fn broadcast(&self, vars: &BTreeMap<String, Var>) -> candle::Result<()>;
}
