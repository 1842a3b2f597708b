//! `cargo xtask evaluate --task … --weights FILE --test M --json OUT`: metrics of fine-tuned
//! weights on a labelled manifest (aggregates and per-case rows) as JSON.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    /// The task the weights were fine-tuned for (checked against the weight file).
    #[arg(long)]
    pub task: Task,
    /// A task weight file written by `finetune` (e.g. DIR/best.safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// Labelled test manifest.
    #[arg(long)]
    pub test: PathBuf,
    /// JSON report to write.
    #[arg(long)]
    pub json: PathBuf,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_ssl::trainer::parse_device(&args.device)?;
    let report = unimiss_tasks::evaluate::evaluate(&args.weights, &args.test, &dev)?;
    let task = report["task"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(task == args.task.name(), "{}: weights are for {task}, not {}", args.weights.display(), args.task);
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", args.json.display()))?;
    let f = |k: &str| report[k].as_f64().map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into());
    println!(
        "evaluate {}: accuracy {}, auc {}, ap {}, sensitivity {}, specificity {} -> {}",
        args.task,
        f("accuracy"),
        f("auc"),
        f("ap"),
        f("sensitivity"),
        f("specificity"),
        args.json.display()
    );
    Ok(())
}
