//! The classification network (RICORD design, reference §5.1) for 2D and 3D inputs.

use candle::{Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use unimiss_model::{Mit, MitConfig, Modality};

use crate::error::{Result, TaskError};

/// MiT encoder + `norm_new` (LayerNorm 512, eps 1e-6) + `head_new` (Linear 512 → classes).
///
/// Parameter names: the backbone under `backbone.` exactly as the model crate (official
/// pretraining keys, so pretrained weights load without renaming), `norm_new.*`, `head_new.*`.
/// Only the encoder path of `modality` is used; the decoder and the other modality's modules exist
/// in the model crate's `Mit` but receive no gradient.
#[derive(Debug, Clone)]
pub struct ClsNet {
    pub backbone: Mit,
    modality: Modality,
    norm_w: Tensor,
    norm_b: Tensor,
    head: Linear,
}

impl ClsNet {
    pub fn new(cfg: &MitConfig, modality: Modality, classes: usize, vb: VarBuilder) -> Result<Self> {
        if classes < 2 {
            return Err(TaskError::Invalid(format!("classification needs at least 2 classes, got {classes}")));
        }
        let backbone = Mit::new(cfg, vb.pp("backbone"))?;
        let dim = cfg.encoder[3].dim;
        let norm_w = vb.pp("norm_new").get_with_hints(dim, "weight", Init::Const(1.0))?;
        let norm_b = vb.pp("norm_new").get_with_hints(dim, "bias", Init::Const(0.0))?;
        let hw = vb.pp("head_new").get_with_hints((classes, dim), "weight", Init::Randn { mean: 0.0, stdev: 0.02 })?;
        let hb = vb.pp("head_new").get_with_hints(classes, "bias", Init::Const(0.0))?;
        Ok(Self { backbone, modality, norm_w, norm_b, head: Linear::new(hw, Some(hb)) })
    }

    /// Logits `(B, classes)` of `x`: `(B, 3, H, W)` for 2D, `(B, 1, D, H, W)` for 3D.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = Modality::of_input(x)?;
        if s != self.modality {
            return Err(TaskError::ShapeMismatch {
                what: format!("{} classification input", self.modality.tag()),
                got: x.dims().to_vec(),
                expected: vec![],
            });
        }
        let enc = self.backbone.forward_features(x)?;
        let y = unimiss_ops::layer_norm(&enc.tokens, &self.norm_w, &self.norm_b, 1e-6)?;
        let n = y.dim(1)?;
        let cls = y.narrow(1, 0, 1)?.squeeze(1)?;
        let mean = y.narrow(1, 1, n - 1)?.mean(1)?;
        let logits = ((self.head.forward(&cls)? + self.head.forward(&mean)?)? * 0.5)?;
        Ok(logits)
    }
}
