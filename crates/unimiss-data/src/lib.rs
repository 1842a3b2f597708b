//! # unimiss-data
//!
//! Data for UniMiSS pretraining: manifests, NIfTI / PNG / JPEG readers, the official 2D and 3D
//! augmentations, a parallel two-view loader, and the preprocessing tools (sub-volume
//! extraction, resampling, preview grids).
//!
//! - [`Manifest`]: our TSV format (`path  modality  [label]  [spacing]`, relative paths resolve
//!   against the manifest's folder) and the official list format (whole lines).
//!   [`LabelledManifest`]: the same TSV, same parser, with its mask columns and `#classes=`
//!   header, [checked](LabelledManifest::check) against what a task needs ([`Targets`]).
//! - [`dataset`]: labelled samples as network inputs and targets (normalised images and
//!   volumes, masks, label maps, linear/nearest resizing); [`augment::spatial`]: the fine-tuning
//!   augmentations, on the same per-sample RNG ([`augment::sample_rng`]) as pretraining's.
//! - [`read_nifti`]: NIfTI-1/-2, `.nii`/`.nii.gz`, every real datatype, scaling, sform/qform,
//!   returned in the order the official code feeds the model, (D, H, W) = (z, x, y).
//!   [`read_image`]: PNG/JPEG, 8/16-bit, grey/RGB.
//! - [`PairLoader`]: rayon workers decode and augment both views ahead of the trainer into a
//!   bounded queue; per-epoch seeded shuffle; drop_last; `start_batch` for exact resume;
//!   [`OnBadSample::Skip`] leaves bad files out and lists them at the end of the epoch.
//!   A sample's views depend only on (seed, epoch, sample index).
//! - [`subvolumes`]: the official sub-volume protocol (reference §4.3); [`resample`]: trilinear
//!   resampling to a target spacing; [`preview`]: a PNG grid of augmented views.
//!
//! ```
//! use unimiss_data::{LoaderConfig, Manifest, Modality, PairLoader};
//!
//! # fn main() -> Result<(), unimiss_data::DataError> {
//! let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests");
//! let manifest = Manifest::read(root.join("sample.tsv"))?;
//! let ct = manifest.of_modality(Modality::Volume3d);
//!
//! // One volume, read in model order (D, H, W) = (z, x, y).
//! let vol = unimiss_data::read_nifti(&ct[0].path)?;
//! assert_eq!(vol.dims, [24, 128, 128]);
//!
//! // Two augmented views per sample, small sizes for a quick run.
//! let cfg = LoaderConfig { batch_size: 2, size_3d: [8, 32, 32], threads: 2, ..LoaderConfig::default() };
//! let loader = PairLoader::new(ct, cfg)?;
//! let mut epoch = loader.epoch(0, 0);
//! let pair = epoch.next().expect("a batch")?;
//! assert_eq!(pair.views[0].dims(), &[2, 1, 8, 32, 32]);
//! assert_eq!(pair.indices.len(), 2);
//! # Ok(())
//! # }
//! ```

pub mod augment;
pub mod dataset;
pub mod eval_input;
mod error;
mod files;
pub mod font;
pub mod image2d;
pub mod labelled;
mod loader;
pub mod manifest;
pub mod nifti;
pub mod pipeline;
pub mod preflight;
pub mod preview;
pub mod resample;
pub mod subvolumes;
pub mod write;

pub use error::{DataError, Result};
pub use files::{is_data_file, read_dir_sorted};
pub use image2d::{Image2d, read_image};
pub use loader::{EpochIter, LoaderConfig, OnBadSample, PairLoader, ViewPair};
pub use labelled::{LabelledManifest, LabelledSample, Targets};
pub use manifest::{Manifest, Modality, Sample};
pub use nifti::{NiftiHeader, NiftiImage, Volume, read_nifti, read_nifti_image};
pub use pipeline::Pipeline;
