//! Clean (DESIGN §7): a composed burn [`Bert`] becomes a [`CompressedModel`] — plain data with
//! quantized weights as packed codes + scales, activation quantization as a per-layer spec for the
//! kernels, and structurally pruned heads, FFN rows and layers sliced out.
//!
//! Quantized weights are packed from `numerics::quantize` of the same transformed weight the
//! composed model fake-quantizes (or from the codes GPTQ chose), so the cleaned weights dequantize
//! to the composed model's weights bit for bit. Clean only reads the model: it is deterministic and
//! idempotent (cleaning twice gives equal models).

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use ember_config::{SiteRole, bert_paths};
use ember_core::numerics;
use ember_core::slots::{EmbeddingSlots, LinearSlots};
use ember_runtime::{
    Architecture, CompressedLinear, CompressedModel, Embeddings, Layer, LayerArch, LayerNormParams, Meta, Pooling,
    QuantTensor, Weight,
};

use crate::bert::{Bert, EncoderLayer};
use crate::blocks::{Embedding, LayerNorm, Linear};
use crate::{Error, Result};

/// Structural pruning to apply while cleaning, by source-layer index. Heads and FFN rows listed
/// are kept (in ascending order); a layer absent from a map keeps all of its heads / rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StructuralPrune {
    /// Source layers to keep, ascending; `None` keeps every layer.
    pub keep_layers: Option<Vec<usize>>,
    /// Per source layer: the attention heads kept.
    pub keep_heads: BTreeMap<usize, Vec<usize>>,
    /// Per source layer: the FFN (intermediate) rows kept.
    pub keep_ffn: BTreeMap<usize, Vec<usize>>,
}

/// What clean needs besides the model.
#[derive(Debug, Clone, Default)]
pub struct CleanOptions {
    /// `tokenizer.json` to embed.
    pub tokenizer: Option<String>,
    /// Longest tokenized input (sentence-transformers' `max_seq_length`).
    pub max_seq_length: Option<usize>,
    /// Provenance and measured figures.
    pub meta: Meta,
    /// Structural pruning (heads, FFN rows, layers) to slice out.
    pub prune: StructuralPrune,
}

/// Cleans a composed (or plain) model.
///
/// # Errors
/// A pruning spec that names layers, heads or rows the model does not have, or GPTQ codes on a
/// module that pruning slices (GPTQ's codes cannot be sliced along the input dimension).
pub fn clean(model: &Bert, opts: &CleanOptions) -> Result<CompressedModel> {
    let config = model.config();
    let n_layers = model.encoder.layer.len();
    let keep_layers = match &opts.prune.keep_layers {
        Some(k) => {
            check_indices("layer", k, n_layers)?;
            k.clone()
        }
        None => (0..n_layers).collect(),
    };
    let e = &model.embeddings;
    let embeddings = Embeddings {
        word: embedding_weight(&e.word_embeddings),
        position: embedding_weight(&e.position_embeddings),
        token_type: embedding_weight(&e.token_type_embeddings),
        norm: layer_norm(&e.layer_norm),
    };
    let mut layers = Vec::with_capacity(keep_layers.len());
    let mut arch_layers = Vec::with_capacity(keep_layers.len());
    for &i in &keep_layers {
        let (layer, dims) = clean_layer(&model.encoder.layer[i], i, &opts.prune)?;
        layers.push(layer);
        arch_layers.push(dims);
    }
    let arch = Architecture {
        family: "bert".into(),
        name: config.name.clone(),
        vocab_size: config.vocab_size,
        d_model: config.d_model,
        max_positions: config.max_positions,
        type_vocab_size: config.type_vocab_size,
        layer_norm_eps: config.layer_norm_eps,
        max_seq_length: opts.max_seq_length.unwrap_or(crate::DEFAULT_MAX_LENGTH),
        pooling: Pooling::MeanNormalized,
        layers: arch_layers,
        kept_layers: keep_layers,
    };
    Ok(CompressedModel {
        arch,
        embeddings,
        layers,
        tokenizer: opts.tokenizer.clone(),
        meta: opts.meta.clone(),
    })
}

fn clean_layer(layer: &EncoderLayer, index: usize, prune: &StructuralPrune) -> Result<(Layer, LayerArch)> {
    let dims = layer.dims();
    let heads = match prune.keep_heads.get(&index) {
        Some(h) => {
            check_indices(&format!("layer {index} head"), h, dims.n_heads)?;
            h.clone()
        }
        None => (0..dims.n_heads).collect(),
    };
    // Rows of Q/K/V (and columns of the output projection) that belong to the kept heads.
    let head_rows: Vec<usize> = heads
        .iter()
        .flat_map(|&h| h * dims.head_dim..(h + 1) * dims.head_dim)
        .collect();
    let ffn = match prune.keep_ffn.get(&index) {
        Some(r) => {
            check_indices(&format!("layer {index} FFN row"), r, dims.d_ff)?;
            r.clone()
        }
        None => (0..dims.d_ff).collect(),
    };
    let all_heads = heads.len() == dims.n_heads;
    let all_ffn = ffn.len() == dims.d_ff;
    // Heads shrink the rows of Q/K/V and the columns of the output projection; FFN rows shrink
    // the rows of the up-projection and the columns of the down-projection.
    let keep = |keep: &[usize], all: bool| if all { None } else { Some(keep.to_vec()) };
    let lin = |role: SiteRole| -> Result<CompressedLinear> {
        let (rows, cols) = match role {
            SiteRole::Query | SiteRole::Key | SiteRole::Value => (keep(&head_rows, all_heads), None),
            SiteRole::AttentionOutput => (None, keep(&head_rows, all_heads)),
            SiteRole::FfnUp => (keep(&ffn, all_ffn), None),
            SiteRole::FfnDown => (None, keep(&ffn, all_ffn)),
            _ => (None, None),
        };
        let path = bert_paths::layer_linear(index, role).expect("a layer Linear's role");
        linear(layer.linear(role).expect("a layer Linear's role"), path, rows, cols)
    };
    let layer_out = Layer {
        query: lin(SiteRole::Query)?,
        key: lin(SiteRole::Key)?,
        value: lin(SiteRole::Value)?,
        attn_out: lin(SiteRole::AttentionOutput)?,
        attn_norm: layer_norm(&layer.attention.output.layer_norm),
        ffn_in: lin(SiteRole::FfnUp)?,
        ffn_out: lin(SiteRole::FfnDown)?,
        out_norm: layer_norm(&layer.output.layer_norm),
    };
    let arch = LayerArch {
        n_heads: heads.len(),
        head_dim: dims.head_dim,
        d_ff: ffn.len(),
    };
    Ok((layer_out, arch))
}

fn check_indices(what: &str, keep: &[usize], n: usize) -> Result<()> {
    if keep.is_empty() {
        return Err(Error::Clean(format!("pruning keeps no {what}s; keep at least one")));
    }
    if let Some(&bad) = keep.iter().find(|&&i| i >= n) {
        return Err(Error::Clean(format!(
            "pruning keeps {what} {bad}, but there are only {n}"
        )));
    }
    if keep.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Clean(format!(
            "pruning lists {what}s {keep:?}; list them once each, ascending"
        )));
    }
    Ok(())
}

/// A tensor's values, row-major.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data reads back as f32")
}

/// Keeps `rows` (if given) and `cols` (if given) of a row-major `[r, c]` matrix.
fn slice(w: &[f32], r: usize, c: usize, rows: Option<&[usize]>, cols: Option<&[usize]>) -> (Vec<f32>, usize, usize) {
    let all_rows: Vec<usize>;
    let rows = match rows {
        Some(k) => k,
        None => {
            all_rows = (0..r).collect();
            &all_rows
        }
    };
    let mut out = Vec::with_capacity(rows.len() * cols.map_or(c, <[usize]>::len));
    for &i in rows {
        let row = &w[i * c..(i + 1) * c];
        match cols {
            Some(k) => out.extend(k.iter().map(|&j| row[j])),
            None => out.extend_from_slice(row),
        }
    }
    let cols_n = cols.map_or(c, <[usize]>::len);
    (out, rows.len(), cols_n)
}

fn linear(
    l: &Linear,
    name: String,
    keep_rows: Option<Vec<usize>>,
    keep_cols: Option<Vec<usize>>,
) -> Result<CompressedLinear> {
    let slots: &LinearSlots = &l.slots;
    let sliced = keep_rows.is_some() || keep_cols.is_some();
    let [r, c] = l.weight.dims();
    let weight = match (&slots.quantized, slots.weight_quant) {
        (Some(_), _) if sliced => {
            return Err(Error::Clean(format!(
                "{name}: GPTQ codes cannot be sliced by structural pruning; prune first, then quantize"
            )));
        }
        (Some(q), _) => Weight::Quant(quant_tensor(&name, q)?),
        (None, quant) => {
            // The weight the composed model transforms (user techniques), before fake quantization.
            let transformed = slots.transforms.iter().fold(l.weight.val().detach(), |w, t| t.apply(w));
            let (w, rows, cols) = slice(&values(transformed), r, c, keep_rows.as_deref(), keep_cols.as_deref());
            match quant {
                Some(q) => {
                    let qz = q.quantize(&w, rows, cols);
                    Weight::Quant(quant_tensor(&name, &qz)?)
                }
                None => Weight::F32 { rows, cols, values: w },
            }
        }
    };
    let bias = l.bias.as_ref().map(|b| {
        let v = values(b.val());
        match &keep_rows {
            Some(k) => k.iter().map(|&i| v[i]).collect(),
            None => v,
        }
    });
    Ok(CompressedLinear {
        name,
        weight,
        bias,
        act: slots.act_quant,
    })
}

fn quant_tensor(name: &str, q: &numerics::Quantized) -> Result<QuantTensor> {
    QuantTensor::from_quantized(q).map_err(|e| Error::Clean(format!("{name}: {e}")))
}

fn embedding_weight(e: &Embedding) -> Weight {
    let slots: &EmbeddingSlots = &e.slots;
    let [rows, cols] = e.weight.dims();
    let w = values(e.weight.val());
    match slots.weight_quant {
        Some(q) => {
            let qz = q.quantize(&w, rows, cols);
            Weight::Quant(QuantTensor::from_quantized(&qz).expect("numerics::quantize produces valid codes"))
        }
        None => Weight::F32 { rows, cols, values: w },
    }
}

fn layer_norm(n: &LayerNorm) -> LayerNormParams {
    LayerNormParams {
        gamma: values(n.weight.val()),
        beta: values(n.bias.val()),
        eps: n.eps as f32,
    }
}
