//! The raw config types: what the JSON says, with DeepSpeed's code defaults. Serde and schemars
//! only; validation rules that a schema cannot express live in `validate.rs`, and the composer
//! consumes the resolved [`crate::Plan`], never these types directly.

mod compression;
mod deepspeed;
mod sections;

pub use compression::*;
pub use deepspeed::*;
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

    // DeepSpeed's engine keys: a whole `ds_config.json` is a config. The training ones map onto
    // `training` (see `ember_config::engine`); the others are accepted and listed by `ember plan`
    // as not applicable here.
    /// DeepSpeed: sentences per optimizer step (= micro batch × gradient accumulation steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub train_batch_size: Option<u32>,
    /// DeepSpeed: sentences per forward (one device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub train_micro_batch_size_per_gpu: Option<u32>,
    /// DeepSpeed: micro batches whose gradients add up to one optimizer step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub gradient_accumulation_steps: Option<u32>,
    /// DeepSpeed: global L2 norm the gradients are clipped to (0: off, DeepSpeed's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_clipping: Option<f64>,
    /// DeepSpeed: the optimizer (Adam / AdamW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<DsOptimizer>,
    /// DeepSpeed: the lr scheduler (WarmupLR, WarmupDecayLR, WarmupCosineLR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<DsScheduler>,
    /// DeepSpeed: MoQ's periods scaled per layer by the Hessian's dominant eigenvalue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eigenvalue: Option<Eigenvalue>,
    /// DeepSpeed engine-only (logging): not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_per_print: Option<u64>,
    /// DeepSpeed engine-only (timers): not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_breakdown: Option<bool>,
    /// DeepSpeed engine-only (memory logging): not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_breakdown: Option<bool>,
    /// DeepSpeed: gradient division around the all-reduce; the identity on one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescale_gradients: Option<bool>,
    /// DeepSpeed: gradient division around the all-reduce; the identity on one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_predivide_factor: Option<f64>,
    /// DeepSpeed's ZeRO (partitioning across devices): not applicable on one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_optimization: Option<serde_json::Value>,
    /// DeepSpeed's ZeRO safety switch: not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_allow_untested_optimizer: Option<bool>,
    /// DeepSpeed's fp16 mixed precision: Ember trains in fp32 (no loss scaling, no skipped steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp16: Option<serde_json::Value>,
    /// DeepSpeed's bf16 mixed precision: Ember trains in fp32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<serde_json::Value>,
    /// NVIDIA apex AMP: Ember trains in fp32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amp: Option<serde_json::Value>,
    /// DeepSpeed's all-reduce dtype: not applicable on one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_data_type: Option<serde_json::Value>,
    /// DeepSpeed's sparse all-reduce of embedding gradients: not applicable on one device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_gradients: Option<bool>,
    /// DeepSpeed's activation recomputation (the same math): not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_checkpointing: Option<serde_json::Value>,
    /// DeepSpeed's profiler: not applicable here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_profiler: Option<serde_json::Value>,
    /// DeepSpeed's monitors (TensorBoard, W&B, CSV): Ember writes `--events` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<serde_json::Value>,
    /// DeepSpeed's Weights & Biases monitor: Ember writes `--events` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wandb: Option<serde_json::Value>,
    /// DeepSpeed's CSV monitor: Ember writes `--events` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_monitor: Option<serde_json::Value>,
}
