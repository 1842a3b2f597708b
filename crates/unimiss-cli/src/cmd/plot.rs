//! `cargo xtask plot RUN_DIR`: draw a run's `log.jsonl`: `loss.png` for a pretraining run,
//! `curves.png` for a fine-tuning run (or `--out`).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory holding log.jsonl (pretraining or fine-tuning), or the log file itself.
    run: PathBuf,
    /// Output PNG (default: RUN_DIR/loss.png for pretraining, RUN_DIR/curves.png for fine-tuning).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = unimiss_ssl::plot::plot_run(&args.run, args.out.as_deref())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
