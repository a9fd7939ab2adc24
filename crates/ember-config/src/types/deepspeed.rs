//! DeepSpeed's engine keys, accepted at the top level so that a whole `ds_config.json` is a
//! config: batch sizes, clipping, the optimizer and the lr scheduler map onto the `training`
//! section (`crate::engine`); engine-only keys (ZeRO, fp16, logging) are accepted and reported as
//! not applicable. Semantics follow DeepSpeed's code (runtime/config.py, engine.py,
//! lr_schedules.py), not its docs, where they differ.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// DeepSpeed's `optimizer` block: `{"type": "Adam", "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsOptimizer {
    /// `Adam` or `AdamW` (any case, as DeepSpeed reads its own optimizers). Ember trains with
    /// these only: another optimizer would change the result.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub params: DsOptimizerParams,
}

/// The `params` of DeepSpeed's Adam: FusedAdam's defaults apply to what is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsOptimizerParams {
    /// Learning rate (FusedAdam's default 1e-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// β₁, β₂ (0.9, 0.999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    /// ε, added outside the square root (1e-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// Weight decay (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// true (DeepSpeed's default): decoupled decay (AdamW); false with `type: Adam`: L2 decay
    /// added to the gradient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_w_mode: Option<bool>,
    /// Selects torch's Adam instead of FusedAdam: the same math.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_adam: Option<bool>,
    /// Adam's bias correction (true; Ember cannot turn it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_correction: Option<bool>,
    /// AMSGrad (false; DeepSpeed's FusedAdam refuses true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amsgrad: Option<bool>,
}

/// DeepSpeed's lr schedulers that Ember reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DsSchedulerKind {
    /// Warmup from `warmup_min_lr` to `warmup_max_lr`, then constant.
    #[serde(rename = "WarmupLR")]
    WarmupLr,
    /// WarmupLR, then linear decay back to `warmup_min_lr` at `total_num_steps`.
    #[serde(rename = "WarmupDecayLR")]
    WarmupDecayLr,
    /// Warmup of a ratio of the optimizer's lr, then cosine decay to `cos_min_ratio`.
    #[serde(rename = "WarmupCosineLR")]
    WarmupCosineLr,
}

/// How the warmup rises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarmupType {
    /// `ln(i + 1) / ln(warmup_num_steps)` (DeepSpeed's default).
    #[default]
    Log,
    /// `i / warmup_num_steps`.
    Linear,
}

/// DeepSpeed's `scheduler` block: `{"type": "WarmupDecayLR", "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsScheduler {
    #[serde(rename = "type")]
    pub kind: DsSchedulerKind,
    #[serde(default)]
    pub params: DsSchedulerParams,
}

/// The params of DeepSpeed's warmup schedulers (defaults as in lr_schedules.py).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DsSchedulerParams {
    /// WarmupLR, WarmupDecayLR: the lr before and at the start of the warmup (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_min_lr: Option<f64>,
    /// WarmupLR, WarmupDecayLR: the lr after the warmup (0.001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_max_lr: Option<f64>,
    /// Warmup length in optimizer steps (1000; at least 2 is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_num_steps: Option<u64>,
    /// `log` (default) or `linear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_type: Option<WarmupType>,
    /// WarmupDecayLR, WarmupCosineLR (required): where the decay ends. Also the run's length when
    /// neither `training.steps` nor `compose --steps` gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_num_steps: Option<u64>,
    /// WarmupCosineLR: the warmup's start as a ratio of the optimizer's lr (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_min_ratio: Option<f64>,
    /// WarmupCosineLR: the ratio the cosine decays to (0.0001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_min_ratio: Option<f64>,
    /// The iteration the scheduler starts from (−1: a fresh run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_batch_iteration: Option<i64>,
}

impl DsScheduler {
    pub fn warmup_min_lr(&self) -> f64 {
        self.params.warmup_min_lr.unwrap_or(0.0)
    }
    pub fn warmup_max_lr(&self) -> f64 {
        self.params.warmup_max_lr.unwrap_or(0.001)
    }
    /// DeepSpeed's effective warmup: `max(2, warmup_num_steps)`.
    pub fn warmup_steps(&self) -> u64 {
        self.params.warmup_num_steps.unwrap_or(1000).max(2)
    }
    pub fn warmup_type(&self) -> WarmupType {
        self.params.warmup_type.unwrap_or_default()
    }
    pub fn warmup_min_ratio(&self) -> f64 {
        self.params.warmup_min_ratio.unwrap_or(0.0)
    }
    pub fn cos_min_ratio(&self) -> f64 {
        self.params.cos_min_ratio.unwrap_or(0.0001)
    }
    pub fn last_batch_iteration(&self) -> i64 {
        self.params.last_batch_iteration.unwrap_or(-1)
    }
}

/// DeepSpeed's `eigenvalue` block: MoQ's quantization periods scaled per layer by the dominant
/// eigenvalue of the loss's Hessian restricted to that layer (DeepSpeed reads it only inside its
/// legacy `quantize_training` block and disables it with an assert; Ember's semantics are in
/// docs/config.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Eigenvalue {
    #[serde(default)]
    pub enabled: bool,
    /// Accepted: Ember always reports each layer's estimate in `--events`.
    #[serde(default)]
    pub verbose: bool,
    /// Power-iteration steps at most, per layer.
    #[serde(default = "hundred_u32")]
    #[schemars(range(min = 1))]
    pub max_iter: u32,
    /// Stop when the estimate's relative change falls below this.
    #[serde(default = "tol")]
    pub tol: f64,
    /// Added to the norm when normalizing the iterate.
    #[serde(default = "stability")]
    pub stability: f64,
    /// DeepSpeed re-estimates at every this-many gradient-accumulation boundaries while bits
    /// change; Ember estimates once, at the MoQ offset, so it is accepted and not used.
    #[serde(default = "one_u64")]
    pub gas_boundary_resolution: u64,
    /// The layer stack (`bert.encoder.layer` or `encoder.layer`).
    #[serde(default = "layer_name")]
    pub layer_name: String,
    /// How many layers of the stack get their own estimate (from layer 0); must be ≥ 1.
    #[serde(default)]
    pub layer_num: u32,
}

fn hundred_u32() -> u32 {
    100
}
fn tol() -> f64 {
    1e-2
}
fn stability() -> f64 {
    1e-6
}
fn one_u64() -> u64 {
    1
}
fn layer_name() -> String {
    "bert.encoder.layer".into()
}
