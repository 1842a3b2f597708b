//! The error type of the crate: every variant names the file or value at fault.

use std::path::PathBuf;

/// Errors of `unimiss_tasks`.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Two arrays that must describe the same grid do not.
    #[error("{what}: shape {got:?} does not match {expected:?}")]
    ShapeMismatch { what: String, got: Vec<usize>, expected: Vec<usize> },
    /// A label or class index outside `0..classes`.
    #[error("{what}: label {label} outside the class range 0..{classes}")]
    LabelOutOfRange { what: String, label: i64, classes: usize },
    /// An argument that makes no sense (empty input, zero size, bad option).
    #[error("{0}")]
    Invalid(String),
    /// A file that could not be read or written, with the reason.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Candle(#[from] candle::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Reading a manifest, image, volume or mask failed (the error names the file).
    #[error(transparent)]
    Data(#[from] unimiss_data::DataError),
    /// The training runtime (loop, optimiser, checkpoints, log) failed.
    #[error(transparent)]
    Runtime(Box<unimiss_runtime::RuntimeError>),
}

impl From<unimiss_runtime::RuntimeError> for TaskError {
    fn from(e: unimiss_runtime::RuntimeError) -> Self {
        Self::Runtime(Box::new(e))
    }
}

impl TaskError {
    /// A [`TaskError::File`] for `path`.
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File { path: path.into(), reason: reason.to_string() }
    }
}

/// `Result` with [`TaskError`].
pub type Result<T> = std::result::Result<T, TaskError>;
