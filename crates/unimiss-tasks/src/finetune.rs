//! Fine-tuning, as a loop over the one training runtime of `unimiss-ssl` (its optimiser with the
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
//! - `best.safetensors`: weights of the best validation epoch (task weight file, see [`crate::ckpt`]);
//! - `log.jsonl`: [`TaskStepRecord`] per step, [`TaskEpochRecord`] per epoch;
//! - `curves.png`: training loss and validation metric per epoch, redrawn after every epoch;
//! - `pretrained.txt`: what the pretrained loading did (loaded, zoomed, new, unused keys).

use std::collections::BTreeMap;
use std::path::Path;

use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use unimiss_model::checkpoint::Which;
use unimiss_model::{MitConfig, Modality, SeededVarMap};
use unimiss_ssl::checkpoint::{self, Snapshot};
use unimiss_ssl::log::{JsonlLog, TaskEpochRecord, TaskStepRecord, rss_mb};
use unimiss_ssl::optim::{AdamW, Clip, Decay, StepOptions};

use crate::labelled::LabelledSample;
use crate::segment::{mean_dice, seg_batch, seg_channels, seg_cases, seg_loss};

use crate::ckpt::{TaskMeta, assign, load_weights, save_weights};
use crate::config::FinetuneConfig;
use crate::error::{Result, TaskError};
use crate::infer::{input_of, predict_probs};
use crate::job::{State, lr_at};
use crate::labelled::LabelledManifest;
use crate::losses::cross_entropy;
use crate::metrics::classification_metrics;
use crate::nets::{ClsNet, SegNet, TaskKind, TaskNet, load_pretrained};

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
    use unimiss_data::preflight::{Entry, check_entries};
    let text = std::fs::read_to_string(origin).map_err(|e| TaskError::file(origin, e))?;
    let base = origin.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for s in LabelledManifest::parse(line, base, origin)?.samples {
            let modality = s.sample.modality;
            for p in std::iter::once(s.sample.path).chain(s.masks) {
                entries.push(Entry { path: p, modality, line: Some(i + 1) });
            }
        }
    }
    let report = check_entries(Some(origin.to_path_buf()), &entries);
    if report.is_clean() { Ok(()) } else { Err(TaskError::file(origin, report)) }
}

/// The MiT configuration of a fine-tuning config.
pub fn mit_config(cfg: &FinetuneConfig) -> Result<MitConfig> {
    Ok(MitConfig::for_run(&cfg.arch, cfg.input_2d, cfg.input_3d)?)
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
        TaskKind::Segmentation => TaskNet::Seg(SegNet::new(&cfg, modality, k, modality == Modality::Volume3d, vb)?),
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

/// Runs (or resumes) a fine-tuning job; `report(line)` receives progress lines.
pub fn finetune(job: &FinetuneJob, dev: &Device, report: &mut dyn FnMut(&str)) -> Result<FinetuneOutcome> {
    let cfg = &job.config;
    cfg.validate()?;
    let train = job.task.read_manifest(&job.train)?;
    let val = job.task.read_manifest(&job.val)?;
    preflight(&job.train)?;
    preflight(&job.val)?;
    let seg = job.task.is_segmentation();
    let classes = if seg { seg_channels(job.task, &train, &job.train)? } else { class_names(&train, &job.train)? };
    let k = classes.len();
    let labels = match seg {
        true => vec![],
        false => train.class_indices(k, &job.train)?,
    };
    let augmenter = job.task.augmenter(cfg.seed);
    let meta = TaskMeta { task: job.task, classes: classes.clone(), config: cfg.clone() };
    std::fs::create_dir_all(&job.output).map_err(|e| TaskError::file(&job.output, e))?;
    let (vm, net) = build_net(&meta, dev)?;
    let all_vars: BTreeMap<String, Var> = {
        let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    if let (Some(p), false) = (&job.pretrained, job.resume) {
        let which: Which = cfg.which.parse()?;
        let rep = load_pretrained(&vm, p, which, job.task)?;
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
    let total_steps = iters * cfg.epochs;
    let mut stopped_early = false;
    let t0 = std::time::Instant::now();
    let first_epoch = st.next_epoch;
    for epoch in st.next_epoch..cfg.epochs {
        let te = std::time::Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ ((epoch as u64 + 1) << 20));
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for it in 0..iters {
            let ts = std::time::Instant::now();
            let idxs: Vec<usize> = (0..bs).map(|b| order[(it * bs + b) % n]).collect();
            let loss = match &net {
                TaskNet::Seg(sn) => {
                    let samples: Vec<&LabelledSample> = idxs.iter().map(|&i| &train.samples[i]).collect();
                    let (x, y) = seg_batch(job.task, &samples, &idxs, k, cfg, Some((&augmenter, epoch)), dev)?;
                    seg_loss(sn, job.task, &x, &y, cfg)?
                }
                TaskNet::Cls(cn) => {
                    let mut xs = Vec::with_capacity(bs);
                    let mut ys = Vec::with_capacity(bs);
                    for &idx in &idxs {
                        let (mut x, shape) = input_of(job.task, &train.samples[idx].sample.path, cfg)?;
                        let dims: [usize; 3] = match job.task.modality() {
                            Modality::Volume3d => [shape[1], shape[2], shape[3]],
                            Modality::Image2d => [1, shape[1], shape[2]],
                        };
                        augmenter.apply_image(&mut x, shape[0], dims, epoch, idx);
                        xs.push(Tensor::from_vec(x, shape, dev)?);
                        ys.push(labels[idx] as u32);
                    }
                    let x = Tensor::stack(&xs, 0)?;
                    let y = Tensor::from_vec(ys, bs, dev)?;
                    cross_entropy(&cn.forward(&x)?, &y)?
                }
            };
            let step = st.step + 1;
            let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !lv.is_finite() {
                return Err(TaskError::Invalid(format!("loss is {lv} at epoch {} step {step}; the last checkpoint is kept", epoch + 1)));
            }
            let lr = lr_at(cfg, st.lr_anchor, epoch, st.step, total_steps);
            let store = loss.backward()?;
            let grads: BTreeMap<String, Tensor> =
                trainable.iter().filter_map(|(k, v)| store.get(v.as_tensor()).map(|g| (k.clone(), g.clone()))).collect();
            drop(store);
            let opts = StepOptions {
                lr,
                wd: cfg.weight_decay,
                clip: Clip::GlobalNorm(cfg.clip_global_norm),
                cancel_last_layer: false,
                freeze_3d: false,
                set_to_none: true,
            };
            let rep = opt.step(&grads, &opts).map_err(|e| TaskError::Invalid(format!("step {step} (epoch {}): {e}; the last checkpoint is kept", epoch + 1)))?;
            st.step = step;
            loss_sum += lv;
            log.write(&TaskStepRecord {
                kind: "step".into(),
                step,
                epoch,
                loss: lv,
                lr,
                grad_norm: rep.grad_norm.unwrap_or(f64::NAN),
                samples_per_s: bs as f64 / ts.elapsed().as_secs_f64().max(1e-9),
                rss_mb: rss_mb(),
            })
            ?;
        }
        let train_loss = loss_sum / iters as f64;
        let (metric_name, metric) = val_metric(&net, job, &val, k, dev)?;
        if st.best_metric.is_none_or(|b| metric > b) {
            st.best_metric = Some(metric);
            st.best_epoch = epoch;
            st.since_best = 0;
            let best = job.output.join("best.safetensors");
            save_weights(&best, &vm, &meta).map_err(|e| {
                TaskError::file(
                    &best,
                    format!("best weights of epoch {} (step {}) not written ({e}); the previous best and the last checkpoint are kept", epoch + 1, st.step),
                )
            })?;
        } else {
            st.since_best += 1;
        }
        st.history.push((train_loss, metric));
        st.next_epoch = epoch + 1;
        let snap = Snapshot { sets: vec![("model", &all_vars)], optim: &opt, extra: vec![], step: st.step, state: serde_json::to_value(&st)? };
        checkpoint::save(&job.output, &snap, cfg.keep_checkpoints)?;
        let best = st.best_metric.unwrap_or(f64::NAN);
        log.write(&TaskEpochRecord {
            kind: "epoch".into(),
            epoch,
            step: st.step,
            train_loss,
            metric: metric_name.into(),
            val_metric: metric,
            best,
            seconds: te.elapsed().as_secs_f64(),
        })
        ?;
        // Drawn after every epoch, so an interrupted run has its curves too.
        if let Err(e) = unimiss_ssl::plot::plot_task_log(&job.output.join("log.jsonl"), &job.output.join("curves.png")) {
            report(&format!("warning: curves.png not drawn: {e}"));
        }
        let rate = t0.elapsed().as_secs_f64() / (epoch + 1 - first_epoch) as f64;
        report(&format!(
            "epoch {}/{}: train loss {train_loss:.4}, val {metric_name} {metric:.4} (best {best:.4} @ epoch {}), {:.1} s/epoch, RSS {:.0} MB, ETA {:.0} s",
            epoch + 1,
            cfg.epochs,
            st.best_epoch + 1,
            rate,
            rss_mb(),
            rate * (cfg.epochs - epoch - 1) as f64
        ));
        if cfg.patience > 0 && st.since_best >= cfg.patience {
            stopped_early = true;
            report(&format!("early stop: no improvement for {} epochs", cfg.patience));
            break;
        }
    }
    report(&crate::job::keep_when_finished(&job.output, cfg)?);
    Ok(FinetuneOutcome {
        best_metric: st.best_metric.unwrap_or(f64::NAN),
        best_epoch: st.best_epoch,
        epochs_run: st.next_epoch,
        stopped_early,
    })
}
