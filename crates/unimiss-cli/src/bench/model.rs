//! `cargo xtask bench model [--json FILE]`: the backbone alone, tiny and small at the official
//! sizes, random weights. Workloads as in baselines.md: forward (eval, no autograd) of 4×3×224²
//! and 2×1×16×96², and forward+backward of the same batches (loss = Σ out·w). Median ms over
//! `--iters` after `--warmup`, peak RSS (VmHWM, reset before each workload), ratio to the PyTorch
//! baseline (forward only; the baseline has no separate forward+backward figure), GFLOP/s
//! against the measured GEMM ceiling, and a per-op profile of one forward.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::{Arch, Mit, MitConfig, profile};

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Architectures.
    #[arg(long, value_delimiter = ',', default_value = "tiny,small")]
    arch: Vec<Arch>,
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
}

/// Forward ms of the official model, PyTorch eager, 2 threads (../shared/docs/baselines.md).
fn baseline_forward_ms(arch: Arch, volumetric: bool) -> f64 {
    match (arch, volumetric) {
        (Arch::Tiny, false) => 104.0,
        (Arch::Tiny, true) => 86.0,
        (Arch::Small, false) => 310.0,
        (Arch::Small, true) => 141.0,
    }
}

/// Forward GFLOP (baselines.md, PyTorch flop counter).
fn forward_gflop(arch: Arch, volumetric: bool) -> f64 {
    match (arch, volumetric) {
        (Arch::Tiny, false) => 10.5,
        (Arch::Tiny, true) => 5.8,
        (Arch::Small, false) => 27.8,
        (Arch::Small, true) => 10.7,
    }
}

/// The 2-thread GEMM ceiling measured on the project's machine kind (baselines.md).
const GEMM_CEILING_GFLOPS: f64 = 155.0;

fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s.strip_prefix("cuda:") {
        Some(i) => Ok(Device::new_cuda(i.parse()?)?),
        None if s == "cpu" => Ok(Device::Cpu),
        None => bail!("--device {s}: expected cpu or cuda:N"),
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak-RSS counter (Linux `clear_refs` 5); false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Measure {
    ms: f64,
    min: f64,
    max: f64,
    rss_mb: Option<f64>,
}

fn measure(iters: usize, warmup: usize, dev: &Device, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Measure> {
    let peak_reset = reset_peak_rss();
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (min, max) = times.iter().fold((f64::MAX, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
    Ok(Measure { ms: median(times), min, max, rss_mb: if peak_reset { peak_rss_mb() } else { None } })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = parse_device(&args.device)?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!("bench model: device {}, threads {threads}, median of {} after {} warm-up", args.device, args.iters, args.warmup);
    println!(
        "{:<6} {:<26} {:>10} {:>17} {:>9} {:>10} {:>9} {:>9}",
        "arch", "workload", "median ms", "min–max ms", "RSS MB", "baseline", "speedup", "GFLOP/s"
    );
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    for &arch in &args.arch {
        let cfg = MitConfig::preset(arch);
        let vm = VarMap::new();
        let train_model = Mit::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev).pp("backbone"))?;
        // The same weights as plain tensors: forwards record no autograd graph.
        let frozen: HashMap<String, Tensor> = {
            let data = vm.data().lock().map_err(|_| anyhow::anyhow!("var map poisoned"))?;
            data.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
        };
        let eval_model = Mit::new(&cfg, VarBuilder::from_tensors(frozen, DType::F32, &dev).pp("backbone"))?;
        for volumetric in [false, true] {
            let (x, label) = if volumetric {
                (Tensor::randn(0f32, 1.0, (2, 1, 16, 96, 96), &dev)?, "2×1×16×96²")
            } else {
                (Tensor::rand(0f32, 1.0, (4, 3, 224, 224), &dev)?, "4×3×224²")
            };
            let w = Tensor::randn(0f32, 1.0, (x.dim(0)?, cfg.out_dim()), &dev)?;
            let fwd = measure(args.iters, args.warmup, &dev, || {
                eval_model.forward(&x)?;
                Ok(())
            })?;
            let fwdbwd = measure(args.iters, args.warmup, &dev, || {
                let out = train_model.forward_t(&x, true)?;
                (out * &w)?.sum_all()?.backward()?;
                Ok(())
            })?;
            let gflop = forward_gflop(arch, volumetric);
            let base = baseline_forward_ms(arch, volumetric);
            for (kind, m, flop, baseline) in [("forward", &fwd, gflop, Some(base)), ("forward+backward", &fwdbwd, 3.0 * gflop, None)] {
                let rate = flop / (m.ms / 1e3);
                println!(
                    "{:<6} {:<26} {:>10.1} {:>17} {:>9} {:>10} {:>9} {:>9.1}",
                    arch.to_string(),
                    format!("{kind} {label}"),
                    m.ms,
                    format!("{:.1}–{:.1}", m.min, m.max),
                    m.rss_mb.map(|r| format!("{r:.0}")).unwrap_or_else(|| "n/a".into()),
                    baseline.map(|b| format!("{b:.0}")).unwrap_or_else(|| "—".into()),
                    baseline.map(|b| format!("{:.2}×", b / m.ms)).unwrap_or_else(|| "—".into()),
                    rate
                );
                rows.push(serde_json::json!({
                    "arch": arch.to_string(), "workload": kind, "input": label, "device": args.device,
                    "median_ms": m.ms, "min_ms": m.min, "max_ms": m.max, "peak_rss_mb": m.rss_mb,
                    "baseline_ms": baseline, "speedup_vs_baseline": baseline.map(|b| b / m.ms),
                    "gflop": flop, "gflops": rate, "fraction_of_gemm_ceiling": rate / GEMM_CEILING_GFLOPS,
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
                let mut prof = Vec::new();
                for (name, d, calls) in &ops {
                    let ms = d.as_secs_f64() * 1e3;
                    println!("    {name:<16} {ms:>8.1} ms {:>5.1}% ({calls} calls)", 100.0 * ms / total);
                    prof.push(serde_json::json!({"op": name, "ms": ms, "calls": calls}));
                }
                println!("    {:<16} {:>8.1} ms {:>5.1}%", "(other)", total - covered, 100.0 * (total - covered) / total);
                profiles.push(serde_json::json!({"arch": arch.to_string(), "input": label, "total_ms": total, "ops": prof}));
            }
        }
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({"bench": "model", "results": rows, "profiles": profiles});
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
