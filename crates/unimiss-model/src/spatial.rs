//! Token grids and per-modality modules: the [`Modality`] (defined in `unimiss-ops`) is read
//! from the input's rank, and every modality-specific module is a [`PerModality`](crate::PerModality) holding one
//! instance per modality.

use candle::{Result, Tensor, bail};
use unimiss_ops::Modality;

/// A token grid: `(H, W)` in 2D (with `d = 1`), `(D, H, W)` in 3D. Tokens are row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub modality: Modality,
    pub d: usize,
    pub h: usize,
    pub w: usize,
}

impl Grid {
    /// The grid of a feature map `[B, C, H, W]` or `[B, C, D, H, W]`.
    pub fn of_map(x: &Tensor) -> Result<Self> {
        match *x.dims() {
            [_, _, h, w] => Ok(Grid { modality: Modality::Image2d, d: 1, h, w }),
            [_, _, d, h, w] => Ok(Grid { modality: Modality::Volume3d, d, h, w }),
            ref other => bail!("expected a feature map of rank 4 or 5, got {other:?}"),
        }
    }

    pub fn tokens(&self) -> usize {
        self.d * self.h * self.w
    }

    /// `[B, C, H, W]` or `[B, C, D, H, W]`.
    pub fn map_shape(&self, b: usize, c: usize) -> Vec<usize> {
        match self.modality {
            Modality::Image2d => vec![b, c, self.h, self.w],
            Modality::Volume3d => vec![b, c, self.d, self.h, self.w],
        }
    }

    /// The grid the official patch embeddings claim for their output: every axis of the input
    /// halved (floor), computed from the input size rather than the convolution's output.
    pub(crate) fn halved(&self) -> Grid {
        let d = match self.modality {
            Modality::Image2d => 1,
            Modality::Volume3d => self.d / 2,
        };
        Grid { d, h: self.h / 2, w: self.w / 2, ..*self }
    }
}

impl std::fmt::Display for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.modality {
            Modality::Image2d => write!(f, "{}×{}", self.h, self.w),
            Modality::Volume3d => write!(f, "{}×{}×{}", self.d, self.h, self.w),
        }
    }
}

