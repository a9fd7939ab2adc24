//! Ember's BERT as a [`CompressibleModel`]: every site the inventory lists is reachable by its HF
//! path (from [`bert_paths`]), so the composer can attach techniques to its slots.

use burn::tensor::Tensor;
use ember_config::{Inventory, bert_paths};
use ember_core::CompressibleModel;
use ember_core::slots::{EmbeddingSlots, LinearSlots};

use crate::Bert;
use crate::blocks::{Embedding, Linear};

impl Bert {
    /// The Linear at an HF path such as `encoder.layer.3.attention.self.query`.
    pub fn linear(&self, path: &str) -> Option<&Linear> {
        let (index, role) = bert_paths::parse_layer_linear(path)?;
        self.encoder.layer.get(index)?.linear(role)
    }

    /// [`Bert::linear`], mutable.
    pub fn linear_mut(&mut self, path: &str) -> Option<&mut Linear> {
        let (index, role) = bert_paths::parse_layer_linear(path)?;
        self.encoder.layer.get_mut(index)?.linear_mut(role)
    }

    /// The embedding table at an HF path such as `embeddings.word_embeddings`.
    pub fn embedding(&self, path: &str) -> Option<&Embedding> {
        let e = &self.embeddings;
        Some(match bert_paths::parse_embedding(path)? {
            ember_config::SiteRole::WordEmbeddings => &e.word_embeddings,
            ember_config::SiteRole::PositionEmbeddings => &e.position_embeddings,
            ember_config::SiteRole::TokenTypeEmbeddings => &e.token_type_embeddings,
            _ => return None,
        })
    }

    /// [`Bert::embedding`], mutable.
    pub fn embedding_mut(&mut self, path: &str) -> Option<&mut Embedding> {
        let e = &mut self.embeddings;
        Some(match bert_paths::parse_embedding(path)? {
            ember_config::SiteRole::WordEmbeddings => &mut e.word_embeddings,
            ember_config::SiteRole::PositionEmbeddings => &mut e.position_embeddings,
            ember_config::SiteRole::TokenTypeEmbeddings => &mut e.token_type_embeddings,
            _ => return None,
        })
    }

    /// Every Linear, in model order.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out = Vec::new();
        for layer in &mut self.encoder.layer {
            let attn = &mut layer.attention;
            out.push(&mut attn.self_attn.query);
            out.push(&mut attn.self_attn.key);
            out.push(&mut attn.self_attn.value);
            out.push(&mut attn.output.dense);
            out.push(&mut layer.intermediate.dense);
            out.push(&mut layer.output.dense);
        }
        out
    }
}

impl CompressibleModel for Bert {
    fn inventory(&self) -> Inventory {
        Bert::inventory(self)
    }

    fn linear_slots(&mut self, path: &str) -> Option<&mut LinearSlots> {
        self.linear_mut(path).map(|l| &mut l.slots)
    }

    fn embedding_slots(&mut self, path: &str) -> Option<&mut EmbeddingSlots> {
        self.embedding_mut(path).map(|t| &mut t.slots)
    }

    fn site_weight(&self, path: &str) -> Option<Tensor<2>> {
        match self.linear(path) {
            Some(l) => Some(l.weight.val()),
            None => self.embedding(path).map(|t| t.weight.val()),
        }
    }

    /// Query, key and value read the same input: one Gram matrix serves the three.
    fn link_slots(&mut self) {
        for layer in &mut self.encoder.layer {
            let attn = &mut layer.attention.self_attn;
            let mut owner = None;
            for l in [&mut attn.query, &mut attn.key, &mut attn.value] {
                let Some(gram) = &l.slots.gram else { continue };
                match &owner {
                    None => owner = Some(gram.clone()),
                    Some(o) => l.slots.gram = Some(ember_core::observer::GramObserver::sharing(o)),
                }
            }
        }
    }

    fn solve_weights(&mut self) {
        for l in self.linears_mut() {
            let w = l.weight.val();
            l.slots.solve(w);
        }
    }

    fn precompute_weights(&mut self) {
        for l in self.linears_mut() {
            let w = l.weight.val();
            l.slots.precompute(w);
        }
        let e = &mut self.embeddings;
        for t in [
            &mut e.word_embeddings,
            &mut e.position_embeddings,
            &mut e.token_type_embeddings,
        ] {
            let w = t.weight.val();
            t.slots.precompute(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::BertConfig;

    #[test]
    fn every_inventory_site_is_reachable() {
        let device = Device::flex();
        let mut bert = BertConfig::uniform("tiny", 30, 16, 2, 2, 32, 16).init_random(&device);
        let inventory = CompressibleModel::inventory(&bert);
        for site in &inventory.sites {
            let found = match site.kind {
                ember_config::SiteKind::Linear => bert.linear_slots(&site.path).is_some(),
                _ => bert.embedding_slots(&site.path).is_some(),
            };
            assert!(found, "{} is listed but not reachable", site.path);
            let w = bert.site_weight(&site.path).expect("its weight");
            assert_eq!(w.dims().to_vec(), site.shape, "{}", site.path);
        }
        assert!(bert.linear_slots("encoder.layer.9.output.dense").is_none());
    }

    /// The runtime cannot depend on `ember-config`: its copy of the names is checked here, in
    /// the crate that sees both (the burn engine relies on `Layer::linears` order being
    /// `LAYER_LINEARS` order).
    #[test]
    fn the_artifact_names_modules_as_the_model_does() {
        use ember_runtime::names;
        assert_eq!(names::EMBEDDING_TABLES, bert_paths::EMBEDDING_TABLES.map(|(_, p)| p));
        assert_eq!(names::EMBEDDINGS_NORM, bert_paths::EMBEDDINGS_NORM);
        assert_eq!(names::LAYER_LINEARS, bert_paths::LAYER_LINEARS.map(|(_, s)| s));
        assert_eq!(
            names::LAYER_NORMS,
            [bert_paths::ATTENTION_NORM, bert_paths::OUTPUT_NORM]
        );
        assert_eq!(
            names::in_layer(4, "output.dense"),
            bert_paths::in_layer(4, "output.dense")
        );
        let shapes = names::layer_linear_shapes(384, 256, 1536);
        for ((role, _), (rows, cols)) in bert_paths::LAYER_LINEARS.into_iter().zip(shapes) {
            assert_eq!(
                bert_paths::linear_shape(role, 384, 256, 1536),
                Some([rows, cols]),
                "{role:?}"
            );
        }
    }
}
