//! `cargo xtask bench transfer [--seeds 0,1,2] [--json FILE] [--device cuda:0]`: does
//! pretraining help? An experiment that can fail: for every seed,
//! 1. phantoms (`--cases`, seed-dependent; 60 % train, 20 % val, 20 % test) whose `finding`
//!    label (none / mass / nodules anywhere in a body whose pose varies) has headroom;
//! 2. the floors, before any training: weighted kNN (k = 20, T = 0.07, leave-one-out over the
//!    val + test cases) on the raw pixels and on the random-init backbone, 2D and 3D, on the
//!    `finding`, `lesion` and `liver` labels (`--floors-only` stops here);
//! 3. pretraining with the real trainer on the unlabelled training split (the
//!    `small-batch` recipe, `configs/small-batch.toml`, at the bench sizes; `--pretrain-set`
//!    overrides it), the kNN monitor on the held-out `eval_finding.tsv`;
//! 4. the pretrained teacher backbone on the same kNN;
//! 5. fine-tuning `cls2d`, `cls3d` (test AUC; the label is `finding`) and `seg3d` (test mean
//!    Dice) from the pretrained student and from random init, with 10 % and 100 % of the
//!    training labels, at equal budget (same preset, epochs, seed). The random-init 100 % run
//!    of a classification task is the ceiling: its test accuracy is printed beside the kNN rows
//!    of that modality's `finding`.
//!
//! Reports per-seed values, mean ± sd, the paired difference (pretrained − random) and whether
//! the mean gain exceeds twice the sd of the random-init scores; `--json` writes
//! `{"seeds": [...], "results": [{"task", "labels", "metric", "pretrained": [...], "random": [...],
//! "floor": {"pixels", "random_init"}, "ceiling"}]}` plus the settings and each seed's kNN curve.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle::{DType, Device};
use candle_nn::VarMap;
use serde_json::{Value, json};
use unimiss_model::checkpoint::{self, KeyPolicy, Which};
use unimiss_model::{Mit, SeededVarMap};
use unimiss_ssl::monitor::{EvalSet, GroupScore};
use unimiss_ssl::{TrainConfig, Trainer};
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::finetune::{FinetuneJob, finetune};
use unimiss_tasks::nets::Task;
use unimiss_tasks::phantoms::{PhantomConfig, generate};

use super::transfer_report::{self as report, Row, row};

/// The kNN labels, with their eval manifests `eval_{label}.tsv`.
const LABELS: [&str; 3] = ["finding", "lesion", "liver"];

#[derive(clap::Args)]
pub struct Args {
    /// Working directory (per seed: phantoms, pretraining run, fine-tuning runs).
    #[arg(long, default_value = "runs/bench-transfer")]
    pub dir: PathBuf,
    /// Seeds (phantoms, initialisation, data order, fine-tuning).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Phantom cases per seed (60 % are the unlabelled pretraining set, 40 % the kNN eval set).
    #[arg(long, default_value_t = 500)]
    pub cases: usize,
    /// Pretraining epochs (alternating 2D and 3D epochs, the small-batch recipe's interval 1).
    #[arg(long, default_value_t = 24)]
    pub pretrain_epochs: usize,
    /// Overrides of the small-batch recipe, e.g. `--pretrain-set optim.batch_size=32`.
    #[arg(long = "pretrain-set", value_name = "KEY=VALUE")]
    pub pretrain_set: Vec<String>,
    /// Fine-tuning epochs (same for both initialisations and both label fractions).
    #[arg(long, default_value_t = 10)]
    pub finetune_epochs: usize,
    /// Fine-tuning tasks.
    #[arg(long, value_delimiter = ',', default_value = "cls2d,cls3d,seg3d")]
    pub tasks: Vec<Task>,
    /// 2D input side (pretraining, kNN and fine-tuning).
    #[arg(long, default_value_t = 64)]
    pub size_2d: usize,
    /// 3D input D,H,W.
    #[arg(long, value_parser = crate::args::parse_size3, default_value = "16,64,64")]
    pub size_3d: [usize; 3],
    /// Phantom volume D,H,W (the pretraining crops and fine-tuning inputs are taken from it).
    #[arg(long, value_parser = crate::args::parse_size3, default_value = "32,64,64")]
    pub phantom_dims: [usize; 3],
    /// Phantom voxel size D,H,W in mm (each case scales it by 0.8–1.25).
    #[arg(long, value_parser = unimiss_data::manifest::parse_spacing, default_value = "2.5,1.3,1.3")]
    pub spacing: [f64; 3],
    /// Stop after the floors (phantoms, kNN on pixels and on the random init): does this
    /// benchmark leave room for a gain?
    #[arg(long)]
    pub floors_only: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
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

/// The newest checkpoint's weights of a pretraining run.
fn latest_weights(run: &Path) -> anyhow::Result<PathBuf> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("latest")).with_context(|| format!("reading {}", ck.join("latest").display()))?;
    let w = ck.join(name.trim()).join("weights.safetensors");
    anyhow::ensure!(w.exists(), "{} does not exist", w.display());
    Ok(w)
}

/// The pretraining configuration of one seed: the small-batch recipe at the bench's sizes.
fn pretrain_config(args: &Args, ph: &Path, out: &Path, seed: u64) -> anyhow::Result<TrainConfig> {
    let mut c = TrainConfig::small_batch();
    c.output = out.to_path_buf();
    c.device = args.device.clone();
    c.seed = seed;
    c.data.manifest = ph.join("pretrain.tsv");
    c.model.img_size_2d = args.size_2d;
    c.model.img_size_3d = args.size_3d;
    c.optim.epochs = args.pretrain_epochs;
    c.checkpoint.every_epochs = 0;
    c.checkpoint.keep = 1;
    c.eval.manifest = ph.join("eval_finding.tsv");
    c.eval.every_epochs = 1;
    unimiss_runtime::overrides::apply_overrides(&mut c, &args.pretrain_set)?;
    c.validate()?;
    Ok(c)
}

/// `(row name, accuracy)` for every label and modality, e.g. `knn2d_finding`.
fn knn_rows(sets: &[(&str, EvalSet)], score: &dyn Fn(&EvalSet) -> anyhow::Result<Vec<GroupScore>>) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for (label, set) in sets {
        for g in score(set)? {
            out.push((format!("knn{}_{label}", g.modality.name()), g.knn.accuracy));
        }
    }
    Ok(out)
}

/// The test metric (AUC, or mean Dice for segmentation) and, for classification, the test
/// accuracy of one fine-tuning run.
#[allow(clippy::too_many_arguments)]
fn finetune_metric(task: Task, ph: &Path, labels: f64, weights: Option<&Path>, out: &Path, args: &Args, seed: u64, dev: &Device) -> anyhow::Result<(Option<f64>, Option<f64>)> {
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
    let accuracy = match &rep {
        unimiss_tasks::evaluate::EvalReport::Classification(c) => Some(c.summary.metrics.accuracy),
        unimiss_tasks::evaluate::EvalReport::Segmentation(_) => None,
    };
    Ok((rep.headline(), accuracy))
}

/// Per seed: phantoms, floors, pretraining, kNN, fine-tuning.
struct Bench<'a> {
    args: &'a Args,
    dev: Device,
    st: Stages,
    rows: Vec<Row>,
    curves: Vec<Value>,
}

impl Bench<'_> {
    fn seed(&mut self, seed: u64) -> anyhow::Result<()> {
        let args = self.args;
        let base = args.dir.join(format!("seed-{seed}"));
        let ph = base.join("phantoms");
        self.st.start(&format!("seed {seed}: {} phantoms {:?}", args.cases, args.phantom_dims));
        let pc = PhantomConfig { count: args.cases, seed, dims: args.phantom_dims, size_2d: args.size_2d.max(args.phantom_dims[2]), spacing: args.spacing };
        let summary = generate(&ph, &pc, &mut |_, _| ())?;
        self.st.done += 1;

        self.st.start(&format!("seed {seed}: floors (kNN on pixels and on the random init)"));
        let cfg = pretrain_config(args, &ph, &base.join("pretrain"), seed)?;
        let params = cfg.eval.params();
        let mut sets = Vec::new();
        for label in LABELS {
            sets.push((label, EvalSet::load(&ph.join(format!("eval_{label}.tsv")), args.size_2d, args.size_3d, &self.dev)?));
        }
        let mcfg = unimiss_ssl::trainer::mit_config(&cfg)?;
        let vm = VarMap::new();
        let random = Mit::new(&mcfg, SeededVarMap::var_builder(&vm, seed, DType::F32, &self.dev).pp("backbone"))?;
        let pixels = knn_rows(&sets, &|s| Ok(s.evaluate_pixels(&params)?))?;
        let random_knn = knn_rows(&sets, &|s| Ok(s.evaluate(&random, &params)?))?;
        for ((name, px), (_, r)) in pixels.iter().zip(&random_knn) {
            eprintln!("bench transfer: seed {seed} {name}: pixels {px:.3}, random init {r:.3}");
            let rw = row(&mut self.rows, name, 1.0, "accuracy");
            rw.floor_pixels.push(Some(*px));
            rw.random.push(Some(*r));
        }
        self.st.done += 1;
        if args.floors_only {
            return Ok(());
        }

        self.st.start(&format!("seed {seed}: pretraining {} epochs on {} cases × 2 modalities", args.pretrain_epochs, summary.train));
        let _ = std::fs::remove_dir_all(&cfg.output);
        let mut trainer = Trainer::new(cfg.clone(), None, None)?;
        trainer.progress = false;
        trainer.run()?;
        let knn_curve: Vec<Value> = std::fs::read_to_string(cfg.output.join("log.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "knn")
            .collect();
        self.curves.push(json!({"seed": seed, "knn": knn_curve}));
        self.st.done += 1;

        self.st.start(&format!("seed {seed}: kNN of the pretrained teacher"));
        let weights = latest_weights(&cfg.output)?;
        let teacher = checkpoint::load(&weights, Which::Teacher)?.build(&mcfg, KeyPolicy::Exact, &self.dev)?.backbone;
        for (name, p) in knn_rows(&sets, &|s| Ok(s.evaluate(&teacher, &params)?))? {
            row(&mut self.rows, &name, 1.0, "accuracy").pretrained.push(Some(p));
        }
        self.st.done += 1;

        for &task in &args.tasks {
            for labels in [0.1, 1.0] {
                for (init, w) in [("pretrained", Some(weights.as_path())), ("random", None)] {
                    self.st.start(&format!("seed {seed}: finetune {task} with {:.0}% labels from {init}", labels * 100.0));
                    let out = base.join(format!("{task}-{}pct-{init}", (labels * 100.0) as u32));
                    let (v, acc) = finetune_metric(task, &ph, labels, w, &out, args, seed, &self.dev)?;
                    let seg = task.is_segmentation();
                    let rw = row(&mut self.rows, task.name(), labels, if seg { "dice" } else { "auc" });
                    if init == "pretrained" { rw.pretrained.push(v) } else { rw.random.push(v) }
                    if !seg && init == "random" && labels == 1.0 {
                        // the supervised ceiling of this modality's finding label
                        let knn = format!("knn{}_finding", task.modality().name());
                        row(&mut self.rows, &knn, 1.0, "accuracy").ceiling.push(acc);
                    }
                    self.st.done += 1;
                }
            }
        }
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    let per_seed = if args.floors_only { 2 } else { 4 + args.tasks.len() * 4 };
    let st = Stages { total: per_seed * args.seeds.len(), done: 0, t0: Instant::now() };
    let mut b = Bench { args: &args, dev, st, rows: Vec::new(), curves: Vec::new() };
    for &seed in &args.seeds {
        b.seed(seed)?;
    }
    let secs = b.st.t0.elapsed().as_secs_f64();
    let header = format!(
        "bench transfer: seeds {:?}, {} phantom cases {:?}, 2D {}², 3D {:?}; pretraining {} epochs (small-batch recipe{}), fine-tuning {} epochs; {secs:.0} s on {}",
        args.seeds,
        args.cases,
        args.phantom_dims,
        args.size_2d,
        args.size_3d,
        args.pretrain_epochs,
        if args.pretrain_set.is_empty() { String::new() } else { format!(" with {}", args.pretrain_set.join(" ")) },
        args.finetune_epochs,
        args.device
    );
    report::print(&header, &b.rows);
    if let Some(j) = &args.json {
        let v = json!({
            "seeds": args.seeds, "results": b.rows.iter().map(Row::json).collect::<Vec<_>>(), "cases": args.cases,
            "pretrain_epochs": args.pretrain_epochs, "pretrain_set": args.pretrain_set, "finetune_epochs": args.finetune_epochs,
            "size_2d": args.size_2d, "size_3d": args.size_3d, "phantom_dims": args.phantom_dims, "spacing": args.spacing,
            "device": args.device, "seconds": secs, "knn_curves": b.curves,
        });
        std::fs::write(j, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(())
}
