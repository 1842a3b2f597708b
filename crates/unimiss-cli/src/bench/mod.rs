//! Benchmark families, one module each (`ops`, `model`, `data`, `train`, `transfer`), and what
//! `model` and `train` share: one process per workload, peak RSS, the PyTorch baseline file.

pub mod data;
pub mod model;
pub mod ops;
pub mod train;
pub mod transfer;
pub mod transfer_report;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use candle::Device;

/// The GEMM ceiling of this machine and device, measured now: the best of eight f32 products of
/// 1024 × 1024 matrices through candle's matmul on all threads (the GEMM the linear layers,
/// attention and convolutions run on), in GFLOP/s. Each benchmark worker measures it at its
/// start and states its rates as a fraction of it (baselines.md measured about 155 on 2 cores).
pub fn gemm_ceiling(dev: &Device) -> anyhow::Result<f64> {
    const N: usize = 1024;
    let a = candle::Tensor::randn(0f32, 1.0, (N, N), dev)?;
    let b = candle::Tensor::randn(0f32, 1.0, (N, N), dev)?;
    let (_, best_ms, _) = time_ms(8, 1, dev, || {
        a.matmul(&b)?;
        Ok(())
    })?;
    Ok(2.0 * (N as f64).powi(3) / (best_ms / 1e3) / 1e9)
}

/// Marks the one line of a worker's stdout that carries its JSON result.
const RESULT: &str = "RESULT ";

/// Peak resident set size of this process (VmHWM), MB.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Median, min and max of `v` (not empty).
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Times `iters` (at least one) calls of `f` after `warmup` untimed ones: (median, min, max) ms.
pub fn time_ms(iters: usize, warmup: usize, dev: &Device, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64, f64)> {
    for _ in 0..warmup {
        f()?;
        dev.synchronize()?;
    }
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(stats(times))
}

/// The batch of a workload when `--batch` is not given: 4 images or 2 volumes, as
/// `bench_torch.py` (its `DEFAULT_BATCH`) and the figures of baselines.md.
pub fn default_batch(m: unimiss_model::Modality) -> usize {
    match m {
        unimiss_model::Modality::Image2d => 4,
        unimiss_model::Modality::Volume3d => 2,
    }
}

/// Runs one workload in a fresh process (this binary, the same arguments plus `--worker SPEC`),
/// so that its peak RSS is its own. Prints the worker's report and returns its JSON result.
pub fn run_worker(spec: &str) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe().context("locating this binary to re-run it per workload")?;
    let out = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .args(["--worker", spec])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {} for workload {spec}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = None;
    for line in text.lines() {
        match line.strip_prefix(RESULT) {
            Some(json) => result = Some(serde_json::from_str(json).with_context(|| format!("workload {spec}: bad result line"))?),
            None => println!("{line}"),
        }
    }
    if !out.status.success() {
        bail!("workload {spec} failed ({})", out.status)
    }
    result.with_context(|| format!("workload {spec} printed no result"))
}

/// Prints a worker's result line (read by [`run_worker`]).
pub fn emit_result(v: &serde_json::Value) {
    println!("{RESULT}{v}");
}

/// One row of `bench_torch.py --json` (../shared/reference/README.md).
#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub config: String,
    /// `infer2d`, `infer3d`, `train2d`, `train3d`.
    pub workload: String,
    pub batch: usize,
    pub median_ms: f64,
    pub peak_rss_mb: Option<f64>,
    pub threads: Option<u64>,
    pub torch: Option<String>,
}

/// The rows of a `bench_torch.py --json` file.
pub struct Baseline {
    rows: Vec<BaselineRow>,
}

impl Baseline {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading baseline {}", path.display()))?;
        let what = || format!("{}: expected the JSON list that bench_torch.py --json writes", path.display());
        let v: serde_json::Value = serde_json::from_str(&text).with_context(what)?;
        let list = v.as_array().with_context(what)?;
        let mut rows = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            let field = |k: &str| r.get(k).with_context(|| format!("{}: row {i} has no `{k}`", path.display()));
            let text = |k: &str| -> anyhow::Result<String> {
                Ok(field(k)?.as_str().with_context(|| format!("{}: row {i} `{k}` is not a string", path.display()))?.to_string())
            };
            rows.push(BaselineRow {
                config: text("config")?,
                workload: text("workload")?,
                batch: field("batch")?.as_u64().with_context(|| format!("{}: row {i} `batch`", path.display()))? as usize,
                median_ms: field("median_ms")?.as_f64().with_context(|| format!("{}: row {i} `median_ms`", path.display()))?,
                peak_rss_mb: r.get("peak_rss_mb").and_then(|x| x.as_f64()),
                threads: r.get("threads").and_then(|x| x.as_u64()),
                torch: r.get("torch").and_then(|x| x.as_str()).map(str::to_string),
            });
        }
        Ok(Self { rows })
    }

    /// The row of `config` × `workload`; an error if its batch is not `batch` (a re-run with a
    /// smaller batch measures another workload).
    pub fn get(&self, config: &str, workload: &str, batch: usize) -> anyhow::Result<Option<&BaselineRow>> {
        match self.rows.iter().find(|r| r.config == config && r.workload == workload) {
            Some(r) if r.batch != batch => {
                bail!("baseline {config} {workload} ran batch {}, this benchmark batch {batch}: not comparable", r.batch)
            }
            r => Ok(r),
        }
    }
}

/// The side-by-side line of one workload: our and the baseline's median, speed ratio (baseline
/// time ÷ ours, above 1 = faster than PyTorch), our and its peak RSS.
pub fn side_by_side(label: &str, ours_ms: f64, ours_rss: Option<f64>, base: Option<&BaselineRow>) -> String {
    let rss = |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.0}"));
    match base {
        Some(b) => format!(
            "{label:<28} {ours_ms:>9.1} {:>9.1} {:>7.2}× {:>8} {:>8} {:>7}",
            b.median_ms,
            b.median_ms / ours_ms,
            rss(ours_rss),
            rss(b.peak_rss_mb),
            match (ours_rss, b.peak_rss_mb) {
                (Some(o), Some(t)) => format!("{:.2}", o / t),
                _ => "n/a".into(),
            }
        ),
        None => format!("{label:<28} {ours_ms:>9.1} {:>9} {:>8} {:>8} {:>8} {:>7}", "—", "—", rss(ours_rss), "—", "—"),
    }
}

/// Header of [`side_by_side`] lines.
pub fn side_by_side_header() -> String {
    format!(
        "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "workload", "ours ms", "torch ms", "speed", "RSS MB", "torch MB", "RSS ×"
    )
}

/// The settings of the baseline run, for the report header.
pub fn describe_baseline(b: &Baseline) -> String {
    let first = b.rows.first();
    format!(
        "{} rows, torch {}, {} threads",
        b.rows.len(),
        first.and_then(|r| r.torch.as_deref()).unwrap_or("?"),
        first.and_then(|r| r.threads).map_or("?".into(), |t| t.to_string())
    )
}
