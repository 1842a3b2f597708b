//! `cargo xtask bench data [--json FILE]`: samples/s of the 2D and 3D pipelines (decode + both
//! augmented views + batch tensors, through `PairLoader`) at the official sizes, by worker
//! thread count, on the real samples in `../shared/data` (or `$UNIMISS_DATA`; the shipped
//! sample when absent), plus NIfTI decode and inflate MB/s and PNG decode rate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use unimiss_data::{LoaderConfig, Manifest, Modality, PairLoader, Sample};

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Worker thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Samples processed per measurement (whole epochs, repeated).
    #[arg(long, default_value_t = 48)]
    samples: usize,
    /// Data folder with cxr/ and ct-subvolumes/ (default: $UNIMISS_DATA or ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Official pipeline (torchvision 0.8 semantics on PIL + nibabel + batchgenerators), samples/s
/// on ONE core of this machine kind, measured side by side with this benchmark (docs/data.md).
/// `None` where it was not measured.
const PYTHON_PER_CORE: [(&str, Option<f64>); 2] = [("2d", None), ("3d", None)];

fn list(dir: &Path, m: Modality) -> anyhow::Result<Vec<Sample>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| Modality::from_path(p) == m)
        .collect();
    v.sort();
    Ok(v.into_iter().map(|path| Sample { path, modality: m, label: None, spacing: None }).collect())
}

fn datasets(args: &Args) -> anyhow::Result<(String, Vec<Sample>, Vec<Sample>)> {
    let root = args.data.clone().or_else(|| std::env::var_os("UNIMISS_DATA").map(PathBuf::from)).unwrap_or_else(|| {
        crate::cmd::data_files::repo_root().join("../shared/data")
    });
    if root.join("cxr").is_dir() && root.join("ct-subvolumes").is_dir() {
        return Ok((
            root.display().to_string(),
            list(&root.join("cxr"), Modality::Image2d)?,
            list(&root.join("ct-subvolumes"), Modality::Volume3d)?,
        ));
    }
    let tsv = crate::cmd::data_files::repo_root().join("data-manifests/sample.tsv");
    eprintln!("{} not found: using the shipped sample {}", root.display(), tsv.display());
    let m = Manifest::read(&tsv)?;
    Ok((tsv.display().to_string(), m.of_modality(Modality::Image2d), m.of_modality(Modality::Volume3d)))
}

fn pipeline_rate(samples: &[Sample], threads: usize, want: usize) -> anyhow::Result<f64> {
    let cfg = LoaderConfig { batch_size: 2, threads, prefetch: 2, seed: 1, ..LoaderConfig::default() };
    let loader = PairLoader::new(samples.to_vec(), cfg)?;
    // Warm-up: one batch (file cache, thread start).
    if let Some(b) = loader.epoch(99, 0).next() {
        b?;
    }
    let start = Instant::now();
    let mut done = 0;
    let mut epoch = 0;
    while done < want {
        for b in loader.epoch(epoch, 0) {
            done += b?.indices.len();
            if done >= want {
                break;
            }
        }
        epoch += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn decode_rates(ct: &[Sample], cxr: &[Sample]) -> anyhow::Result<(f64, f64, f64)> {
    let (mut raw_bytes, mut t_inflate, mut t_read) = (0usize, 0.0, 0.0);
    for s in ct {
        let start = Instant::now();
        let buf = unimiss_data::nifti::read_decompressed(&s.path)?;
        t_inflate += start.elapsed().as_secs_f64();
        raw_bytes += buf.len();
        let start = Instant::now();
        let v = unimiss_data::read_nifti(&s.path)?;
        t_read += start.elapsed().as_secs_f64();
        std::hint::black_box(v);
    }
    let start = Instant::now();
    for s in cxr {
        std::hint::black_box(unimiss_data::read_image(&s.path)?);
    }
    let png = cxr.len() as f64 / start.elapsed().as_secs_f64();
    let mb = raw_bytes as f64 / 1e6;
    Ok((mb / t_inflate, mb / t_read, png))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (source, cxr, ct) = datasets(&args)?;
    eprintln!("data: {source} ({} X-rays, {} CT sub-volumes)", cxr.len(), ct.len());
    let (inflate, nifti, png) = decode_rates(&ct, &cxr)?;
    println!("decode: gzip inflate {inflate:.0} MB/s, NIfTI read (inflate + parse + transpose) {nifti:.0} MB/s of voxel data, PNG {png:.1} images/s");
    let mut rows = Vec::new();
    for (name, samples, shape) in [("2d", &cxr, "2 views 3x224x224"), ("3d", &ct, "2 views 1x16x96x96")] {
        for &t in &args.threads {
            let rate = pipeline_rate(samples, t, args.samples)?;
            let per_core = rate / t as f64;
            let py = PYTHON_PER_CORE.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v);
            let ratio = py.map(|p| per_core / p);
            println!(
                "{name} pipeline ({shape}), {t} thread(s): {rate:.1} samples/s ({per_core:.1} per core){}",
                ratio.map(|r| format!(", {r:.1}x the official Python per core")).unwrap_or_default()
            );
            rows.push(json!({"pipeline": name, "threads": t, "samples_per_s": rate, "per_core": per_core, "python_per_core": py, "ratio_per_core": ratio}));
        }
    }
    if let Some(path) = &args.json {
        let out = json!({
            "bench": "data", "source": source,
            "decode": {"inflate_mb_s": inflate, "nifti_mb_s": nifti, "png_images_s": png},
            "pipelines": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
