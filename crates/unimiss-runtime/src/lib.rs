//! unimiss-runtime: the training runtime shared by pretraining (`unimiss-ssl`) and fine-tuning
//! (`unimiss-tasks`). It knows nothing of either objective: they plug into it.
//!
//! - [`runloop`]: the one epoch/step loop (resume position, `max_steps`, divergence guard, log,
//!   progress, checkpoint cadence) over a [`runloop::Learner`].
//! - [`optim`]: AdamW with parameter groups and clipping policies (the official pretraining
//!   quirks and the fine-tuning defaults), the fused update passes, the EMA teacher update.
//! - [`checkpoint`]: atomic run-directory checkpoints (variable sets, optimiser moments, the
//!   caller's state); [`rundir`]: what a directory holds, claiming a new one.
//! - [`log`]: the JSON-lines run log with rollback on resume; [`tensorboard`]: the same records
//!   as TensorBoard scalars; [`progress`]: a bar with rate and ETA per modality.
//! - [`overrides`]: `--set key=value` on any serde configuration; [`schedule`]: cosine and
//!   polynomial schedule shapes; [`device`]: `cpu`/`cuda:N` and the process group;
//!   [`plot`]: the plot primitives of the run figures.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::PathBuf;
//!
//! use candle::{Device, Tensor, Var};
//! use unimiss_ops::{Modality, PerModality};
//! use unimiss_runtime::checkpoint::Position;
//! use unimiss_runtime::progress::Progress;
//! use unimiss_runtime::runloop::{self, Flow, Learner, LoopPlan, RunOutput, Stepped};
//! use unimiss_runtime::RuntimeError;
//!
//! /// Gradient descent on (w − 3)², 4 steps an epoch.
//! struct Fit { w: BTreeMap<String, Var>, left: usize }
//!
//! impl Learner for Fit {
//!     type Error = RuntimeError;
//!     type Record = f64;
//!     fn modality(&self, _: usize) -> Modality { Modality::Image2d }
//!     fn batches_in(&self, _: usize) -> usize { 4 }
//!     fn begin_epoch(&mut self, _: usize, from: usize, _: &mut RunOutput) -> Result<(), RuntimeError> {
//!         self.left = 4 - from;
//!         Ok(())
//!     }
//!     fn step(&mut self, _: Position) -> Option<Result<Stepped<f64>, RuntimeError>> {
//!         (self.left > 0).then(|| {
//!             self.left -= 1;
//!             let w = &self.w["w"];
//!             let loss = (w.as_tensor() - 3.0)?.sqr()?.sum_all()?;
//!             let g = loss.backward()?.get(w.as_tensor()).cloned().ok_or_else(|| RuntimeError::Config("no gradient".into()))?;
//!             w.set(&(w.as_tensor() - (g * 0.4)?)?)?;
//!             let l = f64::from(loss.to_scalar::<f32>()?);
//!             Ok(Stepped { loss: l, record: l })
//!         })
//!     }
//!     fn end_epoch(&mut self, _: usize, _: Position, _: f64, _: &mut RunOutput) -> Result<Flow, RuntimeError> {
//!         Ok(Flow::Continue)
//!     }
//!     fn parameters(&self) -> &BTreeMap<String, Var> { &self.w }
//!     fn checkpoint(&mut self, pos: Position) -> Result<PathBuf, RuntimeError> {
//!         Ok(PathBuf::from(format!("ckpt-{}", pos.step)))
//!     }
//! }
//!
//! let w = Var::from_tensor(&Tensor::new(&[0f32], &Device::Cpu)?)?;
//! let mut fit = Fit { w: BTreeMap::from([("w".to_string(), w)]), left: 0 };
//! let plan = LoopPlan { epochs: 2, max_steps: 0, every_steps: 0, every_epochs: 1, max_param_norm_ratio: 0.0, writer: true };
//! let mut out = RunOutput { log: None, progress: Progress::lines(PerModality::default(), |_| ()) };
//! let ended = runloop::run(&mut fit, &plan, Position { epoch: 0, batch: 0, step: 0 }, &mut out)?;
//! assert_eq!((ended.position.step, ended.last_checkpoint), (8, Some(PathBuf::from("ckpt-8"))));
//! let w = fit.w["w"].as_tensor().to_vec1::<f32>()?[0];
//! assert!((w - 3.0).abs() < 1e-2, "w = {w}");
//! # Ok::<(), RuntimeError>(())
//! ```

pub mod checkpoint;
pub mod device;
pub mod error;
pub mod log;
pub mod optim;
pub mod overrides;
pub mod plot;
pub mod progress;
pub mod rundir;
pub mod runloop;
pub mod schedule;
pub mod tensorboard;

pub use error::{Result, RuntimeError};
