//! `cargo xtask bench train [--json FILE]`: milliseconds per 2D and per 3D training step at the
//! official batch shapes (baselines.md: 2D 4 × 2 views 224², 3D 2 × 2 volumes 16×96² + their
//! 64 slices 96²), K = 65536, for `tiny` and `small`; peak memory (VmHWM); ratio to the
//! PyTorch baseline. Inputs are fixed random tensors (no data loading), like the baseline.

use std::path::PathBuf;
use std::time::Instant;

use candle::{Device, Tensor};
use unimiss_model::{HeadConfig, MitConfig};
use unimiss_ssl::Modality;
use unimiss_ssl::engine::{Engine, StepSettings};
use unimiss_ssl::loss::DinoLossConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Architectures (tiny, small).
    #[arg(long, value_delimiter = ',', default_value = "tiny,small")]
    arch: Vec<String>,
    /// Timed steps per workload (median reported) after one warm-up step.
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Head output width K (official 65536).
    #[arg(long, default_value_t = 65536)]
    out_dim: usize,
}

/// PyTorch CPU medians from ../shared/docs/baselines.md (ms per step).
fn baseline_ms(arch: &str, m: Modality) -> Option<f64> {
    match (arch, m) {
        ("tiny", Modality::Image2d) => Some(1123.0),
        ("tiny", Modality::Volume3d) => Some(2143.0),
        ("small", Modality::Image2d) => Some(2863.0),
        ("small", Modality::Volume3d) => Some(5878.0),
        _ => None,
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn sync(dev: &Device) -> anyhow::Result<()> {
    dev.synchronize()?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_ssl::trainer::parse_device(&args.device)?;
    let mut rows = Vec::new();
    for arch in &args.arch {
        let mcfg = MitConfig::preset(arch.parse()?);
        let hcfg = HeadConfig::new(mcfg.out_dim(), args.out_dim);
        let lcfg = DinoLossConfig { out_dim: args.out_dim, ..DinoLossConfig::default() };
        let mut engine = Engine::new(&mcfg, &hcfg, false, lcfg, 10, 0, &dev)?;
        let settings = StepSettings { lr: 6e-4, wd: 0.04, momentum: 0.996, clip: 0.3, cancel_last_layer: false, set_to_none: false };
        for (m, views, samples) in [
            (Modality::Image2d, [Tensor::rand(0f32, 1.0, (4, 3, 224, 224), &dev)?, Tensor::rand(0f32, 1.0, (4, 3, 224, 224), &dev)?], 4.0),
            (Modality::Volume3d, [Tensor::randn(0f32, 1.0, (2, 1, 16, 96, 96), &dev)?, Tensor::randn(0f32, 1.0, (2, 1, 16, 96, 96), &dev)?], 2.0),
        ] {
            let mut times = Vec::new();
            for i in 0..=args.iters {
                let t0 = Instant::now();
                engine.step(m, &views, 1, &settings, None, i as u64)?;
                sync(&dev)?;
                if i > 0 {
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let base = baseline_ms(arch, m);
            let ratio = base.map(|b| b / median);
            let rss = peak_rss_mb();
            println!(
                "{arch:>5} {} step: median {median:8.1} ms ({:.2} {}/s), min {:.1} max {:.1}; peak RSS {} MB; baseline {} ms → {}",
                m.name(),
                samples * 1e3 / median,
                if m == Modality::Image2d { "images" } else { "volumes" },
                times[0],
                times[times.len() - 1],
                rss.map_or("?".into(), |r| format!("{r:.0}")),
                base.map_or("-".into(), |b| format!("{b:.0}")),
                ratio.map_or("-".into(), |r| format!("{r:.2}× the baseline's speed")),
            );
            rows.push(serde_json::json!({
                "arch": arch, "modality": m.name(), "device": args.device, "out_dim": args.out_dim,
                "median_ms": median, "min_ms": times[0], "max_ms": times[times.len() - 1],
                "iters": args.iters, "samples_per_s": samples * 1e3 / median,
                "peak_rss_mb": rss, "baseline_ms": base, "speedup_vs_baseline": ratio,
            }));
        }
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
