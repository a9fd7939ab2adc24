//! From text to a validated [`EmberConfig`]: JSON syntax (with line and column, duplicate keys
//! rejected), then the schema walk (every unknown key, wrong type, bad choice), then the semantic
//! rules of `validate.rs`. All problems of a stage are reported together.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::custom::Catalog;
use crate::error::{ConfigError, ConfigErrors};
use crate::types::{Distillation, DistillationLoss, EmberConfig, Training};

/// DeepSpeed engine keys a user may paste along with `compression_training`.
/// DeepSpeed keys Ember does not accept, each with its reason: they would change the result in
/// a way Ember cannot reproduce (the engine keys it can honour or safely ignore are config keys,
/// `types/deepspeed.rs`).
const DEEPSPEED_REFUSED_KEYS: &[(&str, &str)] = &[
    (
        "quantize_training",
        "DeepSpeed's legacy MoQ block (silently ignored by DeepSpeed since 0.7); write it as `compression_training.weight_quantization` with `quantize_weight_in_forward: false`",
    ),
    (
        "progressive_layer_drop",
        "DeepSpeed's progressive layer dropping changes the model during training; Ember does not build it",
    ),
    (
        "curriculum_learning",
        "DeepSpeed's curriculum changes the training data by step; Ember does not build it",
    ),
    (
        "data_efficiency",
        "DeepSpeed's data sampling and routing change the training data; Ember does not build them",
    ),
    (
        "elasticity",
        "DeepSpeed's elastic training chooses the batch sizes itself; give train_batch_size instead",
    ),
];

/// A parsed and validated config, plus warnings that do not stop work.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    /// The config, with DeepSpeed's engine keys mapped onto its `training` section.
    pub config: EmberConfig,
    pub warnings: Vec<String>,
    /// What became of DeepSpeed's engine keys (`key: …`), for `ember plan` and `ember check`.
    pub notes: Vec<String>,
}

/// Parses and validates a config text. `catalog` lists the custom techniques registered with the
/// composer (use [`Catalog::builtin_only`] when there are none).
pub fn parse_config(text: &str, catalog: &Catalog) -> Result<ParsedConfig, ConfigErrors> {
    parse_config_with_steps(text, catalog, None)
}

/// [`parse_config`], with `steps` as the run's length when the config gives none itself
/// (`compose --steps N`: after `training.steps` and the DeepSpeed scheduler's `total_num_steps`).
pub fn parse_config_with_steps(
    text: &str,
    catalog: &Catalog,
    steps: Option<u64>,
) -> Result<ParsedConfig, ConfigErrors> {
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::invalid(
            "",
            format!(
                "the config is {} bytes; Ember reads configs of at most {MAX_CONFIG_BYTES} bytes (it is copied into every artifact's header)",
                text.len()
            ),
        )
        .into());
    }
    let value = parse_json(text)?;
    if let Some(e) = too_many_patterns(&value) {
        return Err(e.into());
    }
    if !value.is_object() {
        return Err(ConfigError::WrongType {
            pointer: String::new(),
            expected: "an object".into(),
            found: crate::schema::describe_value(&value),
        }
        .into());
    }
    let mut errors = Vec::new();
    crate::schema::check(&crate::schema::config_schema(), &value, catalog, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors.into_iter().map(explain_engine_keys).collect()));
    }
    let mut config: EmberConfig =
        serde_json::from_value(value.clone()).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    let mut notes = crate::engine::apply_engine_keys(&mut config, &value, steps, &mut errors).notes;
    if config.training.is_none()
        && let Some(n) = steps
        && !crate::techniques::training_reasons(&config).is_empty()
    {
        config.training = Some(Training::with_steps(n));
        notes.push(format!("the run is {n} steps (compose --steps)"));
    }
    default_losses(&mut config, &mut notes);
    let mut warnings = Vec::new();
    crate::validate::validate(&config, catalog, &mut errors, &mut warnings);
    if errors.is_empty() {
        Ok(ParsedConfig {
            config,
            warnings,
            notes,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The largest config file Ember reads (recipes are a few KB; the whole config is copied into the
/// artifact's header, which must stay small).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The most module patterns (`modules` and `related_modules` entries) a config may hold: far
/// above any recipe (BERT-large has 144 Linear modules), low enough that planning stays fast.
pub const MAX_MODULE_PATTERNS: usize = 10_000;

/// An error when the config holds more than [`MAX_MODULE_PATTERNS`] module patterns.
fn too_many_patterns(value: &serde_json::Value) -> Option<ConfigError> {
    let techniques = value.get("compression_training")?.as_object()?;
    let mut total = 0usize;
    for (key, t) in techniques {
        let Some(groups) = t.get("different_groups").and_then(|g| g.as_object()) else {
            continue;
        };
        for g in groups.values() {
            for list in ["modules", "related_modules"] {
                total += g.get(list).and_then(|m| m.as_array()).map_or(0, Vec::len);
            }
        }
        if total > MAX_MODULE_PATTERNS {
            return Some(ConfigError::invalid(
                format!("/compression_training/{key}/different_groups"),
                format!(
                    "more than {MAX_MODULE_PATTERNS} module patterns in the config; use regular expressions that match several modules (`layer\\.\\d+\\.attention`) instead of listing each"
                ),
            ));
        }
    }
    None
}

/// A training run without loss terms (a pasted DeepSpeed file trains on its script's task loss,
/// which a sentence encoder without labels does not have) distils from the original model:
/// sentence-embedding cosine plus every layer's hidden states, stated in the config and noted.
fn default_losses(config: &mut EmberConfig, notes: &mut Vec<String>) {
    if config.training.is_none() || config.distillation.as_ref().is_some_and(|d| !d.losses.is_empty()) {
        return;
    }
    let losses = serde_json::json!([{ "kind": "embedding_cosine" }, { "kind": "hidden_mse" }]);
    let Ok(losses) = serde_json::from_value::<Vec<DistillationLoss>>(losses) else {
        return;
    };
    match &mut config.distillation {
        Some(d) => d.losses = losses,
        None => {
            if let Ok(d) = serde_json::from_value::<Distillation>(serde_json::json!({})) {
                config.distillation = Some(Distillation { losses, ..d });
            }
        }
    }
    notes.push(
        "distillation.losses: none given, so the student distils from the original model (embedding_cosine + hidden_mse); a task loss needs labels a sentence encoder does not have"
            .into(),
    );
}

/// Reads (at most [`MAX_CONFIG_BYTES`]) and parses a config file.
pub fn load_config(path: &std::path::Path, catalog: &Catalog) -> Result<ParsedConfig, ConfigErrors> {
    let text = crate::read_text_bounded(path, MAX_CONFIG_BYTES)
        .map_err(|e| ConfigError::invalid("", format!("cannot read config file {}: {e}", path.display())))?;
    parse_config(&text, catalog)
}

fn explain_engine_keys(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::UnknownKey {
            ref pointer, ref key, ..
        } if pointer.is_empty() && DEEPSPEED_REFUSED_KEYS.iter().any(|(k, _)| k == key) => {
            let remedy = DEEPSPEED_REFUSED_KEYS
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, why)| why);
            ConfigError::invalid("", format!("unknown key `{key}`: {remedy}"))
        }
        other => other,
    }
}

/// Parses JSON into a value, rejecting duplicate object keys (DeepSpeed rejects them too).
fn parse_json(text: &str) -> Result<Value, ConfigErrors> {
    if text.starts_with('\u{feff}') {
        return Err(ConfigError::Syntax {
            line: 1,
            column: 1,
            message: "the file starts with a byte-order mark (U+FEFF); save it as UTF-8 without BOM".into(),
        }
        .into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| {
            let mut message = strip_position(&e.to_string());
            // JSON has no comments; say so instead of "expected value".
            let at = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
            let rest = at.get(e.column().saturating_sub(1)..).unwrap_or("");
            if rest.starts_with("//") || rest.starts_with("/*") || at.trim_start().starts_with("//") {
                message =
                    "JSON has no comments; remove the comment (a recipe's `description` key can hold notes)".into();
            }
            ConfigError::Syntax {
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
    Ok(v)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
