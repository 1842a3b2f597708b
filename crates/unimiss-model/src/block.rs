//! Spatial-reduction attention and the pre-norm transformer block, shared by 2D and 3D.

use candle::{Result, Tensor, bail};
use candle_nn::VarBuilder;

use crate::config::StageConfig;
use crate::nn::{Conv, ConvSpec, LayerNorm, Linear, Mlp};
use crate::profile::time;
use crate::spatial::Grid;
use crate::PerModality;

/// Attention whose keys and values come from a strided-convolution-reduced token map
/// (`sr2D`/`sr3D`, kernel = stride = `sr_ratio`) plus the un-reduced class token, LayerNorm-ed
/// with eps 1e-5 (`attn.norm`).
#[derive(Clone, Debug)]
pub(crate) struct Attention {
    q: Linear,
    kv: Linear,
    proj: Linear,
    sr: Option<(PerModality<Conv>, LayerNorm)>,
    heads: usize,
    scale: f64,
}

impl Attention {
    pub(crate) fn new(st: &StageConfig, qkv_bias: bool, vb: VarBuilder) -> Result<Self> {
        let c = st.dim;
        let sr = if st.sr_ratio > 1 {
            let r = st.sr_ratio;
            let spec = ConvSpec { inp: c, out: c, kernel: r, stride: [r; 3], padding: 0, bias: true, label: "conv_sr" };
            let convs = PerModality::try_from_fn(|s| Conv::new(s, &spec, vb.pp(format!("sr{}", s.tag()))))?;
            Some((convs, LayerNorm::new(c, 1e-5, vb.pp("norm"))?))
        } else {
            None
        };
        Ok(Self {
            q: Linear::new(c, c, qkv_bias, vb.pp("q"))?,
            kv: Linear::new(c, 2 * c, qkv_bias, vb.pp("kv"))?,
            proj: Linear::new(c, c, true, vb.pp("proj"))?,
            sr,
            heads: st.heads,
            scale: ((c / st.heads) as f64).powf(-0.5),
        })
    }

    /// Keys/values source: `x [B, 1+N, C]` (class token first) → `[B, 1+N', C]`. Without class
    /// token (`x [B, N, C]`, the segmentation networks) all tokens are reduced: `[B, N', C]`.
    fn reduce(&self, x: &Tensor, grid: &Grid) -> Result<Tensor> {
        let Some((convs, norm)) = &self.sr else { return Ok(x.clone()) };
        let (b, n, c) = x.dims3()?;
        let has_cls = if n == grid.tokens() + 1 {
            true
        } else if n == grid.tokens() {
            false
        } else {
            bail!("attention: {n} tokens do not match grid {grid} (with or without a class token)")
        };
        let first = has_cls as usize;
        let map = time("reshape", || x.narrow(1, first, n - first)?.transpose(1, 2)?.reshape(grid.map_shape(b, c)))?;
        let red = convs.get(grid.modality).forward(&map)?;
        let red = time("reshape", || {
            let red = red.flatten_from(2)?.transpose(1, 2)?;
            if has_cls { Tensor::cat(&[&x.narrow(1, 0, 1)?, &red], 1) } else { Ok(red) }
        })?;
        norm.forward(&red)
    }

    /// `queries [B, Nq, C]` attend to keys/values built from `x [B, 1+N, C]` on `grid`.
    /// The usual self-attention is `forward(x, x, grid)`; the last block of the network passes
    /// only the class token as queries.
    pub(crate) fn forward(&self, queries: &Tensor, x: &Tensor, grid: &Grid) -> Result<Tensor> {
        let q = self.q.forward(queries)?;
        let kv = self.kv.forward(&self.reduce(x, grid)?)?;
        let attn_out = time("attention", || unimiss_ops::attention(&q, &kv, self.heads, self.scale))?;
        self.proj.forward(&attn_out)
    }
}

/// Per-sample stochastic depth (timm `drop_path`): in training, keeps a sample's residual branch
/// with probability `1 − p` and rescales it by `1/(1 − p)`.
fn drop_path(x: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if !train || p == 0.0 {
        return Ok(x.clone());
    }
    let b = x.dim(0)?;
    let keep = 1.0 - p;
    let mut shape = vec![b];
    shape.resize(x.rank(), 1);
    let mask = Tensor::rand(0f32, 1f32, shape, x.device())?.affine(1.0, keep)?.floor()?.to_dtype(x.dtype())?;
    (x / keep)?.broadcast_mul(&mask)
}

/// Pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    drop_path: f64,
}

impl Block {
    pub(crate) fn new(st: &StageConfig, qkv_bias: bool, eps: f64, drop_path: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(st.dim, eps, vb.pp("norm1"))?,
            attn: Attention::new(st, qkv_bias, vb.pp("attn"))?,
            norm2: LayerNorm::new(st.dim, eps, vb.pp("norm2"))?,
            mlp: Mlp::new(st.dim, st.mlp_ratio, vb.pp("mlp"))?,
            drop_path,
        })
    }

    /// `x [B, 1+N, C]` → `[B, 1+N, C]`.
    pub(crate) fn forward(&self, x: &Tensor, grid: &Grid, train: bool) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let a = drop_path(&self.attn.forward(&h, &h, grid)?, self.drop_path, train)?;
        let x = time("residual", || x + a)?;
        let m = drop_path(&self.mlp.forward(&self.norm2.forward(&x)?)?, self.drop_path, train)?;
        time("residual", || x + m)
    }

    /// The class-token row of [`Block::forward`] only: `x [B, 1+N, C]` → `[B, 1, C]`. Every row
    /// of a block is computed independently once keys and values are known, so this equals
    /// `forward(..).narrow(1, 0, 1)` without computing the other rows.
    pub(crate) fn forward_cls(&self, x: &Tensor, grid: &Grid, train: bool) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let a = self.attn.forward(&h.narrow(1, 0, 1)?, &h, grid)?;
        let x0 = (x.narrow(1, 0, 1)? + drop_path(&a, self.drop_path, train)?)?;
        let m = drop_path(&self.mlp.forward(&self.norm2.forward(&x0)?)?, self.drop_path, train)?;
        x0 + m
    }
}
