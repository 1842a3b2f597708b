//! Model configurations: the official `tiny` and `small` presets, image sizes, drop-path, head sizes.

use candle::{Result, bail};

/// One transformer stage: width, number of blocks, heads, spatial-reduction ratio, MLP ratio.
#[derive(Clone, Debug, PartialEq)]
pub struct StageConfig {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub sr_ratio: usize,
    pub mlp_ratio: usize,
}

impl StageConfig {
    const fn new(dim: usize, depth: usize, heads: usize, sr_ratio: usize) -> Self {
        Self { dim, depth, heads, sr_ratio, mlp_ratio: 4 }
    }
}

/// Architecture preset names accepted by [`MitConfig::preset`]; `tiny`/`small` in configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[serde(alias = "model_tiny")]
    Tiny,
    #[serde(alias = "model_small")]
    Small,
}

impl std::str::FromStr for Arch {
    type Err = candle::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tiny" | "model_tiny" => Ok(Arch::Tiny),
            "small" | "model_small" => Ok(Arch::Small),
            other => bail!("unknown architecture {other:?} (expected tiny or small)"),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Tiny => "tiny",
            Arch::Small => "small",
        })
    }
}

/// The MiT backbone (UniMiSS `model_tiny` / `model_small`, modal type `MM`).
///
/// Fixed by the official code and not configurable here: the 32-channel stems, InstanceNorm with
/// affine parameters and LeakyReLU(0.01) in every convolution block, encoder `q`/`kv` with bias and
/// LayerNorm eps 1e-6, decoder `q`/`kv` without bias and LayerNorm eps 1e-5, `attn.norm` eps 1e-5.
#[derive(Clone, Debug, PartialEq)]
pub struct MitConfig {
    pub arch: Arch,
    /// Encoder stages 1–4 (`transformer.block1..4`).
    pub encoder: [StageConfig; 4],
    /// Decoder stages 0–2 (`Decblock0..2`); their widths mirror encoder stages 3, 2, 1.
    pub decoder: [StageConfig; 3],
    /// Side of the square 2D input the positional tables are built for (official 224).
    pub img_size_2d: usize,
    /// `[D, H, W]` of the 3D input the tables are built for (official `[16, 96, 96]`).
    pub img_size_3d: [usize; 3],
    /// Stochastic-depth rate; 0 (off) by default like the official recipe, which silently drops
    /// the 0.1 it passes. When positive, block `i` of `n` in the encoder (and separately in the
    /// decoder) drops its residual branch with probability `rate · i / (n − 1)` in training mode.
    pub drop_path: f64,
    /// Whether the network carries class tokens (`cls_tokens*` and a class entry in every
    /// positional table). `true` for pretraining and classification; the official segmentation
    /// networks (BCV, JSRT) are built without (reference §5.2): their positional tables have no
    /// class entry, are added without resizing (the input must have the built size), and
    /// attention reduces all tokens. Such a network has no class-token output: use
    /// [`crate::Mit::forward_dense`].
    pub cls_token: bool,
}

/// Channels of the stem convolution (`patch_embed*0`).
pub const STEM_DIM: usize = 32;

impl MitConfig {
    /// `model_tiny`: one block per stage, 20,380,336 parameters at 224 / 16×96×96.
    pub fn tiny() -> Self {
        Self::preset(Arch::Tiny)
    }

    /// `model_small`: depths 2-3-4-3 / 3-4-3, 43,942,944 parameters at 224 / 16×96×96.
    pub fn small() -> Self {
        Self::preset(Arch::Small)
    }

    pub fn preset(arch: Arch) -> Self {
        let (enc, dec) = match arch {
            Arch::Tiny => ([1, 1, 1, 1], [1, 1, 1]),
            Arch::Small => ([2, 3, 4, 3], [3, 4, 3]),
        };
        Self {
            arch,
            encoder: [
                StageConfig::new(48, enc[0], 1, 6),
                StageConfig::new(128, enc[1], 2, 4),
                StageConfig::new(256, enc[2], 4, 2),
                StageConfig::new(512, enc[3], 8, 1),
            ],
            decoder: [
                StageConfig::new(256, dec[0], 8, 2),
                StageConfig::new(128, dec[1], 4, 4),
                StageConfig::new(48, dec[2], 2, 6),
            ],
            img_size_2d: 224,
            img_size_3d: [16, 96, 96],
            drop_path: 0.0,
            cls_token: true,
        }
    }

    /// The configuration of a run: `arch` (`tiny` or `small`) at the given input sizes,
    /// validated. Pretraining and fine-tuning both build their MiT with this.
    pub fn for_run(arch: Arch, img_size_2d: usize, img_size_3d: [usize; 3]) -> Result<Self> {
        let m = Self::preset(arch).with_img_size_2d(img_size_2d).with_img_size_3d(img_size_3d);
        m.validate()?;
        Ok(m)
    }

    pub fn with_img_size_2d(mut self, size: usize) -> Self {
        self.img_size_2d = size;
        self
    }

    pub fn with_img_size_3d(mut self, size: [usize; 3]) -> Self {
        self.img_size_3d = size;
        self
    }

    pub fn with_drop_path(mut self, rate: f64) -> Self {
        self.drop_path = rate;
        self
    }

    /// Builds with (`true`, default) or without class tokens; see [`MitConfig::cls_token`].
    pub fn with_cls_token(mut self, cls_token: bool) -> Self {
        self.cls_token = cls_token;
        self
    }

    /// Width of the backbone output (the decoder's last stage), the head's `in_dim`.
    pub fn out_dim(&self) -> usize {
        self.decoder[2].dim
    }

    /// Checks sizes the official code can build and run, and the stage wiring.
    pub fn validate(&self) -> Result<()> {
        let s = self.img_size_2d;
        if s < 64 || s % 32 != 0 {
            bail!("img_size_2d {s}: must be a multiple of 32 and at least 64 (stage 4 halves it five times)")
        }
        let [d, h, w] = self.img_size_3d;
        if d < 16 || d % 16 != 0 || h < 64 || h % 32 != 0 || w % 32 != 0 {
            bail!(
                "img_size_3d {:?}: D must be a multiple of 16, H and W multiples of 32 and at least 64",
                self.img_size_3d
            )
        }
        if h != w {
            bail!("img_size_3d {:?}: H must equal W (the official positional resize assumes a square grid)", self.img_size_3d)
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            bail!("drop_path {} must be in [0, 1)", self.drop_path)
        }
        for (i, st) in self.encoder.iter().chain(self.decoder.iter()).enumerate() {
            if st.depth == 0 || st.heads == 0 || st.dim % st.heads != 0 || st.sr_ratio == 0 || st.mlp_ratio == 0 {
                bail!("stage {i} {st:?}: depth, heads, sr_ratio, mlp_ratio must be positive and heads must divide dim")
            }
        }
        for (k, dec) in self.decoder.iter().enumerate() {
            let enc = &self.encoder[2 - k];
            if dec.dim != enc.dim {
                bail!("decoder stage {k} width {} must equal encoder stage {} width {}", dec.dim, 3 - k, enc.dim)
            }
        }
        Ok(())
    }

    /// Drop-path rates of `n` blocks, official rule `linspace(0, rate, n)`.
    pub(crate) fn drop_path_rates(&self, n: usize) -> Vec<f64> {
        match n {
            0 => vec![],
            1 => vec![0.0],
            _ => (0..n).map(|i| self.drop_path * i as f64 / (n - 1) as f64).collect(),
        }
    }
}

/// The DINO projection head (`Head(in_dim, out_dim)`): 3-layer MLP with GELU, L2 normalisation,
/// weight-normalised bias-free last layer with its gain frozen at its stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadConfig {
    pub in_dim: usize,
    pub out_dim: usize,
    pub hidden_dim: usize,
    pub bottleneck_dim: usize,
}

impl HeadConfig {
    /// The official sizes: hidden 2048, bottleneck 256 (pretraining uses `out_dim` 65536).
    pub fn new(in_dim: usize, out_dim: usize) -> Self {
        Self { in_dim, out_dim, hidden_dim: 2048, bottleneck_dim: 256 }
    }

    pub fn validate(&self) -> Result<()> {
        if self.in_dim == 0 || self.out_dim == 0 || self.hidden_dim == 0 || self.bottleneck_dim == 0 {
            bail!("head sizes must be positive, got {self:?}")
        }
        Ok(())
    }
}
