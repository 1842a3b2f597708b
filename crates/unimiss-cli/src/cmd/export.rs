//! `cargo xtask export --run DIR --out backbone.safetensors`: the teacher backbone of a run in
//! the official key layout (`backbone.…`), loadable by `unimiss_model::checkpoint` and the
//! downstream tasks.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory (newest checkpoint) or one checkpoint directory.
    #[arg(long)]
    run: PathBuf,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
    /// Include the projection head (`head.*`).
    #[arg(long)]
    with_head: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let n = unimiss_ssl::export::export_teacher(&args.run, &args.out, args.with_head)?;
    eprintln!("wrote {n} tensors to {}", args.out.display());
    Ok(())
}
