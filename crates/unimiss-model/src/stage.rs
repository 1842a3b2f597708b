//! What encoder and decoder stages share: prepend the class token, add the (resized) positional
//! table of the input's modality, run the blocks, split the class token from the token map.

use candle::{Result, Tensor, bail};
use candle_nn::VarBuilder;

use crate::block::Block;
use crate::config::StageConfig;
use crate::nn::TRUNC_NORMAL_02;
use crate::pos_embed;
use crate::profile::time;
use unimiss_ops::Modality;

use crate::spatial::Grid;
use crate::PerModality;

/// Norm eps and q/kv bias of a network half (encoder: 1e-6 with bias; decoder: 1e-5 without).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Half {
    pub eps: f64,
    pub qkv_bias: bool,
}

pub(crate) const ENCODER: Half = Half { eps: 1e-6, qkv_bias: true };
pub(crate) const DECODER: Half = Half { eps: 1e-5, qkv_bias: false };

/// Positional tables (one per modality) and the blocks of one stage.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pos: PerModality<Tensor>,
    blocks: Vec<Block>,
    /// Whether the tables have a class entry (and the tokens a class token).
    cls: bool,
}

impl Stage {
    /// `pos_key(s)` names the table of modality `s` under `vb_pos`, built for `tokens(s)` patches;
    /// blocks are `vb_blocks.{j}` with drop-path rates `rates`; `cls` adds the class entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        st: &StageConfig,
        cls: bool,
        half: Half,
        rates: &[f64],
        pos_key: impl Fn(Modality) -> String,
        tokens: impl Fn(Modality) -> usize,
        vb_pos: &VarBuilder,
        vb_blocks: VarBuilder,
    ) -> Result<Self> {
        let pos = PerModality::try_from_fn(|s| vb_pos.get_with_hints((1, tokens(s) + cls as usize, st.dim), &pos_key(s), TRUNC_NORMAL_02))?;
        let blocks = (0..st.depth)
            .map(|j| Block::new(st, half.qkv_bias, half.eps, rates[j], vb_blocks.pp(j)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { pos, blocks, cls })
    }

    /// Prepends `cls [B, 1, C]` to the tokens of `map [B, C, grid..]` and adds the positional table.
    /// Without class token (`cls` None, a stage built with `cls = false`) the table is added as
    /// is, as the official segmentation networks do; its length must equal the token count.
    fn tokens(&self, map: &Tensor, grid: &Grid, cls: Option<&Tensor>) -> Result<Tensor> {
        let table = self.pos.get(grid.modality);
        match cls {
            Some(cls) => {
                if !self.cls {
                    bail!("stage built without class token was given one")
                }
                let pos = pos_embed::resize(table, grid)?;
                time("tokens", || {
                    let tokens = map.flatten_from(2)?.transpose(1, 2)?;
                    Tensor::cat(&[cls, &tokens], 1)?.broadcast_add(&pos)
                })
            }
            None => {
                if self.cls {
                    bail!("stage built with class token was given none")
                }
                let n = table.dim(1)?;
                if n != grid.tokens() {
                    bail!(
                        "positional table without class entry has {n} entries but the {grid} grid has {} tokens: \
                         a network without class tokens runs only at the size it was built for",
                        grid.tokens()
                    )
                }
                time("tokens", || map.flatten_from(2)?.transpose(1, 2)?.broadcast_add(table))
            }
        }
    }

    /// `map [B, C, grid..]`, `cls [B, 1, C]` (or none) → tokens after the blocks `[B, 1+N, C]`
    /// (`[B, N, C]` without class token).
    pub(crate) fn forward(&self, map: &Tensor, grid: &Grid, cls: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let mut x = self.tokens(map, grid, cls)?;
        for blk in &self.blocks {
            x = blk.forward(&x, grid, train)?;
        }
        Ok(x)
    }

    /// Like [`Stage::forward`] but returns only the class token `[B, 1, C]`; the last block
    /// computes nothing else.
    pub(crate) fn forward_cls(&self, map: &Tensor, grid: &Grid, cls: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.tokens(map, grid, Some(cls))?;
        let Some((last, rest)) = self.blocks.split_last() else { return x.narrow(1, 0, 1) };
        for blk in rest {
            x = blk.forward(&x, grid, train)?;
        }
        last.forward_cls(&x, grid, train)
    }
}

/// Tokens `[B, N, C]` without class token → `map [B, C, grid..]`.
pub(crate) fn to_map(x: &Tensor, grid: &Grid) -> Result<Tensor> {
    let (b, _, c) = x.dims3()?;
    time("reshape", || x.transpose(1, 2)?.reshape(grid.map_shape(b, c)))
}

/// `x [B, 1+N, C]` → (`cls [B, 1, C]`, `map [B, C, grid..]`).
pub(crate) fn split(x: &Tensor, grid: &Grid) -> Result<(Tensor, Tensor)> {
    let (b, n, c) = x.dims3()?;
    let cls = x.narrow(1, 0, 1)?;
    let map = time("reshape", || x.narrow(1, 1, n - 1)?.transpose(1, 2)?.reshape(grid.map_shape(b, c)))?;
    Ok((cls, map))
}
