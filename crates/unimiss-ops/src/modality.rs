//! The 2D/3D switch, defined once for the whole workspace: [`Modality`].
//!
//! It lives in this lowest crate because both the model (which modules a forward pass uses) and
//! the data crate (which reader and augmentation a sample goes through) need it, and neither
//! depends on the other. `unimiss-model`, `unimiss-data` and `unimiss-ssl` re-export it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle::{Result, Tensor, bail};

/// 2D images or 3D volumes.
///
/// Written `2d`/`3d` (manifests, logs, checkpoints, serde); the model's parameter names carry
/// [`Modality::tag`] (`2D`/`3D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Modality {
    /// X-rays and other 2D images (PNG/JPEG); model input `[B, 3, H, W]`.
    #[serde(rename = "2d")]
    Image2d,
    /// CT volumes and sub-volumes (NIfTI); model input `[B, 1, D, H, W]`.
    #[serde(rename = "3d")]
    Volume3d,
}

impl Modality {
    pub const ALL: [Modality; 2] = [Modality::Image2d, Modality::Volume3d];

    /// `"2d"` or `"3d"`, as written in manifests, logs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image2d => "2d",
            Modality::Volume3d => "3d",
        }
    }

    /// The infix of this modality's parameter names in the model: `2D` or `3D`.
    pub fn tag(self) -> &'static str {
        match self {
            Modality::Image2d => "2D",
            Modality::Volume3d => "3D",
        }
    }

    /// Number of spatial axes of an input: 2 or 3.
    pub fn spatial_dims(self) -> usize {
        match self {
            Modality::Image2d => 2,
            Modality::Volume3d => 3,
        }
    }

    /// The modality with `n` spatial axes (2 or 3).
    pub fn of_spatial_dims(n: usize) -> Option<Modality> {
        match n {
            2 => Some(Modality::Image2d),
            3 => Some(Modality::Volume3d),
            _ => None,
        }
    }

    /// Reads the modality from a batch or feature map: rank 4 `[B, C, H, W]` is 2D, rank 5
    /// `[B, C, D, H, W]` is 3D; any other rank is an error naming the shape.
    pub fn of_input(x: &Tensor) -> Result<Modality> {
        match x.rank().checked_sub(2).and_then(Modality::of_spatial_dims) {
            Some(m) => Ok(m),
            None => bail!(
                "input must be [B,3,H,W] (2D) or [B,1,D,H,W] (3D), got rank {} shape {:?}",
                x.rank(),
                x.dims()
            ),
        }
    }

    /// Input channels of the model's stem: 3 for images, 1 for volumes.
    pub fn in_channels(self) -> usize {
        match self {
            Modality::Image2d => 3,
            Modality::Volume3d => 1,
        }
    }

    /// Weight shape `[out, in, k, k(, k)]` of a cubic convolution kernel.
    pub fn kernel_shape(self, out: usize, inp: usize, k: usize) -> Vec<usize> {
        let mut s = vec![out, inp];
        s.resize(2 + self.spatial_dims(), k);
        s
    }

    /// Number of kernel taps, `k²` or `k³`.
    pub fn kernel_volume(self, k: usize) -> usize {
        k.pow(self.spatial_dims() as u32)
    }

    /// Guesses the modality from a file name: `.nii`/`.nii.gz` are volumes, anything else images.
    pub fn from_path(p: &Path) -> Modality {
        let name = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase());
        match name {
            Some(n) if n.ends_with(".nii") || n.ends_with(".nii.gz") => Modality::Volume3d,
            _ => Modality::Image2d,
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Modality {
    type Err = String;
    /// `2d`/`3d` (also `image2d`/`volume3d`), case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "2d" | "image2d" => Ok(Modality::Image2d),
            "3d" | "volume3d" => Ok(Modality::Volume3d),
            other => Err(format!("modality {other:?} is neither 2d nor 3d")),
        }
    }
}
