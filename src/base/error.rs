//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate, each variant naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An image file exists but cannot be used.
    #[error("{path}: {reason}")]
    Image {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A write was refused because it would replace a file the user did not ask to replace
    /// (a restoration's own input); the file is untouched.
    #[error("{path}: {reason}")]
    Refused {
        /// The file that would have been written.
        path: PathBuf,
        /// Why, and how to ask for it explicitly.
        reason: String,
    },
    /// A checkpoint does not fit the model.
    #[error("{path}: {reason}")]
    Weights {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not fit (names the keys).
        reason: String,
    },
    /// A configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A dataset layout is unusable.
    #[error("dataset: {0}")]
    Dataset(String),
    /// Training cannot go on (a non-finite loss, a checkpoint that does not fit the run).
    #[error("training: {0}")]
    Training(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
