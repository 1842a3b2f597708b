//! The process a run lives in: its device and its torchrun-style process group with the
//! data-parallel collectives.

use std::collections::BTreeMap;

use candle::{Device, Tensor, Var};

use crate::error::{Result, SslError};
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

/// The torchrun-style process group of this process (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
}

impl DistEnv {
    /// `None` when `WORLD_SIZE` is unset (a single process without NCCL); `WORLD_SIZE=1`
    /// runs one NCCL rank.
    pub fn from_env() -> Result<Option<Self>> {
        let var = |k: &str| -> Result<Option<usize>> {
            match std::env::var(k) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| SslError::Config(format!("{k}={v:?} is not a number"))),
                Err(_) => Ok(None),
            }
        };
        let Some(world_size) = var("WORLD_SIZE")? else { return Ok(None) };
        if world_size == 0 {
            return Err(SslError::Config("WORLD_SIZE=0".into()));
        }
        let rank = var("RANK")?.ok_or_else(|| SslError::Config("WORLD_SIZE is set but RANK is not".into()))?;
        let local_rank = var("LOCAL_RANK")?.unwrap_or(rank);
        if rank >= world_size {
            return Err(SslError::Config(format!("RANK {rank} >= WORLD_SIZE {world_size}")));
        }
        Ok(Some(Self { rank, world_size, local_rank }))
    }
}

/// Parse `cpu` or `cuda:N` (also `cuda` = `cuda:0`).
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::new_cuda(0)?),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::new_cuda(n)?),
            _ => Err(SslError::Config(format!("device {s:?}: expected cpu or cuda:N"))),
        },
    }
}
