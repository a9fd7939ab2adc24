//! Errors of composing: invalid configs, things not supported yet, and attach failures, each
//! phrased for the user.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// The config does not fit the model.
    #[error("{0}")]
    Config(#[from] ember_config::ConfigErrors),
    /// A valid request Ember cannot carry out yet.
    #[error("not supported yet: {0}")]
    NotSupported(String),
    /// A technique could not attach to a module.
    #[error("{path}: {message}")]
    Attach { path: String, message: String },
    /// Calibration failed (no data, no observations).
    #[error("calibration: {0}")]
    Calibration(String),
}
