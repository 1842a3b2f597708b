//! The segmentation networks: `seg3d` (UniMiSS BCV, reference §5.2) and `seg2d` (the same design
//! in 2D, adapting the MiT+ JSRT network of §5.4 to MiT), one type for both modalities.
//!
//! The backbone is the model crate's [`Mit`] built **without class tokens**
//! ([`MitConfig::with_cls_token`]); [`Mit::forward_dense`] gives the stem map and the decoder stage
//! maps. On top (parameter names in brackets):
//! - `transposeconv_stage3`: transposed convolution 48 → 32, kernel = stride = 2, plus the stem
//!   skip (`out[0]`, 32 channels at `(D, H/2, W/2)` or `(H/2, W/2)`);
//! - `stage3_de`: convolution 32 → 32 (k3, p1, no bias) + InstanceNorm (affine, eps 1e-5) +
//!   LeakyReLU(0.01);
//! - trilinear `(1, 2, 2)` (3D) or bilinear ×2 (2D) upsampling, align_corners False;
//! - `cls_conv`: 1×1(×1) convolution 32 → classes with bias;
//! - deep supervision (3D, as BCV): `ds0..3_cls_conv`, 1×1×1 convolutions on decoder stage 0
//!   (256 ch), 1 (128), 2 (48) and stage 3 (32). Outputs `[result, ds3, ds2, ds1, ds0]`.

use candle::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use unimiss_model::{Mit, MitConfig, Modality, STEM_DIM};
use unimiss_ops::interp::{Resize, interpolate_bilinear2d, interpolate_trilinear3d};
use unimiss_ops::{ConvParams, ConvTransposeParams};

use crate::error::{Result, TaskError};

/// A convolution of either modality (rank-generic dispatch on the input).
#[derive(Debug, Clone)]
struct Conv {
    w: Tensor,
    b: Option<Tensor>,
    padding: usize,
}

fn kaiming(fan_in: usize) -> Init {
    Init::Randn { mean: 0.0, stdev: (2.0 / fan_in as f64).sqrt() }
}

impl Conv {
    fn new(s: Modality, inp: usize, out: usize, k: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let fan = inp * s.kernel_volume(k);
        let w = vb.get_with_hints(s.kernel_shape(out, inp, k), "weight", kaiming(fan))?;
        let b = if bias { Some(vb.get_with_hints(out, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { w, b, padding: k / 2 })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        let p = self.padding;
        match x.rank() {
            4 => unimiss_ops::conv2d(x, &self.w, self.b.as_ref(), &ConvParams::new([1; 2], [p; 2])),
            _ => unimiss_ops::conv3d(x, &self.w, self.b.as_ref(), &ConvParams::new([1; 3], [p; 3])),
        }
    }
}

/// Transposed convolution, kernel = stride = 2, with bias.
#[derive(Debug, Clone)]
struct UpConv {
    w: Tensor,
    b: Tensor,
}

impl UpConv {
    fn new(s: Modality, inp: usize, out: usize, vb: VarBuilder) -> Result<Self> {
        let fan = out * s.kernel_volume(2);
        let w = vb.get_with_hints(s.kernel_shape(inp, out, 2), "weight", kaiming(fan))?;
        let b = vb.get_with_hints(out, "bias", Init::Const(0.0))?;
        Ok(Self { w, b })
    }

    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        match x.rank() {
            4 => unimiss_ops::conv_transpose2d(x, &self.w, Some(&self.b), &ConvTransposeParams::new([2; 2])),
            _ => unimiss_ops::conv_transpose3d(x, &self.w, Some(&self.b), &ConvTransposeParams::new([2; 3])),
        }
    }
}

/// Convolution (k3, no bias) + InstanceNorm (affine) + LeakyReLU(0.01).
#[derive(Debug, Clone)]
struct ConvBlock {
    conv: Conv,
    gamma: Tensor,
    beta: Tensor,
}

impl ConvBlock {
    fn new(s: Modality, ch: usize, vb: VarBuilder) -> Result<Self> {
        let conv = Conv::new(s, ch, ch, 3, false, vb.pp("conv"))?;
        let gamma = vb.pp("norm").get_with_hints(ch, "weight", Init::Const(1.0))?;
        let beta = vb.pp("norm").get_with_hints(ch, "bias", Init::Const(0.0))?;
        Ok(Self { conv, gamma, beta })
    }

    fn forward(&self, x: &Tensor) -> candle::Result<Tensor> {
        let y = unimiss_ops::instance_norm(&self.conv.forward(x)?, Some(&self.gamma), Some(&self.beta), 1e-5)?;
        unimiss_ops::leaky_relu(&y, 0.01)
    }
}

/// MiT encoder + decoder without class tokens, with the BCV segmentation head.
#[derive(Debug, Clone)]
pub struct SegNet {
    pub backbone: Mit,
    modality: Modality,
    up: UpConv,
    block: ConvBlock,
    cls: Conv,
    ds: Vec<Conv>,
}

impl SegNet {
    /// `cfg` is turned into its class-token-free variant; `deep_supervision` adds the `ds*` heads.
    pub fn new(cfg: &MitConfig, modality: Modality, classes: usize, deep_supervision: bool, vb: VarBuilder) -> Result<Self> {
        if classes < 1 {
            return Err(TaskError::Invalid("segmentation needs at least one class".into()));
        }
        let cfg = cfg.clone().with_cls_token(false);
        let backbone = Mit::new(&cfg, vb.pp("backbone"))?;
        let top = cfg.out_dim();
        let up = UpConv::new(modality, top, STEM_DIM, vb.pp("transposeconv_stage3"))?;
        let block = ConvBlock::new(modality, STEM_DIM, vb.pp("stage3_de"))?;
        let cls = Conv::new(modality, STEM_DIM, classes, 1, true, vb.pp("cls_conv"))?;
        let ds = if deep_supervision {
            let widths = [cfg.decoder[0].dim, cfg.decoder[1].dim, cfg.decoder[2].dim, STEM_DIM];
            widths
                .iter()
                .enumerate()
                .map(|(i, &w)| Conv::new(modality, w, classes, 1, true, vb.pp(format!("ds{i}_cls_conv"))))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![]
        };
        Ok(Self { backbone, modality, up, block, cls, ds })
    }

    pub fn modality(&self) -> Modality {
        self.modality
    }

    pub fn deep_supervision(&self) -> bool {
        !self.ds.is_empty()
    }

    /// Logits at full resolution `[B, classes, D, H, W]` (or `[B, classes, H, W]`), then, with
    /// deep supervision and `train`, the ds heads from fine to coarse: `[result, ds3, ds2, ds1, ds0]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let s = Modality::of_input(x)?;
        if s != self.modality {
            return Err(TaskError::ShapeMismatch { what: format!("{} segmentation input", self.modality.tag()), got: x.dims().to_vec(), expected: vec![] });
        }
        let dense = self.backbone.forward_dense(x, train)?;
        let y = (self.up.forward(&dense.stages[2])? + &dense.stem)?;
        let stage3 = self.block.forward(&y)?;
        let up = match s {
            Modality::Image2d => interpolate_bilinear2d(&stage3, Resize::Scale(2.0), Resize::Scale(2.0))?,
            Modality::Volume3d => interpolate_trilinear3d(&stage3, Resize::Scale(1.0), Resize::Scale(2.0), Resize::Scale(2.0))?,
        };
        let mut out = vec![self.cls.forward(&up)?];
        if train && !self.ds.is_empty() {
            out.push(self.ds[3].forward(&stage3)?);
            for i in (0..3).rev() {
                out.push(self.ds[i].forward(&dense.stages[i])?);
            }
        }
        Ok(out)
    }

    /// Logits at full resolution (inference).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)?.into_iter().next().ok_or_else(|| TaskError::Invalid("segmentation net gave no output".into()))
    }
}
