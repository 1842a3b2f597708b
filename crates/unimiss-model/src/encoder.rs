//! The MiT encoder (`backbone.transformer.*`): a convolutional stem and four transformer stages,
//! each entered through a stride-2 convolution block of the input's modality.

use candle::{Result, Tensor, bail};
use candle_nn::VarBuilder;

use crate::config::{MitConfig, STEM_DIM};
use crate::nn::{ConvBlock, ConvSpec, Linear, TRUNC_NORMAL_02};
use unimiss_ops::Modality;

use crate::spatial::Grid;
use crate::PerModality;
use crate::stage::{ENCODER, Stage, split, to_map};

/// Encoder outputs, as the official `MiT_encoder.forward` returns them.
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    /// `out[0]`: the stem map `[B, 32, H/2, W/2]` or `[B, 32, D, H/2, W/2]`.
    pub stem: Tensor,
    /// `out[1..=3]`: stage maps `[B, C_k, grid_k..]` (class token dropped).
    pub maps: [Tensor; 3],
    /// `out[4]`: stage-4 tokens `[B, 1 + N_4, 512]`, class token first, no norm
    /// (`[B, N_4, 512]` for a network built without class tokens).
    pub tokens: Tensor,
    /// The stage-4 grid.
    pub grid: Grid,
}

/// How a stage gets its class token: the learned vector (stage 1) or a Linear of the previous
/// one; `Absent` in a network built without class tokens.
#[derive(Clone, Debug)]
enum ClsIn {
    Token(Tensor),
    Project(Linear),
    Absent,
}

#[derive(Clone, Debug)]
struct EncoderStage {
    embed: PerModality<ConvBlock>,
    cls: ClsIn,
    stage: Stage,
}

#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    stem: PerModality<ConvBlock>,
    stages: Vec<EncoderStage>,
}

/// Patches of the positional table of encoder stage `k` (1..=4) at the built sizes.
pub(crate) fn stage_tokens(cfg: &MitConfig, k: u32, s: Modality) -> usize {
    let f = 1usize << (k + 1);
    match s {
        Modality::Image2d => (cfg.img_size_2d / f).pow(2),
        Modality::Volume3d => {
            let [d, h, w] = cfg.img_size_3d;
            (d >> k) * (h / f) * (w / f)
        }
    }
}

impl Encoder {
    pub(crate) fn new(cfg: &MitConfig, vb: VarBuilder) -> Result<Self> {
        let stem_spec = |s: Modality| ConvSpec {
            inp: s.in_channels(),
            out: STEM_DIM,
            kernel: 7,
            stride: [1, 2, 2],
            padding: 3,
            bias: false,
            label: "conv_stem",
        };
        let stem = PerModality::try_from_fn(|s| ConvBlock::new(s, &stem_spec(s), vb.pp(format!("patch_embed{}0", s.tag()))))?;
        let depth: usize = cfg.encoder.iter().map(|s| s.depth).sum();
        let rates = cfg.drop_path_rates(depth);
        let mut stages = Vec::with_capacity(4);
        let mut prev = STEM_DIM;
        let mut first_block = 0;
        for (i, st) in cfg.encoder.iter().enumerate() {
            let k = i + 1;
            let spec = ConvSpec { inp: prev, out: st.dim, kernel: 3, stride: [2; 3], padding: 1, bias: false, label: "conv_embed" };
            let embed = PerModality::try_from_fn(|s| ConvBlock::new(s, &spec, vb.pp(format!("patch_embed{}{k}", s.tag())).pp("proj")))?;
            let cls = if !cfg.cls_token {
                ClsIn::Absent
            } else if k == 1 {
                ClsIn::Token(vb.get_with_hints((1, 1, st.dim), "cls_tokens1", TRUNC_NORMAL_02)?)
            } else {
                ClsIn::Project(Linear::new(prev, st.dim, true, vb.pp(format!("cls_tokens{k}")))?)
            };
            let stage = Stage::new(
                st,
                cfg.cls_token,
                ENCODER,
                &rates[first_block..first_block + st.depth],
                |s| format!("pos_embed{}{k}", s.tag()),
                |s| stage_tokens(cfg, k as u32, s),
                &vb,
                vb.pp(format!("block{k}")),
            )?;
            stages.push(EncoderStage { embed, cls, stage });
            first_block += st.depth;
            prev = st.dim;
        }
        Ok(Self { stem, stages })
    }

    /// `x [B, 3, H, W]` or `[B, 1, D, H, W]` → every stage output.
    pub(crate) fn forward(&self, x: &Tensor, spatial: Modality, train: bool) -> Result<EncoderOutput> {
        let stem = self.stem.get(spatial).forward(x)?;
        let b = x.dim(0)?;
        let mut map = stem.clone();
        let mut cls: Option<Tensor> = None;
        let mut maps = Vec::with_capacity(3);
        for (i, st) in self.stages.iter().enumerate() {
            let claimed = Grid::of_map(&map)?.halved();
            let emb = st.embed.get(spatial).forward(&map)?;
            let grid = Grid::of_map(&emb)?;
            if grid != claimed {
                bail!(
                    "input {:?} is not supported: encoder stage {} gives a {grid} grid where the official code \
                     assumes {claimed}; use 2D sizes that are multiples of 32, 3D depths that are multiples of 16",
                    x.dims(),
                    i + 1
                )
            }
            let c = match (&st.cls, &cls) {
                (ClsIn::Token(t), _) => Some(t.broadcast_as((b, 1, t.dim(2)?))?),
                (ClsIn::Project(lin), Some(prev)) => Some(lin.forward(prev)?),
                (ClsIn::Project(_), None) => bail!("encoder stage {} has no incoming class token", i + 1),
                (ClsIn::Absent, _) => None,
            };
            let tokens = st.stage.forward(&emb, &grid, c.as_ref(), train)?;
            if i == 3 {
                let [m1, m2, m3]: [Tensor; 3] = maps
                    .try_into()
                    .map_err(|_| candle::Error::Msg("encoder: expected three stage maps".into()))?;
                return Ok(EncoderOutput { stem, maps: [m1, m2, m3], tokens, grid });
            }
            let (next_cls, next_map) = match c {
                Some(_) => {
                    let (nc, nm) = split(&tokens, &grid)?;
                    (Some(nc), nm)
                }
                None => (None, to_map(&tokens, &grid)?),
            };
            maps.push(next_map.clone());
            cls = next_cls;
            map = next_map;
        }
        bail!("encoder: expected four stages, found {}", self.stages.len())
    }
}
