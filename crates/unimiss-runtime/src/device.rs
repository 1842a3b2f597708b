//! Where a run computes: its device (`cpu`, `cuda:N`) and its torchrun-style process group.

use candle::Device;

use crate::error::{Result, RuntimeError};

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
                Ok(v) => v.trim().parse().map(Some).map_err(|_| RuntimeError::Config(format!("{k}={v:?} is not a number"))),
                Err(_) => Ok(None),
            }
        };
        let Some(world_size) = var("WORLD_SIZE")? else { return Ok(None) };
        if world_size == 0 {
            return Err(RuntimeError::Config("WORLD_SIZE=0".into()));
        }
        let rank = var("RANK")?.ok_or_else(|| RuntimeError::Config("WORLD_SIZE is set but RANK is not".into()))?;
        let local_rank = var("LOCAL_RANK")?.unwrap_or(rank);
        if rank >= world_size {
            return Err(RuntimeError::Config(format!("RANK {rank} >= WORLD_SIZE {world_size}")));
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
            _ => Err(RuntimeError::Config(format!("device {s:?}: expected cpu or cuda:N"))),
        },
    }
}
