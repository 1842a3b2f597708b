//! Downstream tasks for UniMiSS: metrics, losses, native-resolution segmentation (nnU-Net
//! training patches, sliding-window inference), positional-table resizing for pretrained loading,
//! and synthetic labelled phantoms.
//!
//! ```
//! use unimiss_tasks::metrics::Overlap;
//! let pred = [true, true, false, false];
//! let gt = [true, false, true, false];
//! let o = Overlap::of(&pred, &gt)?;
//! assert_eq!(o.dice(0.0), Some(0.5));
//! assert_eq!(o.jaccard(0.0), Some(1.0 / 3.0));
//! # Ok::<(), unimiss_tasks::TaskError>(())
//! ```

pub mod ckpt;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod finetune;
pub mod infer;
pub mod inputs;
pub mod job;
pub mod losses;
pub mod metrics;
pub mod nets;
pub mod overlay;
pub mod patches;
pub mod phantoms;
pub mod seg_infer;
pub mod segment;
pub mod sliding;
pub mod zoom;

pub use error::{Result, TaskError};

/// Labelled manifests, input/target reading and the fine-tuning augmentations live in
/// `unimiss-data` (one manifest parser, one per-sample RNG); re-exported under their old paths.
pub use unimiss_data::augment::spatial as augment;
pub use unimiss_data::{dataset, labelled};
