//! Ember's BERT as a [`CompressibleModel`]: every site the inventory lists is reachable by its HF
//! path, so the composer can attach techniques to its slots.

use ember_config::Inventory;
use ember_core::CompressibleModel;
use ember_core::slots::{EmbeddingSlots, LinearSlots};

use crate::Bert;
use crate::blocks::Linear;

impl Bert {
    /// The Linear at an HF path such as `encoder.layer.3.attention.self.query`.
    pub fn linear_mut(&mut self, path: &str) -> Option<&mut Linear> {
        let rest = path.strip_prefix("encoder.layer.")?;
        let (index, site) = rest.split_once('.')?;
        let layer = self.encoder.layer.get_mut(index.parse::<usize>().ok()?)?;
        Some(match site {
            "attention.self.query" => &mut layer.attention.self_attn.query,
            "attention.self.key" => &mut layer.attention.self_attn.key,
            "attention.self.value" => &mut layer.attention.self_attn.value,
            "attention.output.dense" => &mut layer.attention.output.dense,
            "intermediate.dense" => &mut layer.intermediate.dense,
            "output.dense" => &mut layer.output.dense,
            _ => return None,
        })
    }

    /// Every Linear with its HF path, in model order.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out = Vec::new();
        for layer in &mut self.encoder.layer {
            out.push(&mut layer.attention.self_attn.query);
            out.push(&mut layer.attention.self_attn.key);
            out.push(&mut layer.attention.self_attn.value);
            out.push(&mut layer.attention.output.dense);
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
        let e = &mut self.embeddings;
        Some(match path {
            "embeddings.word_embeddings" => &mut e.word_embeddings.slots,
            "embeddings.position_embeddings" => &mut e.position_embeddings.slots,
            "embeddings.token_type_embeddings" => &mut e.token_type_embeddings.slots,
            _ => return None,
        })
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
        }
        assert!(bert.linear_slots("encoder.layer.9.output.dense").is_none());
    }
}
