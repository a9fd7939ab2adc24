//! Ember's config language: DeepSpeed Compression's `compression_training` block accepted
//! unchanged, Ember's own sections beside it, strict validation and the resolved plan.
//!
//! # Brief overview
//! - [`EmberConfig`]: the raw config types (serde + schemars), with DeepSpeed's code defaults.
//! - [`parse_config`] / [`load_config`]: text → validated config, or [`ConfigErrors`] listing every
//!   problem with its JSON pointer (unknown keys come with a did-you-mean).
//! - [`Inventory`]: a model's compressible sites (paths in HF naming, kinds, shapes) as plain data.
//! - [`Plan`] / [`resolve_plan`]: the config resolved against an inventory: per module, the
//!   techniques that apply, their effective params, schedule, bytes before/after, bits per weight
//!   and the kernel that will run it. `--dry-run` prints it.
//!
//! This crate depends on no tensor library: configs are checked and planned without loading
//! weights.
//!
//! ```
//! use ember_config::{Catalog, Inventory, parse_config, resolve_plan};
//! let text = r#"{"compression_training": {"weight_quantization": {
//!     "shared_parameters": {"enabled": true, "quantize_weight_in_forward": true},
//!     "different_groups": {"wq": {"params": {"start_bits": 8, "target_bits": 8}, "modules": ["intermediate"]}}}}}"#;
//! let parsed = parse_config(text, &Catalog::builtin_only()).unwrap();
//! let inventory = Inventory::bert("minilm-l6", 6, 384, 12, 1536, 30522, 512);
//! let plan = resolve_plan(&parsed.config, &inventory, &Catalog::builtin_only()).unwrap();
//! let ffn_up = plan.module("encoder.layer.0.intermediate.dense").unwrap();
//! // 1536×384 int8 codes and one f32 scale (quantize_groups defaults to 1).
//! assert_eq!(ffn_up.bits_per_weight(), 8.0 + 32.0 / (1536.0 * 384.0));
//! ```

pub mod bert_paths;
pub mod bounded;
pub mod custom;
pub mod engine;
pub mod error;
pub mod hf_config;
pub mod inventory;
mod parse;
pub mod plan;
pub mod schema;
pub mod suggest;
pub mod techniques;
pub mod types;
mod validate;

pub use bounded::{MAX_TEXT_BYTES, read_text_bounded};
pub use custom::{Catalog, CustomTechniqueSpec};
pub use error::{ConfigError, ConfigErrors};
pub use hf_config::HfBertConfig;
pub use inventory::{Inventory, Site, SiteKind, SiteRole, bert_from_hf_config, known_model, known_model_names};
pub use parse::{MAX_CONFIG_BYTES, ParsedConfig, load_config, parse_config, parse_config_with_steps};
pub use plan::{Plan, resolve_plan};
pub use schema::{config_schema, config_schema_text};
pub use techniques::{
    TechniqueFacts, builtin_technique, layerwise_distillation, scheduled_reasons, training_reasons, trains,
};
pub use types::EmberConfig;
pub use validate::BUILTIN_TEXTS;
