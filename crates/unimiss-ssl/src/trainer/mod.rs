//! The pretraining loop: alternating blocks of `interval` 2D and 3D epochs (reference §3.6),
//! the per-iteration order of §3.5, checkpoints, the JSON-lines log and progress output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle::{Tensor, Var};
use unimiss_data::{LoaderConfig, Manifest, OnBadSample, PairLoader};
use unimiss_model::{HeadConfig, MitConfig};

use crate::checkpoint::{self, Position, Snapshot};
use crate::config::TrainConfig;
use crate::error::{Result, SslError, io_err};
use crate::log::{EpochRecord, JsonlLog, Record, StepRecord};
use crate::monitor::{CollapseWatch, EvalSet};
use crate::engine::{Engine, StepSettings};
use crate::loss::DinoLoss;
use crate::runloop::{self, LoopPlan, RunOutput};
use crate::schedule::{Indexing, ScheduleParams, Schedules, scaled_lr};
use crate::{Modality, PerModality};

mod learner;
mod setup;
mod state;
mod stats;

pub use crate::process::{Collective, DistEnv, parse_device};
pub use setup::mit_config;
pub use state::CkptState;
pub use crate::optim::param_norm;
use stats::EpochStats;

/// The modality of `epoch`: blocks of `interval` 2D epochs then `interval` 3D epochs from 0.
pub fn modality_of(epoch: usize, interval: usize) -> Modality {
    if (epoch / interval.max(1)) % 2 == 0 { Modality::Image2d } else { Modality::Volume3d }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub position: Position,
    pub last_checkpoint: Option<PathBuf>,
    pub seconds: f64,
}

/// Student, teacher, optimiser, loss, schedules and data of one run.
pub struct Trainer {
    cfg: TrainConfig,
    run_dir: PathBuf,
    engine: Engine,
    schedules: Schedules,
    loaders: PerModality<PairLoader>,
    pos: Position,
    /// Started from a checkpoint (the log is rolled back to it).
    resumed: bool,
    /// The first two samples of each modality (the augmentation preview), from the manifest
    /// read once by the pre-flight.
    preview: Vec<unimiss_data::Sample>,
    /// The epoch being run: its batches, running means and collapse watch.
    epoch_iter: Option<unimiss_data::EpochIter>,
    stats: EpochStats,
    watch: CollapseWatch,
    collective: Option<Box<dyn Collective>>,
    /// The kNN monitor's eval set (`[eval]` configured).
    eval_set: Option<EvalSet>,
    /// Show an indicatif bar (else one line per epoch only).
    pub progress: bool,
}

impl Trainer {

    /// Where the run continues from.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// The student's variables by official key.
    pub fn student_vars(&self) -> &BTreeMap<String, Var> {
        &self.engine.student_vars
    }

    /// The teacher's variables by official key.
    pub fn teacher_vars(&self) -> &BTreeMap<String, Var> {
        &self.engine.teacher_vars
    }

    /// The DINO loss (its centre).
    pub fn loss(&self) -> &DinoLoss {
        &self.engine.loss
    }

    fn is_writer(&self) -> bool {
        self.collective.as_ref().is_none_or(|c| c.rank() == 0)
    }

    /// Steps left in the run from the current position.
    pub fn steps_left(&self) -> u64 {
        self.steps_left_per_modality().values().sum()
    }

    /// Steps left per modality, in run order up to `max_steps`.
    pub fn steps_left_per_modality(&self) -> PerModality<u64> {
        runloop::steps_left(self, &self.plan(), self.pos)
    }

    /// The configuration as TensorBoard text and the augmentation preview as an image, at the
    /// current step (a resumed run adds them again at its step).
    fn describe_run(&self, events: &mut crate::tensorboard::EventWriter) -> Result<()> {
        let step = self.pos.step;
        events.text("config", step, &format!("```toml\n{}\n```", self.cfg.to_toml()?))?;
        let preview = || -> Result<(Vec<u8>, u32, u32)> {
            let (c, s2, s3) = (&self.cfg, self.cfg.model.img_size_2d, self.cfg.model.img_size_3d);
            Ok(unimiss_data::preview::preview_png(&self.preview, s2, s3, c.seed)?)
        };
        // The preview only shows data; a sample it cannot read is the pre-flight's business.
        match preview() {
            Ok((png, w, h)) => events.image_png("augmentation preview (2 samples per modality, both views)", step, &png, w, h)?,
            Err(e) => eprintln!("warning: no augmentation preview for TensorBoard: {e}"),
        }
        Ok(events.flush()?)
    }

    /// Where the run writes (the resumed run's own directory when resuming).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Write a checkpoint of the current position.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let state = CkptState {
            format: 0,
            position: self.pos,
            phase: modality_of(self.pos.epoch, self.cfg.optim.interval),
            seed: self.cfg.seed,
            params: BTreeMap::new(),
            config: self.cfg.clone(),
        };
        let snap = Snapshot {
            sets: vec![("student", &self.engine.student_vars), ("teacher", &self.engine.teacher_vars)],
            optim: &self.engine.optim,
            extra: vec![("center", self.engine.loss.center())],
            step: self.pos.step,
            state: serde_json::to_value(&state)?,
        };
        Ok(checkpoint::save(&self.run_dir, &snap, self.cfg.checkpoint.keep)?)
    }

    /// Run to the end (or to `max_steps`), checkpointing as configured and at the end, on the
    /// runtime's one loop ([`crate::runloop`]).
    pub fn run(&mut self) -> Result<RunSummary> {
        let t0 = Instant::now();
        let writer = self.is_writer();
        let mut out = RunOutput { log: None, progress: crate::progress::Progress::new(self.steps_left_per_modality(), self.progress && writer) };
        if writer {
            std::fs::create_dir_all(&self.run_dir).map_err(io_err(&self.run_dir))?;
            checkpoint::clean_temporaries(&self.run_dir)?;
            let cfg_path = self.run_dir.join("config.toml");
            std::fs::write(&cfg_path, self.cfg.to_toml()?).map_err(io_err(&cfg_path))?;
            let mut log = if self.resumed {
                JsonlLog::open_resumed(&self.run_dir, self.pos.step, self.pos.epoch)?
            } else {
                JsonlLog::open(&self.run_dir)?
            };
            self.describe_run(log.events())?;
            out.log = Some(log);
            if self.pos.step == 0 {
                // the starting point of the kNN curve: the initial teacher, logged at step 0
                self.knn_monitor(0, &mut out)?;
            }
        }
        let plan = self.plan();
        let ended = runloop::run(self, &plan, self.pos, &mut out)?;
        self.pos = ended.position;
        if writer {
            self.draw_curves(&mut out);
        }
        Ok(RunSummary { position: self.pos, last_checkpoint: ended.last_checkpoint, seconds: t0.elapsed().as_secs_f64() })
    }

    /// The run's epochs, stop and checkpoint cadence for the loop.
    fn plan(&self) -> LoopPlan {
        LoopPlan {
            epochs: self.cfg.optim.epochs,
            max_steps: self.cfg.max_steps,
            every_steps: self.cfg.checkpoint.every_steps,
            every_epochs: self.cfg.checkpoint.every_epochs,
            max_param_norm_ratio: self.cfg.guard.max_param_norm_ratio,
            writer: self.is_writer(),
        }
    }

    /// Redraw `loss.png` from the log (a failure is a warning: the run goes on).
    fn draw_curves(&self, out: &mut RunOutput) {
        if let Err(e) = crate::plot::plot_log(&self.run_dir.join("log.jsonl"), &self.run_dir.join("loss.png")) {
            out.line(&format!("warning: could not draw loss.png: {e}"));
        }
    }

    /// The kNN monitor on the teacher backbone, if configured: printed and logged (`kind: "knn"`).
    fn knn_monitor(&self, epoch: usize, out: &mut RunOutput) -> Result<()> {
        let Some(set) = &self.eval_set else { return Ok(()) };
        for r in set.records(&self.engine.teacher.backbone, &self.cfg.eval.params(), epoch, self.pos.step)? {
            out.line(&format!(
                "step {} kNN {}: accuracy {:.3} (k {}, n {}, majority {:.3}), feature mean cosine {:.3}",
                r.step, r.modality, r.accuracy, r.k, r.n, r.majority, r.mean_cosine
            ));
            out.write(&Record::Knn(r))?;
        }
        Ok(())
    }

    /// One iteration (§3.5) on a batch; advances the position.
    pub fn train_step(&mut self, modality: Modality, views: &[Tensor; 2], batch: usize) -> Result<StepRecord> {
        let t0 = Instant::now();
        let epoch = self.pos.epoch;
        let sched = self.schedules.at(modality, epoch, self.pos.batch)?;
        let settings = StepSettings {
            lr: sched.lr,
            wd: sched.wd,
            momentum: sched.momentum,
            clip: self.cfg.optim.clip_grad,
            cancel_last_layer: epoch < self.cfg.optim.freeze_last_layer || self.pos.step < self.cfg.optim.freeze_last_layer_steps,
            set_to_none: self.cfg.fixes.frozen_3d_untouched,
        };
        let out = self.engine.step(modality, views, epoch, &settings, self.collective.as_deref(), self.pos.step + 1)?;
        let batch_index = self.pos.batch;
        self.pos.batch += 1;
        self.pos.step += 1;
        let secs = t0.elapsed().as_secs_f64();
        let world = self.collective.as_ref().map_or(1, |c| c.world_size());
        Ok(StepRecord {
            step: self.pos.step,
            epoch,
            batch: batch_index,
            modality,
            loss: out.total,
            terms: out.terms,
            lr: sched.lr,
            wd: sched.wd,
            momentum: sched.momentum,
            teacher_temp: self.engine.loss.teacher_temp(epoch),
            samples_per_s: (batch * world) as f64 / secs.max(1e-9),
            teacher_entropy: out.teacher_entropy,
            teacher_mean_entropy: out.teacher_mean_entropy,
            teacher_info: out.teacher_mean_entropy - out.teacher_entropy,
            feature_cosine: out.feature_cosine,
            rss_mb: crate::log::rss_mb(),
        })
    }
}
