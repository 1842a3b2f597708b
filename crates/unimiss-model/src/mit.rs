//! The MiT backbone (`backbone.*`): encoder, U-like decoder with skip additions, final LayerNorm;
//! the output is the decoder's class token.

use candle::{Module, Result, Tensor, bail};
use candle_nn::VarBuilder;

use crate::config::MitConfig;
use crate::encoder::{Encoder, EncoderOutput, stage_tokens};
use crate::nn::{LayerNorm, Linear, UpConv};
use unimiss_ops::Modality;

use crate::spatial::Grid;
use crate::PerModality;
use crate::stage::{DECODER, Stage, split, to_map};

#[derive(Clone, Debug)]
struct DecoderStage {
    /// `DecEmbed{2D,3D}{j}.proj`: transposed convolution, kernel = stride = 2.
    embed: PerModality<UpConv>,
    /// `cls_tokens{j}` (absent in a network built without class tokens).
    cls: Option<Linear>,
    stage: Stage,
}

/// What [`Mit::forward_dense`] returns.
#[derive(Clone, Debug)]
pub struct DenseOutput {
    /// The stem map `out[0]`: `[B, 32, H/2, W/2]` or `[B, 32, D, H/2, W/2]`.
    pub stem: Tensor,
    /// Decoder stages 0, 1, 2: `[B, 256, grid_3..]`, `[B, 128, grid_2..]`, `[B, 48, grid_1..]`
    /// (stage 2 after the final LayerNorm).
    pub stages: [Tensor; 3],
}

/// The UniMiSS MiT backbone for 2D and 3D inputs.
///
/// `forward` takes `[B, 3, H, W]` (2D path) or `[B, 1, D, H, W]` (3D path) and returns the
/// decoder class token after the final LayerNorm, `[B, 48]`.
#[derive(Clone, Debug)]
pub struct Mit {
    cfg: MitConfig,
    encoder: Encoder,
    decoder: Vec<DecoderStage>,
    norm: LayerNorm,
}

impl Mit {
    /// Builds the backbone; `vb` is the `backbone` prefix (parameter names as in the official
    /// state_dict below `backbone.`).
    pub fn new(cfg: &MitConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let encoder = Encoder::new(cfg, vb.pp("transformer"))?;
        let depth: usize = cfg.decoder.iter().map(|s| s.depth).sum();
        let rates = cfg.drop_path_rates(depth);
        let mut decoder = Vec::with_capacity(3);
        let mut prev = cfg.encoder[3].dim;
        let mut first_block = 0;
        for (j, st) in cfg.decoder.iter().enumerate() {
            let embed = PerModality::try_from_fn(|s| UpConv::new(s, prev, st.dim, vb.pp(format!("DecEmbed{}{j}", s.tag())).pp("proj")))?;
            let cls = match cfg.cls_token {
                true => Some(Linear::new(prev, st.dim, true, vb.pp(format!("cls_tokens{j}")))?),
                false => None,
            };
            let enc_stage = 3 - j as u32;
            let stage = Stage::new(
                st,
                cfg.cls_token,
                DECODER,
                &rates[first_block..first_block + st.depth],
                |s| format!("DecPosEmbed{}{j}", s.tag()),
                |s| stage_tokens(cfg, enc_stage, s),
                &vb,
                vb.pp(format!("Decblock{j}")),
            )?;
            decoder.push(DecoderStage { embed, cls, stage });
            first_block += st.depth;
            prev = st.dim;
        }
        let norm = LayerNorm::new(cfg.out_dim(), 1e-5, vb.pp("norm"))?;
        Ok(Self { cfg: cfg.clone(), encoder, decoder, norm })
    }

    pub fn config(&self) -> &MitConfig {
        &self.cfg
    }

    fn check_input(x: &Tensor) -> Result<Modality> {
        let s = Modality::of_input(x)?;
        let c = x.dim(1)?;
        if c != s.in_channels() {
            bail!("{} input must have {} channel(s), got shape {:?}", s.tag(), s.in_channels(), x.dims())
        }
        Ok(s)
    }

    /// The encoder outputs `out[0..=4]` (eval mode).
    pub fn forward_features(&self, x: &Tensor) -> Result<EncoderOutput> {
        let s = Self::check_input(x)?;
        self.encoder.forward(x, s, false)
    }

    /// Decoder stage `j`'s input: its transposed convolution of `map` plus the encoder skip.
    fn up_skip(&self, j: usize, s: Modality, map: &Tensor, enc: &EncoderOutput, x: &Tensor) -> Result<Tensor> {
        let up = self.decoder[j].embed.get(s).forward(map)?;
        let skip = &enc.maps[2 - j];
        if up.dims() != skip.dims() {
            bail!(
                "input {:?} is not supported: decoder stage {j} upsamples to {:?} but the encoder skip is {:?}",
                x.dims(),
                up.dims(),
                skip.dims()
            )
        }
        up + skip
    }

    /// Dense outputs for segmentation (reference §5.2): the stem map (`out[0]`, the skip of the
    /// segmentation head) and the three decoder stage maps, the last after the final LayerNorm.
    /// Works with and without class tokens (class tokens are dropped from the maps).
    pub fn forward_dense(&self, x: &Tensor, train: bool) -> Result<DenseOutput> {
        let s = Self::check_input(x)?;
        let enc = self.encoder.forward(x, s, train)?;
        let (mut cls, mut map) = match self.cfg.cls_token {
            true => {
                let (c, m) = split(&enc.tokens, &enc.grid)?;
                (Some(c), m)
            }
            false => (None, to_map(&enc.tokens, &enc.grid)?),
        };
        let mut stages = Vec::with_capacity(3);
        let last = self.decoder.len() - 1;
        for (j, dec) in self.decoder.iter().enumerate() {
            let up = self.up_skip(j, s, &map, &enc, x)?;
            let grid = Grid::of_map(&up)?;
            let c = match (&dec.cls, &cls) {
                (Some(lin), Some(prev)) => Some(lin.forward(prev)?),
                (None, _) => None,
                (Some(_), None) => bail!("decoder stage {j} has no incoming class token"),
            };
            let mut tokens = dec.stage.forward(&up, &grid, c.as_ref(), train)?;
            if j == last {
                tokens = self.norm.forward(&tokens)?;
            }
            (cls, map) = match c {
                Some(_) => {
                    let (nc, nm) = split(&tokens, &grid)?;
                    (Some(nc), nm)
                }
                None => (None, to_map(&tokens, &grid)?),
            };
            stages.push(map.clone());
        }
        let [d0, d1, d2]: [Tensor; 3] =
            stages.try_into().map_err(|_| candle::Error::Msg("decoder: expected three stages".into()))?;
        Ok(DenseOutput { stem: enc.stem, stages: [d0, d1, d2] })
    }

    /// Backbone output `[B, 48]`; `train` enables drop-path when the config sets a rate (the only
    /// difference between the modes: there is no dropout and no batch norm).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = Self::check_input(x)?;
        if !self.cfg.cls_token {
            bail!("this MiT was built without class tokens and has no class-token output; use forward_dense")
        }
        let enc = self.encoder.forward(x, s, train)?;
        let (mut cls, mut map) = split(&enc.tokens, &enc.grid)?;
        let last = self.decoder.len() - 1;
        for (j, dec) in self.decoder.iter().enumerate() {
            let up = self.up_skip(j, s, &map, &enc, x)?;
            let grid = Grid::of_map(&up)?;
            let lin = dec.cls.as_ref().ok_or_else(|| candle::Error::Msg(format!("decoder stage {j} has no class-token projection")))?;
            let c = lin.forward(&cls)?;
            if j == last {
                let out = dec.stage.forward_cls(&up, &grid, &c, train)?;
                // LayerNorm is per token, so normalising the class token alone is exact.
                return self.norm.forward(&out)?.squeeze(1);
            }
            let tokens = dec.stage.forward(&up, &grid, Some(&c), train)?;
            (cls, map) = split(&tokens, &grid)?;
        }
        bail!("decoder has no stages")
    }
}

impl Module for Mit {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl Mit {
    /// Backbone output in eval mode, `[B, 48]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}
