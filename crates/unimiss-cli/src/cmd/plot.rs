//! `cargo xtask plot RUN_DIR [RUN_DIR …]`: draw a run's `log.jsonl` (`loss.png` for a pretraining
//! run, `curves.png` for a fine-tuning run, or `--out`), or several runs of one kind on one
//! figure to compare them (`--out`, default `compare.png`).

use std::path::PathBuf;

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

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = match args.runs.as_slice() {
        [one] => unimiss_ssl::plot::plot_run(one, args.out.as_deref())?,
        runs => {
            let out = args.out.unwrap_or_else(|| PathBuf::from("compare.png"));
            unimiss_ssl::plot::plot_compare(runs, &out)?;
            out
        }
    };
    eprintln!("wrote {}", out.display());
    Ok(())
}
