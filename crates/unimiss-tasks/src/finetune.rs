//! Fine-tuning: AdamW with the task preset, lr schedule, optional global clipping, validation
//! every epoch, best checkpoint on the validation metric (AUC, or accuracy when AUC is undefined),
//! early stopping, and exact resume.
//!
//! Files in the output directory:
//! - `best.safetensors`: weights of the best validation epoch (task weight file, see [`crate::ckpt`]);
//! - `last.safetensors`, `last.optim.safetensors`, `state.json`: the end of the newest epoch, for
//!   `resume`; all written atomically, so an interrupted run keeps its best checkpoint;
//! - `log.jsonl`: one line per step (`step`, `epoch`, `loss`, `lr`, `grad_norm`) and per epoch
//!   (`epoch`, `train_loss`, `val_metric`, `best`);
//! - `curves.png`: training loss and validation metric per epoch;
//! - `pretrained.txt`: what the pretrained loading did (loaded, zoomed, new, unused keys).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use unimiss_model::checkpoint::Which;
use unimiss_model::{Arch, MitConfig, Modality, SeededVarMap};

use crate::augment::Augmenter;
use crate::labelled::LabelledSample;
use crate::segment::{mean_dice, seg_batch, seg_channels, seg_cases, seg_loss};

use crate::ckpt::{TaskMeta, assign, load_weights, save_tensors, save_weights, write_atomic};
use crate::config::FinetuneConfig;
use crate::dataset::random_flips;
use crate::error::{Result, TaskError};
use crate::infer::{input_of, predict_probs};
use crate::labelled::LabelledManifest;
use crate::losses::cross_entropy;
use crate::metrics::classification_metrics;
use crate::nets::{ClsNet, SegNet, Task, TaskKind, TaskNet, load_pretrained};

/// What to fine-tune.
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    pub task: Task,
    pub train: PathBuf,
    pub val: PathBuf,
    pub pretrained: Option<PathBuf>,
    pub config: FinetuneConfig,
    pub output: PathBuf,
    /// Continue from `output/state.json` when it exists.
    pub resume: bool,
}

/// Outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneOutcome {
    pub best_metric: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub stopped_early: bool,
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    next_epoch: usize,
    step: u64,
    best_metric: f64,
    best_epoch: usize,
    since_best: usize,
    history: Vec<(f64, f64)>,
}

/// The MiT configuration of a fine-tuning config.
pub fn mit_config(cfg: &FinetuneConfig) -> Result<MitConfig> {
    let arch: Arch = cfg.arch.parse()?;
    let m = MitConfig::preset(arch).with_img_size_2d(cfg.input_2d).with_img_size_3d(cfg.input_3d);
    m.validate()?;
    Ok(m)
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

fn append_log(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| TaskError::file(path, e))?;
    writeln!(f, "{v}").map_err(|e| TaskError::file(path, e))
}

/// Validation metric: ROC-AUC, or accuracy when AUC is undefined (one class only); mean Dice for
/// segmentation.
fn val_metric(net: &TaskNet, job: &FinetuneJob, val: &LabelledManifest, classes: usize, dev: &Device) -> Result<f64> {
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => return Ok(mean_dice(&seg_cases(n, job.task, val, classes, &job.config, dev)?)),
    };
    let paths: Vec<&Path> = val.samples.iter().map(|s| s.sample.path.as_path()).collect();
    let probs = predict_probs(net, job.task, &paths, &job.config, false, dev)?;
    let labels = (0..val.samples.len()).map(|i| val.class_index(i, classes, &job.val)).collect::<Result<Vec<_>>>()?;
    let m = classification_metrics(&probs, &labels)?;
    Ok(m.auc.unwrap_or(m.accuracy))
}

/// Runs (or resumes) a fine-tuning job; `report(line)` receives progress lines.
pub fn finetune(job: &FinetuneJob, dev: &Device, report: &mut dyn FnMut(&str)) -> Result<FinetuneOutcome> {
    let cfg = &job.config;
    cfg.validate()?;
    let train = LabelledManifest::read(&job.train)?;
    let val = LabelledManifest::read(&job.val)?;
    for (m, p) in [(&train, &job.train), (&val, &job.val)] {
        if let Some(s) = m.samples.iter().find(|s| s.sample.modality != job.task.modality()) {
            return Err(TaskError::file(p, format!("{}: modality {} does not fit task {}", s.sample.path.display(), s.sample.modality, job.task)));
        }
    }
    let seg = job.task.is_segmentation();
    let classes = if seg { seg_channels(job.task, &train, &job.train)? } else { class_names(&train, &job.train)? };
    let k = classes.len();
    let labels = match seg {
        true => vec![],
        false => (0..train.samples.len()).map(|i| train.class_index(i, k, &job.train)).collect::<Result<Vec<_>>>()?,
    };
    let augmenter = Augmenter::preset(job.task, cfg.seed);
    let meta = TaskMeta { task: job.task, classes: classes.clone(), config: cfg.clone() };
    std::fs::create_dir_all(&job.output).map_err(|e| TaskError::file(&job.output, e))?;
    let (vm, net) = build_net(&meta, dev)?;
    let state_path = job.output.join("state.json");
    let resuming = job.resume && state_path.exists();
    if let (Some(p), false) = (&job.pretrained, resuming) {
        let which: Which = cfg.which.parse()?;
        let rep = load_pretrained(&vm, p, which, job.task)?;
        let summary = rep.summary();
        std::fs::write(job.output.join("pretrained.txt"), &summary).map_err(|e| TaskError::file(job.output.join("pretrained.txt"), e))?;
        report(summary.lines().next().unwrap_or(""));
    }
    let trainable: BTreeMap<String, Var> = {
        let data = vm.data().lock().map_err(|_| TaskError::Invalid("variable map lock poisoned".into()))?;
        data.iter().filter(|(k, _)| job.task.uses(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let mut opt = crate::optim::AdamW::new(trainable, cfg.weight_decay, cfg.adam_eps);
    let mut st = State { next_epoch: 0, step: 0, best_metric: f64::NEG_INFINITY, best_epoch: 0, since_best: 0, history: vec![] };
    if resuming {
        let text = std::fs::read_to_string(&state_path).map_err(|e| TaskError::file(&state_path, e))?;
        st = serde_json::from_str(&text).map_err(|e| TaskError::file(&state_path, e))?;
        let last = job.output.join("last.safetensors");
        let (tensors, _) = load_weights(&last, dev)?;
        assign(&vm, &tensors, &last)?;
        let op = job.output.join("last.optim.safetensors");
        let ot = candle::safetensors::load(&op, dev).map_err(|e| TaskError::file(&op, e))?;
        opt.load_state(ot, st.step)?;
        report(&format!("resuming at epoch {} (step {})", st.next_epoch, st.step));
    }
    let log = job.output.join("log.jsonl");
    let n = train.samples.len();
    let bs = cfg.batch_size.min(n);
    let iters = if cfg.iters_per_epoch > 0 { cfg.iters_per_epoch } else { (n / bs).max(1) };
    let total_steps = iters * cfg.epochs;
    let mut stopped_early = false;
    let t0 = std::time::Instant::now();
    let first_epoch = st.next_epoch;
    for epoch in st.next_epoch..cfg.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ ((epoch as u64 + 1) << 20));
        order.shuffle(&mut rng);
        let lr_epoch = cfg.lr_at(epoch, 0, total_steps);
        let mut loss_sum = 0.0;
        for it in 0..iters {
            let idxs: Vec<usize> = (0..bs).map(|b| order[(it * bs + b) % n]).collect();
            let loss = match &net {
                TaskNet::Seg(sn) => {
                    let samples: Vec<&LabelledSample> = idxs.iter().map(|&i| &train.samples[i]).collect();
                    let (x, y) = seg_batch(job.task, &samples, &idxs, k, cfg, augmenter.as_ref().map(|a| (a, epoch)), dev)?;
                    seg_loss(sn, job.task, &x, &y, cfg)?
                }
                TaskNet::Cls(cn) => {
                    let mut xs = Vec::with_capacity(bs);
                    let mut ys = Vec::with_capacity(bs);
                    for &idx in &idxs {
                        let (mut x, shape) = input_of(job.task, &train.samples[idx].sample.path, cfg)?;
                        let dims: [usize; 3] = if shape.len() == 4 { [shape[1], shape[2], shape[3]] } else { [1, shape[1], shape[2]] };
                        random_flips(&mut [(&mut x, shape[0])], dims, &mut rng);
                        xs.push(Tensor::from_vec(x, shape, dev)?);
                        ys.push(labels[idx] as u32);
                    }
                    let x = Tensor::stack(&xs, 0)?;
                    let y = Tensor::from_vec(ys, bs, dev)?;
                    cross_entropy(&cn.forward(&x)?, &y)?
                }
            };
            let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !lv.is_finite() {
                return Err(TaskError::Invalid(format!("loss is {lv} at epoch {epoch} step {}; the best checkpoint is kept", st.step + 1)));
            }
            let lr = match cfg.schedule {
                crate::config::Schedule::PolyIter => cfg.lr_at(epoch, st.step as usize, total_steps),
                _ => lr_epoch,
            };
            let grads = loss.backward()?;
            let gn = opt.step(&grads, lr, cfg.clip_global_norm)?;
            st.step += 1;
            loss_sum += lv;
            append_log(&log, &serde_json::json!({"step": st.step, "epoch": epoch, "loss": lv, "lr": lr, "grad_norm": gn}))?;
        }
        let train_loss = loss_sum / iters as f64;
        let metric = val_metric(&net, job, &val, k, dev)?;
        let improved = metric > st.best_metric;
        if improved {
            st.best_metric = metric;
            st.best_epoch = epoch;
            st.since_best = 0;
            save_weights(&job.output.join("best.safetensors"), &vm, &meta)?;
        } else {
            st.since_best += 1;
        }
        st.history.push((train_loss, metric));
        st.next_epoch = epoch + 1;
        save_weights(&job.output.join("last.safetensors"), &vm, &meta)?;
        save_tensors(&job.output.join("last.optim.safetensors"), opt.state_tensors(), None)?;
        write_atomic(&state_path, &serde_json::to_vec_pretty(&st)?)?;
        append_log(&log, &serde_json::json!({"epoch": epoch, "train_loss": train_loss, "val_metric": metric, "best": st.best_metric}))?;
        let rate = t0.elapsed().as_secs_f64() / (epoch + 1 - first_epoch) as f64;
        report(&format!(
            "epoch {}/{}: train loss {train_loss:.4}, val {metric:.4} (best {:.4} @ {}), {:.1} s/epoch, ETA {:.0} s",
            epoch + 1,
            cfg.epochs,
            st.best_metric,
            st.best_epoch + 1,
            rate,
            rate * (cfg.epochs - epoch - 1) as f64
        ));
        if cfg.patience > 0 && st.since_best >= cfg.patience {
            stopped_early = true;
            report(&format!("early stop: no improvement for {} epochs", cfg.patience));
            break;
        }
    }
    crate::plot::curves(&job.output.join("curves.png"), &st.history)?;
    Ok(FinetuneOutcome { best_metric: st.best_metric, best_epoch: st.best_epoch, epochs_run: st.next_epoch, stopped_early })
}
