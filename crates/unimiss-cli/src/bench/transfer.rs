//! `cargo xtask bench transfer [--seeds 0,1,2] [--json FILE] [--device cuda:0]`: does
//! pretraining help? An experiment that can fail: for every seed,
//! 1. phantoms (`--cases`, seed-dependent; 60 % train, 20 % val, 20 % test);
//! 2. pretraining with the real trainer on the unlabelled training split (`sample` preset at
//!    the bench sizes, `--pretrain-epochs`, the kNN monitor on the held-out `eval_lesion.tsv`);
//! 3. pretrained (teacher backbone of the last checkpoint) vs random init (the same seeded
//!    initialisation the pretraining started from) on weighted kNN (k = 20, T = 0.07,
//!    leave-one-out over the val + test cases) for 2D and 3D, on the lesion label and the
//!    liver-size label;
//! 4. fine-tuning `cls2d`, `cls3d` (test AUC) and `seg3d` (test mean Dice) from the pretrained
//!    student and from random init, with 10 % and 100 % of the training labels, at equal
//!    budget (same preset, epochs, seed).
//!
//! Reports per-seed values, mean ± sd, the paired difference (pretrained − random) and whether
//! the mean gain exceeds twice the sd of the random-init scores; `--json` writes
//! `{"seeds": [...], "results": [{"task", "labels", "metric", "pretrained": [...], "random": [...]}]}`
//! plus the settings and each seed's kNN curve during pretraining.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle::{DType, Device};
use candle_nn::VarMap;
use serde_json::{Value, json};
use unimiss_model::checkpoint::{self, KeyPolicy, Which};
use unimiss_model::{Mit, SeededVarMap};
use unimiss_ssl::monitor::EvalSet;
use unimiss_ssl::{TrainConfig, Trainer};
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::finetune::{FinetuneJob, finetune};
use unimiss_tasks::nets::Task;
use unimiss_tasks::phantoms::{PhantomConfig, generate};

#[derive(clap::Args)]
pub struct Args {
    /// Working directory (per seed: phantoms, pretraining run, fine-tuning runs).
    #[arg(long, default_value = "runs/bench-transfer")]
    pub dir: PathBuf,
    /// Seeds (phantoms, initialisation, data order, fine-tuning).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Phantom cases per seed (60 % are the unlabelled pretraining set: 340 → 204).
    #[arg(long, default_value_t = 340)]
    pub cases: usize,
    /// Pretraining epochs (alternating 2D/3D, interval 1).
    #[arg(long, default_value_t = 20)]
    pub pretrain_epochs: usize,
    /// Pretraining batch size.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Extra pretraining overrides, e.g. `--pretrain-set loss.teacher_temp=0.02`.
    #[arg(long = "pretrain-set", value_name = "KEY=VALUE")]
    pub pretrain_set: Vec<String>,
    /// Fine-tuning epochs (same for both initialisations and both label fractions).
    #[arg(long, default_value_t = 10)]
    pub finetune_epochs: usize,
    /// Fine-tuning tasks.
    #[arg(long, value_delimiter = ',', default_value = "cls2d,cls3d,seg3d")]
    pub tasks: Vec<Task>,
    /// 2D input side (pretraining, kNN and fine-tuning).
    #[arg(long, default_value_t = 96)]
    pub size_2d: usize,
    /// 3D input D,H,W.
    #[arg(long, value_parser = crate::cmd::data_files::parse_size3, default_value = "16,96,96")]
    pub size_3d: [usize; 3],
    /// Phantom volume D,H,W (the pretraining crops and fine-tuning inputs are taken from it).
    #[arg(long, value_parser = crate::cmd::data_files::parse_size3, default_value = "32,96,96")]
    pub phantom_dims: [usize; 3],
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One compared quantity: a value per seed for each initialisation.
struct Row {
    task: String,
    labels: f64,
    metric: &'static str,
    pretrained: Vec<Option<f64>>,
    random: Vec<Option<f64>>,
}

/// Stage counter with an ETA from the mean stage time so far.
struct Stages {
    total: usize,
    done: usize,
    t0: Instant,
}

impl Stages {
    fn start(&self, what: &str) {
        let el = self.t0.elapsed().as_secs_f64();
        let eta = if self.done == 0 { "?".into() } else { format!("{:.0} s", el / self.done as f64 * (self.total - self.done) as f64) };
        eprintln!("bench transfer [{}/{}] {what} (elapsed {el:.0} s, ETA {eta})", self.done + 1, self.total);
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// The newest checkpoint's weights of a pretraining run.
fn latest_weights(run: &Path) -> anyhow::Result<PathBuf> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("latest")).with_context(|| format!("reading {}", ck.join("latest").display()))?;
    let w = ck.join(name.trim()).join("weights.safetensors");
    anyhow::ensure!(w.exists(), "{} does not exist", w.display());
    Ok(w)
}

/// The pretraining configuration of one seed.
fn pretrain_config(args: &Args, ph: &Path, out: &Path, seed: u64) -> anyhow::Result<TrainConfig> {
    let mut c = TrainConfig::sample();
    c.output = out.to_path_buf();
    c.device = args.device.clone();
    c.seed = seed;
    c.data.manifest = ph.join("pretrain.tsv");
    c.model.img_size_2d = args.size_2d;
    c.model.img_size_3d = args.size_3d;
    c.optim.epochs = args.pretrain_epochs;
    c.optim.batch_size = args.batch_size;
    c.checkpoint.every_epochs = 0;
    c.checkpoint.keep = 1;
    c.eval.manifest = ph.join("eval_lesion.tsv");
    c.eval.every_epochs = 1;
    for kv in &args.pretrain_set {
        let (k, v) = kv.split_once('=').with_context(|| format!("--pretrain-set {kv:?}: expected KEY=VALUE"))?;
        c.set(k, v)?;
    }
    Ok(c)
}

/// kNN accuracies (2D, 3D) of a backbone on the lesion and liver eval sets.
fn knn_scores(backbone: &Mit, sets: &[(&str, EvalSet)], cfg: &TrainConfig) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for (label, set) in sets {
        for g in set.evaluate(backbone, &cfg.eval.params())? {
            let suffix = if *label == "lesion" { String::new() } else { format!("_{label}") };
            out.push((format!("knn{}{suffix}", g.modality.name()), g.knn.accuracy));
        }
    }
    Ok(out)
}

/// The test metric of one fine-tuning run: AUC (classification) or mean Dice (segmentation).
fn finetune_metric(task: Task, ph: &Path, labels: f64, weights: Option<&Path>, out: &Path, args: &Args, seed: u64, dev: &Device) -> anyhow::Result<Option<f64>> {
    let mut config = FinetuneConfig::ci(task);
    config.input_2d = args.size_2d;
    config.input_3d = args.size_3d;
    config.epochs = args.finetune_epochs;
    config.seed = seed;
    let _ = std::fs::remove_dir_all(out);
    let split = if labels < 1.0 { "train_10pct" } else { "train" };
    let job = FinetuneJob {
        task,
        train: ph.join(format!("{task}_{split}.tsv")),
        val: ph.join(format!("{task}_val.tsv")),
        pretrained: weights.map(Path::to_path_buf),
        config,
        output: out.to_path_buf(),
        resume: false,
    };
    finetune(&job, dev, &mut |_| ())?;
    let rep = unimiss_tasks::evaluate::evaluate(&out.join("best.safetensors"), &ph.join(format!("{task}_test.tsv")), dev)?;
    Ok(rep[if matches!(task, Task::Seg3d | Task::Seg2d) { "dice_mean" } else { "auc" }].as_f64())
}

fn row<'a>(rows: &'a mut Vec<Row>, task: &str, labels: f64, metric: &'static str) -> &'a mut Row {
    if let Some(i) = rows.iter().position(|r| r.task == task && r.labels == labels) {
        return &mut rows[i];
    }
    rows.push(Row { task: task.into(), labels, metric, pretrained: vec![], random: vec![] });
    let last = rows.len() - 1;
    &mut rows[last]
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_ssl::trainer::parse_device(&args.device)?;
    let fractions = [0.1, 1.0];
    let per_seed = 3 + args.tasks.len() * fractions.len() * 2;
    let mut st = Stages { total: per_seed * args.seeds.len(), done: 0, t0: Instant::now() };
    let mut rows: Vec<Row> = Vec::new();
    let mut curves = Vec::new();
    for &seed in &args.seeds {
        let base = args.dir.join(format!("seed-{seed}"));
        let ph = base.join("phantoms");
        st.start(&format!("seed {seed}: {} phantoms {:?}", args.cases, args.phantom_dims));
        let pc = PhantomConfig { count: args.cases, seed, dims: args.phantom_dims, size_2d: args.size_2d.max(args.phantom_dims[2]), ..PhantomConfig::default() };
        let summary = generate(&ph, &pc, &mut |_, _| ())?;
        st.done += 1;

        st.start(&format!("seed {seed}: pretraining {} epochs on {} cases × 2 modalities", args.pretrain_epochs, summary.train));
        let run_dir = base.join("pretrain");
        let _ = std::fs::remove_dir_all(&run_dir);
        let cfg = pretrain_config(&args, &ph, &run_dir, seed)?;
        let mut trainer = Trainer::new(cfg.clone(), None, None)?;
        trainer.progress = false;
        trainer.run()?;
        let knn_curve: Vec<Value> = std::fs::read_to_string(run_dir.join("log.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "knn")
            .collect();
        curves.push(json!({"seed": seed, "knn": knn_curve}));
        st.done += 1;

        st.start(&format!("seed {seed}: kNN of the pretrained teacher and of the random init"));
        let mcfg = unimiss_ssl::trainer::mit_config(&cfg)?;
        let sets = [("lesion", EvalSet::load(&ph.join("eval_lesion.tsv"), args.size_2d, args.size_3d, &dev)?), ("liver", EvalSet::load(&ph.join("eval_liver.tsv"), args.size_2d, args.size_3d, &dev)?)];
        let weights = latest_weights(&run_dir)?;
        let teacher = checkpoint::load(&weights, Which::Teacher)?.build(&mcfg, KeyPolicy::Exact, &dev)?.backbone;
        let vm = VarMap::new();
        let random = Mit::new(&mcfg, SeededVarMap::var_builder(&vm, seed, DType::F32, &dev).pp("backbone"))?;
        for ((name, p), (_, r)) in knn_scores(&teacher, &sets, &cfg)?.into_iter().zip(knn_scores(&random, &sets, &cfg)?) {
            let rw = row(&mut rows, &name, 1.0, "accuracy");
            rw.pretrained.push(Some(p));
            rw.random.push(Some(r));
        }
        st.done += 1;

        for &task in &args.tasks {
            for labels in fractions {
                for (init, w) in [("pretrained", Some(weights.as_path())), ("random", None)] {
                    st.start(&format!("seed {seed}: finetune {task} with {:.0}% labels from {init}", labels * 100.0));
                    let out = base.join(format!("{task}-{}pct-{init}", (labels * 100.0) as u32));
                    let v = finetune_metric(task, &ph, labels, w, &out, &args, seed, &dev)?;
                    let metric = if matches!(task, Task::Seg3d | Task::Seg2d) { "dice" } else { "auc" };
                    let rw = row(&mut rows, task.name(), labels, metric);
                    if init == "pretrained" { rw.pretrained.push(v) } else { rw.random.push(v) }
                    st.done += 1;
                }
            }
        }
    }
    report(&args, &rows, st.t0.elapsed().as_secs_f64());
    if let Some(j) = &args.json {
        let results: Vec<Value> = rows
            .iter()
            .map(|r| json!({"task": r.task, "labels": r.labels, "metric": r.metric, "pretrained": r.pretrained, "random": r.random}))
            .collect();
        let v = json!({
            "seeds": args.seeds, "results": results, "cases": args.cases, "pretrain_epochs": args.pretrain_epochs,
            "batch_size": args.batch_size, "pretrain_set": args.pretrain_set, "finetune_epochs": args.finetune_epochs,
            "size_2d": args.size_2d, "size_3d": args.size_3d, "phantom_dims": args.phantom_dims, "device": args.device,
            "seconds": st.t0.elapsed().as_secs_f64(), "knn_curves": curves,
        });
        std::fs::write(j, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(())
}

fn report(args: &Args, rows: &[Row], secs: f64) {
    println!(
        "bench transfer: seeds {:?}, {} phantom cases {:?}, 2D {}², 3D {:?}{}; pretraining {} epochs (batch {}), fine-tuning {} epochs; {:.0} s on {}",
        args.seeds,
        args.cases,
        args.phantom_dims,
        args.size_2d,
        args.size_3d,
        if args.size_2d < 96 || args.size_3d[1] < 96 { " (below the paper-like 96² / 16×96×96)" } else { "" },
        args.pretrain_epochs,
        args.batch_size,
        args.finetune_epochs,
        secs,
        args.device
    );
    println!("{:<16} {:>6} {:<8} {:>24} {:>24} {:>16} {:>9}", "task", "labels", "metric", "pretrained (per seed)", "random (per seed)", "diff mean±sd", "gain>2sd");
    let f = |v: &[Option<f64>]| v.iter().map(|x| x.map_or("n/a".into(), |x| format!("{x:.3}"))).collect::<Vec<_>>().join(" ");
    for r in rows {
        let pairs: Vec<(f64, f64)> = r.pretrained.iter().zip(&r.random).filter_map(|(p, q)| Some(((*p)?, (*q)?))).collect();
        let diffs: Vec<f64> = pairs.iter().map(|(p, q)| p - q).collect();
        let (pm, ps) = mean_sd(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
        let (rm, rs) = mean_sd(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        let (dm, ds) = mean_sd(&diffs);
        let verdict = if pairs.len() < 2 { "n/a" } else if dm > 2.0 * rs && diffs.iter().all(|d| *d > 0.0) { "yes" } else { "no" };
        println!(
            "{:<16} {:>6} {:<8} {:>24} {:>24} {:>+7.3}±{:<8.3} {:>9}",
            r.task,
            format!("{:.0}%", r.labels * 100.0),
            r.metric,
            format!("{} ({pm:.3}±{ps:.3})", f(&r.pretrained)),
            format!("{} ({rm:.3}±{rs:.3})", f(&r.random)),
            dm,
            ds,
            verdict
        );
    }
}
