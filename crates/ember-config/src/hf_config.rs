//! An HF BERT `config.json`, parsed and validated once: the planner turns it into an inventory
//! (no weights needed), the loader into its model config. Every dimension is bounded like the
//! artifact reader's, so no size computed from them overflows or asks for an absurd allocation,
//! and the file itself is read with a size limit.

use serde::Deserialize;

use crate::inventory::Inventory;

/// The largest `config.json` read (real ones are about 600 bytes).
pub const MAX_HF_CONFIG_BYTES: u64 = 1 << 20;
/// The largest dimension accepted (vocabulary, width, FFN width, positions): far above real
/// encoders (vocabularies of 250k, widths of 16k), small enough that products of two cannot
/// overflow.
pub const MAX_DIM: usize = 1 << 24;
/// The most layers accepted (real encoders have 2 to 48).
pub const MAX_LAYERS: usize = 1024;

/// The fields of an HF `config.json` Ember reads (`BertConfig` in `transformers`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HfBertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl HfBertConfig {
    /// Parses and validates the text of a `config.json`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<HfBertConfig, String> {
        let hf: Raw = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(kind) = hf.model_type.as_deref().filter(|k| *k != "bert") {
            return Err(format!("model_type `{kind}` is not supported (only `bert`)"));
        }
        if hf.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act `{}` is not supported (only `gelu`, the exact erf GELU)",
                hf.hidden_act
            ));
        }
        if let Some(kind) = hf.position_embedding_type.as_deref().filter(|k| *k != "absolute") {
            return Err(format!(
                "position_embedding_type `{kind}` is not supported (only `absolute`)"
            ));
        }
        for (key, value, max) in [
            ("vocab_size", hf.vocab_size, MAX_DIM),
            ("hidden_size", hf.hidden_size, MAX_DIM),
            ("num_hidden_layers", hf.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", hf.num_attention_heads, MAX_DIM),
            ("intermediate_size", hf.intermediate_size, MAX_DIM),
            ("max_position_embeddings", hf.max_position_embeddings, MAX_DIM),
            ("type_vocab_size", hf.type_vocab_size, MAX_DIM),
        ] {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
            if value > max {
                return Err(format!("{key} {value} is over the limit of {max}"));
            }
        }
        if !hf.hidden_size.is_multiple_of(hf.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                hf.hidden_size, hf.num_attention_heads
            ));
        }
        if !(hf.layer_norm_eps.is_finite() && hf.layer_norm_eps > 0.0) {
            return Err(format!(
                "layer_norm_eps {} must be a positive number",
                hf.layer_norm_eps
            ));
        }
        Ok(HfBertConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            intermediate_size: hf.intermediate_size,
            max_position_embeddings: hf.max_position_embeddings,
            type_vocab_size: hf.type_vocab_size,
            layer_norm_eps: hf.layer_norm_eps,
        })
    }

    /// The compressible sites of the model, named `model`.
    pub fn inventory(&self, model: &str) -> Inventory {
        let layer = (
            self.num_attention_heads,
            self.hidden_size / self.num_attention_heads,
            self.intermediate_size,
        );
        Inventory::bert_layers(
            model,
            self.vocab_size,
            self.hidden_size,
            self.max_position_embeddings,
            self.type_vocab_size,
            &vec![layer; self.num_hidden_layers],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
        "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
        "max_position_embeddings": 512, "hidden_act": "gelu"}"#;

    #[test]
    fn minilm_parses_with_hf_defaults() {
        let c = HfBertConfig::parse(MINILM).unwrap();
        assert_eq!((c.type_vocab_size, c.layer_norm_eps), (2, 1e-12));
        assert_eq!(c.inventory("m").sites, crate::known_model("minilm-l6").unwrap().sites);
    }

    #[test]
    fn dimensions_are_positive_and_bounded() {
        for (key, value, phrase) in [
            ("num_hidden_layers", 1_000_000_000u64, "over the limit of 1024"),
            ("hidden_size", 1 << 62, "over the limit"),
            ("hidden_size", 0, "must be positive"),
            ("num_attention_heads", 0, "must be positive"),
            ("num_attention_heads", 7, "not a multiple"),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(MINILM).unwrap();
            v[key] = value.into();
            let e = HfBertConfig::parse(&v.to_string()).unwrap_err();
            assert!(e.contains(phrase), "{key} = {value}: {e}");
        }
    }
}
