//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while pretraining, checkpointing or exporting.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// A loss term was NaN or infinite; the run stops before the optimiser step.
    #[error("non-finite loss at step {step} (epoch {epoch}, {modality}): {terms}")]
    NonFiniteLoss {
        step: u64,
        epoch: usize,
        modality: &'static str,
        /// `name=value` for every term of the step.
        terms: String,
    },
    /// The official schedule index ran past the end of the schedule arrays (reference §8.2).
    #[error(
        "schedule index {index} is past the end of the {len}-long schedule (epoch {epoch}, \
         {modality} dataset of {n_cur} samples, schedules built for {n_3d} 3D samples); this is \
         the official code's IndexError (reference §8.2): set `fixes.per_batch_schedule = true` \
         or use a 2D dataset no larger than the 3D one"
    )]
    ScheduleOverflow {
        index: usize,
        len: usize,
        epoch: usize,
        modality: &'static str,
        n_cur: usize,
        n_3d: usize,
    },
    /// A configuration value is invalid or a `--set key=value` override cannot be applied.
    #[error("config: {0}")]
    Config(String),
    /// A checkpoint is missing a file, a tensor or a field, or does not match the model.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// Pre-flight found unreadable manifest entries (the listing names file and line).
    #[error("{0}\n(fix or remove these entries, or set data.on_bad_sample = \"skip\" to leave them out)")]
    Preflight(String),
    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] unimiss_data::DataError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle::Error),
    /// The training runtime (loop, checkpoints, log, overrides, the divergence guard) failed.
    #[error(transparent)]
    Runtime(#[from] unimiss_runtime::RuntimeError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SslError>;

/// A JSON document (state file, record) that could not be written or parsed is the runtime's
/// `Json` error.
impl From<serde_json::Error> for SslError {
    fn from(e: serde_json::Error) -> Self {
        SslError::Runtime(unimiss_runtime::RuntimeError::Json(e))
    }
}

/// Attach a path to an I/O error (the runtime's `Io` error).
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SslError {
    let f = unimiss_runtime::error::io_err(path);
    move |source| SslError::Runtime(f(source))
}
