//! DeepSpeed's `compression_training` block, key for key, with DeepSpeed's *code* defaults
//! (compat-notes §1.10), plus Ember's extensions (`group_size`, `format`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use ember_numerics::{Clip, FloatFormat};

/// The seven DeepSpeed techniques plus any technique a user crate registered under its own key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompressionTraining {
    /// Weight quantization: forward fake-quant (QAT/PTQ) or MoQ bit annealing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_quantization: Option<TechniqueSection<WeightQuantShared, WeightQuantParams>>,
    /// Quantization of the input activations of the matched Linear layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_quantization: Option<TechniqueSection<ActivationQuantShared, ActivationQuantParams>>,
    /// Unstructured (element-wise) pruning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_pruning: Option<TechniqueSection<SparsePruningShared, DenseRatioParams>>,
    /// Output-row (neuron) pruning of Linear layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_pruning: Option<TechniqueSection<RowPruningShared, DenseRatioParams>>,
    /// Attention-head pruning on the attention output projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_pruning: Option<TechniqueSection<HeadPruningShared, DenseRatioParams>>,
    /// Output-channel pruning of Conv2d layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_pruning: Option<TechniqueSection<ChannelPruningShared, DenseRatioParams>>,
    /// Layer reduction: the student keeps a subset of the teacher's layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_reduction: Option<LayerReduction>,
    /// Techniques registered by user crates, each under its own key (validated against the
    /// registered technique's schema).
    #[serde(flatten)]
    pub custom: BTreeMap<String, TechniqueSection<Value, Value>>,
}

/// The shape every technique except `layer_reduction` shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(bound = "S: JsonSchema + Default + Serialize, P: JsonSchema")]
pub struct TechniqueSection<S, P> {
    /// Parameters shared by all groups (they override group params on collision, as in DeepSpeed).
    #[serde(default)]
    pub shared_parameters: S,
    /// Named groups: params + the module patterns they apply to. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub different_groups: Option<BTreeMap<String, Group<P>>>,
}

/// One group of a technique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group<P> {
    /// Group-specific parameters.
    pub params: P,
    /// Module path patterns, matched with `re.search` semantics (unanchored) on dotted paths.
    /// Required: DeepSpeed's default `"*"` is an invalid regex that crashes.
    pub modules: Vec<String>,
    /// For row/head/channel pruning: for `modules[i]`, the modules that shrink with it (resolved
    /// inside the same block, e.g. `[["self.query", "self.key", "self.value"]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_modules: Option<Vec<Vec<String>>>,
}

/// `symmetric` or `asymmetric`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantizationType {
    #[default]
    Symmetric,
    Asymmetric,
}

/// How weights are rounded to their codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Round to nearest (ties to even).
    #[default]
    Nearest,
    /// MoQ: stochastic rounding.
    Stochastic,
    /// Ember extension, post-training: GPTQ error-compensating rounding from calibration inputs
    /// (integer bits 3…8, per-row or `group_size` scales).
    Gptq,
}

// `Clip` and `FloatFormat` are what a quantized number is: they live in `ember-numerics`
// (re-exported from `crate::types`), with the serde and schema forms this config language uses.

/// MoQ's optional blend of float and quantized weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fp16MixedQuantize {
    /// Blend `w ← r·w + (1−r)·Q(w)` after each step.
    #[serde(default)]
    pub enabled: bool,
    /// Decrement of r per quantize step (r resets to 1 at each bit drop).
    #[serde(default = "default_change_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub quantize_change_ratio: f64,
}

impl Default for Fp16MixedQuantize {
    fn default() -> Self {
        Fp16MixedQuantize {
            enabled: false,
            quantize_change_ratio: default_change_ratio(),
        }
    }
}

fn default_change_ratio() -> f64 {
    0.001
}

/// `weight_quantization.shared_parameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightQuantShared {
    /// Master switch.
    #[serde(default)]
    pub enabled: bool,
    /// true: fake-quant in forward (QAT with straight-through gradients, PTQ); false: MoQ
    /// (weights quantized in place after each optimizer step, bits annealed start→target).
    #[serde(default)]
    pub quantize_weight_in_forward: bool,
    /// Step from which quantization is active (0 = from the start; PTQ needs 0).
    #[serde(default)]
    pub schedule_offset: u64,
    /// DeepSpeed groups: the row-major weight is split into this many blocks of whole output rows
    /// (embeddings always use one group per token row). Must divide the weight's element count.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub quantize_groups: u32,
    /// `symmetric` or `asymmetric` (asymmetric needs ≥ 3 bits).
    #[serde(default)]
    pub quantization_type: QuantizationType,
    /// `nearest`, `stochastic` (MoQ) or `gptq` (Ember, post-training: compensates each weight's
    /// rounding error on the calibration inputs).
    #[serde(default)]
    pub rounding: Rounding,
    /// Ember extension: how each scale group's range is chosen for integer codes (3…8 bits):
    /// `none` spans the group's min/max (DeepSpeed's quantizers), `mse` shrinks the range to the
    /// clip ratio (1.00 down to 0.50 in steps of 0.01) that minimizes the group's squared rounding
    /// error. With `gptq`, the search fixes the static group scales before the sweep.
    #[serde(default)]
    pub clip: Clip,
    /// Accepted and ignored: DeepSpeed's CUDA quantizer switch. Ember's quantizer is the same on
    /// every device, so there is nothing to select.
    #[serde(default)]
    pub quantizer_kernel: bool,
    /// Accepted and ignored: Ember always reports bit drops in its progress line and `--events`.
    #[serde(default)]
    pub quantize_verbose: bool,
    /// MoQ mixed-precision blending.
    #[serde(default)]
    pub fp16_mixed_quantize: Fp16MixedQuantize,
    /// Ember extension: scales per `group_size` consecutive input elements of each output row
    /// (the layout fast kernels want), instead of DeepSpeed's row blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub group_size: Option<u32>,
    /// Ember extension: a floating-point format instead of integer codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FloatFormat>,
}

/// `weight_quantization.different_groups.*.params`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightQuantParams {
    /// MoQ: initial bits, lowered by one per period. Forward mode: must be given (DeepSpeed asserts)
    /// and is ignored, as in DeepSpeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub start_bits: Option<u32>,
    /// Final bits: 8…3 integer, 2 = ternary, 1 = binary (symmetric only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8))]
    pub target_bits: Option<u32>,
    /// MoQ: steps before the first bit drop; the period doubles after each drop.
    #[serde(default = "one")]
    pub quantization_period: u32,
    /// Ember extension (per group): scales per `group_size` input elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub group_size: Option<u32>,
    /// Ember extension (per group): floating-point format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FloatFormat>,
}

/// How static activation ranges are obtained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangeCalibration {
    /// Per-token min/max computed on every call (DeepSpeed's code default).
    #[default]
    Dynamic,
    /// One range per tensor, fixed by calibration (or training EMA).
    Static,
}

/// `activation_quantization.shared_parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationQuantShared {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub quantization_type: QuantizationType,
    /// `dynamic` (per token) or `static` (calibrated per tensor).
    #[serde(default)]
    pub range_calibration: RangeCalibration,
    /// Step from which activations are quantized (DeepSpeed's code default: 1000).
    #[serde(default = "thousand")]
    pub schedule_offset: u64,
}

impl Default for ActivationQuantShared {
    fn default() -> Self {
        ActivationQuantShared {
            enabled: false,
            quantization_type: QuantizationType::Symmetric,
            range_calibration: RangeCalibration::Dynamic,
            schedule_offset: 1000,
        }
    }
}

/// `activation_quantization.different_groups.*.params`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationQuantParams {
    /// Activation bits: 8 or 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
}

/// Pruning method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PruningMethod {
    /// Magnitude (L1) mask, recomputed as weights move.
    L1,
    /// Learnable scores (movement pruning), initialised from magnitudes.
    Topk,
    /// SNIP-momentum (DeepSpeed delegated it to Intel Neural Compressor).
    SnipMomentum,
}

/// `sparse_pruning.shared_parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SparsePruningShared {
    #[serde(default)]
    pub enabled: bool,
    /// `l1`, `topk` or `snip_momentum`.
    #[serde(default = "l1")]
    pub method: PruningMethod,
    /// Start step (code default 1000).
    #[serde(default = "thousand")]
    pub schedule_offset: u64,
    /// Last step at which the mask is updated (default: `schedule_offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_offset_end: Option<u64>,
    /// snip_momentum: steps between mask updates.
    #[serde(default = "one_u64")]
    #[schemars(range(min = 1))]
    pub schedule_offset_stride: u64,
    /// snip_momentum: block pattern, `NxM` or `N:M`.
    #[serde(default = "four_by_one")]
    pub block_pattern: String,
    /// snip_momentum: global fraction of weights kept.
    #[serde(default = "tenth")]
    pub dense_ratio: f64,
    /// snip_momentum: module patterns left dense.
    #[serde(default)]
    pub excluded_modules: Vec<String>,
}

impl Default for SparsePruningShared {
    fn default() -> Self {
        SparsePruningShared {
            enabled: false,
            method: PruningMethod::L1,
            schedule_offset: 1000,
            schedule_offset_end: None,
            schedule_offset_stride: 1,
            block_pattern: four_by_one(),
            dense_ratio: 0.1,
            excluded_modules: Vec::new(),
        }
    }
}

/// `row_pruning.shared_parameters` (Linear only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowPruningShared {
    #[serde(default)]
    pub enabled: bool,
    /// `l1` or `topk`.
    #[serde(default = "l1")]
    pub method: PruningMethod,
    #[serde(default = "thousand")]
    pub schedule_offset: u64,
}

impl Default for RowPruningShared {
    fn default() -> Self {
        RowPruningShared {
            enabled: false,
            method: PruningMethod::L1,
            schedule_offset: 1000,
        }
    }
}

/// `head_pruning.shared_parameters` (attention output projection only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadPruningShared {
    #[serde(default)]
    pub enabled: bool,
    /// `topk` (DeepSpeed) or `l1` (Ember: head norm of the O-projection columns).
    #[serde(default = "topk")]
    pub method: PruningMethod,
    #[serde(default = "thousand")]
    pub schedule_offset: u64,
    /// Heads per layer of the model. Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub num_heads: Option<u32>,
}

impl Default for HeadPruningShared {
    fn default() -> Self {
        HeadPruningShared {
            enabled: false,
            method: PruningMethod::Topk,
            schedule_offset: 1000,
            num_heads: None,
        }
    }
}

/// `channel_pruning.shared_parameters` (Conv2d only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPruningShared {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "l1")]
    pub method: PruningMethod,
    #[serde(default = "thousand")]
    pub schedule_offset: u64,
}

impl Default for ChannelPruningShared {
    fn default() -> Self {
        ChannelPruningShared {
            enabled: false,
            method: PruningMethod::L1,
            schedule_offset: 1000,
        }
    }
}

/// Group params of every pruning technique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenseRatioParams {
    /// Fraction KEPT, in (0, 1]; k = ceil(ratio · n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense_ratio: Option<f64>,
}

/// `layer_reduction`: the student keeps the teacher layers listed in `teacher_layer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerReduction {
    #[serde(default)]
    pub enabled: bool,
    /// Number of student layers; if given it must equal `teacher_layer`'s length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_number_layer: Option<u32>,
    /// Prefix before the layer index (`bert.encoder.layer`, `encoder.layer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_name_prefix: Option<String>,
    /// Student layer i is initialised from teacher layer `teacher_layer[i]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_layer: Option<Vec<u32>>,
    /// Modules copied whole from the teacher (`bert.embeddings`, `bert.pooler`, `classifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_module_name: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn thousand() -> u64 {
    1000
}
fn tenth() -> f64 {
    0.1
}
fn four_by_one() -> String {
    "4x1".to_string()
}
fn l1() -> PruningMethod {
    PruningMethod::L1
}
fn topk() -> PruningMethod {
    PruningMethod::Topk
}
