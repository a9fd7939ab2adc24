//! The compressed model's module names: HF BERT module paths, which are the artifact's tensor
//! names (docs/format.md §2). This is the table `ember_config::bert_paths` states for the
//! planner and the burn model; the runtime depends on neither, and `ember-models` tests that the
//! two agree.

/// The embedding tables, in [`crate::model::Embeddings`] field order (word, position, token type).
pub const EMBEDDING_TABLES: [&str; 3] = [
    "embeddings.word_embeddings",
    "embeddings.position_embeddings",
    "embeddings.token_type_embeddings",
];
/// The LayerNorm after the embeddings.
pub const EMBEDDINGS_NORM: &str = "embeddings.LayerNorm";
/// A layer's six Linears below `encoder.layer.<i>.`, in [`crate::model::Layer::linears`] order.
pub const LAYER_LINEARS: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];
/// A layer's LayerNorms below `encoder.layer.<i>.`: after attention, after the feed-forward block.
pub const LAYER_NORMS: [&str; 2] = ["attention.output.LayerNorm", "output.LayerNorm"];

/// The weight shapes `(rows, cols)` = `[out, in]` of a layer's six Linears, in [`LAYER_LINEARS`]
/// order, for width `d_model`, attention width `attn` (heads × head width) and FFN width `d_ff`.
pub fn layer_linear_shapes(d_model: usize, attn: usize, d_ff: usize) -> [(usize, usize); 6] {
    let d = d_model;
    [(attn, d), (attn, d), (attn, d), (d, attn), (d_ff, d), (d, d_ff)]
}

/// `encoder.layer.<i>.<suffix>`.
pub fn in_layer(i: usize, suffix: &str) -> String {
    format!("encoder.layer.{i}.{suffix}")
}
