//! `cargo xtask preview [--run RUN_DIR] [--manifest FILE] --out grid.png`: both augmented views of
//! a few samples (2D images; middle slices of 3D crops, one grey window per sample) in one PNG,
//! at the sizes of the run that trains on them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use unimiss_data::{Manifest, Modality};

#[derive(clap::Args)]
pub struct Args {
    /// TSV manifest [default: the --run's manifest (pretraining), else the shipped sample].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// A run directory whose sizes (and, for pretraining, manifest) to preview with.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "preview.png")]
    out: PathBuf,
    /// Samples per modality.
    #[arg(long, default_value_t = 3)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// 2D view side [default: the --run's, else the sample preset's for the shipped sample, else 224].
    #[arg(long)]
    size_2d: Option<usize>,
    /// 3D view size D,H,W [default: the --run's, else the sample preset's for the shipped sample, else 16,96,96].
    #[arg(long)]
    size_3d: Option<String>,
}

/// Sizes and manifest a run directory's `config.toml` names: pretraining (`model.img_size_*`,
/// `data.manifest`) or fine-tuning (`input_2d`, `input_3d`).
fn run_sizes(run: &Path) -> anyhow::Result<(usize, [usize; 3], Option<PathBuf>)> {
    let p = run.join("config.toml");
    let text = std::fs::read_to_string(&p).with_context(|| format!("--run {}: reading {}", run.display(), p.display()))?;
    let v: toml::Table = text.parse().with_context(|| format!("parsing {}", p.display()))?;
    let size3 = |x: Option<&toml::Value>| -> Option<[usize; 3]> {
        let a = x?.as_array()?;
        let v: Vec<usize> = a.iter().filter_map(|n| n.as_integer().and_then(|n| usize::try_from(n).ok())).collect();
        v.try_into().ok()
    };
    let int = |x: Option<&toml::Value>| x.and_then(toml::Value::as_integer).and_then(|n| usize::try_from(n).ok());
    if let Some(model) = v.get("model") {
        let manifest = v.get("data").and_then(|d| d.get("manifest")).and_then(toml::Value::as_str).map(PathBuf::from);
        if let (Some(s2), Some(s3)) = (int(model.get("img_size_2d")), size3(model.get("img_size_3d"))) {
            return Ok((s2, s3, manifest));
        }
    }
    match (int(v.get("input_2d")), size3(v.get("input_3d"))) {
        (Some(s2), Some(s3)) => Ok((s2, s3, None)),
        _ => anyhow::bail!("{}: neither a pretraining nor a fine-tuning configuration (no image sizes)", p.display()),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let from_run = args.run.as_deref().map(run_sizes).transpose()?;
    let sample = crate::args::repo_root().join("data-manifests/sample.tsv");
    let (manifest, shipped) = match (&args.manifest, &from_run) {
        (Some(m), _) => (m.clone(), false),
        (None, Some((_, _, Some(m)))) => (m.clone(), false),
        (None, _) => (sample, true),
    };
    let preset = unimiss_ssl::TrainConfig::sample();
    let (def2, def3, why) = match &from_run {
        Some((s2, s3, _)) => (*s2, *s3, "the run's"),
        None if shipped => (preset.model.img_size_2d, preset.model.img_size_3d, "the sample preset's"),
        None => (224, [16, 96, 96], "the paper's"),
    };
    let size_2d = args.size_2d.unwrap_or(def2);
    let size_3d = match &args.size_3d {
        Some(s) => crate::args::parse_size3(s)?,
        None => def3,
    };
    let m = Manifest::read(&manifest)?;
    let mut picked = Vec::new();
    for modality in [Modality::Image2d, Modality::Volume3d] {
        picked.extend(m.of_modality(modality).into_iter().take(args.count));
    }
    unimiss_data::preview::write_preview(&args.out, &picked, size_2d, size_3d, args.seed)?;
    eprintln!(
        "wrote {} ({} samples of {}, view 0 | view 1 per row, 2D {size_2d}, 3D {size_3d:?}; defaults: {why} sizes)",
        args.out.display(),
        picked.len(),
        manifest.display()
    );
    Ok(())
}
