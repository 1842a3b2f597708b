//! Layers: linear, layer norm, MLP, convolution blocks (2D or 3D by [`Modality`]), transposed
//! convolutions. Initialisation hints follow the official `_init_weights`.
//!
//! [`Conv`], [`ConvBlock`] and [`UpConv`] are public: task heads (the segmentation decoder of
//! `unimiss-tasks`) build on them rather than on copies.

use candle::{DType, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};
use unimiss_ops::{ConvParams, ConvTransposeParams, conv_transpose2d, conv_transpose3d, conv2d, conv3d};

use crate::profile::time;
use unimiss_ops::Modality;

/// `trunc_normal_(std=0.02)` with absolute bounds ±2, i.e. an untruncated N(0, 0.02²) in practice.
pub(crate) const TRUNC_NORMAL_02: Init = Init::Randn { mean: 0.0, stdev: 0.02 };

/// PyTorch's default uniform bound `1/sqrt(fan_in)` (kaiming_uniform with a = √5, and biases).
fn default_uniform(fan_in: usize) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// `y = x Wᵀ + b` over the last axis of any-rank input.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Official init: weight N(0, 0.02²), bias 0.
    pub(crate) fn new(inp: usize, out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out, inp), "weight", TRUNC_NORMAL_02)?;
        let bias = if bias { Some(vb.get_with_hints(out, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        time("linear", || unimiss_ops::linear(x, &self.weight, self.bias.as_ref()))
    }
}

/// LayerNorm over the last axis with the given eps (differentiable, from `unimiss_ops`).
#[derive(Clone, Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    /// In f32 whatever the input's dtype (mixed precision keeps norms in f32).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        time("layer_norm", || {
            in_f32(x, |x| unimiss_ops::layer_norm(x, &self.weight.to_dtype(DType::F32)?, &self.bias.to_dtype(DType::F32)?, self.eps))
        })
    }
}

/// fc1 → GELU (erf) → fc2, hidden width `ratio · dim`.
#[derive(Clone, Debug)]
pub(crate) struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub(crate) fn new(dim: usize, ratio: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = dim * ratio;
        Ok(Self { fc1: Linear::new(dim, hidden, true, vb.pp("fc1"))?, fc2: Linear::new(hidden, dim, true, vb.pp("fc2"))? })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = time("gelu", || unimiss_ops::gelu(&h))?;
        self.fc2.forward(&h)
    }
}

/// A convolution with a cubic kernel, 2D or 3D. `stride`/`padding` are given as `[d, h, w]`;
/// the 2D form uses `[h, w]`. Parameters `weight` `[out, in, k, k(, k)]` and `bias`.
#[derive(Clone, Debug)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    modality: Modality,
    stride: [usize; 3],
    padding: [usize; 3],
    label: &'static str,
}

/// Shape of a convolution: channels, kernel, stride, padding, bias; `label` names it in
/// [`crate::profile`] timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub inp: usize,
    pub out: usize,
    pub kernel: usize,
    pub stride: [usize; 3],
    pub padding: usize,
    pub bias: bool,
    pub label: &'static str,
}

impl ConvSpec {
    /// Stride 1, padding `kernel / 2` ("same" size for odd kernels).
    pub fn same(inp: usize, out: usize, kernel: usize, bias: bool, label: &'static str) -> Self {
        Self { inp, out, kernel, stride: [1; 3], padding: kernel / 2, bias, label }
    }
}

impl Conv {
    /// Official init: kaiming_normal(fan_out, ReLU gain); bias PyTorch default uniform.
    pub fn new(modality: Modality, spec: &ConvSpec, vb: VarBuilder) -> Result<Self> {
        let taps = modality.kernel_volume(spec.kernel);
        let stdev = (2.0 / (spec.out * taps) as f64).sqrt();
        let weight = vb.get_with_hints(
            modality.kernel_shape(spec.out, spec.inp, spec.kernel),
            "weight",
            Init::Randn { mean: 0.0, stdev },
        )?;
        let bias = if spec.bias { Some(vb.get_with_hints(spec.out, "bias", default_uniform(spec.inp * taps))?) } else { None };
        Ok(Self { weight, bias, modality, stride: spec.stride, padding: [spec.padding; 3], label: spec.label })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [sd, sh, sw] = self.stride;
        let [pd, ph, pw] = self.padding;
        time(self.label, || match self.modality {
            Modality::Image2d => conv2d(x, &self.weight, self.bias.as_ref(), &ConvParams::new([sh, sw], [ph, pw])),
            Modality::Volume3d => conv3d(x, &self.weight, self.bias.as_ref(), &ConvParams::new([sd, sh, sw], [pd, ph, pw])),
        })
    }
}

/// `Conv{2,3}dBlock`: convolution without bias → InstanceNorm (affine, eps 1e-5) → LeakyReLU(0.01).
/// Keys `conv.weight`, `norm.weight`, `norm.bias`. A map of one spatial element is an error
/// (instance norm would divide by zero variance).
#[derive(Clone, Debug)]
pub struct ConvBlock {
    conv: Conv,
    norm_weight: Tensor,
    norm_bias: Tensor,
}

impl ConvBlock {
    pub fn new(modality: Modality, spec: &ConvSpec, vb: VarBuilder) -> Result<Self> {
        let conv = Conv::new(modality, spec, vb.pp("conv"))?;
        let norm = vb.pp("norm");
        let norm_weight = norm.get_with_hints(spec.out, "weight", Init::Const(1.0))?;
        let norm_bias = norm.get_with_hints(spec.out, "bias", Init::Const(0.0))?;
        Ok(Self { conv, norm_weight, norm_bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        let cells: usize = y.dims()[2..].iter().product();
        if cells <= 1 {
            bail!("instance norm needs more than one spatial element, got map {:?} (input too small)", y.dims())
        }
        let y = time("instance_norm", || {
            in_f32(&y, |y| {
                unimiss_ops::instance_norm(y, Some(&self.norm_weight.to_dtype(DType::F32)?), Some(&self.norm_bias.to_dtype(DType::F32)?), 1e-5)
            })
        })?;
        time("leaky_relu", || unimiss_ops::leaky_relu(&y, 0.01))
    }
}

/// `ConvTranspose{2,3}d(in, out, kernel = stride = 2, bias)`, weight `[in, out, 2, 2(, 2)]`.
#[derive(Clone, Debug)]
pub struct UpConv {
    weight: Tensor,
    bias: Tensor,
    modality: Modality,
}

impl UpConv {
    /// PyTorch default init (the official init function does not touch transposed convs).
    pub fn new(modality: Modality, inp: usize, out: usize, vb: VarBuilder) -> Result<Self> {
        let fan_in = out * modality.kernel_volume(2);
        let weight = vb.get_with_hints(modality.kernel_shape(inp, out, 2), "weight", default_uniform(fan_in))?;
        let bias = vb.get_with_hints(out, "bias", default_uniform(fan_in))?;
        Ok(Self { weight, bias, modality })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        time("conv_transpose", || match self.modality {
            Modality::Image2d => conv_transpose2d(x, &self.weight, Some(&self.bias), &ConvTransposeParams::new([2, 2])),
            Modality::Volume3d => conv_transpose3d(x, &self.weight, Some(&self.bias), &ConvTransposeParams::new([2, 2, 2])),
        })
    }
}

/// `f(x)` computed in f32 and returned in `x`'s dtype: the f32 islands of mixed precision
/// (norms, softmax). For an f32 input it is `f(x)` (`to_dtype` to the same dtype is a no-op).
pub(crate) fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if x.dtype() == DType::F32 {
        return f(x);
    }
    f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())
}
