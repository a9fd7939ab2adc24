//! The raw config types: what the JSON says, with DeepSpeed's code defaults. Serde and schemars
//! only; validation rules that a schema cannot express live in `validate.rs`, and the composer
//! consumes the resolved [`crate::Plan`], never these types directly.

mod compression;
mod sections;

pub use compression::*;
pub use sections::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An Ember config: DeepSpeed's `compression_training` block unchanged, plus Ember's own sections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmberConfig {
    /// Path or URL of this JSON Schema, for editors (`../schemas/ember.schema.json`).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// A one-line description of the recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which model to compress.
    #[serde(default)]
    pub model: ModelSection,
    /// DeepSpeed Compression's `compression_training` block, accepted unchanged.
    #[serde(default)]
    pub compression_training: CompressionTraining,
    /// Knowledge distillation from the original (teacher) model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<Distillation>,
    /// Post-training calibration (ZeroQuant PTQ): static activation ranges.
    #[serde(default)]
    pub calibration: Calibration,
    /// Training loop for techniques with a schedule (QAT, MoQ, pruning, distillation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    /// Where the compressed artifact goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Export>,
    /// Ember-wide options.
    #[serde(default)]
    pub ember: EmberOptions,
}
