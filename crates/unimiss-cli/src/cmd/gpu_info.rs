//! `cargo xtask gpu-info [--device cuda:N]`: what this binary was built with (CUDA, NCCL), the
//! device behind `--device` (name, compute capability, memory), and a first check that work runs
//! there: a matmul, a 3D convolution and its gradients (unimiss-ops' composed path off the CPU)
//! against the same on the CPU. Without a usable device it stops with an error saying why.

use anyhow::{Context, bail};
use candle::{DType, Device, Tensor, Var};
use unimiss_ops::{ConvParams, conv3d};

#[derive(clap::Args)]
pub struct Args {
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cuda:0")]
    pub device: String,
}

/// Worst absolute difference accepted between the device and the CPU (f32, no TF32).
const TOL: f32 = 1e-3;

pub fn run(args: Args) -> anyhow::Result<()> {
    println!("built with: cuda {}, nccl {}", yes(cfg!(feature = "cuda")), yes(cfg!(feature = "nccl")));
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    println!("device {}: {}", args.device, describe(&dev)?);
    let worst = smoke(&dev).with_context(|| format!("running the smoke check on {}", args.device))?;
    for (what, d) in &worst {
        println!("  {what}: max |{} - cpu| = {d:.3e}", args.device);
    }
    if let Some((what, d)) = worst.iter().find(|(_, d)| !(*d <= TOL)) {
        bail!("{what} on {} differs from the CPU by {d:.3e} (more than {TOL:e})", args.device)
    }
    println!("gpu-info: OK");
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(feature = "cuda")]
fn describe(dev: &Device) -> anyhow::Result<String> {
    let Device::Cuda(cuda) = dev else { return Ok("the CPU".into()) };
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    let (major, minor) = ctx.compute_capability().context("compute capability")?;
    let (free, total) = ctx.mem_get_info().context("memory")?;
    let gib = |b: usize| b as f64 / f64::from(1u32 << 30);
    Ok(format!(
        "{} (compute capability {major}.{minor}), {:.1} GiB free of {:.1} GiB",
        ctx.name().context("device name")?,
        gib(free),
        gib(total)
    ))
}

#[cfg(not(feature = "cuda"))]
fn describe(_dev: &Device) -> anyhow::Result<String> {
    Ok("the CPU".into())
}

/// (what, max |device − CPU|) for a matmul, a strided 3D convolution and its two gradients.
fn smoke(dev: &Device) -> anyhow::Result<Vec<(&'static str, f32)>> {
    let cpu = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (64, 128), &cpu)?;
    let b = Tensor::randn(0f32, 1.0, (128, 32), &cpu)?;
    let mm = a.to_device(dev)?.matmul(&b.to_device(dev)?)?;
    let mut out = vec![("matmul", max_diff(&mm, &a.matmul(&b)?)?)];
    let x = Tensor::randn(0f32, 1.0, (2, 3, 8, 12, 12), &cpu)?;
    let w = Tensor::randn(0f32, 0.2, (4, 3, 3, 3, 3), &cpu)?;
    let p = ConvParams::new([1, 2, 2], [1, 1, 1]);
    let run = |d: &Device| -> anyhow::Result<(Tensor, Tensor, Tensor)> {
        let (xv, wv) = (Var::from_tensor(&x.to_device(d)?)?, Var::from_tensor(&w.to_device(d)?)?);
        let y = conv3d(&xv, &wv, None, &p)?;
        let g = y.sqr()?.sum_all()?.backward()?;
        let grad = |v: &Var| g.get(v).cloned().context("no gradient reached the convolution's input");
        Ok((y, grad(&xv)?, grad(&wv)?))
    };
    let (on_dev, on_cpu) = (run(dev)?, run(&cpu)?);
    out.push(("conv3d", max_diff(&on_dev.0, &on_cpu.0)?));
    out.push(("conv3d grad x", max_diff(&on_dev.1, &on_cpu.1)?));
    out.push(("conv3d grad w", max_diff(&on_dev.2, &on_cpu.2)?));
    Ok(out)
}

fn max_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    let d = (a.to_device(&Device::Cpu)?.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?;
    Ok(d.abs()?.max_all()?.to_scalar::<f32>()?)
}
