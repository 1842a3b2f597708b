//! The runtime's error type.

use std::path::PathBuf;

/// What can go wrong in the runtime: files, checkpoints, logs, configuration overrides, the
/// divergence guard.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
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
        source: Box<RuntimeError>,
    },
    /// The parameters became non-finite or grew past the divergence guard; the run stops
    /// before checkpointing them.
    #[error(
        "training diverged at step {step} (epoch {epoch}): parameter norm {norm:.4e} ({why}); the \
         last checkpoint (before this step) is kept — lower the learning rate or raise \
         `guard.max_param_norm_ratio`"
    )]
    Diverged { step: u64, epoch: usize, norm: f64, why: String },
    /// A JSON document (log line, state file) could not be written or parsed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A line of a file (log) could not be parsed.
    #[error("{}:{line}: {msg}", path.display())]
    Parse { path: PathBuf, line: usize, msg: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle::Error),
    /// Plotting failed.
    #[error("plot {path}: {msg}")]
    Plot { path: PathBuf, msg: String },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Attach a path to an I/O error.
pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.into();
    move |source| RuntimeError::Io { path, source }
}
