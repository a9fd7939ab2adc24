//! Errors of the runtime crate: each names what is wrong and, where there is one, the remedy.

use std::path::PathBuf;

/// Everything that can go wrong building, reading, writing or running a compressed model.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A model or tensor that is internally inconsistent.
    #[error("invalid compressed model: {0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that is not a valid `.ember` artifact (truncated, corrupt, wrong manifest).
    #[error("{}: not a valid .ember artifact: {reason}", path.display())]
    Artifact { path: PathBuf, reason: String },
    /// Bad input to the engine (shapes, token ids out of range).
    #[error("bad input: {0}")]
    Input(String),
}

/// Result alias of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
