//! The 2D/3D switch, expressed once: [`Spatial`] is read from the input's rank, and every
//! modality-specific module is a [`Switch`] holding one instance per modality.

use candle::{Result, Tensor, bail};

/// Which patch embeddings, spatial-reduction convolutions and positional tables a forward uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Spatial {
    /// 2D images `[B, 3, H, W]` (keys with `2D`).
    Planar,
    /// 3D volumes `[B, 1, D, H, W]` (keys with `3D`).
    Volumetric,
}

impl Spatial {
    pub const ALL: [Spatial; 2] = [Spatial::Planar, Spatial::Volumetric];

    /// Reads the modality from an input batch: rank 4 is 2D, rank 5 is 3D.
    pub fn of_input(x: &Tensor) -> Result<Self> {
        match x.rank() {
            4 => Ok(Spatial::Planar),
            5 => Ok(Spatial::Volumetric),
            r => bail!("input must be [B,3,H,W] (2D) or [B,1,D,H,W] (3D), got rank {r} shape {:?}", x.dims()),
        }
    }

    /// The infix of this modality's parameter names: `2D` or `3D`.
    pub fn tag(self) -> &'static str {
        match self {
            Spatial::Planar => "2D",
            Spatial::Volumetric => "3D",
        }
    }

    /// Input channels of the stem (3 for images, 1 for volumes).
    pub fn in_channels(self) -> usize {
        match self {
            Spatial::Planar => 3,
            Spatial::Volumetric => 1,
        }
    }

    /// Weight shape `[out, in, k, k(, k)]` of a cubic kernel.
    pub(crate) fn kernel_shape(self, out: usize, inp: usize, k: usize) -> Vec<usize> {
        match self {
            Spatial::Planar => vec![out, inp, k, k],
            Spatial::Volumetric => vec![out, inp, k, k, k],
        }
    }

    /// Number of kernel taps `k^2` or `k^3`.
    pub(crate) fn kernel_volume(self, k: usize) -> usize {
        match self {
            Spatial::Planar => k * k,
            Spatial::Volumetric => k * k * k,
        }
    }
}

/// A token grid: `(H, W)` in 2D (with `d = 1`), `(D, H, W)` in 3D. Tokens are row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub spatial: Spatial,
    pub d: usize,
    pub h: usize,
    pub w: usize,
}

impl Grid {
    /// The grid of a feature map `[B, C, H, W]` or `[B, C, D, H, W]`.
    pub fn of_map(x: &Tensor) -> Result<Self> {
        match *x.dims() {
            [_, _, h, w] => Ok(Grid { spatial: Spatial::Planar, d: 1, h, w }),
            [_, _, d, h, w] => Ok(Grid { spatial: Spatial::Volumetric, d, h, w }),
            ref other => bail!("expected a feature map of rank 4 or 5, got {other:?}"),
        }
    }

    pub fn tokens(&self) -> usize {
        self.d * self.h * self.w
    }

    /// `[B, C, H, W]` or `[B, C, D, H, W]`.
    pub fn map_shape(&self, b: usize, c: usize) -> Vec<usize> {
        match self.spatial {
            Spatial::Planar => vec![b, c, self.h, self.w],
            Spatial::Volumetric => vec![b, c, self.d, self.h, self.w],
        }
    }

    /// The grid the official patch embeddings claim for their output: every axis of the input
    /// halved (floor), computed from the input size rather than the convolution's output.
    pub(crate) fn halved(&self) -> Grid {
        let d = match self.spatial {
            Spatial::Planar => 1,
            Spatial::Volumetric => self.d / 2,
        };
        Grid { d, h: self.h / 2, w: self.w / 2, ..*self }
    }
}

impl std::fmt::Display for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.spatial {
            Spatial::Planar => write!(f, "{}×{}", self.h, self.w),
            Spatial::Volumetric => write!(f, "{}×{}×{}", self.d, self.h, self.w),
        }
    }
}

/// One module per modality; the forward pass picks one with the input's [`Spatial`].
#[derive(Clone, Debug)]
pub(crate) struct Switch<T> {
    planar: T,
    volumetric: T,
}

impl<T> Switch<T> {
    pub(crate) fn try_new(mut f: impl FnMut(Spatial) -> Result<T>) -> Result<Self> {
        Ok(Self { planar: f(Spatial::Planar)?, volumetric: f(Spatial::Volumetric)? })
    }

    pub(crate) fn get(&self, s: Spatial) -> &T {
        match s {
            Spatial::Planar => &self.planar,
            Spatial::Volumetric => &self.volumetric,
        }
    }
}
