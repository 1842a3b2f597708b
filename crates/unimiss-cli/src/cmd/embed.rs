//! `cargo xtask embed --weights FILE --arch tiny|small [--img-size-2d 224] [--img-size-3d 16,96,96]
//! --inputs IN.safetensors --output OUT.safetensors [--which teacher|student] [--device cpu|cuda:N]`
//!
//! Every rank-4 (2D batch `[B,3,H,W]`) or rank-5 (3D batch `[B,1,D,H,W]`) f32 tensor of IN gets
//! its backbone output (the decoder class token, `[B,48]`) written under the same name, and, when
//! the weights include a head, the head output under `<name>.head` (head sizes from the weights).
//! `--image FILE` embeds one PNG/JPEG or NIfTI volume, fitted to a size the model takes
//! (`--fit pad`, default: height and width padded to an equal multiple of 32, depth resized;
//! `--fit resize`: resized to the weights' size); the command says which.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use candle::{DType, Device, Tensor};
use unimiss_model::checkpoint::{self, KeyPolicy, Loaded, Which};
use unimiss_model::{Arch, MitConfig};
use unimiss_ops::interp::{Resize, interpolate_trilinear3d};

#[derive(clap::Args)]
pub struct Args {
    /// Weights: official `.pth` checkpoint or safetensors (from `convert` or `export`).
    #[arg(long)]
    pub weights: PathBuf,
    /// Backbone preset.
    #[arg(long)]
    pub arch: Arch,
    /// 2D size the weights were built for [default: read off the weights, else 224].
    #[arg(long)]
    pub img_size_2d: Option<usize>,
    /// 3D size D,H,W the weights were built for [default: read off the weights, else 16,96,96].
    #[arg(long, value_parser = crate::args::parse_size3)]
    pub img_size_3d: Option<[usize; 3]>,
    /// Safetensors file of input batches.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    pub inputs: Option<PathBuf>,
    /// A single image (PNG/JPEG, used as RGB in [0, 1]) or volume (NIfTI, in model order D,H,W).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Safetensors file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// State_dict of a training checkpoint to use.
    #[arg(long, default_value = "teacher")]
    pub which: Which,
    /// With --image: how an image or volume whose height and width the model cannot take (they
    /// must be equal multiples of 32) is fitted: `pad` (default) pads H and W symmetrically to
    /// the next multiple of 32 of the larger side, keeping the voxel size (with the image's
    /// minimum: air for CT, black for images); `resize` resizes the whole input (linear) to the
    /// size the weights were built for. Volumes of another depth are resized in depth either way.
    #[arg(long, value_enum, default_value = "pad")]
    pub fit: Fit,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// `cpu` or `cuda:N` (a binary built with CUDA); the outputs are written from the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// How `--image` inputs are brought to a size the model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fit {
    Pad,
    Resize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Opened first: a device that is not there is said before any file is read.
    let dev = unimiss_runtime::device::parse_device(&args.device)?;
    let sd = checkpoint::load(&args.weights, args.which).with_context(|| format!("reading {}", args.weights.display()))?;
    let (built2, built3) = sd.built_sizes();
    let size2 = args.img_size_2d.or(built2).unwrap_or(224);
    let size3 = args.img_size_3d.or(built3).unwrap_or([16, 96, 96]);
    let cfg = MitConfig::preset(args.arch).with_img_size_2d(size2).with_img_size_3d(size3);
    let Loaded { backbone, head, .. } = sd
        .build(&cfg, KeyPolicy::Exact, &dev)
        .with_context(|| format!("{} as {} built for {size2} / {size3:?}", args.weights.display(), args.arch))?;
    eprintln!(
        "embed: {} ({}, built for {size2} / {size3:?}){}",
        args.weights.display(),
        args.arch,
        head.as_ref().map(|h| format!(", head {}→{}", h.config().in_dim, h.config().out_dim)).unwrap_or_default()
    );
    let inputs = match (&args.inputs, &args.image) {
        (Some(p), _) => candle::safetensors::load(p, &Device::Cpu).with_context(|| format!("reading {}", p.display()))?,
        (None, Some(p)) => single_image(p, size2, size3, args.fit)?,
        (None, None) => bail!("give --inputs or --image"),
    };
    let batch = args.batch.max(1);
    let mut names: Vec<&String> = inputs.keys().collect();
    names.sort();
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for name in names {
        let x = &inputs[name];
        if !(matches!(x.rank(), 4 | 5) && x.dtype() == DType::F32) {
            eprintln!("embed: skipping {name}: {:?} {:?} is not a rank-4/5 f32 batch", x.dtype(), x.dims());
            continue;
        }
        if x.rank() == 5 && x.dim(2)? != size3[0] {
            bail!(
                "{name}: depth {} does not match the depth the weights were built for ({}; --img-size-3d D,H,W): \
                 the 3D positional table is resized in height and width only, as in the official code",
                x.dim(2)?,
                size3[0]
            );
        }
        let n = x.dim(0)?;
        let start = Instant::now();
        let mut feats = Vec::new();
        for i in (0..n).step_by(batch) {
            let len = batch.min(n - i);
            let xb = x.narrow(0, i, len)?.to_device(&dev)?;
            feats.push(backbone.forward(&xb).with_context(|| format!("{name} {:?} on {}", x.dims(), args.device))?);
            let done = i + len;
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
            eprintln!("embed: {name}: {done}/{n} samples ({rate:.1}/s, ETA {:.0}s)", (n - done) as f64 / rate);
        }
        let feats = Tensor::cat(&feats, 0)?;
        if let Some(h) = &head {
            out.insert(format!("{name}.head"), h.forward(&feats)?.to_device(&Device::Cpu)?);
        }
        out.insert(name.clone(), feats.to_device(&Device::Cpu)?);
    }
    if out.is_empty() {
        bail!("no rank-4 or rank-5 f32 tensor in the inputs")
    }
    candle::safetensors::save(&out, &args.output).with_context(|| format!("writing {}", args.output.display()))?;
    println!("embed: wrote {} tensors to {}", out.len(), args.output.display());
    Ok(())
}

/// The side a model takes for an `h × w` input: the larger side rounded up to a multiple of 32,
/// at least 64 (stage 4 halves it five times; the positional resize needs a square grid).
fn padded_side(h: usize, w: usize) -> usize {
    h.max(w).div_ceil(32).max(2) * 32
}

/// `x [1, C, (D,) H, W]` padded symmetrically in H and W to `side` with `value`.
fn pad_hw(x: &Tensor, side: usize, value: f32) -> anyhow::Result<Tensor> {
    let r = x.rank();
    let (h, w) = (x.dim(r - 2)?, x.dim(r - 1)?);
    let (ph, pw) = (side - h, side - w);
    let y = x.affine(1.0, -f64::from(value))?;
    let y = y.pad_with_zeros(r - 2, ph / 2, ph - ph / 2)?.pad_with_zeros(r - 1, pw / 2, pw - pw / 2)?;
    Ok(y.affine(1.0, f64::from(value))?)
}

/// `--image`: one PNG/JPEG as `[1, 3, H, W]` (RGB in [0, 1]) or one NIfTI volume as
/// `[1, 1, D, H, W]` (values as stored), under the file name, fitted to what the model takes
/// ([`Fit`]); the note says what was done.
fn single_image(path: &Path, size2: usize, size3: [usize; 3], fit: Fit) -> anyhow::Result<HashMap<String, Tensor>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let lower = name.to_lowercase();
    let (t, min) = if lower.ends_with(".nii") || lower.ends_with(".nii.gz") {
        let v = unimiss_data::read_nifti(path)?;
        let [d, h, w] = v.dims;
        let min = v.data.iter().copied().fold(f32::INFINITY, f32::min);
        (Tensor::from_vec(v.data, (1, 1, d, h, w), &Device::Cpu)?, min)
    } else {
        let img = unimiss_data::read_image(path)?;
        let (h, w, c) = (img.height, img.width, img.channels);
        let min = img.data.iter().copied().fold(f32::INFINITY, f32::min);
        // Planar (C, H, W) in [0, 1]; a grey image is repeated to 3 channels like the official loader.
        let chw = Tensor::from_vec(img.data, (c, h, w), &Device::Cpu)?;
        let chw = if c == 1 { chw.repeat((3, 1, 1))? } else { chw };
        (chw.unsqueeze(0)?, min)
    };
    let dims = t.dims().to_vec();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let volume = t.rank() == 5;
    let fitted = match fit {
        Fit::Resize if volume => interpolate_trilinear3d(&t, Resize::Size(size3[0]), Resize::Size(size3[1]), Resize::Size(size3[2]))?,
        Fit::Resize => interpolate_trilinear3d(&t.unsqueeze(2)?, Resize::Size(1), Resize::Size(size2), Resize::Size(size2))?.squeeze(2)?,
        Fit::Pad => {
            let depth_ok = !volume || dims[2] == size3[0];
            let t = if depth_ok { t } else { interpolate_trilinear3d(&t, Resize::Size(size3[0]), Resize::Size(h), Resize::Size(w))? };
            let side = padded_side(h, w);
            if side == h && side == w { t } else { pad_hw(&t, side, min)? }
        }
    };
    if fitted.dims() != dims.as_slice() {
        let how = match fit {
            Fit::Resize => "resized (linear) to the size the weights were built for".to_string(),
            Fit::Pad => format!(
                "{}height and width padded symmetrically with {min} (the input's minimum; voxel size kept; --fit resize resizes instead)",
                if volume && dims[2] != size3[0] { "depth resized (trilinear) to the model's, " } else { "" }
            ),
        };
        eprintln!("embed: {name}: {:?} → {:?}: {how}", &dims[1..], &fitted.dims()[1..]);
    }
    Ok(HashMap::from([(name, fitted)]))
}
