//! The cleaned model as plain data: what `clean` produces, what the `.ember` artifact stores and
//! what the engines run. No tensor framework; every weight is either f32 or a [`QuantTensor`]
//! (packed codes + scales), and every dimension is per layer (structural pruning leaves layers
//! with different head counts and FFN widths, and may drop layers).

use serde::{Deserialize, Serialize};

use crate::quant_tensor::QuantTensor;

/// A compressed BERT-style encoder, ready to run or to write as `model.ember`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedModel {
    pub arch: Architecture,
    pub embeddings: Embeddings,
    pub layers: Vec<Layer>,
    /// `tokenizer.json` (HuggingFace tokenizers), embedded so the artifact is self-contained.
    pub tokenizer: Option<String>,
    /// Provenance and measured figures (not needed to run).
    pub meta: Meta,
}

impl CompressedModel {
    /// Checks everything the artifact writer, the reader and the engines rely on: the architecture,
    /// every weight's shape and codes against it, biases, activation specs, LayerNorms, finite
    /// values. One definition for all of them, so a model one accepts the others accept too.
    ///
    /// # Errors
    /// [`crate::RuntimeError::Invalid`] listing every problem found.
    pub fn validate(&self) -> crate::Result<()> {
        let problems = crate::check::check_model(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::RuntimeError::Invalid(crate::check::join_problems(problems)))
        }
    }
}

/// Architecture after cleaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Model family; only `"bert"` (BERT-style encoder, post-LayerNorm, GELU FFN) today.
    pub family: String,
    /// The source model's name (e.g. `minilm-l6`).
    pub name: String,
    pub vocab_size: usize,
    pub d_model: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// Longest input the tokenizer produces (sentence-transformers' `max_seq_length`).
    pub max_seq_length: usize,
    /// Sentence embedding: mean over non-padding tokens, then L2-normalized.
    pub pooling: Pooling,
    /// Per kept layer, in order.
    pub layers: Vec<LayerArch>,
    /// Indices of the source model's layers that were kept (layer reduction), in order.
    pub kept_layers: Vec<usize>,
}

/// How token states become a sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Masked mean, then L2 normalization (sentence-transformers' MiniLM).
    MeanNormalized,
}

/// Dimensions of one encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerArch {
    pub n_heads: usize,
    pub head_dim: usize,
    pub d_ff: usize,
}

impl LayerArch {
    /// Width of the attention projections (`n_heads · head_dim`).
    pub fn attn_width(&self) -> usize {
        self.n_heads * self.head_dim
    }
}

/// Embedding tables and their LayerNorm.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `[vocab, d_model]`.
    pub word: Weight,
    /// `[max_positions, d_model]`.
    pub position: Weight,
    /// `[type_vocab, d_model]`.
    pub token_type: Weight,
    pub norm: LayerNormParams,
}

/// One encoder layer: self-attention, output projection, FFN, two post-LayerNorms.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub query: CompressedLinear,
    pub key: CompressedLinear,
    pub value: CompressedLinear,
    /// Attention output projection (`attention.output.dense`).
    pub attn_out: CompressedLinear,
    pub attn_norm: LayerNormParams,
    /// `intermediate.dense` (`d_model → d_ff`, followed by GELU).
    pub ffn_in: CompressedLinear,
    /// `output.dense` (`d_ff → d_model`).
    pub ffn_out: CompressedLinear,
    pub out_norm: LayerNormParams,
}

impl Layer {
    /// The six Linear layers in a fixed order (query, key, value, attn_out, ffn_in, ffn_out).
    pub fn linears(&self) -> [&CompressedLinear; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attn_out,
            &self.ffn_in,
            &self.ffn_out,
        ]
    }

    /// Mutable form of [`Layer::linears`].
    pub fn linears_mut(&mut self) -> [&mut CompressedLinear; 6] {
        [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attn_out,
            &mut self.ffn_in,
            &mut self.ffn_out,
        ]
    }
}

/// `y = act_q(x) · Wᵀ + b` with `W` `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedLinear {
    /// The module's path in the source model (`encoder.layer.0.attention.self.query`).
    pub name: String,
    pub weight: Weight,
    pub bias: Option<Vec<f32>>,
    /// Input activation quantization, if the plan asked for it.
    pub act: Option<ActSpec>,
}

impl CompressedLinear {
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.cols()
    }
}

/// A weight matrix `[rows, cols]`: plain f32 or packed codes.
#[derive(Debug, Clone, PartialEq)]
pub enum Weight {
    F32 { rows: usize, cols: usize, values: Vec<f32> },
    Quant(QuantTensor),
}

impl Weight {
    pub fn rows(&self) -> usize {
        match self {
            Weight::F32 { rows, .. } => *rows,
            Weight::Quant(q) => q.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Weight::F32 { cols, .. } => *cols,
            Weight::Quant(q) => q.cols,
        }
    }

    /// The weight's values as f32, row-major (for f32 paths, validation and embeddings).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Weight::F32 { values, .. } => values.clone(),
            Weight::Quant(q) => q.dequantize(),
        }
    }

    /// Row `r` as f32 (an embedding lookup dequantizes only the rows it reads).
    pub fn row(&self, r: usize) -> Vec<f32> {
        match self {
            Weight::F32 { cols, values, .. } => values[r * cols..(r + 1) * cols].to_vec(),
            Weight::Quant(q) => q.dequantize_row(r),
        }
    }

    /// Bytes of storage (codes + scales + zero points, or 4 per f32).
    pub fn storage_bytes(&self) -> usize {
        match self {
            Weight::F32 { values, .. } => values.len() * 4,
            Weight::Quant(q) => q.storage_bytes(),
        }
    }

    /// Short format name for tables (`f32`, `int8`, `int4`, `ternary`, `binary`, `fp8-e4m3`…).
    pub fn format_name(&self) -> String {
        match self {
            Weight::F32 { .. } => "f32".to_string(),
            Weight::Quant(q) => q.format_name(),
        }
    }
}

/// LayerNorm parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormParams {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

/// How a Linear's input is quantized before the integer GEMM (defined in `ember-numerics`).
pub use ember_numerics::{ActRange, ActSpec};

/// Provenance and figures recorded in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Ember version that wrote the artifact.
    #[serde(default)]
    pub ember_version: String,
    /// The resolved config the model was composed with (`null` for an uncompressed model).
    #[serde(default)]
    pub config: serde_json::Value,
    /// Measured figures (`size_bytes`, `cos_mean`, `cos_min`, …).
    #[serde(default)]
    pub figures: serde_json::Map<String, serde_json::Value>,
}
