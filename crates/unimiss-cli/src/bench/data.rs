//! `cargo xtask bench data [--json FILE]`: samples/s of the 2D and 3D pipelines (decode + both
//! augmented views + batch tensors, through `PairLoader`) at the official sizes, by worker
//! thread count, on the real samples in `../shared/data` (or `$UNIMISS_DATA`; the shipped
//! sample when absent), plus NIfTI decode and inflate MB/s and PNG decode rate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use unimiss_data::{LoaderConfig, Manifest, Modality, PairLoader, Sample, read_dir_sorted};
use unimiss_ops::PerModality;

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

fn list(dir: &Path, m: Modality) -> anyhow::Result<Vec<Sample>> {
    let v: Vec<PathBuf> = read_dir_sorted(dir)?.into_iter().filter(|p| Modality::from_path(p) == m).collect();
    Ok(v.into_iter().map(|path| Sample { path, modality: m, label: None, spacing: None }).collect())
}

fn datasets(args: &Args) -> anyhow::Result<(String, Vec<Sample>, Vec<Sample>)> {
    let root = args.data.clone().or_else(|| std::env::var_os("UNIMISS_DATA").map(PathBuf::from)).unwrap_or_else(|| {
        crate::args::repo_root().join("../shared/data")
    });
    if root.join("cxr").is_dir() && root.join("ct-subvolumes").is_dir() {
        return Ok((
            root.display().to_string(),
            list(&root.join("cxr"), Modality::Image2d)?,
            list(&root.join("ct-subvolumes"), Modality::Volume3d)?,
        ));
    }
    let tsv = crate::args::repo_root().join("data-manifests/sample.tsv");
    eprintln!("{} not found: using the shipped sample {}", root.display(), tsv.display());
    let m = Manifest::read(&tsv)?;
    Ok((tsv.display().to_string(), m.of_modality(Modality::Image2d), m.of_modality(Modality::Volume3d)))
}

/// CPU seconds (user + system, all threads) this process has used, from /proc/self/stat
/// (Linux; `None` elsewhere). Rates per CPU-second are robust to a loaded machine.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (samples per wall second, samples per CPU-second).
fn pipeline_rate(samples: &[Sample], threads: usize, want: usize) -> anyhow::Result<(f64, Option<f64>)> {
    let cfg = LoaderConfig { batch_size: 2, threads, prefetch: 2, seed: 1, ..LoaderConfig::default() };
    let loader = PairLoader::new(samples.to_vec(), cfg)?;
    // Warm-up: one batch (file cache, thread start).
    if let Some(b) = loader.epoch(99, 0).next() {
        b?;
    }
    let start = Instant::now();
    let cpu0 = cpu_seconds();
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
    let wall = done as f64 / start.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| done as f64 / (b - a).max(1e-9));
    Ok((wall, cpu))
}

/// CPU seconds when available, else wall seconds since `start`.
fn clock(start: Instant) -> f64 {
    cpu_seconds().unwrap_or_else(|| start.elapsed().as_secs_f64())
}

/// (inflate MB/s, NIfTI read MB/s, PNG images/s), per CPU-second where measurable.
fn decode_rates(ct: &[Sample], cxr: &[Sample]) -> anyhow::Result<(f64, f64, f64)> {
    let origin = Instant::now();
    let t0 = clock(origin);
    let mut raw_bytes = 0usize;
    for s in ct {
        raw_bytes += unimiss_data::nifti::read_decompressed(&s.path)?.len();
    }
    let t1 = clock(origin);
    for s in ct {
        std::hint::black_box(unimiss_data::read_nifti(&s.path)?);
    }
    let t2 = clock(origin);
    for s in cxr {
        std::hint::black_box(unimiss_data::read_image(&s.path)?);
    }
    let t3 = clock(origin);
    let mb = raw_bytes as f64 / 1e6;
    let d = |a: f64, b: f64| (b - a).max(1e-9);
    Ok((mb / d(t0, t1), mb / d(t1, t2), cxr.len() as f64 / d(t2, t3)))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (source, cxr, ct) = datasets(&args)?;
    eprintln!("data: {source} ({} X-rays, {} CT sub-volumes)", cxr.len(), ct.len());
    let (inflate, nifti, png) = decode_rates(&ct, &cxr)?;
    println!("decode (per CPU-second): gzip inflate {inflate:.0} MB/s, NIfTI read (inflate + parse + transpose) {nifti:.0} MB/s of file data, PNG {png:.1} images/s");
    let mut rows = Vec::new();
    // No ratio to the official Python pipeline is printed: it was never timed beside this
    // benchmark in one run (docs/data.md).
    let inputs = PerModality { image2d: (&cxr, "2 views 3x224x224"), volume3d: (&ct, "2 views 1x16x96x96") };
    for (m, (samples, shape)) in inputs.iter() {
        for &t in &args.threads {
            let (rate, per_cpu) = pipeline_rate(samples, t, args.samples)?;
            println!(
                "{m} pipeline ({shape}), {t} thread(s): {rate:.1} samples/s wall, {} samples per CPU-second",
                per_cpu.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into()),
            );
            rows.push(json!({"pipeline": m, "threads": t, "samples_per_s": rate, "samples_per_cpu_s": per_cpu}));
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
