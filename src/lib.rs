//! Ember: a model-compression composer for burn models.
//!
//! A JSON config (DeepSpeed's `compression_training` block plus Ember's sections) is validated,
//! resolved against a model into a [`Plan`](ember_config::Plan), applied, calibrated or trained,
//! cleaned into real low-bit storage and run on Ember's kernels. This facade re-exports the
//! crates and hosts the `ember` command line.
//!
//! # Brief overview
//! - [`config`] (`ember-config`): the config language, validation and the plan.
//! - [`compose::compose`]: the pipeline as one library call (what `ember compose` runs).
//! - [`Error`]: every user-facing failure with its exit code.

pub mod cli;
pub mod compose;
pub mod distill;
mod error;
pub mod eval;
pub mod events;
pub mod fsutil;
pub mod heldout;
pub mod interrupt;
pub mod layerwise;
pub mod memory;
pub mod moq_eigen;
pub mod progress;
pub mod runner;

pub use ember_config as config;
pub use error::Error;
