//! `cargo xtask extract-subvolumes --input DIR_OR_FILE --output DIR`: the official sub-volume
//! protocol (reference §4.3): depth tiles of 24, stride 4, last tile aligned to the end, 10%
//! in-plane border crop, int16, header geometry kept, `<stem>_dep<k>.nii.gz`. Never resamples.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_data::subvolumes::{extract_subvolumes, Protocol};

use super::data_files::{nifti_inputs, Progress};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    /// UniMiSS: stride 4, always crop 10% in-plane.
    Unimiss,
    /// UniMiSS+: stride 12, crop only when wider than 320, skip existing outputs.
    UnimissPlus,
}

#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file or a folder of them (searched recursively); resample them first
    /// (`cargo xtask resample --spacing 1,1,3`).
    #[arg(long)]
    input: PathBuf,
    /// Output folder; tiles are written flat into it.
    #[arg(long)]
    output: PathBuf,
    /// Which official script to reproduce.
    #[arg(long, value_enum, default_value = "unimiss")]
    protocol: Which,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let protocol = match args.protocol {
        Which::Unimiss => Protocol::UniMiss,
        Which::UnimissPlus => Protocol::UniMissPlus,
    };
    let inputs = nifti_inputs(&args.input)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut progress = Progress::new("extract-subvolumes", inputs.len());
    let mut tiles = 0;
    for input in &inputs {
        let written = extract_subvolumes(input, &args.output, protocol)?;
        tiles += written.len();
        let name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if written.is_empty() {
            progress.step(&format!("{name}: no tile (20 slices or fewer, as officially)"));
        } else {
            progress.step(&format!("{name}: {} tiles", written.len()));
        }
    }
    progress.finish();
    eprintln!("{tiles} sub-volumes written to {}", args.output.display());
    Ok(())
}
