//! `cargo xtask bench ops [--json FILE] [--iters N]`: the unimiss-ops kernels at the MiT's real
//! shapes (convolutions of the 2D and 3D stems and patch embeddings, the spatial-reduction convs,
//! the decoder's transposed convs, layer norm, softmax, instance norm). Forward and
//! forward+backward median ms over `--iters` after `--warmup`, and GFLOP/s for the convolutions
//! (forward+backward counts 3× the forward work: input and weight gradients; the stems' inputs
//! need no gradient, so 2×).

use std::path::PathBuf;
use std::time::Instant;

use candle::{DType, Device, Tensor, Var};
use unimiss_ops::{
    ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d, instance_norm, layer_norm,
    softmax_last_dim,
};

#[derive(clap::Args)]
pub struct Args {
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Timed iterations per case (median reported).
    #[arg(long, default_value_t = 7)]
    iters: usize,
    /// Untimed warm-up iterations per case.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Only cases whose name contains this string.
    #[arg(long)]
    filter: Option<String>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The operator of one case and its hyperparameters.
#[derive(Clone, Copy)]
enum Op {
    Conv2d { o: usize, k: usize, s: usize, p: usize },
    Conv3d { o: usize, k: usize, s: [usize; 3], p: usize },
    ConvT2d { o: usize, k: usize },
    ConvT3d { o: usize, k: usize },
    LayerNorm,
    Softmax,
    InstanceNorm,
}

struct Case {
    name: &'static str,
    input: &'static [usize],
    op: Op,
    /// Whether the input needs a gradient (false for the stems, whose input is the image).
    input_grad: bool,
}

fn cases() -> Vec<Case> {
    use Op::*;
    let case = |name, input, op, input_grad| Case { name, input, op, input_grad };
    vec![
        case("conv3d_stem_k7s122", &[2, 1, 16, 96, 96], Conv3d { o: 32, k: 7, s: [1, 2, 2], p: 3 }, false),
        case("conv3d_embed1_k3s2", &[2, 32, 16, 48, 48], Conv3d { o: 48, k: 3, s: [2; 3], p: 1 }, true),
        case("conv3d_sr_k6s6", &[2, 48, 8, 24, 24], Conv3d { o: 48, k: 6, s: [6; 3], p: 0 }, true),
        case("conv3d_sr_k4s4", &[2, 128, 4, 12, 12], Conv3d { o: 128, k: 4, s: [4; 3], p: 0 }, true),
        case("conv3d_sr_k2s2", &[2, 256, 2, 6, 6], Conv3d { o: 256, k: 2, s: [2; 3], p: 0 }, true),
        case("conv_transpose3d_k2s2", &[2, 512, 1, 3, 3], ConvT3d { o: 256, k: 2 }, true),
        case("conv_transpose3d_k2s2_dec2", &[2, 128, 4, 12, 12], ConvT3d { o: 48, k: 2 }, true),
        case("conv2d_stem_k7s2", &[4, 3, 224, 224], Conv2d { o: 32, k: 7, s: 2, p: 3 }, false),
        case("conv2d_embed1_k3s2", &[4, 32, 112, 112], Conv2d { o: 48, k: 3, s: 2, p: 1 }, true),
        case("conv2d_sr_k6s6", &[4, 48, 56, 56], Conv2d { o: 48, k: 6, s: 6, p: 0 }, true),
        case("conv2d_sr_k4s4", &[4, 128, 28, 28], Conv2d { o: 128, k: 4, s: 4, p: 0 }, true),
        case("conv2d_sr_k2s2", &[4, 256, 14, 14], Conv2d { o: 256, k: 2, s: 2, p: 0 }, true),
        case("conv_transpose2d_k2s2", &[4, 512, 7, 7], ConvT2d { o: 256, k: 2 }, true),
        case("layer_norm_4x3137x48", &[4, 3137, 48], LayerNorm, true),
        case("softmax_4x3137x48", &[4, 3137, 48], Softmax, true),
        case("softmax_attn_4x3137x82", &[4, 3137, 82], Softmax, true),
        case("instance_norm_4x32x112x112", &[4, 32, 112, 112], InstanceNorm, true),
        case("instance_norm_2x32x16x48x48", &[2, 32, 16, 48, 48], InstanceNorm, true),
    ]
}

/// Parameters of a case, created once.
struct Params {
    w: Var,
    b: Option<Var>,
}

fn params(case: &Case, dev: &Device) -> candle::Result<Params> {
    let c = case.input[1];
    let last = case.input[case.input.len() - 1];
    let var = |dims: &[usize], std: f64| Var::randn(0f32, std as f32, dims, dev);
    Ok(match case.op {
        Op::Conv2d { o, k, .. } => Params { w: var(&[o, c, k, k], 0.05)?, b: None },
        Op::Conv3d { o, k, .. } => Params { w: var(&[o, c, k, k, k], 0.05)?, b: None },
        Op::ConvT2d { o, k } => Params { w: var(&[c, o, k, k], 0.05)?, b: Some(var(&[o], 0.05)?) },
        Op::ConvT3d { o, k } => Params { w: var(&[c, o, k, k, k], 0.05)?, b: Some(var(&[o], 0.05)?) },
        Op::LayerNorm => Params { w: var(&[last], 1.0)?, b: Some(var(&[last], 1.0)?) },
        Op::InstanceNorm => Params { w: var(&[c], 1.0)?, b: Some(var(&[c], 1.0)?) },
        Op::Softmax => Params { w: var(&[1], 1.0)?, b: None },
    })
}

fn forward(case: &Case, x: &Tensor, p: &Params) -> candle::Result<Tensor> {
    let b = p.b.as_ref().map(|b| b.as_tensor());
    match case.op {
        Op::Conv2d { k: _, s, p: pad, .. } => conv2d(x, &p.w, b, &ConvParams::new([s; 2], [pad; 2])),
        Op::Conv3d { s, p: pad, .. } => conv3d(x, &p.w, b, &ConvParams::new(s, [pad; 3])),
        Op::ConvT2d { k, .. } => conv_transpose2d(x, &p.w, b, &ConvTransposeParams::new([k; 2])),
        Op::ConvT3d { k, .. } => conv_transpose3d(x, &p.w, b, &ConvTransposeParams::new([k; 3])),
        Op::LayerNorm => layer_norm(x, &p.w, b.unwrap_or(p.w.as_tensor()), 1e-6),
        Op::Softmax => softmax_last_dim(x),
        Op::InstanceNorm => instance_norm(x, Some(p.w.as_tensor()), b, 1e-5),
    }
}

/// Forward FLOPs of a convolution case (multiply-add = 2), or `None` for other ops.
fn conv_flops(case: &Case, y: &Tensor) -> Option<f64> {
    let c = case.input[1] as f64;
    let out: f64 = y.dims().iter().map(|&d| d as f64).product();
    let inp: f64 = case.input.iter().map(|&d| d as f64).product();
    match case.op {
        Op::Conv2d { k, .. } => Some(2.0 * out * c * (k * k) as f64),
        Op::Conv3d { k, .. } => Some(2.0 * out * c * (k * k * k) as f64),
        Op::ConvT2d { o, k } => Some(2.0 * inp * (o * k * k) as f64),
        Op::ConvT3d { o, k } => Some(2.0 * inp * (o * k * k * k) as f64),
        _ => None,
    }
}

fn median_ms(mut f: impl FnMut() -> candle::Result<()>, warmup: usize, iters: usize, dev: &Device) -> anyhow::Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        dev.synchronize()?;
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = match args.device.as_str() {
        "cpu" => Device::Cpu,
        d => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::new_cuda(i)?,
            _ => anyhow::bail!("--device must be cpu or cuda:N, got {d}"),
        },
    };
    println!(
        "unimiss-ops bench on {:?}, {} threads, median of {} (after {} warm-up)",
        dev,
        candle::utils::get_num_threads(),
        args.iters,
        args.warmup
    );
    println!("{:<30} {:>22} {:>10} {:>9} {:>12} {:>9}", "case", "input", "fwd ms", "GFLOP/s", "fwd+bwd ms", "GFLOP/s");
    let mut rows = Vec::new();
    for case in cases() {
        if args.filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let p = params(&case, &dev)?;
        let x = Var::randn(0f32, 1.0, case.input, &dev)?;
        let x_in = if case.input_grad { x.as_tensor().clone() } else { x.as_tensor().detach() };
        let y = forward(&case, &x_in, &p)?;
        let r = Tensor::randn(0f32, 1.0, y.dims(), &dev)?;
        let fwd = median_ms(|| forward(&case, &x_in, &p).map(drop), args.warmup, args.iters, &dev)?;
        let step = || -> candle::Result<()> {
            let y = forward(&case, &x_in, &p)?;
            let grads = (y * &r)?.sum_all()?.backward()?;
            if grads.get(&p.w).is_none() && !matches!(case.op, Op::Softmax) {
                candle::bail!("{}: no weight gradient", case.name)
            }
            Ok(())
        };
        let fb = median_ms(step, args.warmup, args.iters, &dev)?;
        let flops = conv_flops(&case, &y);
        let bwd_factor = if case.input_grad { 3.0 } else { 2.0 };
        let gf = |f: f64, ms: f64| f / ms / 1e6;
        let (gf_f, gf_fb) = match flops {
            Some(f) => (format!("{:.1}", gf(f, fwd)), format!("{:.1}", gf(bwd_factor * f, fb))),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<30} {:>22} {:>10.2} {:>9} {:>12.2} {:>9}",
            case.name,
            format!("{:?}", case.input),
            fwd,
            gf_f,
            fb,
            gf_fb
        );
        rows.push(serde_json::json!({
            "case": case.name,
            "input": case.input,
            "output": y.dims(),
            "forward_ms": fwd,
            "forward_backward_ms": fb,
            "forward_gflops": flops.map(|f| gf(f, fwd)),
            "forward_backward_gflops": flops.map(|f| gf(bwd_factor * f, fb)),
        }));
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "bench": "ops",
            "device": format!("{dev:?}"),
            "threads": candle::utils::get_num_threads(),
            "iters": args.iters,
            "dtype": format!("{:?}", DType::F32),
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
