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
//!
//! The layers are the model crate's [`Conv`], [`ConvBlock`] and [`UpConv`] (the decoder's own),
//! with its official initialisation (convolutions kaiming-normal on fan-out, PyTorch's default
//! uniform for biases and the transposed convolution) and its check that instance norm sees more
//! than one spatial element.

use candle::Tensor;
use candle_nn::VarBuilder;
use unimiss_model::{Conv, ConvBlock, ConvSpec, Mit, MitConfig, Modality, STEM_DIM, UpConv};
use unimiss_ops::interp::{Resize, interpolate_bilinear2d, interpolate_trilinear3d};

use crate::error::{Result, TaskError};

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
    /// `cfg` is turned into its class-token-free variant. 3D networks have the deep-supervision
    /// heads `ds*` (the official BCV network, reference §5.2); 2D networks do not (JSRT).
    pub fn new(cfg: &MitConfig, modality: Modality, classes: usize, vb: VarBuilder) -> Result<Self> {
        if classes < 1 {
            return Err(TaskError::Invalid("segmentation needs at least one class".into()));
        }
        let cfg = cfg.clone().with_cls_token(false);
        let backbone = Mit::new(&cfg, vb.pp("backbone"))?;
        let top = cfg.out_dim();
        let up = UpConv::new(modality, top, STEM_DIM, vb.pp("transposeconv_stage3"))?;
        let block = ConvBlock::new(modality, &ConvSpec::same(STEM_DIM, STEM_DIM, 3, false, "seg_stage3_de"), vb.pp("stage3_de"))?;
        let cls = Conv::new(modality, &ConvSpec::same(STEM_DIM, classes, 1, true, "seg_cls_conv"), vb.pp("cls_conv"))?;
        let ds = match modality {
            Modality::Volume3d => {
                let widths = [cfg.decoder[0].dim, cfg.decoder[1].dim, cfg.decoder[2].dim, STEM_DIM];
                widths
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| Conv::new(modality, &ConvSpec::same(w, classes, 1, true, "seg_ds_cls_conv"), vb.pp(format!("ds{i}_cls_conv"))))
                    .collect::<candle::Result<Vec<_>>>()?
            }
            Modality::Image2d => vec![],
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
