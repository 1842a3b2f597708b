//! `cargo xtask finetune --task cls3d|seg3d|cls2d|seg2d --train M --val M [--pretrained FILE]
//! [--config FILE] --output DIR`: fine-tunes a MiT on a labelled manifest; writes
//! `DIR/best.safetensors`, `DIR/last.safetensors` (+ optimizer state), `DIR/log.jsonl` and
//! `DIR/curves.png`.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::finetune::{FinetuneJob, finetune};
use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    /// cls3d, seg3d, cls2d or seg2d.
    #[arg(long)]
    pub task: Task,
    /// Labelled training manifest.
    #[arg(long)]
    pub train: PathBuf,
    /// Labelled validation manifest (best checkpoint and early stopping).
    #[arg(long)]
    pub val: PathBuf,
    /// Pretrained weights: our pretraining checkpoint, an exported backbone or an official .pth.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// TOML file overriding the task preset, or a preset name (`official`, default; `ci`).
    #[arg(long)]
    pub config: Option<String>,
    /// Output directory.
    #[arg(long)]
    pub output: PathBuf,
    /// Continue an interrupted run from DIR/state.json.
    #[arg(long)]
    pub resume: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Override the number of epochs of the preset.
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// `cpu` or `cuda:N`.
pub fn device(spec: &str) -> anyhow::Result<candle::Device> {
    match spec {
        "cpu" => Ok(candle::Device::Cpu),
        s => {
            let n: usize = s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("device {s:?}: expected cpu or cuda:N"))?;
            Ok(candle::Device::new_cuda(n)?)
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = FinetuneConfig::resolve(args.task, args.config.as_deref())?;
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    let job = FinetuneJob {
        task: args.task,
        train: args.train,
        val: args.val,
        pretrained: args.pretrained,
        config,
        output: args.output.clone(),
        resume: args.resume,
    };
    let dev = device(&args.device)?;
    let out = finetune(&job, &dev, &mut |line| eprintln!("finetune {}: {line}", job.task))?;
    println!(
        "finetune {}: best validation metric {:.4} at epoch {} ({} epochs{}) -> {}",
        job.task,
        out.best_metric,
        out.best_epoch + 1,
        out.epochs_run,
        if out.stopped_early { ", stopped early" } else { "" },
        args.output.join("best.safetensors").display()
    );
    Ok(())
}
