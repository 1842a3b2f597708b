//! `cargo xtask resample --input DIR_OR_FILE --output DIR --spacing 1,1,3`: trilinear
//! resampling of NIfTI volumes to a target voxel size (x, y, z in mm).

use std::path::PathBuf;

use anyhow::Context;
use unimiss_data::nifti::{write_nifti, Datatype, OutputType};
use unimiss_data::resample::resample_to_spacing;

use super::data_files::{nifti_inputs, Progress};

#[derive(clap::Args)]
pub struct Args {
    /// A NIfTI file or a folder of them (searched recursively).
    #[arg(long)]
    input: PathBuf,
    /// Output folder; files keep their names.
    #[arg(long)]
    output: PathBuf,
    /// Target spacing sx,sy,sz in mm (the official preprocessing uses 1,1,3).
    #[arg(long, default_value = "1,1,3")]
    spacing: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let target = unimiss_data::manifest::parse_spacing(&args.spacing).map_err(anyhow::Error::msg)?;
    let inputs = nifti_inputs(&args.input)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut progress = Progress::new("resample", inputs.len());
    for input in &inputs {
        let img = unimiss_data::read_nifti_image(input)?;
        let out = resample_to_spacing(&img, target)?;
        let ty = match img.header.datatype {
            Datatype::F32 | Datatype::F64 => OutputType::Float32,
            _ => OutputType::Int16,
        };
        let name = input.file_name().context("input has no file name")?;
        let dest = args.output.join(name);
        write_nifti(&dest, &out.header, out.header.dims, &out.data, ty)?;
        progress.step(&format!("{} {:?} -> {:?}", name.to_string_lossy(), img.header.dims, out.header.dims));
    }
    progress.finish();
    Ok(())
}
