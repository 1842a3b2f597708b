//! Decode + augment one sample into its two views: the 2D/3D switch, expressed once.

use std::path::Path;

use crate::augment::intensity::VIEWS_3D;
use crate::augment::view2d::{VIEWS_2D, augment_view};
use crate::augment::view3d::{context_crop, global_view};
use crate::augment::{Stream, sample_rng};
use crate::error::{DataError, Result};
use crate::image2d::read_image;
use crate::manifest::Modality;
use crate::nifti::read_nifti;

/// The pipeline of one modality with its output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pipeline {
    modality: Modality,
    /// Output size (D, H, W); 2D views are square with D = 1.
    size: [usize; 3],
}

impl Pipeline {
    /// The pipeline for `m` with the given output sizes (only `m`'s is kept).
    pub fn new(m: Modality, size_2d: usize, size_3d: [usize; 3]) -> Self {
        let size = match m {
            Modality::Image2d => [1, size_2d, size_2d],
            Modality::Volume3d => size_3d,
        };
        Pipeline { modality: m, size }
    }

    /// The modality this pipeline reads.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Output size (D, H, W) of one view; `[1, s, s]` in 2D.
    pub fn size(&self) -> [usize; 3] {
        self.size
    }

    /// Shape of one view without the batch axis: (3, H, W) or (1, D, H, W).
    pub fn view_shape(&self) -> Vec<usize> {
        let [d, h, w] = self.size;
        match self.modality {
            Modality::Image2d => vec![3, h, w],
            Modality::Volume3d => vec![1, d, h, w],
        }
    }

    /// Number of values in one view.
    pub fn view_len(&self) -> usize {
        self.view_shape().iter().product()
    }

    /// Checks the output size (2D: ≥ 12 for the kernel-23 blur; 3D: every side ≥ 1).
    pub fn validate(&self) -> Result<()> {
        let size = self.size;
        match self.modality {
            Modality::Image2d if size[1] < 12 => Err(DataError::Config(format!(
                "size_2d {} is below 12 (blur kernel 23)",
                size[1]
            ))),
            Modality::Volume3d if size.contains(&0) => Err(DataError::Config(format!(
                "size_3d {size:?} has a zero side"
            ))),
            _ => Ok(()),
        }
    }

    /// Reads `path` and returns its two augmented views, each `view_len()` values in the
    /// layout of `view_shape()`. Depends only on (seed, epoch, index) and the file.
    pub fn views(
        &self,
        path: &Path,
        seed: u64,
        epoch: usize,
        index: usize,
    ) -> Result<[Vec<f32>; 2]> {
        let size = self.size;
        match self.modality {
            Modality::Image2d => {
                let size = size[1];
                let img = read_image(path)?;
                Ok([0, 1].map(|v| {
                    let mut rng = sample_rng(seed, epoch, index, Stream::View(v));
                    let (c, data) = augment_view(&img, size, &VIEWS_2D[v], &mut rng);
                    if c == 3 { data } else { data.repeat(3) }
                }))
            }
            Modality::Volume3d => {
                if Modality::from_path(path) != Modality::Volume3d {
                    return Err(DataError::BadSample {
                        path: path.to_path_buf(),
                        reason: "a 3D sample must be a .nii or .nii.gz file".into(),
                    });
                }
                let vol = read_nifti(path)?;
                let mut rng = sample_rng(seed, epoch, index, Stream::Context);
                let ctx = context_crop(&vol, size, &mut rng);
                Ok([0, 1].map(|v| {
                    let mut rng = sample_rng(seed, epoch, index, Stream::View(v));
                    global_view(&ctx, size, &VIEWS_3D[v], &mut rng)
                }))
            }
        }
    }
}
