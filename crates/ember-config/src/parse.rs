//! From text to a validated [`EmberConfig`]: JSON syntax (with line and column, duplicate keys
//! rejected), then the schema walk (every unknown key, wrong type, bad choice), then the semantic
//! rules of `validate.rs`. All problems of a stage are reported together.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::custom::Catalog;
use crate::error::{ConfigError, ConfigErrors};
use crate::types::EmberConfig;

/// DeepSpeed engine keys a user may paste along with `compression_training`.
const DEEPSPEED_ENGINE_KEYS: &[&str] = &[
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "steps_per_print",
    "wall_clock_breakdown",
    "optimizer",
    "scheduler",
    "fp16",
    "bf16",
    "amp",
    "zero_optimization",
    "prescale_gradients",
    "quantize_training",
];

/// A parsed and validated config, plus warnings that do not stop work.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    pub config: EmberConfig,
    pub warnings: Vec<String>,
}

/// Parses and validates a config text. `catalog` lists the custom techniques registered with the
/// composer (use [`Catalog::builtin_only`] when there are none).
pub fn parse_config(text: &str, catalog: &Catalog) -> Result<ParsedConfig, ConfigErrors> {
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
    let config: EmberConfig = serde_json::from_value(value).map_err(|e| ConfigError::invalid("", e.to_string()))?;
    let mut warnings = Vec::new();
    crate::validate::validate(&config, catalog, &mut errors, &mut warnings);
    if errors.is_empty() {
        Ok(ParsedConfig { config, warnings })
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
        } if pointer.is_empty() && DEEPSPEED_ENGINE_KEYS.contains(&key.as_str()) => {
            let remedy = if key == "quantize_training" {
                "DeepSpeed's legacy MoQ block (silently ignored by DeepSpeed since 0.7); write it as `compression_training.weight_quantization` with `quantize_weight_in_forward: false`"
            } else {
                "a DeepSpeed engine setting; Ember reads only `compression_training` from a DeepSpeed config and takes its training loop from the `training` section"
            };
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
