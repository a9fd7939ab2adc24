//! Ember's own sections: what DeepSpeed left to user scripts (model, distillation, calibration,
//! training loop, export) and Ember-wide options.

use schemars::JsonSchema;

use super::deepspeed::DsScheduler;
use serde::{Deserialize, Serialize};

pub use ember_numerics::Numerics;

/// Model family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// BERT-style encoders (HF `BertModel` naming).
    #[default]
    Bert,
}

/// `model`: which pretrained model to compress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Architecture family.
    #[serde(default)]
    pub family: ModelFamily,
    /// A built-in name (`minilm-l6`) or a directory with HF `config.json` + `model.safetensors`.
    #[serde(default = "default_source")]
    pub source: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            family: ModelFamily::Bert,
            source: default_source(),
        }
    }
}

fn default_source() -> String {
    "minilm-l6".to_string()
}

/// A distillation loss term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// KL divergence of temperature-softened logits (models with a head).
    LogitsKl,
    /// MSE between student and teacher hidden states, layers mapped by `teacher_layer`.
    HiddenMse,
    /// MSE between pre-softmax attention scores, layers mapped by `teacher_layer`.
    AttentionMse,
    /// 1 − cosine between pooled sentence embeddings (encoders without a head).
    EmbeddingCosine,
    /// MSE between pooled sentence embeddings.
    EmbeddingMse,
}

/// One weighted loss term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistillationLoss {
    pub kind: LossKind,
    /// Weight of the term in the total loss.
    #[serde(default = "one_f64")]
    #[schemars(range(min = 0.0))]
    pub weight: f64,
    /// Softmax temperature (`logits_kl` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// Layer-by-layer distillation (ZeroQuant LKD): each student layer learns to reproduce its teacher
/// layer's output from the teacher's input, one layer at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layerwise {
    #[serde(default)]
    pub enabled: bool,
    /// Optimizer steps per layer.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1))]
    pub steps: u64,
    /// Learning rate (ZeroQuant used 5e-6).
    #[serde(default = "lkd_lr")]
    pub lr: f64,
}

/// `distillation`: the teacher and the loss terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Distillation {
    /// The teacher: `original` (the uncompressed model).
    #[serde(default = "original")]
    pub teacher: String,
    /// Loss terms summed into the training loss.
    #[serde(default)]
    pub losses: Vec<DistillationLoss>,
    /// ZeroQuant layer-by-layer distillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layerwise: Option<Layerwise>,
}

/// How static activation ranges are estimated from calibration batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangeMethod {
    /// Running min and max over all calibration tokens.
    #[default]
    Minmax,
    /// The `percentile`-th percentile of |x| (clips rare outliers).
    Percentile,
}

/// How the calibration file is cut into samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSplit {
    /// One sample per non-empty line.
    #[default]
    Lines,
    /// Every line split into sentences after `.`, `!` or `?` followed by whitespace.
    Sentences,
}

/// `calibration`: the sentences run through the model (no gradient) to fix static ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// `builtin:lee_background` (300 real news articles, never the evaluation data) or a path to a
    /// UTF-8 file with one sentence per line.
    #[serde(default = "builtin_calibration")]
    pub data: String,
    /// How each line of `data` becomes calibration samples: `lines` (one sample per line) or
    /// `sentences` (every line split after `.`, `!` or `?` followed by whitespace; use it when the
    /// model will embed sentences and the file holds whole documents).
    #[serde(default)]
    pub split: CalibrationSplit,
    /// Number of samples (lines, or sentences with `split: sentences`) used, from the start.
    #[serde(default = "calibration_samples")]
    #[schemars(range(min = 1))]
    pub samples: u32,
    /// Samples per batch at most (samples are batched by token count, so no batch is padded).
    #[serde(default = "sixteen")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// Tokens per sentence at most.
    #[serde(default = "max_seq")]
    #[schemars(range(min = 2))]
    pub max_seq_len: u32,
    /// Range estimator for static activation quantization.
    #[serde(default)]
    pub method: RangeMethod,
    /// Percentile of |x| kept when `method` is `percentile`.
    #[serde(default = "default_percentile")]
    pub percentile: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            data: builtin_calibration(),
            split: CalibrationSplit::Lines,
            samples: calibration_samples(),
            batch_size: 16,
            max_seq_len: max_seq(),
            method: RangeMethod::Minmax,
            percentile: default_percentile(),
        }
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Linear warmup then linear decay to 0.
    #[default]
    Linear,
    /// Linear warmup then cosine decay to 0.
    Cosine,
}

/// `training`: Ember's own loop (AdamW) for scheduled techniques and distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Optimizer steps.
    #[schemars(range(min = 1))]
    pub steps: u64,
    /// Sentences per step.
    #[serde(default = "sixteen")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// Peak learning rate.
    #[serde(default = "train_lr")]
    pub lr: f64,
    /// AdamW weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Linear warmup steps.
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Training text: `builtin:wiki` or a file with one sentence per line.
    #[serde(default = "builtin_training")]
    pub data: String,
    #[serde(default = "max_seq")]
    pub max_seq_len: u32,
    #[serde(default)]
    pub seed: u64,
    /// Write a checkpoint (model, optimizer state, step) every this many steps; 0: never.
    #[serde(default = "hundred")]
    pub checkpoint_every: u64,
    /// Micro batches per optimizer step: the `batch_size` sentences of a step run in this many
    /// forwards whose gradients add up (DeepSpeed's `gradient_accumulation_steps`); must divide
    /// `batch_size`.
    #[serde(default = "one_u32")]
    #[schemars(range(min = 1))]
    pub gradient_accumulation_steps: u32,
    /// Global L2 norm the gradients are clipped to; 0: no clipping (DeepSpeed's
    /// `gradient_clipping`).
    #[serde(default = "one_f64")]
    pub max_grad_norm: f64,
    /// Adam's β₁ and β₂.
    #[serde(default = "adam_betas")]
    pub betas: [f64; 2],
    /// Adam's ε (added outside the square root).
    #[serde(default = "adam_eps")]
    pub eps: f64,
    /// `true`: decoupled weight decay (AdamW); `false`: L2 decay added to the gradient
    /// (DeepSpeed's Adam with `adam_w_mode: false`). Biases and LayerNorms are never decayed.
    #[serde(default = "yes")]
    pub decoupled_weight_decay: bool,
    /// Measure the student on held-out sentences every this many steps (and after the last);
    /// 0: never. The run keeps the best state measured once every schedule has settled.
    #[serde(default = "fifty")]
    pub eval_every: u64,
    /// Sentences set aside from the end of the training text for those measurements (never
    /// trained on).
    #[serde(default = "sixty_four")]
    #[schemars(range(min = 1))]
    pub eval_sentences: u32,
    /// DeepSpeed's lr scheduler (`WarmupLR`, `WarmupDecayLR`, `WarmupCosineLR`), reproduced
    /// exactly; it replaces `lr_schedule` and `warmup_steps` (and `lr` is the optimizer's lr
    /// that `WarmupCosineLR` scales).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<DsScheduler>,
}

impl Training {
    /// A `training` section of `steps` steps with every other key at its default (what a config
    /// that gives only a step count, through a DeepSpeed scheduler or `compose --steps`, means).
    pub fn with_steps(steps: u64) -> Training {
        serde_json::from_value(serde_json::json!({ "steps": steps }))
            .expect("every key of `training` but `steps` has a default")
    }
}

/// `export`: where `compose` writes the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Output path of the `.ember` artifact.
    pub path: String,
}

/// How `modules` patterns match module paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Python `re.search`: the pattern may match anywhere in the path (DeepSpeed).
    #[default]
    Search,
    /// The pattern must match the whole path.
    Full,
}

/// `ember`: Ember-wide options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmberOptions {
    /// `ember` (default) or `deepspeed` quantizer numerics.
    #[serde(default)]
    pub numerics: Numerics,
    /// `search` (default, DeepSpeed) or `full` pattern matching.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
}

fn fifty() -> u64 {
    50
}
fn sixty_four() -> u32 {
    64
}
fn one_u32() -> u32 {
    1
}
fn adam_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn adam_eps() -> f64 {
    1e-8
}
fn yes() -> bool {
    true
}
fn one_f64() -> f64 {
    1.0
}
fn hundred() -> u64 {
    100
}
fn lkd_lr() -> f64 {
    5e-6
}
fn original() -> String {
    "original".to_string()
}
fn builtin_calibration() -> String {
    "builtin:lee_background".to_string()
}
fn builtin_training() -> String {
    "builtin:lee_background".to_string()
}
fn calibration_samples() -> u32 {
    128
}
fn sixteen() -> u32 {
    16
}
fn max_seq() -> u32 {
    128
}
fn default_percentile() -> f64 {
    99.99
}
fn train_lr() -> f64 {
    5e-5
}
