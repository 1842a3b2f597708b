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

impl Modality {
    /// The modality whose parameter-name infix ([`Modality::tag`], `2D`/`3D`) `key` contains:
    /// the parameters only that modality's forward pass uses; `None` for shared ones.
    pub fn of_param(key: &str) -> Option<Modality> {
        Modality::ALL.into_iter().find(|m| key.contains(m.tag()))
    }

    /// The other modality.
    pub fn other(self) -> Modality {
        match self {
            Modality::Image2d => Modality::Volume3d,
            Modality::Volume3d => Modality::Image2d,
        }
    }
}

/// One value per modality: the workspace's one way to hold a 2D/3D pair (loaders, step counters,
/// sizes, modules), indexed by [`Modality`].
///
/// ```
/// use unimiss_ops::{Modality, PerModality};
///
/// let mut steps = PerModality::splat(0u64);
/// steps[Modality::Volume3d] += 3;
/// assert_eq!(steps.iter().map(|(m, n)| format!("{m}:{n}")).collect::<Vec<_>>(), ["2d:0", "3d:3"]);
/// assert_eq!(steps.map(|n| n * 2)[Modality::Volume3d], 6);
/// assert_eq!(steps.values().sum::<u64>(), 3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerModality<T> {
    /// The 2D value.
    pub image2d: T,
    /// The 3D value.
    pub volume3d: T,
}

impl<T> PerModality<T> {
    /// `f(m)` for each modality, 2D first.
    pub fn from_fn(mut f: impl FnMut(Modality) -> T) -> Self {
        Self { image2d: f(Modality::Image2d), volume3d: f(Modality::Volume3d) }
    }

    /// `f(m)` for each modality, 2D first; the first error stops.
    pub fn try_from_fn<E>(mut f: impl FnMut(Modality) -> std::result::Result<T, E>) -> std::result::Result<Self, E> {
        Ok(Self { image2d: f(Modality::Image2d)?, volume3d: f(Modality::Volume3d)? })
    }

    /// The same value for both.
    pub fn splat(v: T) -> Self
    where
        T: Clone,
    {
        Self { image2d: v.clone(), volume3d: v }
    }

    pub fn get(&self, m: Modality) -> &T {
        match m {
            Modality::Image2d => &self.image2d,
            Modality::Volume3d => &self.volume3d,
        }
    }

    pub fn get_mut(&mut self, m: Modality) -> &mut T {
        match m {
            Modality::Image2d => &mut self.image2d,
            Modality::Volume3d => &mut self.volume3d,
        }
    }

    /// A value per modality computed from this one's.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerModality<U> {
        PerModality { image2d: f(&self.image2d), volume3d: f(&self.volume3d) }
    }

    /// `(modality, value)` pairs, 2D first.
    pub fn iter(&self) -> impl Iterator<Item = (Modality, &T)> {
        Modality::ALL.into_iter().map(move |m| (m, self.get(m)))
    }

    /// The values, 2D first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        [&self.image2d, &self.volume3d].into_iter()
    }
}

impl<T> std::ops::Index<Modality> for PerModality<T> {
    type Output = T;
    fn index(&self, m: Modality) -> &T {
        self.get(m)
    }
}

impl<T> std::ops::IndexMut<Modality> for PerModality<T> {
    fn index_mut(&mut self, m: Modality) -> &mut T {
        self.get_mut(m)
    }
}
