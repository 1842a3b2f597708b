//! The MiT backbone (`backbone.*`): encoder, U-like decoder with skip additions, final LayerNorm;
//! the output is the decoder's class token.

use candle::{Module, Result, Tensor, bail};
use candle_nn::VarBuilder;

use crate::config::MitConfig;
use crate::encoder::{Encoder, EncoderOutput, stage_tokens};
use crate::nn::{LayerNorm, Linear, UpConv};
use crate::spatial::{Grid, Spatial, Switch};
use crate::stage::{DECODER, Stage, split};

#[derive(Clone, Debug)]
struct DecoderStage {
    /// `DecEmbed{2D,3D}{j}.proj`: transposed convolution, kernel = stride = 2.
    embed: Switch<UpConv>,
    /// `cls_tokens{j}`.
    cls: Linear,
    stage: Stage,
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
            let embed = Switch::try_new(|s| UpConv::new(s, prev, st.dim, vb.pp(format!("DecEmbed{}{j}", s.tag())).pp("proj")))?;
            let cls = Linear::new(prev, st.dim, true, vb.pp(format!("cls_tokens{j}")))?;
            let enc_stage = 3 - j as u32;
            let stage = Stage::new(
                st,
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

    fn check_input(x: &Tensor) -> Result<Spatial> {
        let s = Spatial::of_input(x)?;
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

    /// Backbone output `[B, 48]`; `train` enables drop-path when the config sets a rate (the only
    /// difference between the modes: there is no dropout and no batch norm).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = Self::check_input(x)?;
        let enc = self.encoder.forward(x, s, train)?;
        let (mut cls, mut map) = split(&enc.tokens, &enc.grid)?;
        let last = self.decoder.len() - 1;
        for (j, dec) in self.decoder.iter().enumerate() {
            let up = dec.embed.get(s).forward(&map)?;
            let skip = &enc.maps[2 - j];
            if up.dims() != skip.dims() {
                bail!(
                    "input {:?} is not supported: decoder stage {j} upsamples to {:?} but the encoder skip is {:?}",
                    x.dims(),
                    up.dims(),
                    skip.dims()
                )
            }
            let up = (up + skip)?;
            let grid = Grid::of_map(&up)?;
            let c = dec.cls.forward(&cls)?;
            if j == last {
                let out = dec.stage.forward_cls(&up, &grid, &c, train)?;
                // LayerNorm is per token, so normalising the class token alone is exact.
                return self.norm.forward(&out)?.squeeze(1);
            }
            let tokens = dec.stage.forward(&up, &grid, &c, train)?;
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
