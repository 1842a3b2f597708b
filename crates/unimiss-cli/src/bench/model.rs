//! `unimiss bench model [--baseline FILE] [--json FILE]`: the backbone alone, tiny and small at
//! the official sizes, random weights. Workloads as `bench_torch.py` `infer2d` / `infer3d`:
//! forward (eval, no autograd) of 4×3×224² and 2×1×16×96², and forward+backward of the same
//! batches (loss = Σ out·w). Median ms over `--iters` after `--warmup`, GFLOP/s against the
//! measured GEMM ceiling, a per-op profile of one forward. Every (arch, input) runs in its own
//! process (`--worker ARCH:2d|3d`), so the peak RSS is that workload's (forward and
//! forward+backward share the process: the RSS shown is their common peak). `--baseline` reads
//! `bench_torch.py --json` and prints the forward side by side with PyTorch's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle::{DType, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::{Arch, Mit, MitConfig, Modality, profile};

use super::{Baseline, default_batch, emit_result, gemm_ceiling, peak_rss_mb, run_worker, side_by_side, side_by_side_header, time_ms};

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `bench_torch.py --json` output to print side by side.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Architectures.
    #[arg(long, value_delimiter = ',', default_value = "tiny,small")]
    arch: Vec<Arch>,
    /// Inputs (2d, 3d).
    #[arg(long, value_delimiter = ',', default_value = "2d,3d")]
    modality: Vec<Modality>,
    /// Timed iterations per workload (median reported).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed warm-up iterations per workload.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Skip the per-op profile.
    #[arg(long)]
    no_profile: bool,
    /// The batch of every workload (default: 4 images, 2 volumes), as `bench_torch.py --batch`
    /// (the paper's per-GPU batch is 24).
    #[arg(long)]
    batch: Option<usize>,
    /// Internal: run one workload (`ARCH:2d|3d`) in this process.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// Forward GFLOP at the default batch ([`default_batch`]; linear in the batch), from
/// baselines.md (PyTorch flop counter).
fn forward_gflop(arch: Arch, m: Modality) -> f64 {
    match (arch, m) {
        (Arch::Tiny, Modality::Image2d) => 10.5,
        (Arch::Tiny, Modality::Volume3d) => 5.8,
        (Arch::Small, Modality::Image2d) => 27.8,
        (Arch::Small, Modality::Volume3d) => 10.7,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(spec) = &args.worker {
        return worker(&args, spec);
    }
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "bench model: device {}, threads {threads}, median of {} after {} warm-up, one process per workload",
        args.device, args.iters, args.warmup
    );
    println!(
        "{:<6} {:<26} {:>10} {:>17} {:>9} {:>9} {:>7}",
        "arch", "workload", "median ms", "min–max ms", "RSS MB", "GFLOP/s", "% GEMM"
    );
    let mut rows = Vec::new();
    for arch in &args.arch {
        for m in &args.modality {
            let r = run_worker(&format!("{arch}:{m}"))?;
            rows.extend(r.as_array().cloned().context("worker result is not a list")?);
        }
    }
    if let Some(b) = &baseline {
        println!("\nforward (eval, no grad) side by side with {}", super::describe_baseline(b));
        println!("{}", side_by_side_header());
        for r in rows.iter().filter(|r| r["workload"] == "forward") {
            let arch = r["arch"].as_str().unwrap_or("?");
            let m = r["modality"].as_str().unwrap_or("?");
            let batch = r["batch"].as_u64().unwrap_or(0) as usize;
            let base = b.get(arch, &format!("infer{m}"), batch)?;
            let ms = r["median_ms"].as_f64().context("worker result without median_ms")?;
            println!("{}", side_by_side(&format!("{arch} infer{m} (B={batch})"), ms, r["peak_rss_mb"].as_f64(), base));
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&serde_json::json!({"bench": "model", "results": rows}))?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn worker(args: &Args, spec: &str) -> anyhow::Result<()> {
    let (arch, m) = spec.split_once(':').with_context(|| format!("--worker {spec}: expected ARCH:MOD"))?;
    let (arch, m): (Arch, Modality) = (arch.parse()?, m.parse().map_err(anyhow::Error::msg)?);
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    let ceiling = gemm_ceiling(&dev)?;
    println!("GEMM ceiling measured now: {ceiling:.0} GFLOP/s (1024² f32 matmul, best of 8)");
    let cfg = MitConfig::preset(arch);
    let vm = VarMap::new();
    let train_model = Mit::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev).pp("backbone"))?;
    // The same weights as plain tensors: forwards record no autograd graph.
    let frozen: HashMap<String, Tensor> = {
        let data = vm.data().lock().map_err(|_| anyhow::anyhow!("var map poisoned"))?;
        data.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
    };
    let eval_model = Mit::new(&cfg, VarBuilder::from_tensors(frozen, DType::F32, &dev).pp("backbone"))?;
    let batch = args.batch.unwrap_or_else(|| default_batch(m));
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let (x, label) = match m {
        Modality::Volume3d => (Tensor::randn(0f32, 1.0, (batch, 1, 16, 96, 96), &dev)?, format!("{batch}×1×16×96²")),
        Modality::Image2d => (Tensor::rand(0f32, 1.0, (batch, 3, 224, 224), &dev)?, format!("{batch}×3×224²")),
    };
    let w = Tensor::randn(0f32, 1.0, (x.dim(0)?, cfg.out_dim()), &dev)?;
    let fwd = time_ms(args.iters, args.warmup, &dev, || {
        eval_model.forward(&x)?;
        Ok(())
    })?;
    let fwd_rss = peak_rss_mb();
    let fwdbwd = time_ms(args.iters, args.warmup, &dev, || {
        let out = train_model.forward_t(&x, true)?;
        (out * &w)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let rss = peak_rss_mb();
    let gflop = forward_gflop(arch, m) * batch as f64 / default_batch(m) as f64;
    let mut rows = Vec::new();
    for (kind, (ms, min, max), flop, peak) in [("forward", fwd, gflop, fwd_rss), ("forward+backward", fwdbwd, 3.0 * gflop, rss)] {
        let rate = flop / (ms / 1e3);
        println!(
            "{:<6} {:<26} {:>10.1} {:>17} {:>9} {:>9.1} {:>6.0}%",
            arch.to_string(),
            format!("{kind} {label}"),
            ms,
            format!("{min:.1}–{max:.1}"),
            peak.map(|r| format!("{r:.0}")).unwrap_or_else(|| "n/a".into()),
            rate,
            100.0 * rate / ceiling
        );
        rows.push(serde_json::json!({
            "arch": arch.to_string(), "modality": m, "batch": x.dim(0)?, "workload": kind, "input": label,
            "device": args.device, "median_ms": ms, "min_ms": min, "max_ms": max, "peak_rss_mb": peak,
            "gflop": flop, "gflops": rate, "gemm_ceiling_gflops": ceiling, "fraction_of_gemm_ceiling": rate / ceiling,
        }));
    }
    if !args.no_profile {
        profile::reset();
        profile::enable(true);
        let t = Instant::now();
        let res = eval_model.forward(&x);
        dev.synchronize()?;
        let total = t.elapsed().as_secs_f64() * 1e3;
        profile::enable(false);
        res?;
        let ops = profile::snapshot();
        let covered: f64 = ops.iter().map(|(_, d, _)| d.as_secs_f64() * 1e3).sum();
        println!("  per-op profile, {arch} forward {label}: {total:.1} ms");
        for (name, d, calls) in &ops {
            let ms = d.as_secs_f64() * 1e3;
            println!("    {name:<16} {ms:>8.1} ms {:>5.1}% ({calls} calls)", 100.0 * ms / total);
        }
        println!("    {:<16} {:>8.1} ms {:>5.1}%", "(other)", total - covered, 100.0 * (total - covered) / total);
    }
    emit_result(&serde_json::Value::Array(rows));
    Ok(())
}
