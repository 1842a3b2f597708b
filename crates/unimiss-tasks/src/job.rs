//! What a fine-tuning run is and where it stands: the job ([`FinetuneJob`], also written to
//! `RUN/job.json` when a run starts, so a run stopped before its first checkpoint can be started
//! again with `--resume`), the checkpoint state ([`State`]) and the learning-rate anchor that
//! lets a resumed run of another length continue its decayed schedule ([`LrAnchor`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unimiss_runtime::checkpoint;

use crate::config::{FinetuneConfig, Schedule};
use crate::error::{Result, TaskError};
use crate::nets::Task;

/// The file a run writes its job to when it starts.
pub const JOB_FILE: &str = "job.json";

/// What to fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneJob {
    pub task: Task,
    pub train: PathBuf,
    pub val: PathBuf,
    pub pretrained: Option<PathBuf>,
    pub config: FinetuneConfig,
    /// The run directory.
    pub output: PathBuf,
    /// Continue from the newest checkpoint in `output`.
    pub resume: bool,
}

impl FinetuneJob {
    /// The job stored in a fine-tuning checkpoint (`path`: its run directory or one checkpoint
    /// directory), set to resume; the run directory is where the checkpoint now is.
    pub fn from_checkpoint(path: &Path) -> Result<Self> {
        if checkpoint::resolve(path).is_err() && path.join("best.safetensors").is_file() {
            return Err(TaskError::file(
                path,
                "a finished run that kept only best.safetensors (finished_keep = best): no checkpoint to resume or extend",
            ));
        }
        let run = checkpoint::run_dir_of(path)?;
        let dir = checkpoint::resolve(path)?;
        let p = dir.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| TaskError::file(&p, e))?;
        let st: State = serde_json::from_str(&text).map_err(|e| TaskError::file(&p, format!("not a fine-tuning checkpoint: {e}")))?;
        Ok(Self { output: run, resume: true, ..st.job })
    }

    /// The job of a run directory without a checkpoint (`RUN/job.json`), set to start again
    /// from step 0 in that directory; `None` when `run` holds a checkpoint.
    pub fn unfinished(run: &Path) -> Result<Option<Self>> {
        use unimiss_runtime::rundir::{Holds, holds};
        match holds(run)? {
            Holds::Run => Ok(None),
            Holds::Other(names) => Err(TaskError::file(run, format!("holds no run ({}): nothing to resume", names.join(", ")))),
            Holds::Nothing => Err(TaskError::file(run, "no such run directory (or it is empty)")),
            Holds::Unfinished(files) => {
                let p = run.join(JOB_FILE);
                let text = std::fs::read_to_string(&p).map_err(|_| {
                    TaskError::file(
                        run,
                        format!("no checkpoint and no {JOB_FILE} here ({}): start the run again with the command that started it", files.join(", ")),
                    )
                })?;
                let job: Self = serde_json::from_str(&text).map_err(|e| TaskError::file(&p, e))?;
                Ok(Some(Self { output: run.to_path_buf(), resume: false, ..job }))
            }
        }
    }

    /// Writes `RUN/job.json` (the job as started).
    pub fn write(&self) -> Result<()> {
        let p = self.output.join(JOB_FILE);
        std::fs::write(&p, serde_json::to_vec_pretty(self)?).map_err(|e| TaskError::file(&p, e))
    }
}

/// Where the learning-rate schedule decays from: the start of the run (`None` in [`State`]) or
/// the point at which a resumed run changed its number of epochs. From there the poly schedule
/// decays to 0 at the (new) last epoch or step, starting at the rate of the last step done.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrAnchor {
    /// Epoch (from 0) and step index (steps done before it) of the last step before the change.
    pub epoch: usize,
    pub step: u64,
    /// Learning rate at that point.
    pub lr: f64,
}

/// Learning rate of the step after `step` steps done, in `epoch`, of a run of `steps` steps.
pub fn lr_at(cfg: &FinetuneConfig, anchor: Option<LrAnchor>, epoch: usize, step: u64, steps: usize) -> f64 {
    let Some(a) = anchor else { return cfg.lr_at(epoch, step as usize, steps) };
    let poly = unimiss_runtime::schedule::poly;
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::PolyEpoch => poly(a.lr, epoch.saturating_sub(a.epoch), cfg.epochs.saturating_sub(a.epoch), 0.9),
        Schedule::PolyIter => poly(a.lr, step.saturating_sub(a.step) as usize, steps.saturating_sub(a.step as usize), 0.9),
    }
}

/// `state.json` of a fine-tuning checkpoint (with the runtime's `format` and `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub job: FinetuneJob,
    pub next_epoch: usize,
    pub step: u64,
    /// `None` until a validation produced a number.
    pub best_metric: Option<f64>,
    pub best_epoch: usize,
    pub since_best: usize,
    pub history: Vec<(f64, f64)>,
    /// Set when a resumed run changed its length ([`LrAnchor`]); absent in older checkpoints.
    #[serde(default)]
    pub lr_anchor: Option<LrAnchor>,
}

impl State {
    /// A fresh run of `job`.
    pub fn new(job: &FinetuneJob) -> Self {
        Self { job: job.clone(), next_epoch: 0, step: 0, best_metric: None, best_epoch: 0, since_best: 0, history: vec![], lr_anchor: None }
    }

    /// Resuming with `job`, whose number of epochs may differ from the stored one: the schedule
    /// is anchored at the last step done, so it continues from that step's rate and decays to 0
    /// at the new end instead of jumping to where a run of the new length would be. Returns the
    /// line that says so, when the length changed and the schedule decays.
    pub fn resume_with(&mut self, job: &FinetuneJob, iters_per_epoch: usize) -> Option<String> {
        let (old, new) = (&self.job.config, &job.config);
        let changed = old.epochs != new.epochs && new.schedule != Schedule::Constant && self.next_epoch > 0;
        let note = changed.then(|| {
            let last_epoch = self.next_epoch - 1;
            let last_step = self.step.saturating_sub(1);
            let lr = lr_at(old, self.lr_anchor, last_epoch, last_step, iters_per_epoch * old.epochs);
            self.lr_anchor = Some(LrAnchor { epoch: last_epoch, step: last_step, lr });
            format!(
                "{} → {} epochs: the {} schedule continues from lr {lr:.3e} (the rate of step {}) and decays to 0 at epoch {} (step {}); \
                 it does not restart",
                old.epochs,
                new.epochs,
                match new.schedule {
                    Schedule::PolyEpoch => "poly_epoch",
                    _ => "poly_iter",
                },
                self.step,
                new.epochs,
                iters_per_epoch * new.epochs
            )
        });
        self.job = job.clone();
        note
    }
}

/// Size of a file or folder in bytes.
fn disk_bytes(p: &Path) -> u64 {
    match std::fs::read_dir(p) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| disk_bytes(&e.path())).sum(),
        Err(_) => std::fs::metadata(p).map_or(0, |m| m.len()),
    }
}

/// A finished run keeps what `cfg.finished_keep` says (the last checkpoint, or none) and
/// returns the line that says what is kept and its size.
pub fn keep_when_finished(run: &Path, cfg: &FinetuneConfig) -> Result<String> {
    use crate::config::FinishedKeep;
    let ckpts = run.join("checkpoints");
    match cfg.finished_keep {
        FinishedKeep::Checkpoint => checkpoint::prune(run, 1)?,
        FinishedKeep::Best if ckpts.exists() => std::fs::remove_dir_all(&ckpts).map_err(|e| TaskError::file(&ckpts, e))?,
        FinishedKeep::Best => {}
    }
    let mb = |b: u64| b as f64 / 1e6;
    let best = disk_bytes(&run.join("best.safetensors"));
    let kept = match cfg.finished_keep {
        FinishedKeep::Checkpoint => format!(
            ", the last checkpoint {:.0} MB (weights and AdamW moments, to extend the run with --resume --epochs; `--set finished_keep=best` keeps only the best weights)",
            mb(disk_bytes(&ckpts))
        ),
        FinishedKeep::Best => " (finished_keep = best: no checkpoint, the run cannot be extended)".into(),
    };
    Ok(format!("kept {:.0} MB in {}: best.safetensors {:.0} MB{kept}", mb(disk_bytes(run)), run.display(), mb(best)))
}
