//! Fine-tuning, as a loop over the one training runtime of `unimiss-runtime` (its optimiser with the
//! fine-tuning policy — every parameter decayed, global-norm clipping —, its atomic run-directory
//! checkpoints, its typed JSON-lines log): the task preset's lr schedule, validation every epoch,
//! best weights on the validation metric (AUC, or accuracy when AUC is undefined; mean Dice for
//! segmentation), early stopping, and exact resume from the newest checkpoint.
//!
//! The run directory:
//! - `config.toml`: the configuration used; `job.json`: the job as started (a run stopped before
//!   its first checkpoint starts again from it, [`FinetuneJob::unfinished`]);
//! - `checkpoints/ckpt-N/`: weights (`model.<key>`), optimiser moments and `state.json` (the job,
//!   the configuration, epoch, best metric, history), written atomically after every epoch; the
//!   newest `keep_checkpoints` are kept, and a finished run keeps what `finished_keep` says;
//! - `best.safetensors`: weights of the best validation epoch (task weight file, see [`crate::weights`]);
//! - `log.jsonl`: [`TaskStepRecord`] per step, [`TaskEpochRecord`] per epoch;
//! - `curves.png`: training loss and validation metric per epoch, redrawn after every epoch;
//! - `pretrained.txt`: what the pretrained loading did (loaded, zoomed, new, unused keys).

use std::collections::BTreeMap;
use std::path::Path;

use candle::{DType, Device, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use unimiss_model::{MitConfig, SeededVarMap};
use unimiss_runtime::checkpoint::{self, Position};
use unimiss_runtime::log::JsonlLog;
use unimiss_runtime::optim::{AdamW, Decay};
use unimiss_runtime::progress::Progress;
use unimiss_runtime::runloop::{self, LoopPlan, RunOutput};

use crate::weights::{TaskMeta, assign, load_weights};
use crate::config::FinetuneConfig;
use crate::error::{Result, TaskError};
use crate::classify::predict_probs;
use crate::job::State;
use unimiss_data::labelled::LabelledManifest;
use crate::metrics::classification_metrics;
use crate::nets::{ClsNet, SegNet, TaskKind, TaskNet, load_pretrained};
use crate::seg_infer::{mean_dice, seg_cases};
use crate::seg_train::seg_channels;

pub mod curves;
mod learner;
pub mod log;
use learner::FinetuneRun;

pub use crate::job::FinetuneJob;

/// Outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneOutcome {
    pub best_metric: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub stopped_early: bool,
}

/// Check every image, volume and mask of a labelled manifest before the first step (in
/// parallel); a problem stops the run with the list (manifest, line, file, reason). Each line is
/// parsed alone, which yields its sample exactly as the whole-file parse does.
fn preflight(origin: &Path) -> Result<()> {
    let report = unimiss_data::preflight::check_labelled(origin)?;
    if report.is_clean() { Ok(()) } else { Err(TaskError::file(origin, report)) }
}

/// The MiT configuration of a fine-tuning config.
pub fn mit_config(cfg: &FinetuneConfig) -> Result<MitConfig> {
    Ok(MitConfig::for_run(cfg.arch, cfg.input_2d, cfg.input_3d)?)
}

/// Builds the network of `meta` on a fresh variable map, initialised deterministically from the
/// config seed ([`SeededVarMap`]).
pub fn build_net(meta: &TaskMeta, dev: &Device) -> Result<(VarMap, TaskNet)> {
    let vm = VarMap::new();
    let vb = SeededVarMap::var_builder(&vm, meta.config.seed, DType::F32, dev);
    let cfg = mit_config(&meta.config)?;
    let k = meta.classes.len();
    let (kind, modality) = (meta.task.kind(), meta.task.modality());
    let net = match kind {
        TaskKind::Segmentation => TaskNet::Seg(SegNet::new(&cfg, modality, k, vb)?),
        TaskKind::Classification => TaskNet::Cls(ClsNet::new(&cfg, modality, k, vb)?),
    };
    Ok((vm, net))
}

/// Loads a task weight file into a fresh network.
pub fn load_net(path: &Path, dev: &Device) -> Result<(TaskMeta, TaskNet)> {
    let (tensors, meta) = load_weights(path, dev)?;
    let (vm, net) = build_net(&meta, dev)?;
    assign(&vm, &tensors, path)?;
    Ok((meta, net))
}

/// Class names of a classification manifest: its `#classes=` header, else `0..=max label`.
pub fn class_names(m: &LabelledManifest, origin: &Path) -> Result<Vec<String>> {
    if !m.classes.is_empty() {
        return Ok(m.classes.clone());
    }
    let mut max = 0usize;
    for s in &m.samples {
        let l = s.sample.label.as_deref().ok_or_else(|| TaskError::file(origin, format!("{}: no label", s.sample.path.display())))?;
        let v: usize = l.parse().map_err(|_| TaskError::file(origin, format!("{}: label {l:?} is not a class index", s.sample.path.display())))?;
        max = max.max(v);
    }
    Ok((0..=max.max(1)).map(|i| i.to_string()).collect())
}

/// Validation metric and its name: ROC-AUC, or accuracy when AUC is undefined (one class only);
/// mean Dice for segmentation.
fn val_metric(net: &TaskNet, job: &FinetuneJob, val: &LabelledManifest, classes: usize, dev: &Device) -> Result<(&'static str, f64)> {
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => return Ok(("dice", mean_dice(&seg_cases(n, job.task, val, classes, &job.config, dev)?))),
    };
    let paths: Vec<&Path> = val.samples.iter().map(|s| s.sample.path.as_path()).collect();
    let probs = predict_probs(net, job.task, &paths, &job.config, false, dev)?;
    let labels = val.class_indices(classes, &job.val)?;
    let m = classification_metrics(&probs, &labels)?;
    Ok(match m.auc {
        Some(auc) => ("auc", auc),
        None => ("accuracy", m.accuracy),
    })
}

/// Runs (or resumes) a fine-tuning job on the runtime's one loop ([`unimiss_runtime::runloop`]);
/// `report(line)` receives progress lines.
pub fn finetune(job: &FinetuneJob, dev: &Device, report: &mut dyn FnMut(&str)) -> Result<FinetuneOutcome> {
    let cfg = &job.config;
    cfg.validate()?;
    let train = job.task.read_manifest(&job.train)?;
    let val = job.task.read_manifest(&job.val)?;
    preflight(&job.train)?;
    preflight(&job.val)?;
    let (classes, labels) = match job.task.kind() {
        TaskKind::Segmentation => (seg_channels(job.task, &train, &job.train)?, vec![]),
        TaskKind::Classification => {
            let classes = class_names(&train, &job.train)?;
            let labels = train.class_indices(classes.len(), &job.train)?;
            (classes, labels)
        }
    };
    let meta = TaskMeta { task: job.task, classes, config: cfg.clone() };
    std::fs::create_dir_all(&job.output).map_err(|e| TaskError::file(&job.output, e))?;
    let (vm, net) = build_net(&meta, dev)?;
    let all_vars: BTreeMap<String, Var> = {
        let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    if let (Some(p), false) = (&job.pretrained, job.resume) {
        let rep = load_pretrained(&vm, p, cfg.which, job.task)?;
        let summary = rep.summary();
        let out = job.output.join("pretrained.txt");
        std::fs::write(&out, &summary).map_err(|e| TaskError::file(&out, e))?;
        report(summary.lines().next().unwrap_or(""));
    }
    let trainable: BTreeMap<String, Var> = all_vars.iter().filter(|(k, _)| job.task.uses(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut opt = AdamW::with_decay(&trainable, Decay::All, cfg.adam_eps);
    let mut st = State::new(job);
    checkpoint::clean_temporaries(&job.output)?;
    let n = train.samples.len();
    let bs = cfg.batch_size.min(n);
    let iters = if cfg.iters_per_epoch > 0 { cfg.iters_per_epoch } else { (n / bs).max(1) };
    let mut log = if job.resume {
        let ck = checkpoint::load(&job.output, dev)?;
        st = ck.state()?;
        if let Some(note) = st.resume_with(job, iters) {
            report(&note);
        }
        ck.restore_set("model", &all_vars)?;
        ck.restore_optim(&mut opt)?;
        report(&format!("resuming at epoch {} (step {}) from {}", st.next_epoch + 1, st.step, ck.dir.display()));
        JsonlLog::open_resumed(&job.output, st.step, st.next_epoch)?
    } else {
        job.write()?;
        JsonlLog::open(&job.output)?
    };
    let cfg_path = job.output.join("config.toml");
    let toml = toml::to_string_pretty(cfg).map_err(|e| TaskError::Invalid(e.to_string()))?;
    log.events().text("config", st.step, &format!("```toml\n{toml}\n```"))?;
    std::fs::write(&cfg_path, toml).map_err(|e| TaskError::file(&cfg_path, e))?;
    let start = Position { epoch: st.next_epoch, batch: 0, step: st.step };
    let plan = LoopPlan { epochs: cfg.epochs, max_steps: 0, every_steps: 0, every_epochs: 1, max_param_norm_ratio: 0.0, writer: true };
    let mut run = FinetuneRun {
        job,
        dev,
        augmenter: job.task.augmenter(cfg.seed),
        meta,
        vm,
        net,
        all_vars,
        trainable,
        opt,
        st,
        train,
        val,
        labels,
        bs,
        iters,
        order: vec![],
        next: 0,
        loss_sum: 0.0,
        t0: std::time::Instant::now(),
        first_epoch: start.epoch,
    };
    let left = runloop::steps_left(&run, &plan, start);
    let mut out = RunOutput { log: Some(log), progress: Progress::lines(left, |l| report(l)) };
    let ended = runloop::run(&mut run, &plan, start, &mut out)?;
    drop(out);
    report(&crate::job::keep_when_finished(&job.output, cfg)?);
    Ok(FinetuneOutcome {
        best_metric: run.st.best_metric.unwrap_or(f64::NAN),
        best_epoch: run.st.best_epoch,
        epochs_run: ended.position.epoch,
        stopped_early: ended.stopped_early,
    })
}
