//! The crate's error type: every variant names the file at fault and the problem.

use std::path::PathBuf;

/// Errors from reading, writing, parsing and augmenting data. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a NIfTI-1/NIfTI-2 image, or its header is inconsistent.
    #[error("{path}: bad NIfTI header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    /// The image is not a 3D volume (e.g. a 4D series with several time points).
    #[error("{path}: wrong dimensionality: {reason}")]
    WrongDimensionality { path: PathBuf, reason: String },
    /// The header asks for more memory than the configured limit; nothing was allocated.
    #[error("{path}: refusing {voxels} voxels ({bytes} bytes), above the limit of {limit} voxels")]
    TooLarge {
        path: PathBuf,
        voxels: u128,
        bytes: u128,
        limit: u64,
    },
    /// The file ends before all voxels were read.
    #[error("{path}: truncated: expected {expected} bytes of voxel data, found {found}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// The compressed stream or the encoded image is corrupt.
    #[error("{path}: corrupt data: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A voxel or pixel is NaN or infinite.
    #[error("{path}: non-finite value {value} at voxel {index:?} (x, y, z)")]
    NonFinite {
        path: PathBuf,
        value: f32,
        index: [usize; 3],
    },
    /// The NIfTI datatype is not a real scalar type this crate reads.
    #[error("{path}: unsupported NIfTI datatype code {code}")]
    UnsupportedDatatype { path: PathBuf, code: i32 },
    /// A PNG/JPEG could not be decoded or has an unsupported pixel layout.
    #[error("{path}: image: {reason}")]
    Image { path: PathBuf, reason: String },
    /// A manifest line could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Manifest {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A manifest parses but cannot serve its purpose (no samples, missing or inconsistent
    /// label/mask columns, a sample of the wrong modality).
    #[error("{path}: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    /// A class label outside `0..classes`: `what` is the sample of a manifest's label, or the
    /// voxel of a label map.
    #[error("{path}: {what}: label {label} outside the class range 0..{classes}")]
    LabelOutOfRange {
        path: PathBuf,
        what: String,
        label: i64,
        classes: usize,
    },
    /// A sample cannot be used with this configuration (wrong modality, too small, ...).
    #[error("{path}: {reason}")]
    BadSample { path: PathBuf, reason: String },
    /// The loader or a tool was configured wrongly.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A tensor could not be built.
    #[error(transparent)]
    Candle(#[from] candle::Error),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            DataError::Io { path, .. }
            | DataError::BadHeader { path, .. }
            | DataError::WrongDimensionality { path, .. }
            | DataError::TooLarge { path, .. }
            | DataError::Truncated { path, .. }
            | DataError::Corrupt { path, .. }
            | DataError::NonFinite { path, .. }
            | DataError::UnsupportedDatatype { path, .. }
            | DataError::Image { path, .. }
            | DataError::Manifest { path, .. }
            | DataError::BadManifest { path, .. }
            | DataError::LabelOutOfRange { path, .. }
            | DataError::BadSample { path, .. } => Some(path),
            DataError::Config(_) | DataError::Candle(_) => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
