//! The projection head (`backbone` → `head`), and [`MitWithHead`], the official `ModuleWrapper`.

use candle::{D, Module, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};

use crate::config::{HeadConfig, MitConfig};
use crate::mit::Mit;
use crate::nn::Linear;
use crate::profile::time;

/// `mlp.0` (in→hidden) → GELU → `mlp.2` (hidden→hidden) → GELU → `mlp.4` (hidden→bottleneck),
/// `F.normalize` (eps 1e-12), then `last_layer`: weight-normalised, bias-free Linear
/// (bottleneck→out) with effective rows `g_k · v_k / ‖v_k‖`.
///
/// `last_layer.weight_g` is frozen (official `norm_last_layer=True`): the forward pass uses it
/// detached, so it never receives a gradient ([`is_frozen`] names it for optimisers).
#[derive(Clone, Debug)]
pub struct Head {
    cfg: HeadConfig,
    mlp: [Linear; 3],
    weight_v: Tensor,
    weight_g: Tensor,
}

/// True for parameters the official recipe keeps out of the optimiser (`head.last_layer.weight_g`).
pub fn is_frozen(name: &str) -> bool {
    name.ends_with("last_layer.weight_g")
}

impl Head {
    pub fn new(cfg: &HeadConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mlp = vb.pp("mlp");
        let mlp = [
            Linear::new(cfg.in_dim, cfg.hidden_dim, true, mlp.pp(0))?,
            Linear::new(cfg.hidden_dim, cfg.hidden_dim, true, mlp.pp(2))?,
            Linear::new(cfg.hidden_dim, cfg.bottleneck_dim, true, mlp.pp(4))?,
        ];
        let last = vb.pp("last_layer");
        let b = 1.0 / (cfg.bottleneck_dim as f64).sqrt();
        let weight_v = last.get_with_hints((cfg.out_dim, cfg.bottleneck_dim), "weight_v", Init::Uniform { lo: -b, up: b })?;
        let weight_g = last.get_with_hints((cfg.out_dim, 1), "weight_g", Init::Const(1.0))?;
        Ok(Self { cfg: cfg.clone(), mlp, weight_v, weight_g })
    }

    pub fn config(&self) -> &HeadConfig {
        &self.cfg
    }

    /// `x [N, in_dim]` → logits `[N, out_dim]`, in the head's own dtype (a bf16 backbone's
    /// features are cast up: the head, its weight norm and the logits stay f32).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.weight_v.dtype())?;
        let h = self.mlp[0].forward(&x)?;
        let h = self.mlp[1].forward(&time("gelu", || h.gelu_erf())?)?;
        let z = self.mlp[2].forward(&time("gelu", || h.gelu_erf())?)?;
        time("head_norm", || {
            let z = z.broadcast_div(&z.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?)?;
            // ẑ · (g·v/‖v‖)ᵀ = (ẑ · vᵀ) scaled per column by g/‖v‖, one node with a fused backward.
            unimiss_ops::weight_norm_linear(&z, &self.weight_v, &self.weight_g.detach())
        })
    }
}

impl Module for Head {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Head::forward(self, x)
    }
}

/// Backbone plus head under the official names `backbone.*` and `head.*` (`utils.ModuleWrapper`).
#[derive(Clone, Debug)]
pub struct MitWithHead {
    pub backbone: Mit,
    pub head: Head,
}

impl MitWithHead {
    /// `vb` is the root: the backbone reads `backbone.*`, the head `head.*`.
    pub fn new(m: &MitConfig, h: &HeadConfig, vb: VarBuilder) -> Result<Self> {
        if h.in_dim != m.out_dim() {
            bail!("head in_dim {} must equal the backbone output width {}", h.in_dim, m.out_dim())
        }
        Ok(Self { backbone: Mit::new(m, vb.pp("backbone"))?, head: Head::new(h, vb.pp("head"))? })
    }

    /// Head logits of one batch (eval mode).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.head.forward(&self.backbone.forward(x)?)
    }

    /// `ModuleWrapper.forward` on a list of views: consecutive views with the same last-axis size
    /// are concatenated along the batch and run through the backbone together; the backbone
    /// outputs are concatenated in list order and the head runs once. Returns
    /// (backbone features `[ΣB, 48]`, logits `[ΣB, out_dim]`).
    pub fn forward_views(&self, views: &[Tensor], train: bool) -> Result<(Tensor, Tensor)> {
        if views.is_empty() {
            bail!("forward_views: no views")
        }
        let mut feats = Vec::new();
        let mut start = 0;
        while start < views.len() {
            let last = views[start].dims().last().copied();
            let mut end = start + 1;
            while end < views.len() && views[end].dims().last().copied() == last {
                end += 1;
            }
            let batch = if end - start == 1 { views[start].clone() } else { Tensor::cat(&views[start..end], 0)? };
            feats.push(self.backbone.forward_t(&batch, train)?);
            start = end;
        }
        let feats = if feats.len() == 1 { feats.remove(0) } else { Tensor::cat(&feats, 0)? };
        let logits = self.head.forward(&feats)?;
        Ok((feats, logits))
    }
}

impl Module for MitWithHead {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        MitWithHead::forward(self, x)
    }
}
