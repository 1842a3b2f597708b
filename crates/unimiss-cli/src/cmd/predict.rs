//! `cargo xtask predict --task … --weights FILE --input IMAGE_OR_DIR --output DIR [--overlay]
//! [--overwrite]`: class probabilities of every input as `DIR/predictions.csv`; for seg3d/seg2d a
//! NIfTI label map `<name>_pred.nii.gz` with the input's shape, affine and spacing, or one PNG
//! mask `<name>_pred_<label>.png` per label at the image's size, per input (sliding window at
//! native resolution; listed in the CSV), and with `--overlay` a picture of the masks over the
//! image, `<name>_pred_overlay.png`. In a folder, masks stored beside their images
//! (`case_000_seg.nii.gz`, `case_000_liver.png`) are skipped. No existing file is replaced
//! without `--overwrite`, and the weights' task is checked before any work.

use std::path::PathBuf;

use unimiss_tasks::predict::PredictOptions;
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
    /// Output directory (may be the input folder: prediction files are named `<name>_pred…`).
    #[arg(long)]
    pub output: PathBuf,
    /// Segmentation: also draw the predicted masks over each image (`<name>_pred_overlay.png`).
    #[arg(long)]
    pub overlay: bool,
    /// Replace prediction files that already exist (otherwise predict stops before any work).
    #[arg(long)]
    pub overwrite: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    unimiss_tasks::weights::expect_task(&args.weights, args.task)?;
    let t0 = std::time::Instant::now();
    let opts = PredictOptions { overwrite: args.overwrite, overlay: args.overlay };
    let s = unimiss_tasks::predict::predict(&args.weights, &args.input, &args.output, &opts, &dev)?;
    if !s.skipped_masks.is_empty() {
        let names: Vec<String> = s.skipped_masks.iter().take(3).filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        let more = if s.skipped_masks.len() > 3 { ", …" } else { "" };
        eprintln!("predict: skipped {} masks beside their images ({}{more})", s.skipped_masks.len(), names.join(", "));
    }
    println!(
        "predict {}: {} inputs in {:.1} s, {} files written -> {}",
        args.task,
        s.predicted,
        t0.elapsed().as_secs_f64(),
        s.written.len(),
        s.csv.display()
    );
    Ok(())
}
