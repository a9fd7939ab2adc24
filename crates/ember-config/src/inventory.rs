//! The module inventory: what a model offers to compress, as plain data (no tensors).
//!
//! A model lists its compressible *sites* by dotted path (HF naming, e.g.
//! `encoder.layer.3.attention.self.query`), kind and shape. The plan is resolved against this list,
//! so configs can be checked against a model without loading a single weight.

use serde::{Deserialize, Serialize};

use crate::bert_paths;

/// What kind of compressible thing a site is; techniques declare which kinds they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// A dense projection `y = x·Wᵀ + b`, weight shape `[out, in]`.
    Linear,
    /// A lookup table, weight shape `[vocab, dim]`.
    Embedding,
    /// A 2-D convolution, weight shape `[out, in, kh, kw]`.
    Conv2d,
}

impl SiteKind {
    /// The name users see in messages and plans.
    pub fn name(self) -> &'static str {
        match self {
            SiteKind::Linear => "Linear",
            SiteKind::Embedding => "Embedding",
            SiteKind::Conv2d => "Conv2d",
        }
    }
}

impl std::fmt::Display for SiteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The role a linear site plays inside a transformer block. Structural pruning uses it to find
/// the modules that must shrink together (heads: Q/K/V rows + O columns; FFN: up rows + down columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteRole {
    Query,
    Key,
    Value,
    AttentionOutput,
    FfnUp,
    FfnDown,
    WordEmbeddings,
    PositionEmbeddings,
    TokenTypeEmbeddings,
    Other,
}

/// One compressible site of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Dotted path in HF naming, e.g. `encoder.layer.3.attention.self.query`.
    pub path: String,
    pub kind: SiteKind,
    pub role: SiteRole,
    /// Weight shape: `[out, in]` for Linear, `[vocab, dim]` for Embedding.
    pub shape: Vec<usize>,
    /// Whether the site has a bias vector (counted in bytes, never quantized).
    pub has_bias: bool,
    /// The structural block the site belongs to (e.g. `encoder.layer.3`); related modules are
    /// resolved inside the same block, never by discovery order.
    pub block: Option<String>,
    /// Attention heads of the block (for Q/K/V/O sites).
    pub num_heads: Option<usize>,
}

impl Site {
    /// Number of weight elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Everything a model offers to compress, plus the facts layer reduction needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// A short model name for messages (`bert-base`, `minilm-l6`).
    pub model: String,
    pub sites: Vec<Site>,
    /// Number of encoder layers (`encoder.layer.N`).
    pub num_layers: usize,
    /// Prefix of the layer stack in HF naming (`encoder.layer`).
    pub layer_prefix: String,
    /// Bytes of parameters that are not sites (LayerNorms, biases are counted on their sites).
    pub other_param_bytes: u64,
    /// The part of `other_param_bytes` that belongs to each encoder layer (its LayerNorms), which
    /// layer reduction removes with the layer.
    #[serde(default)]
    pub layer_other_param_bytes: u64,
}

impl Inventory {
    /// Looks a site up by its exact path.
    pub fn site(&self, path: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.path == path)
    }

    /// The inventory of a BERT encoder in HF naming, from its dimensions (all layers alike, two
    /// token types). The model crate builds the same list from a loaded model
    /// ([`Inventory::bert_layers`]); this constructor lets configs be planned without weights.
    pub fn bert(
        model: &str,
        num_layers: usize,
        hidden: usize,
        heads: usize,
        ffn: usize,
        vocab: usize,
        max_positions: usize,
    ) -> Inventory {
        let head_dim = hidden.checked_div(heads).unwrap_or(0);
        Inventory::bert_layers(
            model,
            vocab,
            hidden,
            max_positions,
            2,
            &vec![(heads, head_dim, ffn); num_layers],
        )
    }

    /// The inventory of a BERT encoder whose layers may differ (pruned heads or FFN rows):
    /// `layers[i]` is layer `i`'s `(n_heads, head_dim, d_ff)`. Paths come from [`bert_paths`].
    pub fn bert_layers(
        model: &str,
        vocab: usize,
        d_model: usize,
        max_positions: usize,
        type_vocab: usize,
        layers: &[(usize, usize, usize)],
    ) -> Inventory {
        let rows = [vocab, max_positions, type_vocab];
        let mut sites: Vec<Site> = bert_paths::EMBEDDING_TABLES
            .iter()
            .zip(rows)
            .map(|(&(role, path), rows)| emb(path, role, rows, d_model))
            .collect();
        for (l, &(heads, head_dim, d_ff)) in layers.iter().enumerate() {
            let block = bert_paths::layer(l);
            for (role, suffix) in bert_paths::LAYER_LINEARS {
                let shape = bert_paths::linear_shape(role, d_model, heads * head_dim, d_ff).unwrap_or_default();
                sites.push(Site {
                    path: bert_paths::in_layer(l, suffix),
                    kind: SiteKind::Linear,
                    role,
                    shape: shape.to_vec(),
                    has_bias: true,
                    block: Some(block.clone()),
                    num_heads: bert_paths::is_attention(role).then_some(heads),
                });
            }
        }
        // LayerNorms: embeddings + two per layer, gamma and beta, f32.
        let layer_norms = 1 + 2 * layers.len();
        Inventory {
            model: model.to_string(),
            sites,
            num_layers: layers.len(),
            layer_prefix: bert_paths::LAYER_PREFIX.to_string(),
            other_param_bytes: (layer_norms * 2 * d_model * 4) as u64,
            // Two LayerNorms (gamma + beta) per encoder layer; layer reduction drops them.
            layer_other_param_bytes: (2 * 2 * d_model * 4) as u64,
        }
    }
}

/// Dimensions of a BERT encoder read from an HF `config.json` (no weights needed).
pub fn bert_from_hf_config(model: &str, config_json: &str) -> Result<Inventory, String> {
    Ok(crate::HfBertConfig::parse(config_json)?.inventory(model))
}

/// Inventories of models known by name, for planning without weights.
pub fn known_model(name: &str) -> Option<Inventory> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.0 == name)
        .map(|&(name, layers, d, heads, ff, vocab, positions)| {
            Inventory::bert(name, layers, d, heads, ff, vocab, positions)
        })
}

/// The names [`known_model`] answers, for messages.
pub fn known_model_names() -> Vec<&'static str> {
    KNOWN_MODELS.iter().map(|m| m.0).collect()
}

/// BERT-style models Ember plans by name without their files: (name, layers, hidden size,
/// heads, FFN width, vocabulary, positions). The one list; what can be fetched is a subset
/// (`ember_models::assets::KNOWN_MODELS`, tested to be one).
const KNOWN_MODELS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("minilm-l6", 6, 384, 12, 1536, 30522, 512),
    ("minilm-l3", 3, 384, 12, 1536, 30522, 512),
    ("bert-base", 12, 768, 12, 3072, 30522, 512),
];

fn emb(path: &str, role: SiteRole, rows: usize, dim: usize) -> Site {
    Site {
        path: path.to_string(),
        kind: SiteKind::Embedding,
        role,
        shape: vec![rows, dim],
        has_bias: false,
        block: Some("embeddings".to_string()),
        num_heads: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_base_has_the_hf_paths_and_parameter_count() {
        let inv = Inventory::bert("bert-base", 12, 768, 12, 3072, 30522, 512);
        assert_eq!(inv.sites.len(), 3 + 12 * 6);
        let q = inv.site("encoder.layer.3.attention.self.query").unwrap();
        assert_eq!(q.shape, vec![768, 768]);
        assert_eq!(q.block.as_deref(), Some("encoder.layer.3"));
        assert_eq!(
            inv.site("encoder.layer.11.output.dense").unwrap().shape,
            vec![768, 3072]
        );
        // BERT-base encoder + embeddings without pooler: 108,891,648 parameters (HF count 109,482,240
        // includes the 590,592 pooler parameters).
        let weights: usize = inv
            .sites
            .iter()
            .map(|s| s.numel() + if s.has_bias { s.shape[0] } else { 0 })
            .sum();
        let norms = (inv.other_param_bytes / 4) as usize;
        assert_eq!(weights + norms, 109_482_240 - 590_592);
    }
}
