//! The config side of user-registered techniques: a registered technique claims a key inside
//! `compression_training` and supplies the JSON Schemas of its shared and group params. The
//! composer's registry builds a [`Catalog`] from its techniques; config validation consults it.

use schemars::JsonSchema;
use serde_json::Value;

use crate::inventory::SiteKind;

/// What config validation needs to know about a technique registered by a user crate.
#[derive(Debug, Clone)]
pub struct CustomTechniqueSpec {
    /// The key under `compression_training` (e.g. `low_rank`).
    pub key: String,
    /// Site kinds the technique can attach to.
    pub accepts: Vec<SiteKind>,
    /// JSON Schema of `shared_parameters` (must allow `enabled`; `schedule_offset` is optional).
    pub shared_schema: Value,
    /// JSON Schema of each group's `params`.
    pub params_schema: Value,
}

impl CustomTechniqueSpec {
    /// A spec whose schemas are generated from the technique's own serde types.
    pub fn new<S: JsonSchema, P: JsonSchema>(key: &str, accepts: &[SiteKind]) -> Self {
        CustomTechniqueSpec {
            key: key.to_string(),
            accepts: accepts.to_vec(),
            shared_schema: serde_json::to_value(schemars::schema_for!(S)).expect("schema serializes"),
            params_schema: serde_json::to_value(schemars::schema_for!(P)).expect("schema serializes"),
        }
    }
}

/// The custom techniques known to a validation run.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    specs: Vec<CustomTechniqueSpec>,
}

impl Catalog {
    /// A catalog with no custom techniques (DeepSpeed's seven only).
    pub fn builtin_only() -> Self {
        Catalog::default()
    }

    /// Adds a spec; a later spec with the same key replaces the earlier one.
    pub fn add(&mut self, spec: CustomTechniqueSpec) {
        self.specs.retain(|s| s.key != spec.key);
        self.specs.push(spec);
    }

    pub fn get(&self, key: &str) -> Option<&CustomTechniqueSpec> {
        self.specs.iter().find(|s| s.key == key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.key.as_str())
    }
}
