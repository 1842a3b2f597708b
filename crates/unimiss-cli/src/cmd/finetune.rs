//! `unimiss finetune --task cls3d|seg3d|cls2d|seg2d --train M --val M [--pretrained FILE]
//! [--config PRESET|FILE] [--set KEY=VALUE …] [--seed N] [--device cpu|cuda:N] --output DIR`, or
//! `unimiss finetune --resume DIR`: fine-tunes a MiT on a labelled manifest with the training
//! runtime of `unimiss-ssl`; the run directory holds `config.toml`, `log.jsonl`,
//! `checkpoints/`, `best.safetensors` and `curves.png`. The flags mean what they mean for
//! `pretrain`.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::finetune::{FinetuneJob, finetune};
use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    /// cls3d, seg3d, cls2d or seg2d (not needed with --resume).
    #[arg(long, required_unless_present = "resume")]
    pub task: Option<Task>,
    /// Labelled training manifest (not needed with --resume).
    #[arg(long, required_unless_present = "resume")]
    pub train: Option<PathBuf>,
    /// Labelled validation manifest: best weights and early stopping (not needed with --resume).
    #[arg(long, required_unless_present = "resume")]
    pub val: Option<PathBuf>,
    /// Pretrained weights: a pretraining run directory (its newest checkpoint), a checkpoint
    /// directory, an exported backbone or an official .pth.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// A preset name (`official`, default; `ci`) or a TOML file overriding the task preset.
    #[arg(long)]
    pub config: Option<String>,
    /// Override any field of the configuration: --set lr=1e-4 --set batch_size=2
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run directory (required unless --resume).
    #[arg(long, required_unless_present = "resume")]
    pub output: Option<PathBuf>,
    /// Continue a run from its directory (newest checkpoint) or one checkpoint directory, with
    /// the stored job and configuration; it keeps writing into that run directory. A run stopped
    /// before its first checkpoint starts again from step 0.
    #[arg(long, conflicts_with_all = ["task", "train", "val", "pretrained", "config", "output"])]
    pub resume: Option<PathBuf>,
    /// Seed of the initialisation and of the data order/augmentations.
    #[arg(long)]
    pub seed: Option<u64>,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Number of epochs (with --resume: extend or shorten the stored run; a decaying learning-rate
    /// schedule continues from the rate of the last step done and decays to 0 at the new end).
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// The job these arguments describe.
pub fn resolve_job(args: &Args) -> anyhow::Result<FinetuneJob> {
    let mut job = match &args.resume {
        // A run stopped before its first checkpoint starts again from step 0 (its job.json).
        Some(dir) => match FinetuneJob::unfinished(dir).with_context(|| format!("--resume {}", dir.display()))? {
            Some(job) => job,
            None => FinetuneJob::from_checkpoint(dir).with_context(|| format!("--resume {}", dir.display()))?,
        },
        None => {
            let (Some(task), Some(train), Some(val), Some(output)) = (args.task, &args.train, &args.val, &args.output) else {
                anyhow::bail!("--task, --train, --val and --output are required unless --resume is given");
            };
            FinetuneJob {
                task,
                train: train.clone(),
                val: val.clone(),
                pretrained: args.pretrained.clone(),
                config: FinetuneConfig::resolve(task, args.config.as_deref())?,
                output: output.clone(),
                resume: false,
            }
        }
    };
    if let Some(e) = args.epochs {
        job.config.epochs = e;
    }
    if let Some(s) = args.seed {
        job.config.seed = s;
    }
    job.config.apply_overrides(&args.set)?;
    if let Some(p) = &job.pretrained {
        // Checked now, not after the data checks: a directory names its newest checkpoint.
        unimiss_tasks::nets::pretrained_file(p).with_context(|| format!("--pretrained {}", p.display()))?;
    }
    job.config.validate()?;
    Ok(job)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut job = resolve_job(&args)?;
    if !job.resume {
        // One run per directory (unimiss_runtime::rundir): a new run never writes into another's.
        let claimed = unimiss_runtime::rundir::claim(&job.output, unimiss_runtime::rundir::Claim::New)?;
        if let Some(note) = claimed.note() {
            eprintln!("finetune: {note}");
        }
        job.output = claimed.dir;
    }
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    eprintln!(
        "finetune {}: {} epochs, batch {}, lr {:e}, on {} → {}",
        job.task,
        job.config.epochs,
        job.config.batch_size,
        job.config.lr,
        args.device,
        job.output.display()
    );
    let out = finetune(&job, &dev, &mut |line| eprintln!("finetune {}: {line}", job.task))?;
    println!(
        "finetune {}: best validation metric {:.4} at epoch {} ({} epochs{}) -> {}",
        job.task,
        out.best_metric,
        out.best_epoch + 1,
        out.epochs_run,
        if out.stopped_early { ", stopped early" } else { "" },
        job.output.join("best.safetensors").display()
    );
    Ok(())
}
