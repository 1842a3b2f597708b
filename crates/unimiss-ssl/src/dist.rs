//! NCCL data-parallel training (feature `nccl`): one process per GPU, launched like torchrun
//! with `RANK`, `WORLD_SIZE` and `LOCAL_RANK` in the environment.
//!
//! - Rank 0 creates the NCCL unique id and writes it to a file every rank can read (by default
//!   `RUN_DIR/.nccl-id`); the others wait for it. One communicator per process, on the stream of
//!   the process's candle CUDA device. No `Send`/`Sync` is claimed for it.
//! - Before training, rank 0's student weights are broadcast (the teacher is then copied from
//!   the student on every rank), so all ranks start equal.
//! - After every backward pass, the gradients are flattened into one buffer, summed with one
//!   `ncclAllReduce` and divided by the world size (DDP averaging); the teacher-output column
//!   sum of every centre update is all-reduced too (reference §3.2, §3.8).
//! - The data are sharded by sample index (`i % world == rank`); only rank 0 writes logs and
//!   checkpoints.
//!
//! This module is written against cudarc 0.19's `nccl::safe` API as candle 0.11.1 re-exports
//! it; it has not been compiled or run in the environment where it was written (no CUDA
//! toolkit there).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use candle::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
use candle::cuda_backend::cudarc::nccl::result::{NcclError, NcclStatus};
use candle::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle::op::BackpropOp;
use candle::{CudaStorage, DType, Device, Storage, Tensor, Var};

use crate::error::{Result, SslError};
use crate::loss::CenterReduce;
use crate::trainer::{Collective, DistEnv};

fn nccl_err(what: &str) -> impl FnOnce(NcclError) -> candle::Error + '_ {
    move |e| candle::Error::Msg(format!("NCCL {what}: {e:?}"))
}

/// One rank's communicator.
pub struct Nccl {
    comm: Comm,
    rank: usize,
    world: usize,
}

impl Nccl {
    /// Join the process group described by `env`, exchanging the NCCL id through `id_file`.
    pub fn new(env: &DistEnv, device: &Device, id_file: &Path) -> Result<Self> {
        let Device::Cuda(cuda) = device else {
            return Err(SslError::Config("NCCL data parallelism needs --device cuda:N".into()));
        };
        let id = if env.rank == 0 {
            let id = Id::new().map_err(nccl_err("get unique id"))?;
            let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
            let tmp = id_file.with_extension("tmp");
            if let Some(dir) = id_file.parent() {
                std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
            }
            std::fs::write(&tmp, &bytes).map_err(crate::error::io_err(&tmp))?;
            std::fs::rename(&tmp, id_file).map_err(crate::error::io_err(id_file))?;
            id
        } else {
            let t0 = Instant::now();
            // An id file older than this process (by more than a launch skew of 120 s) is a
            // stale one of an earlier run that died before rank 0 removed it: wait for the new one.
            let fresh = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age <= t0.elapsed() + Duration::from_secs(120)))
            };
            let bytes = loop {
                match std::fs::read(id_file) {
                    Ok(b) if b.len() == 128 && fresh(id_file) => break b,
                    _ if t0.elapsed() > Duration::from_secs(600) => {
                        return Err(SslError::Config(format!(
                            "rank {}: no NCCL id at {} after 600 s (is rank 0 running with the same --output?)",
                            env.rank,
                            id_file.display()
                        )));
                    }
                    _ => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            let mut internal = [0 as std::ffi::c_char; 128];
            for (d, s) in internal.iter_mut().zip(&bytes) {
                *d = *s as std::ffi::c_char;
            }
            Id::uninit(internal)
        };
        let comm = Comm::from_rank(cuda.cuda_stream(), env.rank, env.world_size, id).map_err(nccl_err("init rank"))?;
        if env.rank == 0 {
            // Every rank has joined (the init is collective): the id is spent; a later launch
            // must never read it.
            std::fs::remove_file(id_file).map_err(crate::error::io_err(id_file))?;
        }
        Ok(Self { comm, rank: env.rank, world: env.world_size })
    }

    /// Run one NCCL collective from `t` (made f32 and contiguous) into a fresh buffer of the
    /// same shape.
    fn collective(
        &self,
        t: &Tensor,
        what: &str,
        op: impl FnOnce(&Comm, &CudaView<'_, f32>, &mut CudaSlice<f32>) -> std::result::Result<NcclStatus, NcclError>,
    ) -> candle::Result<Tensor> {
        let t = t.to_dtype(DType::F32)?.contiguous()?;
        let shape = t.shape().clone();
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cuda(cs) = &*storage else { candle::bail!("NCCL {what} needs a CUDA tensor") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle::bail!("NCCL {what}: non-contiguous") };
        let src = cs.as_cuda_slice::<f32>()?.slice(start..end);
        let mut dst = cs.device.alloc_zeros::<f32>(end - start)?;
        op(&self.comm, &src, &mut dst).map_err(nccl_err(what))?;
        let out = CudaStorage::wrap_cuda_slice(dst, cs.device.clone());
        drop(storage);
        Ok(Tensor::from_storage(Storage::Cuda(out), shape, BackpropOp::none(), false))
    }

    /// Sum of `t` over every rank (f32, any shape).
    pub fn all_reduce_sum(&self, t: &Tensor) -> candle::Result<Tensor> {
        self.collective(t, "all_reduce", |c, src, dst| c.all_reduce(src, dst, &ReduceOp::Sum))
    }

    /// Rank 0's value of `t` on every rank.
    fn broadcast_tensor(&self, t: &Tensor) -> candle::Result<Tensor> {
        self.collective(t, "broadcast", |c, src, dst| c.broadcast(Some(src), dst, 0))
    }
}

impl CenterReduce for Nccl {
    fn all_reduce_center(&self, batch_sum: &Tensor, rows: usize) -> candle::Result<(Tensor, usize)> {
        Ok((self.all_reduce_sum(batch_sum)?, rows * self.world))
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn average_grads(&self, grads: &mut BTreeMap<String, Tensor>) -> candle::Result<()> {
        if grads.is_empty() {
            return Ok(());
        }
        // Every rank has the same set of gradients (same modality, same model), in name order.
        let flat: Vec<Tensor> = grads.values().map(|g| g.flatten_all()).collect::<candle::Result<_>>()?;
        let all = (self.all_reduce_sum(&Tensor::cat(&flat, 0)?)? / self.world as f64)?;
        let mut offset = 0;
        for g in grads.values_mut() {
            let n = g.elem_count();
            *g = all.narrow(0, offset, n)?.reshape(g.shape())?;
            offset += n;
        }
        Ok(())
    }

    fn broadcast(&self, vars: &BTreeMap<String, Var>) -> candle::Result<()> {
        for v in vars.values() {
            v.set(&self.broadcast_tensor(v.as_tensor())?)?;
        }
        Ok(())
    }
}
