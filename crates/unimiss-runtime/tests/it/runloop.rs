//! The runtime's one loop on a toy learner: the order of steps, epoch ends and checkpoints, the
//! stop at `max_steps` (an epoch whose last batch was the last step still ends), resume inside
//! an epoch, early stopping, and the divergence guard.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle::{Device, Tensor, Var};
use unimiss_ops::{Modality, PerModality};
use unimiss_runtime::RuntimeError;
use unimiss_runtime::checkpoint::Position;
use unimiss_runtime::progress::Progress;
use unimiss_runtime::runloop::{self, Flow, Learner, LoopPlan, RunOutput, Stepped};

/// Epochs alternate 2D (3 batches) and 3D (2 batches); every event is recorded.
struct Toy {
    events: Vec<String>,
    left: usize,
    params: BTreeMap<String, Var>,
    stop_after_epoch: Option<usize>,
    /// Multiply the parameter by this at every step.
    growth: f64,
}

impl Toy {
    fn new(growth: f64, stop_after_epoch: Option<usize>) -> candle::Result<Self> {
        let w = Var::from_tensor(&Tensor::new(&[1f32, 1.0], &Device::Cpu)?)?;
        Ok(Self { events: vec![], left: 0, params: BTreeMap::from([("w".to_string(), w)]), stop_after_epoch, growth })
    }
}

impl Learner for Toy {
    type Error = RuntimeError;
    type Record = serde_json::Value;

    fn modality(&self, epoch: usize) -> Modality {
        if epoch % 2 == 0 { Modality::Image2d } else { Modality::Volume3d }
    }

    fn batches_in(&self, epoch: usize) -> usize {
        if epoch % 2 == 0 { 3 } else { 2 }
    }

    fn begin_epoch(&mut self, epoch: usize, from: usize, _out: &mut RunOutput) -> Result<(), RuntimeError> {
        self.events.push(format!("begin {epoch}@{from}"));
        self.left = self.batches_in(epoch) - from;
        Ok(())
    }

    fn step(&mut self, pos: Position) -> Option<Result<Stepped<serde_json::Value>, RuntimeError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.events.push(format!("step {}", pos.step + 1));
        let w = &self.params["w"];
        let grown = (w.as_tensor() * self.growth).and_then(|t| w.set(&t));
        Some(grown.map_err(RuntimeError::from).map(|()| Stepped { loss: 1.0, record: serde_json::json!({"kind": "step", "step": pos.step + 1}) }))
    }

    fn end_epoch(&mut self, epoch: usize, pos: Position, _seconds: f64, _out: &mut RunOutput) -> Result<Flow, RuntimeError> {
        self.events.push(format!("end {epoch} at step {}", pos.step));
        Ok(if self.stop_after_epoch == Some(epoch) { Flow::Stop } else { Flow::Continue })
    }

    fn parameters(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    fn checkpoint(&mut self, pos: Position) -> Result<PathBuf, RuntimeError> {
        self.events.push(format!("ckpt {}.{}.{}", pos.epoch, pos.batch, pos.step));
        Ok(PathBuf::from(format!("ckpt-{}", pos.step)))
    }
}

fn plan(epochs: usize, max_steps: u64, every_steps: u64, every_epochs: usize) -> LoopPlan {
    LoopPlan { epochs, max_steps, every_steps, every_epochs, max_param_norm_ratio: 10.0, writer: true }
}

fn out() -> RunOutput<'static> {
    RunOutput { log: None, progress: Progress::lines(PerModality::default(), |_| ()) }
}

fn at(epoch: usize, batch: usize, step: u64) -> Position {
    Position { epoch, batch, step }
}

#[test]
fn steps_epoch_ends_and_checkpoints_come_in_order() -> Result<(), RuntimeError> {
    let mut toy = Toy::new(1.0, None)?;
    let p = plan(2, 0, 2, 1);
    assert_eq!(runloop::steps_left(&toy, &p, at(0, 1, 1)), PerModality { image2d: 2, volume3d: 2 });
    let ended = runloop::run(&mut toy, &p, at(0, 0, 0), &mut out())?;
    let want = [
        "begin 0@0", "step 1", "step 2", "ckpt 0.2.2", "step 3", "end 0 at step 3", "ckpt 1.0.3",
        "begin 1@0", "step 4", "ckpt 1.1.4", "step 5", "end 1 at step 5", "ckpt 2.0.5",
    ];
    assert_eq!(toy.events, want);
    assert_eq!((ended.position, ended.last_checkpoint, ended.stopped_early), (at(2, 0, 5), Some(PathBuf::from("ckpt-5")), false));
    Ok(())
}

#[test]
fn max_steps_stops_before_the_next_batch_but_ends_a_finished_epoch() -> Result<(), RuntimeError> {
    // 3 steps = the whole first epoch: it ends, the second never begins a step
    let mut toy = Toy::new(1.0, None)?;
    let ended = runloop::run(&mut toy, &plan(2, 3, 0, 0), at(0, 0, 0), &mut out())?;
    assert_eq!(toy.events, ["begin 0@0", "step 1", "step 2", "step 3", "end 0 at step 3", "begin 1@0", "ckpt 1.0.3"]);
    assert_eq!(ended.position, at(1, 0, 3));
    // 4 steps: stopped inside the 3D epoch, which does not end; the position is checkpointed
    let mut toy = Toy::new(1.0, None)?;
    let ended = runloop::run(&mut toy, &plan(2, 4, 0, 0), at(0, 0, 0), &mut out())?;
    assert_eq!(toy.events.last().map(String::as_str), Some("ckpt 1.1.4"));
    assert!(!toy.events.iter().any(|e| e.starts_with("end 1")), "{:?}", toy.events);
    assert_eq!(ended.position, at(1, 1, 4));
    Ok(())
}

#[test]
fn resume_inside_an_epoch_and_early_stop() -> Result<(), RuntimeError> {
    let mut toy = Toy::new(1.0, Some(0))?;
    let ended = runloop::run(&mut toy, &plan(4, 0, 0, 0), at(0, 2, 2), &mut out())?;
    assert_eq!(toy.events, ["begin 0@2", "step 3", "end 0 at step 3", "ckpt 1.0.3"]);
    assert!(ended.stopped_early);
    // a resumed run with nothing left writes nothing
    let mut done = Toy::new(1.0, None)?;
    let ended = runloop::run(&mut done, &plan(2, 0, 0, 0), at(2, 0, 5), &mut out())?;
    assert!(done.events.is_empty() && ended.last_checkpoint.is_none(), "{:?}", done.events);
    Ok(())
}

#[test]
fn the_guard_stops_a_diverging_run_before_its_checkpoint() -> Result<(), RuntimeError> {
    // ×4 per step: after step 2 the norm is 16× the start, past the ratio 10
    let mut toy = Toy::new(4.0, None)?;
    let err = runloop::run(&mut toy, &plan(2, 0, 1, 0), at(0, 0, 0), &mut out());
    assert!(matches!(err, Err(RuntimeError::Diverged { step: 2, epoch: 0, .. })), "{err:?}");
    assert_eq!(toy.events, ["begin 0@0", "step 1", "ckpt 0.1.1", "step 2"]);
    Ok(())
}
