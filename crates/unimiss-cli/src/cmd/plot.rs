//! `cargo xtask plot RUN_DIR`: render `RUN_DIR/log.jsonl` to `RUN_DIR/loss.png` (or `--out`).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory holding log.jsonl (or the log file itself).
    run: PathBuf,
    /// Output PNG (default RUN_DIR/loss.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (log, dir) = if args.run.is_file() {
        (args.run.clone(), args.run.parent().map(PathBuf::from).unwrap_or_default())
    } else {
        (args.run.join("log.jsonl"), args.run.clone())
    };
    let out = args.out.unwrap_or_else(|| dir.join("loss.png"));
    unimiss_ssl::plot::plot_log(&log, &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
