//! `cargo xtask evaluate --task … --weights FILE --test M --json OUT`: metrics of fine-tuned
//! weights on a labelled manifest (aggregates and per-case rows) as JSON. Classification prints
//! accuracy, AUC, AP, sensitivity and specificity (with a warning when AUC is undefined);
//! segmentation prints Dice and HD95 per class and their means.

use std::path::{Path, PathBuf};

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

/// `--json PATH` can be written: its folder exists and takes a file (probed with an empty
/// temporary file, removed at once), and PATH is not a folder.
fn check_writable(json: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!json.is_dir(), "--json {}: is a directory; give a file name such as {}", json.display(), json.join("test.json").display());
    let dir = match json.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    anyhow::ensure!(dir.is_dir(), "--json {}: the folder {} does not exist; create it first (nothing was evaluated)", json.display(), dir.display());
    let probe = dir.join(format!(".unimiss-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("--json {}: cannot write into {} (nothing was evaluated)", json.display(), dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    // Everything that can be checked is checked before the evaluation runs.
    unimiss_tasks::weights::expect_task(&args.weights, args.task)?;
    check_writable(&args.json)?;
    let report = unimiss_tasks::evaluate::evaluate(&args.weights, &args.test, &dev)?;
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", args.json.display()))?;
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    println!("{report}");
    println!("-> {}", args.json.display());
    Ok(())
}
