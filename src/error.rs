//! The facade's error type: every failure a user can cause, with its cause and remedy, and the exit
//! code the `ember` binary uses for it.

use thiserror::Error;

/// Any error Ember's command-line surface can report.
#[derive(Debug, Error)]
pub enum Error {
    /// The config is invalid; every problem found is listed.
    #[error("{0}")]
    Config(#[from] ember_config::ConfigErrors),
    /// The config asks for something Ember cannot do yet.
    #[error("not supported yet: {0}")]
    NotSupported(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A model, its files, or an asset fetch failed (missing or corrupt files, bad config.json,
    /// unknown model name, pip offline…); the message says which and what to do.
    #[error("{0}")]
    Model(#[from] ember_models::Error),
    /// A `.ember` artifact or the compressed-model runtime failed (corrupt or truncated file,
    /// bad input to the engine).
    #[error("{0}")]
    Runtime(#[from] ember_runtime::RuntimeError),
    /// Any other user-facing failure, already phrased for the user.
    #[error("{0}")]
    Other(String),
    /// The user interrupted the run (Ctrl-C); the message says what was kept.
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    /// The process exit code for this error (documented in the README):
    /// 2 = invalid config or arguments, 3 = not supported yet, 4 = file or model problem,
    /// 130 = interrupted (Ctrl-C), 1 = other.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::NotSupported(_) => 3,
            Error::Io { .. } => 4,
            Error::Model(ember_models::Error::NotSupported(_)) => 3,
            Error::Model(_) => 4,
            Error::Runtime(ember_runtime::RuntimeError::Input(_)) => 1,
            Error::Runtime(_) => 4,
            Error::Other(_) => 1,
            Error::Interrupted(_) => 130,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl From<ember_core::CoreError> for Error {
    fn from(e: ember_core::CoreError) -> Error {
        match e {
            ember_core::CoreError::Config(c) => Error::Config(c),
            ember_core::CoreError::NotSupported(s) => Error::NotSupported(s),
            other => Error::Other(other.to_string()),
        }
    }
}
