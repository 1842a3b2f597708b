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
    /// A checkpoint could not be written; the previous one is kept.
    #[error("checkpoint of step {step} not written (the previous checkpoint is kept): {source}")]
    CheckpointWrite {
        step: u64,
        #[source]
        source: Box<SslError>,
    },
    /// The parameters became non-finite or grew past the divergence guard; the run stops
    /// before checkpointing them.
    #[error(
        "training diverged at step {step} (epoch {epoch}): parameter norm {norm:.4e} ({why}); the \
         last checkpoint (before this step) is kept — lower the learning rate or raise \
         `guard.max_param_norm_ratio`"
    )]
    Diverged { step: u64, epoch: usize, norm: f64, why: String },
    /// Pre-flight found unreadable manifest entries (the listing names file and line).
    #[error("{0}\n(fix or remove these entries, or set data.on_bad_sample = \"skip\" to leave them out)")]
    Preflight(String),
    /// A JSON document (log line, state file) could not be written or parsed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A line of a file (log, manifest) could not be parsed.
    #[error("{}:{line}: {msg}", path.display())]
    Parse { path: PathBuf, line: usize, msg: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Data loading failed.
    #[error(transparent)]
    Data(#[from] unimiss_data::DataError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle::Error),
    /// Plotting failed.
    #[error("plot {path}: {msg}")]
    Plot { path: PathBuf, msg: String },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SslError>;

/// Attach a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SslError {
    let path = path.into();
    move |source| SslError::Io { path, source }
}
