//! `cargo xtask plot RUN_DIR [RUN_DIR …]`: draw a run's `log.jsonl` (`loss.png` for a pretraining
//! run, `curves.png` for a fine-tuning run, or `--out`), or several runs of one kind on one
//! figure to compare them (`--out`, default `compare.png`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use unimiss_runtime::plot::log_of;

#[derive(clap::Args)]
pub struct Args {
    /// Run directories holding log.jsonl (pretraining or fine-tuning), or the log files
    /// themselves; two or more are drawn on one figure, one colour per run.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Output PNG (one run: RUN_DIR/loss.png for pretraining, RUN_DIR/curves.png for
    /// fine-tuning; several: compare.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What a run's log is: fine-tuning (epoch records with a validation metric, or step records
/// without the pretraining `batch` field: a run stopped in its first epoch) or pretraining.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunKind {
    Pretraining,
    Finetuning,
}

fn kind_of(run: &Path) -> anyhow::Result<RunKind> {
    let log = log_of(run);
    let text = std::fs::read_to_string(&log).map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
    let finetuning = text.lines().any(|l| l.contains("\"val_metric\"") || l.contains("\"train_loss\""))
        || (text.contains("\"kind\":\"step\"") && !text.contains("\"batch\""));
    Ok(if finetuning { RunKind::Finetuning } else { RunKind::Pretraining })
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Pretraining => "pretraining",
            RunKind::Finetuning => "fine-tuning",
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = match args.runs.as_slice() {
        [one] => {
            let log = log_of(one);
            let dir = log.parent().map(Path::to_path_buf).unwrap_or_default();
            let kind = kind_of(one)?;
            let out = args.out.clone().unwrap_or_else(|| {
                dir.join(match kind {
                    RunKind::Pretraining => "loss.png",
                    RunKind::Finetuning => "curves.png",
                })
            });
            match kind {
                RunKind::Pretraining => unimiss_ssl::plot::plot_log(&log, &out)?,
                RunKind::Finetuning => unimiss_tasks::finetune::curves::plot_task_log(&log, &out)?,
            }
            out
        }
        runs => {
            let out = args.out.unwrap_or_else(|| PathBuf::from("compare.png"));
            let kinds = runs.iter().map(|r| kind_of(r)).collect::<anyhow::Result<Vec<_>>>()?;
            if kinds.iter().any(|&k| k != kinds[0]) {
                let which: Vec<String> = runs.iter().zip(&kinds).map(|(r, k)| format!("{} ({})", r.display(), k.name())).collect();
                bail!("plot {}: cannot compare pretraining and fine-tuning runs on one figure: {}", out.display(), which.join(", "));
            }
            match kinds[0] {
                RunKind::Pretraining => unimiss_ssl::plot::plot_compare(runs, &out)?,
                RunKind::Finetuning => unimiss_tasks::finetune::curves::plot_compare(runs, &out)?,
            }
            out
        }
    };
    eprintln!("wrote {}", out.display());
    Ok(())
}
