//! A BERT encoder built from Ember's blocks, read top to bottom: config, embeddings, self-attention,
//! attention output, feed-forward, layer, encoder stack, model, pooling.
//!
//! Ports HF `transformers/models/bert/modeling_bert.py` (`BertEmbeddings`, `BertSelfAttention`,
//! `BertSelfOutput`, `BertIntermediate`, `BertOutput`, `BertLayer`, `BertEncoder`) plus
//! sentence-transformers' mean pooling and `Normalize`. Field names follow the HF module paths, so a
//! module's path in burn is its path in the checkpoint (`encoder.layer.3.attention.self_attn.query`
//! ↔ `encoder.layer.3.attention.self.query`: `self` is a Rust keyword, the loader remaps it).
//!
//! The structure is what cleaning will produce, not only what HF ships: each layer carries its own
//! head count, head width and FFN width, and there may be any number of layers.
//!
//! Internal vocabulary: `d_model` (hidden size), `n_heads`, `head_dim`, `d_ff` (intermediate size).
//! HF's names are translated in the loader only.

use burn::module::Module;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor};
use ember_config::bert_paths;
use ember_config::inventory::{Inventory, SiteRole};

use crate::blocks::{Embedding, LayerNorm, Linear};

/// The dimensions of a BERT encoder, in Ember's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// A short name for messages and inventories (`minilm-l6`).
    pub name: String,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Hidden width (HF `hidden_size`).
    pub d_model: usize,
    /// Rows of the position-embedding table: the longest input the model accepts.
    pub max_positions: usize,
    /// Rows of the token-type table (BERT: 2).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (BERT: 1e-12).
    pub layer_norm_eps: f64,
    /// One entry per encoder layer; layers may differ (pruned heads or FFN rows).
    pub layers: Vec<LayerArch>,
}

/// The dimensions of one encoder layer: the artifact's [`LayerArch`], one type for both.
pub use ember_runtime::LayerArch;

impl BertConfig {
    /// A config whose layers all have the same shape (what HF checkpoints describe).
    pub fn uniform(
        name: &str,
        vocab_size: usize,
        d_model: usize,
        n_layers: usize,
        n_heads: usize,
        d_ff: usize,
        max_positions: usize,
    ) -> BertConfig {
        let head_dim = d_model.checked_div(n_heads).unwrap_or(0);
        BertConfig {
            name: name.to_string(),
            vocab_size,
            d_model,
            max_positions,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            layers: vec![
                LayerArch {
                    n_heads,
                    head_dim,
                    d_ff
                };
                n_layers
            ],
        }
    }

    /// Builds a model with random weights (BERT-like init ranges), for tests and as a shape check.
    pub fn init_random(&self, device: &Device) -> Bert {
        self.build(device, true)
    }

    /// Builds a model with all-zero weights (LayerNorms identity): the skeleton a checkpoint is
    /// loaded into. Its parameter shapes are what the loader checks the checkpoint against.
    pub fn init_zeros(&self, device: &Device) -> Bert {
        self.build(device, false)
    }

    fn build(&self, device: &Device, random: bool) -> Bert {
        let lin = |d_in, d_out| {
            if random {
                Linear::random(d_in, d_out, device)
            } else {
                Linear::zeros(d_in, d_out, device)
            }
        };
        let emb = |rows, dim| {
            if random {
                Embedding::random(rows, dim, device)
            } else {
                Embedding::zeros(rows, dim, device)
            }
        };
        let ln = |dim| LayerNorm::new(dim, self.layer_norm_eps, device);
        let d = self.d_model;
        let layer = self
            .layers
            .iter()
            .map(|l| {
                let inner = l.n_heads * l.head_dim;
                EncoderLayer {
                    attention: Attention {
                        self_attn: SelfAttention {
                            query: lin(d, inner),
                            key: lin(d, inner),
                            value: lin(d, inner),
                            n_heads: l.n_heads,
                            head_dim: l.head_dim,
                        },
                        output: AttentionOutput {
                            dense: lin(inner, d),
                            layer_norm: ln(d),
                        },
                    },
                    intermediate: Intermediate { dense: lin(d, l.d_ff) },
                    output: LayerOutput {
                        dense: lin(l.d_ff, d),
                        layer_norm: ln(d),
                    },
                }
            })
            .collect();
        Bert {
            name: self.name.clone(),
            embeddings: Embeddings {
                word_embeddings: emb(self.vocab_size, d),
                position_embeddings: emb(self.max_positions, d),
                token_type_embeddings: emb(self.type_vocab_size, d),
                layer_norm: ln(d),
            },
            encoder: Encoder { layer },
        }
    }
}

/// Word + position + token-type embeddings, then LayerNorm (HF `BertEmbeddings`).
#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
}

impl Embeddings {
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`, `seq ≤ max_positions`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .expand([batch, seq]);
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids);
        self.layer_norm.forward(x)
    }
}

/// Multi-head self-attention with its own Q/K/V projections and an explicit head structure
/// (HF `BertSelfAttention`). Unlike burn's `MultiHeadAttention` the head count and width are
/// per layer and independent of `d_model`, so pruned heads are representable.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// Heads in this layer.
    pub n_heads: usize,
    /// Width of each head.
    pub head_dim: usize,
}

impl SelfAttention {
    /// Scaled dot-product attention, `softmax(QKᵀ/√head_dim + mask)·V`, heads concatenated.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`
    /// - `mask`: `[batch, 1, seq, seq]`, `true` = key position masked out (padding)
    /// - output: `[batch, seq, n_heads · head_dim]`
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let (heads, width) = (self.n_heads, self.head_dim);
        let split = |y: Tensor<3>| y.reshape([batch, seq, heads, width]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        if let Some(gram) = &self.value.slots.gram {
            // GPTQ calibration: head h reads its rows of the value projection through its
            // attention weights A_h, so those rows are compensated on the mixed inputs A_h·x.
            let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) / (width as f64).sqrt();
            let scores = scores.mask_fill(mask.clone().expand([batch, heads, seq, seq]), f32::NEG_INFINITY);
            let weights = softmax(scores, 3);
            let mixed = weights.matmul(x.clone().unsqueeze_dim::<4>(1).expand([batch, heads, seq, x.dims()[2]]));
            gram.observe_blocks(&mixed);
        }
        let v = split(self.value.forward(x));
        // The mask is applied to the scores before the softmax (masked keys get −∞).
        let context = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        context.swap_dims(1, 2).reshape([batch, seq, heads * width])
    }
}

/// Output projection of the attention block + residual + LayerNorm (HF `BertSelfOutput`).
#[derive(Module, Debug)]
pub struct AttentionOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

impl AttentionOutput {
    /// # Shapes
    /// - `context`: `[batch, seq, n_heads · head_dim]`; `residual`: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, context: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(self.dense.forward(context) + residual)
    }
}

/// Self-attention followed by its output block (HF `BertAttention`).
#[derive(Module, Debug)]
pub struct Attention {
    /// HF path segment `self` (a Rust keyword; the loader remaps it).
    pub self_attn: SelfAttention,
    pub output: AttentionOutput,
}

impl Attention {
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`; `mask`: `[batch, 1, seq, seq]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let context = self.self_attn.forward(x.clone(), mask);
        self.output.forward(context, x)
    }
}

/// FFN up-projection + exact erf GELU (HF `BertIntermediate`).
#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

impl Intermediate {
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_ff]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        gelu(self.dense.forward(x))
    }
}

/// FFN down-projection + residual + LayerNorm (HF `BertOutput`).
#[derive(Module, Debug)]
pub struct LayerOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

impl LayerOutput {
    /// # Shapes
    /// - `hidden`: `[batch, seq, d_ff]`; `residual`: `[batch, seq, d_model]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, hidden: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(self.dense.forward(hidden) + residual)
    }
}

/// One transformer layer: attention block, then feed-forward block (HF `BertLayer`).
#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: LayerOutput,
}

impl EncoderLayer {
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]`; `mask`: `[batch, 1, seq, seq]`
    /// - output: `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<4, Bool>) -> Tensor<3> {
        let x = self.attention.forward(x, mask);
        let hidden = self.intermediate.forward(x.clone());
        self.output.forward(hidden, x)
    }

    /// The Linear playing `role` (the roles of [`ember_config::bert_paths::LAYER_LINEARS`]).
    pub fn linear(&self, role: SiteRole) -> Option<&Linear> {
        Some(match role {
            SiteRole::Query => &self.attention.self_attn.query,
            SiteRole::Key => &self.attention.self_attn.key,
            SiteRole::Value => &self.attention.self_attn.value,
            SiteRole::AttentionOutput => &self.attention.output.dense,
            SiteRole::FfnUp => &self.intermediate.dense,
            SiteRole::FfnDown => &self.output.dense,
            _ => return None,
        })
    }

    /// [`EncoderLayer::linear`], mutable.
    pub fn linear_mut(&mut self, role: SiteRole) -> Option<&mut Linear> {
        Some(match role {
            SiteRole::Query => &mut self.attention.self_attn.query,
            SiteRole::Key => &mut self.attention.self_attn.key,
            SiteRole::Value => &mut self.attention.self_attn.value,
            SiteRole::AttentionOutput => &mut self.attention.output.dense,
            SiteRole::FfnUp => &mut self.intermediate.dense,
            SiteRole::FfnDown => &mut self.output.dense,
            _ => return None,
        })
    }

    /// This layer's dimensions, read from its parameters.
    pub fn dims(&self) -> LayerArch {
        let attn = &self.attention.self_attn;
        LayerArch {
            n_heads: attn.n_heads,
            head_dim: attn.head_dim,
            d_ff: self.intermediate.dense.d_out(),
        }
    }
}

/// The layer stack (HF `BertEncoder`); the `Vec` field named `layer` maps `encoder.layer.N`.
#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<EncoderLayer>,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Hidden states of the last layer, `[batch, seq, d_model]` (padding positions included).
    pub last_hidden_state: Tensor<3>,
    /// Mean of the last hidden states over the attention mask, `[batch, d_model]`.
    pub mean_pooled: Tensor<2>,
    /// `mean_pooled` L2-normalized: the sentence embedding, `[batch, d_model]`.
    pub embedding: Tensor<2>,
}

/// A BERT encoder with mean pooling (sentence-transformers' `BertModel` + `Pooling` + `Normalize`).
#[derive(Module, Debug)]
pub struct Bert {
    /// A short name for messages and inventories.
    pub name: String,
    pub embeddings: Embeddings,
    pub encoder: Encoder,
}

impl Bert {
    /// Runs the encoder and pools. Token types are all 0 (single-segment input).
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`, ids `< vocab_size`, `seq ≤ max_positions`
    /// - `attention_mask`: `[batch, seq]`, 1 = token, 0 = padding
    ///
    /// # Panics
    /// On out-of-range ids or a sequence longer than `max_positions` (burn's lookup panics);
    /// [`Bert::encode`] validates a [`crate::Batch`] first and returns an error instead.
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> EncoderOutput {
        self.run(input_ids, attention_mask, false).0
    }

    /// [`Bert::forward`], also returning every encoder layer's output hidden states
    /// (`[batch, seq, d_model]` each, in layer order): the taps hidden-state distillation reads.
    /// Without the request nothing is kept.
    pub fn forward_with_hidden(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> (EncoderOutput, Vec<Tensor<3>>) {
        self.run(input_ids, attention_mask, true)
    }

    fn run(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        taps: bool,
    ) -> (EncoderOutput, Vec<Tensor<3>>) {
        let [batch, seq] = input_ids.dims();
        let token_types = Tensor::<2, Int>::zeros([batch, seq], &input_ids.device());
        let mut x = self.embeddings.forward(input_ids, token_types);
        let mask = attention_bias_mask(attention_mask.clone());
        let mut hidden = Vec::new();
        for layer in &self.encoder.layer {
            x = layer.forward(x, mask.clone());
            if taps {
                hidden.push(x.clone());
            }
        }
        let mean_pooled = mean_pool(x.clone(), attention_mask);
        let embedding = l2_normalize(mean_pooled.clone());
        (
            EncoderOutput {
                last_hidden_state: x,
                mean_pooled,
                embedding,
            },
            hidden,
        )
    }

    /// Validates a tokenized batch against the model (ids in range, length within
    /// `max_positions`) and runs [`Bert::forward`] on it.
    pub fn encode(&self, batch: &crate::Batch, device: &Device) -> crate::Result<EncoderOutput> {
        self.validate(batch)?;
        let (ids, mask) = batch.to_tensors(device);
        Ok(self.forward(ids, mask))
    }

    /// [`Bert::encode`] with every layer's hidden states ([`Bert::forward_with_hidden`]).
    pub fn encode_with_hidden(
        &self,
        batch: &crate::Batch,
        device: &Device,
    ) -> crate::Result<(EncoderOutput, Vec<Tensor<3>>)> {
        self.validate(batch)?;
        let (ids, mask) = batch.to_tensors(device);
        Ok(self.forward_with_hidden(ids, mask))
    }

    fn validate(&self, batch: &crate::Batch) -> crate::Result<()> {
        let cells = batch.batch * batch.seq;
        if batch.seq == 0 || batch.input_ids.len() != cells || batch.attention_mask.len() != cells {
            return Err(crate::Error::Input(format!(
                "a batch of {}×{} needs {cells} ids and mask entries, got {} and {}",
                batch.batch,
                batch.seq,
                batch.input_ids.len(),
                batch.attention_mask.len()
            )));
        }
        let vocab = self.embeddings.word_embeddings.rows();
        let max_len = self.embeddings.position_embeddings.rows();
        if batch.seq > max_len {
            return Err(crate::Error::Input(format!(
                "sequence of {} tokens is longer than the model's {max_len} positions",
                batch.seq
            )));
        }
        if let Some(id) = batch.input_ids.iter().find(|&&id| id < 0 || id as usize >= vocab) {
            return Err(crate::Error::Input(format!(
                "token id {id} is outside the vocabulary (0..{vocab})"
            )));
        }
        Ok(())
    }

    /// The module-path prefixes of the forward's stages, in order: the embeddings, then each
    /// encoder layer (for [`ember_core::Composed::calibrate_in_stages`]).
    pub fn stages(&self) -> Vec<String> {
        std::iter::once(bert_paths::EMBEDDINGS.to_string())
            .chain((0..self.encoder.layer.len()).map(bert_paths::layer))
            .collect()
    }

    /// Runs stage `stage` of [`Bert::stages`] on one batch: stage 0 embeds its tokens (validated
    /// as [`Bert::encode`] does), stage `1 + l` runs encoder layer `l` on its hidden states. The
    /// stages in order compute exactly [`Bert::forward`]'s last hidden states.
    pub fn run_stage(&self, stage: usize, batch: StagedBatch, device: &Device) -> crate::Result<StagedBatch> {
        match (stage, batch) {
            (0, StagedBatch::Tokens(tokens)) => {
                self.validate(&tokens)?;
                let (ids, mask) = tokens.to_tensors(device);
                let token_types = Tensor::<2, Int>::zeros(ids.dims(), device);
                Ok(StagedBatch::Hidden {
                    x: self.embeddings.forward(ids, token_types),
                    mask: attention_bias_mask(mask),
                })
            }
            (s, StagedBatch::Hidden { x, mask }) if s >= 1 && s <= self.encoder.layer.len() => {
                Ok(StagedBatch::Hidden {
                    x: self.encoder.layer[s - 1].forward(x, mask.clone()),
                    mask,
                })
            }
            (s, _) => Err(crate::Error::Input(format!(
                "stage {s} of {} got a batch of another stage",
                self.encoder.layer.len() + 1
            ))),
        }
    }

    /// The model's dimensions, read from its parameters (so a pruned model reports its real shape).
    pub fn config(&self) -> BertConfig {
        let e = &self.embeddings;
        BertConfig {
            name: self.name.clone(),
            vocab_size: e.word_embeddings.rows(),
            d_model: e.word_embeddings.dim(),
            max_positions: e.position_embeddings.rows(),
            type_vocab_size: e.token_type_embeddings.rows(),
            layer_norm_eps: e.layer_norm.eps,
            layers: self.encoder.layer.iter().map(EncoderLayer::dims).collect(),
        }
    }

    /// The model's compressible sites in HF naming, with the shapes the model actually has.
    pub fn inventory(&self) -> Inventory {
        let c = self.config();
        let layers: Vec<_> = c.layers.iter().map(|l| (l.n_heads, l.head_dim, l.d_ff)).collect();
        Inventory::bert_layers(
            &c.name,
            c.vocab_size,
            c.d_model,
            c.max_positions,
            c.type_vocab_size,
            &layers,
        )
    }
}

/// A batch on its way through the model one stage at a time ([`Bert::run_stage`]).
// One per calibration batch (tens of them): the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StagedBatch {
    /// Tokens, before the embeddings.
    Tokens(crate::Batch),
    /// Hidden states `[batch, seq, d_model]` after a stage, and the attention mask.
    Hidden { x: Tensor<3>, mask: Tensor<4, Bool> },
}

/// Turns a `[batch, seq]` 1/0 attention mask into the boolean mask attention wants.
///
/// # Shapes
/// - `attention_mask`: `[batch, seq]` (1 = token) → `[batch, 1, seq, seq]` (`true` = masked key).
///   `[batch, 1, 1, seq]` would make burn-flex materialize `[batch, heads, seq, seq]`.
pub fn attention_bias_mask(attention_mask: Tensor<2, Int>) -> Tensor<4, Bool> {
    let [batch, seq] = attention_mask.dims();
    attention_mask
        .equal_elem(0)
        .reshape([batch, 1, 1, seq])
        .expand([batch, 1, seq, seq])
}

/// Mean of the hidden states over the positions where the mask is 1.
///
/// # Shapes
/// - `hidden`: `[batch, seq, d]`; `attention_mask`: `[batch, seq]` → `[batch, d]`
pub fn mean_pool(hidden: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
    let [batch, _, d] = hidden.dims();
    let mask = attention_mask.float().unsqueeze_dim::<3>(2);
    let summed = (hidden * mask.clone()).sum_dim(1).reshape([batch, d]);
    let count = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    summed / count
}

/// Scales each row to unit L2 norm (rows of norm < 1e-12 are divided by 1e-12, as PyTorch's
/// `F.normalize`).
///
/// # Shapes
/// - `x`: `[batch, d]` → `[batch, d]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn ids(rows: &[&[i64]], device: &Device) -> Tensor<2, Int> {
        let seq = rows[0].len();
        let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), seq]), device)
    }

    fn heterogeneous() -> BertConfig {
        let mut config = BertConfig::uniform("hetero", 50, 16, 3, 4, 32, 20);
        config.layers = vec![
            LayerArch {
                n_heads: 4,
                head_dim: 4,
                d_ff: 32,
            },
            LayerArch {
                n_heads: 1,
                head_dim: 4,
                d_ff: 7,
            },
            LayerArch {
                n_heads: 3,
                head_dim: 6,
                d_ff: 64,
            },
        ];
        config
    }

    #[test]
    fn heterogeneous_model_runs_and_reports_its_shapes() {
        let device = Device::flex();
        let config = heterogeneous();
        let model = config.init_random(&device);
        let out = model.forward(
            ids(&[&[1, 5, 9, 2, 0], &[1, 3, 2, 0, 0]], &device),
            ids(&[&[1, 1, 1, 1, 0], &[1, 1, 1, 0, 0]], &device),
        );
        assert_eq!(out.last_hidden_state.dims(), [2, 5, 16]);
        assert_eq!(out.mean_pooled.dims(), [2, 16]);
        let emb = out.embedding.into_data().try_to_vec::<f32>().unwrap();
        for row in emb.chunks(16) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            assert!(row.iter().all(|v| v.is_finite()));
        }
        assert_eq!(model.config(), config);

        let inv = model.inventory();
        assert_eq!(inv.num_layers, 3);
        assert_eq!(inv.sites.len(), 3 + 3 * 6);
        let q1 = inv.site("encoder.layer.1.attention.self.query").unwrap();
        assert_eq!((q1.shape.clone(), q1.num_heads), (vec![4, 16], Some(1)));
        assert_eq!(
            inv.site("encoder.layer.2.attention.output.dense").unwrap().shape,
            vec![16, 18]
        );
        assert_eq!(inv.site("encoder.layer.1.output.dense").unwrap().shape, vec![16, 7]);
    }

    #[test]
    fn uniform_inventory_matches_the_config_crate() {
        let model = BertConfig::uniform("minilm-l6", 60, 24, 2, 3, 48, 16).init_zeros(&Device::flex());
        let expected = Inventory::bert("minilm-l6", 2, 24, 3, 48, 60, 16);
        assert_eq!(model.inventory(), expected);
    }

    #[test]
    fn padding_does_not_change_a_sentence() {
        let device = Device::flex();
        let model = heterogeneous().init_random(&device);
        let single = model.forward(ids(&[&[1, 5, 9]], &device), ids(&[&[1, 1, 1]], &device));
        let padded = model.forward(
            ids(&[&[1, 5, 9, 0, 0, 0], &[1, 2, 3, 4, 5, 6]], &device),
            ids(&[&[1, 1, 1, 0, 0, 0], &[1, 1, 1, 1, 1, 1]], &device),
        );
        let a = single.embedding.into_data().try_to_vec::<f32>().unwrap();
        let b = padded.embedding.into_data().try_to_vec::<f32>().unwrap();
        let diff = a
            .iter()
            .zip(&b[..16])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "padded vs single max |Δ| {diff}");
    }

    #[test]
    fn encode_rejects_bad_batches_instead_of_panicking() {
        let device = Device::flex();
        let model = heterogeneous().init_random(&device);
        let batch = |ids: Vec<i64>, seq| crate::Batch {
            attention_mask: vec![1; ids.len()],
            batch: 1,
            seq,
            input_ids: ids,
        };
        for bad in [
            batch(vec![1, 50, 2], 3), // id outside the 50-word vocabulary
            batch(vec![1, -1, 2], 3), // negative id
            batch(vec![1; 21], 21),   // longer than the 20 positions
            batch(vec![1, 2, 3], 4),  // ids do not fill batch × seq
            batch(vec![], 0),         // empty sequence
        ] {
            assert!(
                matches!(model.encode(&bad, &device), Err(crate::Error::Input(_))),
                "{bad:?}"
            );
        }
        assert!(model.encode(&batch(vec![1, 49, 2], 3), &device).is_ok());
    }

    #[test]
    fn mean_pool_ignores_masked_positions() {
        let device = Device::flex();
        let hidden = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 100.0, 100.0], [1, 3, 2]),
            &device,
        );
        let pooled = mean_pool(hidden, ids(&[&[1, 1, 0]], &device));
        assert_eq!(pooled.into_data().try_to_vec::<f32>().unwrap(), vec![2.0, 3.0]);
    }
}
