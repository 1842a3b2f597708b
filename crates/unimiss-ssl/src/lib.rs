//! unimiss-ssl: UniMiSS self-distillation pretraining (reference §3), resumable and observable.
//!
//! - [`loss`]: the DINO cross-entropy with centring (momentum 0.9) and sharpening (teacher
//!   temperature schedule, student 0.1), cross-view pairs only; the 2D step (1 term) and the 3D
//!   step (vv, sv, ss, vs with four sequential centre updates); slice formation.
//! - [`schedule`]: `cosine_scheduler`, teacher temperatures, the official iteration index and
//!   its overflow (§8.2).
//! - [`optim`]: AdamW with the official parameter groups, per-parameter clipping, last-layer
//!   cancel, the PyTorch<2.0 zero-grad quirk; the EMA teacher paired by name.
//! - [`engine`]: student + teacher + optimiser + loss, one iteration on two views.
//! - [`trainer`]: alternating 2D/3D epochs, checkpoints ([`checkpoint`]), `log.jsonl`
//!   ([`log`]), `loss.png` ([`plot`]); [`config`]: the TOML configuration; [`export`]: the
//!   teacher backbone; `dist` (feature `nccl`): NCCL data parallelism.
//! - [`knn`]: DINO's weighted kNN classifier; [`monitor`]: the kNN monitor of the teacher on a
//!   labelled eval set during pretraining, and the uniform-collapse watch.
//!
//! ```
//! use candle::{Device, Tensor, Var};
//! use unimiss_ssl::loss::{DinoLoss, DinoLossConfig};
//! use unimiss_ssl::schedule::cosine_scheduler;
//!
//! // Official lr schedule shape: 2 warm-up epochs from 0, then a half cosine to the minimum.
//! let lr = cosine_scheduler(8e-4 * 8.0 / 256.0, 1e-6, 6, 5, 2, 0.0);
//! assert_eq!(lr.len(), 30);
//! assert_eq!(lr[0], 0.0);
//!
//! // One 2D loss call: rows [0, B) are view 0, [B, 2B) view 1; the centre moves afterwards.
//! let dev = Device::Cpu;
//! let mut loss = DinoLoss::new(DinoLossConfig { out_dim: 16, ..Default::default() }, 10, &dev)?;
//! let student = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 16), &dev)?)?;
//! let teacher = Tensor::randn(0f32, 1.0, (4, 16), &dev)?;
//! let l = loss.loss(student.as_tensor(), &teacher, 0, None)?;
//! assert!(l.to_scalar::<f32>()? > 0.0);
//! let grads = l.backward()?;
//! assert_eq!(grads.get(student.as_tensor()).map(|g| g.dims().to_vec()), Some(vec![4, 16]));
//! assert!(loss.center().abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
//! # Ok::<(), candle::Error>(())
//! ```

pub mod anticollapse;
pub mod collapse;
pub mod config;
#[cfg(feature = "nccl")]
pub mod dist;
pub mod engine;
pub mod error;
pub mod export;
pub mod knn;
pub mod log;
pub mod loss;
pub mod monitor;
pub mod plot;
pub mod process;
pub mod schedule;
pub mod step;
pub mod trainer;

/// The runtime this crate trains on (`unimiss-runtime`), re-exported: the trainer's API speaks
/// its types (positions, checkpoints, the optimiser).
pub use unimiss_runtime::{checkpoint, optim, progress, rundir, runloop, tensorboard};

pub use config::TrainConfig;
pub use error::{Result, SslError};
pub use trainer::{CkptState, Collective, RunSummary, Trainer};

/// The modality of an epoch: the workspace's one 2D/3D type (defined in `unimiss-ops`).
pub use unimiss_ops::{Modality, PerModality};
