//! `cargo xtask predict --task … --weights FILE --input IMAGE_OR_DIR --output DIR`: class
//! probabilities of every input as `DIR/predictions.csv`; for seg3d/seg2d a NIfTI label map with
//! the input's affine and spacing, or one PNG mask per label, per input (listed in the CSV).

use std::path::PathBuf;

use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub task: Task,
    /// A task weight file written by `finetune`.
    #[arg(long)]
    pub weights: PathBuf,
    /// An image/volume, or a directory of them.
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub output: PathBuf,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_ssl::trainer::parse_device(&args.device)?;
    let (_, meta) = unimiss_tasks::ckpt::load_weights(&args.weights, &candle::Device::Cpu)?;
    anyhow::ensure!(meta.task == args.task, "{}: weights are for {}, not {}", args.weights.display(), meta.task, args.task);
    let csv = unimiss_tasks::evaluate::predict(&args.weights, &args.input, &args.output, &dev)?;
    println!("predict {}: {}", args.task, csv.display());
    Ok(())
}
