//! `cargo xtask predict --task … --weights FILE --input IMAGE_OR_DIR --output DIR`: class
//! probabilities of every input as `DIR/predictions.csv`; for seg3d/seg2d a NIfTI label map with
//! the input's shape, affine and spacing, or one PNG mask per label at the image's size, per
//! input (sliding window at native resolution; listed in the CSV). In a folder, masks stored
//! beside their images (`case_000_seg.nii.gz`, `case_000_liver.png`) are skipped.

use std::path::PathBuf;

use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub task: Task,
    /// A task weight file written by `finetune`.
    #[arg(long)]
    pub weights: PathBuf,
    /// An image/volume, or a directory of them (masks named IMAGE_SUFFIX beside their image are skipped).
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
    let t0 = std::time::Instant::now();
    let s = unimiss_tasks::evaluate::predict(&args.weights, &args.input, &args.output, &dev)?;
    if !s.skipped_masks.is_empty() {
        let names: Vec<String> = s.skipped_masks.iter().take(3).filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        let more = if s.skipped_masks.len() > 3 { ", …" } else { "" };
        eprintln!("predict: skipped {} masks beside their images ({}{more})", s.skipped_masks.len(), names.join(", "));
    }
    println!("predict {}: {} inputs in {:.1} s -> {}", args.task, s.predicted, t0.elapsed().as_secs_f64(), s.csv.display());
    Ok(())
}
