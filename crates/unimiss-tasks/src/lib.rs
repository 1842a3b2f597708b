//! Downstream tasks for UniMiSS: task networks ([`nets`]), fine-tuning ([`finetune`], a learner
//! of `unimiss-runtime`'s loop), classification inference ([`classify`]), segmentation training
//! data and loss ([`seg_train`]) and native-resolution inference ([`seg_infer`], sliding window
//! [`sliding`]), metrics and typed evaluation reports ([`metrics`], [`evaluate`]), task weight
//! files ([`weights`]), positional-table resizing for pretrained loading ([`zoom`]) and synthetic
//! labelled phantoms ([`phantoms`]). Labelled manifests, readers, writers and the fine-tuning
//! augmentations are `unimiss-data`'s.
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

pub mod classify;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod finetune;
pub mod inputs;
pub mod job;
pub mod losses;
pub mod metrics;
pub mod nets;
pub mod overlay;
pub mod patches;
pub mod phantoms;
pub mod predict;
pub mod seg_infer;
pub mod seg_train;
pub mod sliding;
pub mod weights;
pub mod zoom;

pub use error::{Result, TaskError};
