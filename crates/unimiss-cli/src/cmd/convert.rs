//! `cargo xtask convert --from X.pth --to Y.safetensors [--which teacher|student]`: an official
//! checkpoint (or any state_dict file) to safetensors, keys normalised to `backbone.*` / `head.*`.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_model::checkpoint::{self, Which};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to read: official `.pth` (training checkpoint or bare state_dict) or safetensors.
    #[arg(long)]
    pub from: PathBuf,
    /// Safetensors file to write.
    #[arg(long)]
    pub to: PathBuf,
    /// State_dict of a training checkpoint to read.
    #[arg(long, default_value = "teacher")]
    pub which: Which,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sd = checkpoint::load(&args.from, args.which).with_context(|| format!("reading {}", args.from.display()))?;
    let params: usize = sd.tensors().values().map(|t| t.elem_count()).sum();
    sd.save_safetensors(&args.to).with_context(|| format!("writing {}", args.to.display()))?;
    let head = match sd.head_config()? {
        Some(h) => format!(", head {}→{}", h.in_dim, h.out_dim),
        None => ", no head".to_string(),
    };
    println!(
        "convert: {} tensors ({params} values{head}) from `{}` of {} -> {}",
        sd.len(),
        args.which,
        args.from.display(),
        args.to.display()
    );
    Ok(())
}
