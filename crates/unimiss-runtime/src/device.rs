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

/// Parse `cpu` or `cuda:N` (also `cuda` = `cuda:0`) and open the device. A CUDA device that
/// cannot be opened is a [`RuntimeError::Config`] that says why: a binary built without CUDA, or
/// no usable device behind the driver (with the driver's own error).
pub fn parse_device(s: &str) -> Result<Device> {
    let n = match s {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(RuntimeError::Config(format!("device {s:?}: expected cpu or cuda:N"))),
        },
    };
    Device::new_cuda(n).map_err(|e| RuntimeError::Config(cuda_unavailable(s, &e)))
}

fn cuda_unavailable(s: &str, e: &candle::Error) -> String {
    // The driver's error alone: candle attaches a backtrace when RUST_BACKTRACE is set.
    let e = match e {
        candle::Error::WithBacktrace { inner, .. } => inner.as_ref(),
        e => e,
    };
    if matches!(e, candle::Error::NotCompiledWithCudaSupport) {
        return format!(
            "device {s}: this binary was built without CUDA; build it with `cargo xtask gpu-build` \
             (or run `cargo xtask --cuda …`), see docs/gpu.md"
        );
    }
    format!(
        "device {s}: no usable CUDA device (the CUDA driver says: {e}); check `nvidia-smi`, and that \
         libcuda.so.1 found at run time is the driver's, not the build's link stub"
    )
}
