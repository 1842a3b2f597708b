//! Fine-tuning as a [`Learner`] of the runtime's one loop: the epoch's shuffled order, one
//! AdamW step (fine-tuning policy: every parameter decayed, global-norm clipping), and the
//! epoch's end (validation, best weights, the epoch record, `curves.png`, early stopping).

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use unimiss_data::augment::spatial::Augmenter;
use unimiss_model::Modality;
use unimiss_runtime::checkpoint::{self, Position, Snapshot};
use unimiss_runtime::log::rss_mb;
use super::log::{TaskEpochRecord, TaskRecord, TaskStepRecord};
use unimiss_runtime::optim::{AdamW, Clip, StepOptions};
use unimiss_runtime::runloop::{Flow, Learner, RunOutput, Stepped};

use super::{FinetuneJob, val_metric};
use crate::weights::{TaskMeta, save_weights};
use crate::error::{Result, TaskError};
use crate::classify::input_of;
use crate::job::{State, lr_at};
use unimiss_data::labelled::{LabelledManifest, LabelledSample};
use crate::losses::cross_entropy;
use crate::nets::TaskNet;
use crate::seg_train::{seg_batch, seg_loss};

/// A fine-tuning run in progress.
pub(super) struct FinetuneRun<'a> {
    pub job: &'a FinetuneJob,
    pub dev: &'a Device,
    pub augmenter: Augmenter,
    pub meta: TaskMeta,
    pub vm: VarMap,
    pub net: TaskNet,
    pub all_vars: BTreeMap<String, Var>,
    pub trainable: BTreeMap<String, Var>,
    pub opt: AdamW,
    pub st: State,
    pub train: LabelledManifest,
    pub val: LabelledManifest,
    /// Class index per training sample (classification).
    pub labels: Vec<usize>,
    pub bs: usize,
    pub iters: usize,
    /// This epoch's sample order and next batch.
    pub order: Vec<usize>,
    pub next: usize,
    pub loss_sum: f64,
    pub t0: std::time::Instant,
    pub first_epoch: usize,
}

impl FinetuneRun<'_> {
    /// The training loss of batch `it` of `epoch`.
    fn batch_loss(&self, epoch: usize, it: usize) -> Result<Tensor> {
        let (job, cfg, dev) = (self.job, &self.job.config, self.dev);
        let (n, bs, k) = (self.train.samples.len(), self.bs, self.meta.classes.len());
        let idxs: Vec<usize> = (0..bs).map(|b| self.order[(it * bs + b) % n]).collect();
        match &self.net {
            TaskNet::Seg(sn) => {
                let samples: Vec<&LabelledSample> = idxs.iter().map(|&i| &self.train.samples[i]).collect();
                let (x, y) = seg_batch(job.task, &samples, &idxs, k, cfg, Some((&self.augmenter, epoch)), dev)?;
                seg_loss(sn, job.task, &x, &y, cfg)
            }
            TaskNet::Cls(cn) => {
                let mut xs = Vec::with_capacity(bs);
                let mut ys = Vec::with_capacity(bs);
                for &idx in &idxs {
                    let (mut x, shape) = input_of(job.task, &self.train.samples[idx].sample.path, cfg)?;
                    let dims: [usize; 3] = match job.task.modality() {
                        Modality::Volume3d => [shape[1], shape[2], shape[3]],
                        Modality::Image2d => [1, shape[1], shape[2]],
                    };
                    self.augmenter.apply_image(&mut x, shape[0], dims, epoch, idx);
                    xs.push(Tensor::from_vec(x, shape, dev)?);
                    ys.push(self.labels[idx] as u32);
                }
                let x = Tensor::stack(&xs, 0)?;
                let y = Tensor::from_vec(ys, bs, dev)?;
                Ok(cross_entropy(&cn.forward(&x)?, &y)?)
            }
        }
    }

    fn train_step(&mut self, pos: Position) -> Result<Stepped<TaskRecord>> {
        let ts = std::time::Instant::now();
        let (epoch, cfg) = (pos.epoch, &self.job.config);
        let loss = self.batch_loss(epoch, self.next)?;
        let step = pos.step + 1;
        let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !lv.is_finite() {
            return Err(TaskError::Invalid(format!("loss is {lv} at epoch {} step {step}; the last checkpoint is kept", epoch + 1)));
        }
        let lr = lr_at(cfg, self.st.lr_anchor, epoch, pos.step, self.iters * cfg.epochs);
        let store = loss.backward()?;
        let grads: BTreeMap<String, Tensor> =
            self.trainable.iter().filter_map(|(k, v)| store.get(v.as_tensor()).map(|g| (k.clone(), g.clone()))).collect();
        drop(store);
        let opts = StepOptions { lr, wd: cfg.weight_decay, clip: Clip::GlobalNorm(cfg.clip_global_norm), cancel_last_layer: false, frozen: None, set_to_none: true };
        let rep = self
            .opt
            .step(&grads, &opts)
            .map_err(|e| TaskError::Invalid(format!("step {step} (epoch {}): {e}; the last checkpoint is kept", epoch + 1)))?;
        self.next += 1;
        self.loss_sum += lv;
        let record = TaskRecord::Step(TaskStepRecord {
            step,
            epoch,
            loss: lv,
            lr,
            grad_norm: rep.grad_norm.unwrap_or(f64::NAN),
            samples_per_s: self.bs as f64 / ts.elapsed().as_secs_f64().max(1e-9),
            rss_mb: rss_mb(),
        });
        Ok(Stepped { loss: lv, record })
    }
}

impl Learner for FinetuneRun<'_> {
    type Error = TaskError;
    type Record = TaskRecord;

    fn modality(&self, _epoch: usize) -> Modality {
        self.job.task.modality()
    }

    fn batches_in(&self, _epoch: usize) -> usize {
        self.iters
    }

    fn begin_epoch(&mut self, epoch: usize, _from: usize, _out: &mut RunOutput) -> Result<()> {
        // fine-tuning checkpoints only at epoch ends: an epoch always starts at its first batch
        self.order = (0..self.train.samples.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.job.config.seed ^ ((epoch as u64 + 1) << 20));
        self.order.shuffle(&mut rng);
        self.next = 0;
        self.loss_sum = 0.0;
        Ok(())
    }

    fn step(&mut self, pos: Position) -> Option<Result<Stepped<TaskRecord>>> {
        (self.next < self.iters).then(|| self.train_step(pos))
    }

    fn end_epoch(&mut self, epoch: usize, pos: Position, seconds: f64, out: &mut RunOutput) -> Result<Flow> {
        let (job, cfg) = (self.job, &self.job.config);
        let train_loss = self.loss_sum / self.iters as f64;
        let (metric_name, metric) = val_metric(&self.net, job, &self.val, self.meta.classes.len(), self.dev)?;
        let st = &mut self.st;
        if st.best_metric.is_none_or(|b| metric > b) {
            st.best_metric = Some(metric);
            st.best_epoch = epoch;
            st.since_best = 0;
            let best = job.output.join("best.safetensors");
            save_weights(&best, &self.vm, &self.meta).map_err(|e| {
                TaskError::file(
                    &best,
                    format!("best weights of epoch {} (step {}) not written ({e}); the previous best and the last checkpoint are kept", epoch + 1, pos.step),
                )
            })?;
        } else {
            st.since_best += 1;
        }
        st.history.push((train_loss, metric));
        let best = st.best_metric.unwrap_or(f64::NAN);
        out.write(&TaskRecord::Epoch(TaskEpochRecord { epoch, step: pos.step, train_loss, metric: metric_name.into(), val_metric: metric, best, seconds }))?;
        // Drawn after every epoch, so an interrupted run has its curves too.
        if let Err(e) = super::curves::plot_task_log(&job.output.join("log.jsonl"), &job.output.join("curves.png")) {
            out.line(&format!("warning: curves.png not drawn: {e}"));
        }
        let rate = self.t0.elapsed().as_secs_f64() / (epoch + 1 - self.first_epoch) as f64;
        out.line(&format!(
            "epoch {}/{}: train loss {train_loss:.4}, val {metric_name} {metric:.4} (best {best:.4} @ epoch {}), {:.1} s/epoch, RSS {:.0} MB, ETA {:.0} s",
            epoch + 1,
            cfg.epochs,
            st.best_epoch + 1,
            rate,
            rss_mb(),
            rate * (cfg.epochs - epoch - 1) as f64
        ));
        if cfg.patience > 0 && st.since_best >= cfg.patience {
            out.line(&format!("early stop: no improvement for {} epochs", cfg.patience));
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn parameters(&self) -> &BTreeMap<String, Var> {
        &self.trainable
    }

    fn checkpoint(&mut self, pos: Position) -> Result<PathBuf> {
        self.st.step = pos.step;
        self.st.next_epoch = pos.epoch;
        let snap = Snapshot { sets: vec![("model", &self.all_vars)], optim: &self.opt, extra: vec![], step: pos.step, state: serde_json::to_value(&self.st)? };
        Ok(checkpoint::save(&self.job.output, &snap, self.job.config.keep_checkpoints)?)
    }
}
