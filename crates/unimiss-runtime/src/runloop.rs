//! The one training loop of the runtime: epochs and steps from a resume position, the stop at
//! `max_steps`, the divergence guard after every step, the JSON-lines log, progress with rate
//! and ETA, and the checkpoint cadence (every N steps, every N epochs, and at the end). It is
//! written once; pretraining (`unimiss_ssl::Trainer`) and fine-tuning (`unimiss-tasks`) each
//! supply a [`Learner`]: how an epoch's batches are drawn, one optimiser step, what happens at
//! the end of an epoch (validation, kNN monitor, best weights, early stopping) and what a
//! checkpoint holds.
//!
//! The loop's order per step: stop if `max_steps` is reached and the epoch has a batch left;
//! [`Learner::step`]; the guard
//! (parameters finite and their norm within `max_param_norm_ratio` × the starting norm); the
//! step's log line; a checkpoint when `pos.step` is a multiple of `every_steps`. Per epoch:
//! [`Learner::end_epoch`] (its log lines first), then a checkpoint when the epoch count is a
//! multiple of `every_epochs`. A run that stops (end, `max_steps`, early stop) checkpoints its
//! position unless that position was just saved or the run did not move.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle::Var;
use serde::Serialize;

use crate::checkpoint::Position;
use crate::error::RuntimeError;
use crate::log::JsonlLog;
use crate::progress::Progress;
use unimiss_ops::{Modality, PerModality};

/// When a run stops and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopPlan {
    pub epochs: usize,
    /// Stop after this many optimiser steps in total (0 = run every epoch).
    pub max_steps: u64,
    /// Checkpoint every this many steps (0 = never on steps).
    pub every_steps: u64,
    /// Checkpoint every this many epochs (0 = never on epochs).
    pub every_epochs: usize,
    /// Stop when the parameters' norm exceeds this × the norm at the start (0 = only non-finite
    /// parameters stop the run).
    pub max_param_norm_ratio: f64,
    /// This process writes the log and checkpoints (rank 0).
    pub writer: bool,
}

/// Whether the run goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Early stopping: the epoch's checkpoint is written, then the run ends.
    Stop,
}

/// What one step gives the loop.
pub struct Stepped<R> {
    /// The total loss (progress line).
    pub loss: f64,
    /// The step's log line.
    pub record: R,
}

/// What the loop writes to while a run goes on: the log (writer only) and the progress output.
pub struct RunOutput<'a> {
    pub log: Option<JsonlLog>,
    pub progress: Progress<'a>,
}

impl RunOutput<'_> {
    /// Append a record to the log (no-op on non-writers).
    pub fn write<T: Serialize>(&mut self, rec: &T) -> crate::Result<()> {
        match self.log.as_mut() {
            Some(l) => l.write(rec),
            None => Ok(()),
        }
    }

    /// A line for the user (above the bar, or through the run's line sink).
    pub fn line(&mut self, msg: &str) {
        self.progress.line(msg);
    }
}

/// One kind of training, driven by [`run`].
pub trait Learner {
    /// The learner's error; the loop's own errors (log, checkpoint, guard) convert into it.
    type Error: From<RuntimeError>;
    /// A step's log line (written as it is).
    type Record: Serialize;

    /// The modality epoch `epoch` trains (progress and ETA per modality).
    fn modality(&self, epoch: usize) -> Modality;
    /// Batches in epoch `epoch`.
    fn batches_in(&self, epoch: usize) -> usize;
    /// Start epoch `epoch` at batch `from` (`from > 0` when resumed inside it).
    fn begin_epoch(&mut self, epoch: usize, from: usize, out: &mut RunOutput) -> Result<(), Self::Error>;
    /// One optimiser step on the epoch's next batch at `pos` (the position before the step);
    /// `None` when the epoch has no batch left.
    fn step(&mut self, pos: Position) -> Option<Result<Stepped<Self::Record>, Self::Error>>;
    /// The epoch is done (`pos`: the position after its last step): its records and lines,
    /// validation, monitors; whether to go on.
    fn end_epoch(&mut self, epoch: usize, pos: Position, seconds: f64, out: &mut RunOutput) -> Result<Flow, Self::Error>;
    /// The parameters the divergence guard watches.
    fn parameters(&self) -> &BTreeMap<String, Var>;
    /// Write a checkpoint of `pos`; returns its directory.
    fn checkpoint(&mut self, pos: Position) -> Result<PathBuf, Self::Error>;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub position: Position,
    pub last_checkpoint: Option<PathBuf>,
    /// An epoch's [`Flow::Stop`] ended it.
    pub stopped_early: bool,
}

/// Steps left per modality from `pos` to the end of the run (or to `max_steps`).
pub fn steps_left<L: Learner + ?Sized>(l: &L, plan: &LoopPlan, pos: Position) -> PerModality<u64> {
    let mut cap = if plan.max_steps > 0 { plan.max_steps.saturating_sub(pos.step) } else { u64::MAX };
    let mut n = PerModality::splat(0u64);
    for e in pos.epoch..plan.epochs {
        let nb = l.batches_in(e).saturating_sub(if e == pos.epoch { pos.batch } else { 0 });
        let take = (nb as u64).min(cap);
        n[l.modality(e)] += take;
        cap -= take;
    }
    n
}

/// The divergence guard: the parameters' global norm after a step, against the start.
fn check_divergence(params: &BTreeMap<String, Var>, start: f64, ratio: f64, pos: Position) -> crate::Result<()> {
    let norm = crate::optim::param_norm(params)?;
    let why = if !norm.is_finite() {
        "not finite".to_string()
    } else if ratio > 0.0 && norm > ratio * start {
        format!("more than {ratio} × the {start:.4e} at the start")
    } else {
        return Ok(());
    };
    Err(RuntimeError::Diverged { step: pos.step, epoch: pos.epoch, norm, why })
}

/// Runs `l` from `pos` to the end of the plan (or `max_steps`, or an early stop).
pub fn run<L: Learner>(l: &mut L, plan: &LoopPlan, mut pos: Position, out: &mut RunOutput) -> Result<Ended, L::Error> {
    let start_norm = crate::optim::param_norm(l.parameters()).map_err(RuntimeError::from)?;
    let start = pos;
    let (mut last, mut saved_at, mut stopped_early) = (None, None, false);
    let reached = |p: &Position| plan.max_steps > 0 && p.step >= plan.max_steps;
    'epochs: while pos.epoch < plan.epochs {
        let epoch = pos.epoch;
        let modality = l.modality(epoch);
        let t0 = std::time::Instant::now();
        l.begin_epoch(epoch, pos.batch, out)?;
        loop {
            // at `max_steps` the run stops before the next batch; an epoch whose last batch was
            // the last step still ends (its record, its checkpoint), as the loader would
            // have had nothing more to give
            if reached(&pos) && pos.batch < l.batches_in(epoch) {
                break 'epochs;
            }
            let Some(done) = l.step(pos) else { break };
            let done = done?;
            pos = Position { epoch, batch: pos.batch + 1, step: pos.step + 1 };
            check_divergence(l.parameters(), start_norm, plan.max_param_norm_ratio, pos)?;
            out.progress.step(modality, &format!("epoch {} {modality} loss {:.4}", epoch + 1, done.loss));
            out.write(&done.record)?;
            if plan.writer && plan.every_steps > 0 && pos.step % plan.every_steps == 0 {
                last = Some(l.checkpoint(pos)?);
                saved_at = Some(pos);
            }
        }
        if reached(&pos) && pos.batch < l.batches_in(epoch) {
            break;
        }
        let flow = l.end_epoch(epoch, pos, t0.elapsed().as_secs_f64(), out)?;
        pos = Position { epoch: epoch + 1, batch: 0, step: pos.step };
        let due = plan.every_epochs > 0 && (epoch + 1) % plan.every_epochs == 0;
        if plan.writer && (due || flow == Flow::Stop) {
            last = Some(l.checkpoint(pos)?);
            saved_at = Some(pos);
        }
        if flow == Flow::Stop {
            stopped_early = true;
            break;
        }
    }
    out.progress.finish();
    if plan.writer && saved_at != Some(pos) && pos != start {
        last = Some(l.checkpoint(pos)?);
    }
    Ok(Ended { position: pos, last_checkpoint: last, stopped_early })
}
