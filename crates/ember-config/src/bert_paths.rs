//! BERT's module paths in HF naming: the one table that the inventory (the planner's sites),
//! Ember's BERT (its compressible sites and stages), the loader (the checkpoint's tensors), clean
//! and the burn engine derive their paths from.

use crate::inventory::SiteRole;

/// The embeddings block.
pub const EMBEDDINGS: &str = "embeddings";
/// The embedding tables, in the order the model adds them.
pub const EMBEDDING_TABLES: [(SiteRole, &str); 3] = [
    (SiteRole::WordEmbeddings, "embeddings.word_embeddings"),
    (SiteRole::PositionEmbeddings, "embeddings.position_embeddings"),
    (SiteRole::TokenTypeEmbeddings, "embeddings.token_type_embeddings"),
];
/// The LayerNorm after the embeddings.
pub const EMBEDDINGS_NORM: &str = "embeddings.LayerNorm";
/// The layer stack: layer `i` is `encoder.layer.<i>`.
pub const LAYER_PREFIX: &str = "encoder.layer";
/// The Linears of every encoder layer (path below the layer), in forward order.
pub const LAYER_LINEARS: [(SiteRole, &str); 6] = [
    (SiteRole::Query, "attention.self.query"),
    (SiteRole::Key, "attention.self.key"),
    (SiteRole::Value, "attention.self.value"),
    (SiteRole::AttentionOutput, "attention.output.dense"),
    (SiteRole::FfnUp, "intermediate.dense"),
    (SiteRole::FfnDown, "output.dense"),
];
/// The LayerNorm after the attention block (path below the layer).
pub const ATTENTION_NORM: &str = "attention.output.LayerNorm";
/// The LayerNorm after the feed-forward block (path below the layer).
pub const OUTPUT_NORM: &str = "output.LayerNorm";

/// `encoder.layer.<i>`.
pub fn layer(i: usize) -> String {
    format!("{LAYER_PREFIX}.{i}")
}

/// `encoder.layer.<i>.<suffix>`.
pub fn in_layer(i: usize, suffix: &str) -> String {
    format!("{LAYER_PREFIX}.{i}.{suffix}")
}

/// The path of layer `i`'s Linear with `role`.
pub fn layer_linear(i: usize, role: SiteRole) -> Option<String> {
    LAYER_LINEARS
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, s)| in_layer(i, s))
}

/// The layer index and role of a layer Linear's path (`encoder.layer.3.attention.self.query` →
/// `(3, Query)`).
pub fn parse_layer_linear(path: &str) -> Option<(usize, SiteRole)> {
    let rest = path.strip_prefix(LAYER_PREFIX)?.strip_prefix('.')?;
    let (index, suffix) = rest.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    let role = LAYER_LINEARS.iter().find(|(_, s)| *s == suffix)?.0;
    Some((index.parse().ok()?, role))
}

/// The role of an embedding table's path.
pub fn parse_embedding(path: &str) -> Option<SiteRole> {
    EMBEDDING_TABLES.iter().find(|(_, p)| *p == path).map(|(r, _)| *r)
}

/// The weight shape `[out, in]` of a layer Linear with `role`, for a layer of width `d_model`,
/// attention width `inner` (heads × head width) and FFN width `d_ff`.
pub fn linear_shape(role: SiteRole, d_model: usize, inner: usize, d_ff: usize) -> Option<[usize; 2]> {
    Some(match role {
        SiteRole::Query | SiteRole::Key | SiteRole::Value => [inner, d_model],
        SiteRole::AttentionOutput => [d_model, inner],
        SiteRole::FfnUp => [d_ff, d_model],
        SiteRole::FfnDown => [d_model, d_ff],
        _ => return None,
    })
}

/// Whether a Linear with `role` belongs to the attention heads (its shape follows the head count).
pub fn is_attention(role: SiteRole) -> bool {
    matches!(
        role,
        SiteRole::Query | SiteRole::Key | SiteRole::Value | SiteRole::AttentionOutput
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_back_to_their_layer_and_role() {
        for i in [0, 3, 11] {
            for (role, _) in LAYER_LINEARS {
                let path = layer_linear(i, role).unwrap();
                assert_eq!(parse_layer_linear(&path), Some((i, role)), "{path}");
                assert!(path.starts_with(&layer(i)));
            }
        }
        for bad in [
            "encoder.layer.x.output.dense",
            "encoder.layer.01.output.dense",
            "encoder.layer.3.output",
            "encoder.layer.3.output.LayerNorm",
            "encoder.layers.3.output.dense",
            "encoder.layer..output.dense",
        ] {
            assert_eq!(parse_layer_linear(bad), None, "{bad}");
        }
        for (role, path) in EMBEDDING_TABLES {
            assert_eq!(parse_embedding(path), Some(role));
            assert!(path.starts_with(EMBEDDINGS));
        }
        assert_eq!(linear_shape(SiteRole::FfnDown, 384, 256, 1536), Some([384, 1536]));
        assert_eq!(linear_shape(SiteRole::Value, 384, 256, 1536), Some([256, 384]));
        assert_eq!(linear_shape(SiteRole::WordEmbeddings, 384, 256, 1536), None);
    }
}
