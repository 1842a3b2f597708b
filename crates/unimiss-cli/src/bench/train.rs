//! `unimiss bench train [--baseline FILE] [--json FILE]`: milliseconds per 2D and per 3D
//! pretraining step at the official batch shapes (2D 4 × 2 views 224², 3D 2 × 2 volumes 16×96²
//! with their 64 slices 96²), K = 65536, for `tiny` and `small`, through `Engine::step` (the
//! trainer's code). Inputs are fixed random tensors (no data loading), like `bench_torch.py`.
//!
//! Every workload runs in its own process (this binary re-run with `--worker ARCH:MOD`), so its
//! peak RSS is its own. Each prints the phases of a step (mean over the timed steps), a per-op
//! profile of the backward (this crate's operators' backward passes, the rest being candle's
//! autograd ops) and of the forwards. `--baseline` reads `bench_torch.py --json` and prints
//! both side by side; quote ratios only from runs made in the same minute.

use std::path::PathBuf;

use anyhow::Context;
use candle::Tensor;
use unimiss_model::{Arch, HeadConfig, MitConfig, profile};
use unimiss_ssl::Modality;
use unimiss_ssl::engine::{Engine, StepSettings};
use unimiss_ssl::loss::DinoLossConfig;

use super::{Baseline, default_batch, emit_result, gemm_ceiling, peak_rss_mb, run_worker, side_by_side, side_by_side_header, stats};

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `bench_torch.py --json` output to print side by side.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Architectures (tiny, small).
    #[arg(long, value_delimiter = ',', default_value = "tiny,small")]
    arch: Vec<Arch>,
    /// Modalities (2d, 3d).
    #[arg(long, value_delimiter = ',', default_value = "2d,3d")]
    modality: Vec<Modality>,
    /// Timed steps per workload (median reported).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Untimed warm-up steps per workload.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Head output width K (official 65536).
    #[arg(long, default_value_t = 65536)]
    out_dim: usize,
    /// The backbones' compute dtype: f32, or bf16 (mixed precision, `optim.precision`).
    #[arg(long, default_value = "f32")]
    precision: unimiss_ssl::config::Precision,
    /// The batch of every workload (default: 4 images, 2 volumes), as `bench_torch.py --batch`
    /// (the paper's per-GPU batch is 24).
    #[arg(long)]
    batch: Option<usize>,
    /// Internal: run one workload (`ARCH:MOD`) in this process.
    #[arg(long, hide = true)]
    worker: Option<String>,
}


/// GFLOP of one training step at the default batch ([`default_batch`]; linear in the batch):
/// 4 × the backbone forward of both views (teacher forward, student
/// forward, backward ≈ 2 forwards), from the PyTorch flop counter figures of baselines.md
/// (2D: 4 images 224²; 3D: 2 volumes 16×96² plus their 32 slices 96²), per view.
fn step_gflop(arch: Arch, m: Modality) -> f64 {
    let per_view = match (arch, m) {
        (Arch::Tiny, Modality::Image2d) => 10.5,
        (Arch::Tiny, Modality::Volume3d) => 5.8 + 15.0,
        (Arch::Small, Modality::Image2d) => 27.8,
        (Arch::Small, Modality::Volume3d) => 10.7 + 39.6,
    };
    4.0 * 2.0 * per_view
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(spec) = &args.worker {
        return worker(&args, spec);
    }
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "bench train: device {}, threads {threads}, K {}, median of {} after {} warm-up, one process per workload",
        args.device, args.out_dim, args.iters, args.warmup
    );
    if let Some(b) = &baseline {
        println!("baseline {}: {}", args.baseline.as_deref().map(|p| p.display().to_string()).unwrap_or_default(), super::describe_baseline(b));
    }
    let mut rows = Vec::new();
    for arch in &args.arch {
        for m in &args.modality {
            rows.push(run_worker(&format!("{arch}:{m}"))?);
        }
    }
    println!("\n{}", side_by_side_header());
    for r in &rows {
        let arch = r["arch"].as_str().unwrap_or("?");
        let m = r["modality"].as_str().unwrap_or("?");
        let batch = r["batch"].as_u64().unwrap_or(0) as usize;
        let base = match &baseline {
            Some(b) => b.get(arch, &format!("train{m}"), batch)?,
            None => None,
        };
        let ms = r["median_ms"].as_f64().context("worker result without median_ms")?;
        println!("{}", side_by_side(&format!("{arch} train{m} (B={batch})"), ms, r["peak_rss_mb"].as_f64(), base));
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn worker(args: &Args, spec: &str) -> anyhow::Result<()> {
    let (arch, m) = spec.split_once(':').with_context(|| format!("--worker {spec}: expected ARCH:MOD"))?;
    let (arch, m): (Arch, Modality) = (arch.parse()?, m.parse().map_err(anyhow::Error::msg)?);
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    let mcfg = MitConfig::preset(arch);
    let hcfg = HeadConfig::new(mcfg.out_dim(), args.out_dim);
    let lcfg = DinoLossConfig { out_dim: args.out_dim, ..DinoLossConfig::default() };
    let ceiling = gemm_ceiling(&dev)?;
    let mut engine = Engine::new(&mcfg, &hcfg, false, lcfg, 10, 0, &dev)?;
    engine.precision = args.precision;
    let settings = StepSettings { lr: 6e-4, wd: 0.04, momentum: 0.996, clip: 0.3, cancel_last_layer: false, set_to_none: false };
    let batch = args.batch.unwrap_or_else(|| default_batch(m));
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let (views, unit) = match m {
        Modality::Image2d => {
            let v = || Tensor::rand(0f32, 1.0, (batch, 3, 224, 224), &dev);
            ([v()?, v()?], "images")
        }
        Modality::Volume3d => {
            let v = || Tensor::randn(0f32, 1.0, (batch, 1, 16, 96, 96), &dev);
            ([v()?, v()?], "volumes")
        }
    };
    let mut step_no = 0u64;
    let mut step = |engine: &mut Engine| -> anyhow::Result<f64> {
        let t = std::time::Instant::now();
        engine.step(m, &views, 1, &settings, None, step_no)?;
        dev.synchronize()?;
        step_no += 1;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..args.warmup {
        step(&mut engine)?;
    }
    profile::reset();
    profile::enable(true);
    let times = (0..args.iters.max(1)).map(|_| step(&mut engine)).collect::<anyhow::Result<Vec<f64>>>();
    profile::enable(false);
    let (median, min, max) = stats(times?);
    let n = args.iters.max(1) as f64;
    let rss = peak_rss_mb();
    let gflop = step_gflop(arch, m) * batch as f64 / default_batch(m) as f64;
    let rate = gflop / (median / 1e3);
    println!(
        "{arch} {} step (B={batch}): median {median:.1} ms (min {min:.1}, max {max:.1}), {:.2} {unit}/s, peak RSS {} MB, \
         {rate:.1} GFLOP/s = {:.0}% of the GEMM ceiling measured now ({ceiling:.0} GFLOP/s, 1024² f32 matmul)",
        m.name(),
        batch as f64 * 1e3 / median,
        rss.map_or("?".into(), |r| format!("{r:.0}")),
        100.0 * rate / ceiling,
    );
    let buckets = profile::snapshot();
    let mean_ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n;
    let mean_total: f64 = median;
    let phases: Vec<_> = buckets.iter().filter(|(k, ..)| k.starts_with("step: ")).collect();
    println!("  phases of a step (mean of {n} steps):");
    let mut phase_json = Vec::new();
    for (k, d, _) in &phases {
        let ms = mean_ms(*d);
        println!("    {:<24} {ms:>9.1} ms {:>5.1}%", &k[6..], 100.0 * ms / mean_total);
        phase_json.push(serde_json::json!({"phase": &k[6..], "ms": ms}));
    }
    let covered: f64 = phases.iter().map(|(_, d, _)| mean_ms(*d)).sum();
    println!("    {:<24} {:>9.1} ms {:>5.1}%", "(other)", mean_total - covered, 100.0 * (mean_total - covered) / mean_total);
    let backward = phases.iter().find(|(k, ..)| *k == "step: backward").map_or(0.0, |(_, d, _)| mean_ms(*d));
    let bwd_ops: Vec<_> = buckets.iter().filter(|(k, ..)| k.ends_with(" bwd")).collect();
    println!("  backward per op (mean of {n} steps, {backward:.1} ms):");
    let mut bwd_json = Vec::new();
    for (k, d, calls) in &bwd_ops {
        let ms = mean_ms(*d);
        println!("    {k:<24} {ms:>9.1} ms {:>5.1}% ({} calls)", 100.0 * ms / backward.max(1e-9), *calls as f64 / n);
        bwd_json.push(serde_json::json!({"op": k, "ms": ms}));
    }
    let ours: f64 = bwd_ops.iter().map(|(_, d, _)| mean_ms(*d)).sum();
    println!(
        "    {:<24} {:>9.1} ms {:>5.1}%",
        "candle autograd: matmul, elementwise, reductions, copies",
        backward - ours,
        100.0 * (backward - ours) / backward.max(1e-9)
    );
    let fwd_ops: Vec<_> = buckets.iter().filter(|(k, ..)| !k.starts_with("step: ") && !k.ends_with(" bwd")).collect();
    let forwards: f64 = phases.iter().filter(|(k, ..)| k.ends_with("forward")).map(|(_, d, _)| mean_ms(*d)).sum();
    println!("  forwards per op (teacher + student, mean of {n} steps, {forwards:.1} ms):");
    for (k, d, _) in &fwd_ops {
        let ms = mean_ms(*d);
        println!("    {k:<24} {ms:>9.1} ms {:>5.1}%", 100.0 * ms / forwards.max(1e-9));
    }
    emit_result(&serde_json::json!({
        "arch": arch.to_string(), "modality": m.name(), "batch": batch, "precision": format!("{:?}", args.precision).to_lowercase(), "device": args.device, "out_dim": args.out_dim,
        "median_ms": median, "min_ms": min, "max_ms": max, "iters": args.iters, "items_per_s": batch as f64 * 1e3 / median,
        "peak_rss_mb": rss, "gflop": gflop, "gflops": rate, "gemm_ceiling_gflops": ceiling, "fraction_of_gemm_ceiling": rate / ceiling,
        "phases": phase_json, "backward_ops": bwd_json,
    }));
    Ok(())
}
