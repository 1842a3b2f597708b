//! `cargo xtask preview --manifest FILE --out grid.png`: both augmented views of a few samples
//! (2D images; middle slices of 3D crops) in one PNG.

use std::path::PathBuf;

use unimiss_data::{Manifest, Modality};

#[derive(clap::Args)]
pub struct Args {
    /// TSV manifest (default: the shipped sample).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "preview.png")]
    out: PathBuf,
    /// Samples per modality.
    #[arg(long, default_value_t = 3)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// 2D view side (official 224).
    #[arg(long, default_value_t = 224)]
    size_2d: usize,
    /// 3D view size D,H,W (official 16,96,96).
    #[arg(long, default_value = "16,96,96")]
    size_3d: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = match args.manifest {
        Some(m) => m,
        None => super::data_files::repo_root().join("data-manifests/sample.tsv"),
    };
    let m = Manifest::read(&manifest)?;
    let size_3d = super::data_files::parse_size3(&args.size_3d)?;
    let mut picked = Vec::new();
    for modality in [Modality::Image2d, Modality::Volume3d] {
        picked.extend(m.of_modality(modality).into_iter().take(args.count));
    }
    unimiss_data::preview::write_preview(&args.out, &picked, args.size_2d, size_3d, args.seed)?;
    eprintln!("wrote {} ({} samples, view 0 | view 1 per row)", args.out.display(), picked.len());
    Ok(())
}
