//! Loading an HF BERT checkpoint: `config.json` → [`BertConfig`], `model.safetensors` → weights.
//!
//! HF's config vocabulary (`hidden_size`, `num_attention_heads`, `intermediate_size`, …) is parsed
//! and validated by `ember_config::HfBertConfig` (the planner reads the same file with it); here
//! it is translated into Ember's (`d_model`, `n_heads`, `d_ff`).
//!
//! Weights are applied through burn-store's `SafetensorsStore` with key remapping (HF
//! `LayerNorm` → `layer_norm`, `attention.self` → `attention.self_attn`, an optional `bert.` prefix
//! dropped) and *no* `PyTorchToBurnAdapter`: Ember's `Linear` keeps PyTorch's `[out, in]` layout,
//! so nothing is transposed. Before burn-store sees the file, the loader checks it with the
//! `safetensors` crate — header, offsets, every expected tensor's presence, dtype and shape, and
//! tensors nobody expects — so every problem becomes a typed [`Error`] naming the tensor, and
//! burn-store (which aborts the process if a tensor fails to materialize mid-apply) only ever
//! sees a file already known to fit.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use ember_config::hf_config::{HfBertConfig, MAX_HF_CONFIG_BYTES};
use ember_config::{bert_paths, read_text_bounded};
use safetensors::{Dtype, SafeTensors};

use crate::bert::{Bert, BertConfig, LayerArch};
use crate::{Error, Result};

/// Tensors an HF BERT checkpoint may hold that Ember's encoder has no use for: the `position_ids`
/// buffer and the pooler (sentence embeddings use mean pooling, not the `[CLS]` pooler).
const IGNORED_TENSORS: &[&str] = &["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"];

/// Reads and validates an HF `config.json` (with `ember_config::HfBertConfig`, the one parser
/// the planner uses too), naming the model `name`.
pub fn read_config(path: &Path, name: &str) -> Result<BertConfig> {
    if !path.is_file() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: "config.json",
        });
    }
    let text = read_text_bounded(path, MAX_HF_CONFIG_BYTES).map_err(|e| Error::io(path, e))?;
    let hf = HfBertConfig::parse(&text).map_err(|reason| Error::BadConfig {
        path: path.to_path_buf(),
        reason,
    })?;
    let layer = LayerArch {
        n_heads: hf.num_attention_heads,
        head_dim: hf.hidden_size / hf.num_attention_heads,
        d_ff: hf.intermediate_size,
    };
    Ok(BertConfig {
        name: name.to_string(),
        vocab_size: hf.vocab_size,
        d_model: hf.hidden_size,
        max_positions: hf.max_position_embeddings,
        type_vocab_size: hf.type_vocab_size,
        layer_norm_eps: hf.layer_norm_eps,
        layers: vec![layer; hf.num_hidden_layers],
    })
}

/// Every tensor a checkpoint of `config` must hold, by HF name, with its shape (paths from
/// [`bert_paths`]).
pub fn expected_tensors(config: &BertConfig) -> BTreeMap<String, Vec<usize>> {
    let d = config.d_model;
    let mut t = BTreeMap::new();
    let rows = [config.vocab_size, config.max_positions, config.type_vocab_size];
    for ((_, table), rows) in bert_paths::EMBEDDING_TABLES.iter().zip(rows) {
        t.insert(format!("{table}.weight"), vec![rows, d]);
    }
    let norm = |t: &mut BTreeMap<String, Vec<usize>>, path: &str| {
        t.insert(format!("{path}.weight"), vec![d]);
        t.insert(format!("{path}.bias"), vec![d]);
    };
    norm(&mut t, bert_paths::EMBEDDINGS_NORM);
    for (i, l) in config.layers.iter().enumerate() {
        for (role, suffix) in bert_paths::LAYER_LINEARS {
            let [out, inp] = bert_paths::linear_shape(role, d, l.n_heads * l.head_dim, l.d_ff)
                .expect("every layer Linear has a shape");
            let path = bert_paths::in_layer(i, suffix);
            t.insert(format!("{path}.weight"), vec![out, inp]);
            t.insert(format!("{path}.bias"), vec![out]);
        }
        for suffix in [bert_paths::ATTENTION_NORM, bert_paths::OUTPUT_NORM] {
            norm(&mut t, &bert_paths::in_layer(i, suffix));
        }
    }
    t
}

/// Loads `config.json` and `model.safetensors` from `dir` into a model on `device`.
pub fn load_bert(dir: &Path, name: &str, device: &Device) -> Result<Bert> {
    let config = read_config(&dir.join("config.json"), name)?;
    load_weights(&config, &dir.join("model.safetensors"), device)
}

/// Builds the model `config` describes and loads its weights from a safetensors file, checking
/// every tensor first (see the module docs).
pub fn load_weights(config: &BertConfig, path: &Path, device: &Device) -> Result<Bert> {
    if !path.is_file() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            what: "model.safetensors",
        });
    }
    // The file is memory-mapped, not read: the check reads the header and the tensors' extents,
    // and burn-store (which maps it again) copies each tensor once into its parameter, so no
    // whole-file copy is ever made (loading peaks near the file plus the model, not 3×).
    let prefix = {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and dropped before the store maps the file again; a
        // checkpoint modified by another process while Ember loads it is outside what any reader
        // can defend against (burn-store maps it the same way).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        check_checkpoint(config, path, &map)?
    };

    // Placeholders allocate nothing; each is replaced by its loaded tensor. The file is applied
    // one block at a time (embeddings, then each layer), each through its own mapping that is
    // dropped afterwards, so at most one block's pages of the file are resident next to the model.
    let mut model = config.init_zeros(device);
    let block = |prefix: String| format!(r"(^|\.){}\.", prefix.replace('.', r"\."));
    let blocks = std::iter::once(block(bert_paths::EMBEDDINGS.to_string()))
        .chain((0..config.layers.len()).map(|i| block(bert_paths::layer(i))));
    let mut applied = 0;
    for block in blocks {
        let mut store = SafetensorsStore::from_file(path)
            .with_regex(&block)
            .with_key_remapping(r"\.LayerNorm\.", ".layer_norm.")
            .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
            .allow_partial(true)
            .validate(false);
        if prefix {
            store = store.with_key_remapping(r"^bert\.", "");
        }
        let result = model.load_from(&mut store).map_err(|e| Error::CorruptWeights {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // Everything was checked above; these only fire if burn-store disagrees with that check.
        if let Some(err) = result.errors.first() {
            return Err(Error::CorruptWeights {
                path: path.to_path_buf(),
                reason: err.to_string(),
            });
        }
        applied += result.applied.len();
    }
    let expected = expected_tensors(config).len();
    if applied != expected {
        return Err(Error::CorruptWeights {
            path: path.to_path_buf(),
            reason: format!("{applied} tensors applied, {expected} expected"),
        });
    }
    Ok(model)
}

/// Checks a safetensors buffer against `config`; returns whether the names carry a `bert.` prefix.
fn check_checkpoint(config: &BertConfig, path: &Path, bytes: &[u8]) -> Result<bool> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::CorruptWeights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let names = file.names();
    let prefix = !names.is_empty() && names.iter().all(|n| n.starts_with("bert."));
    let strip = |n: &str| {
        if prefix {
            n.strip_prefix("bert.").unwrap_or(n).to_string()
        } else {
            n.to_string()
        }
    };
    let present: BTreeMap<String, (Dtype, Vec<usize>)> = file
        .iter()
        .map(|(name, view)| (strip(name), (view.dtype(), view.shape().to_vec())))
        .collect();
    let expected = expected_tensors(config);
    for (name, shape) in &expected {
        let Some((dtype, found)) = present.get(name) else {
            return Err(Error::MissingTensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
            });
        };
        if found != shape {
            return Err(Error::ShapeMismatch {
                path: path.to_path_buf(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: found.clone(),
            });
        }
        if *dtype != Dtype::F32 {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
                reason: format!("dtype {dtype:?} is not supported (Ember loads f32 checkpoints)"),
            });
        }
    }
    if let Some(extra) = present
        .keys()
        .find(|n| !expected.contains_key(*n) && !IGNORED_TENSORS.contains(&n.as_str()))
    {
        return Err(Error::UnexpectedTensor {
            path: path.to_path_buf(),
            tensor: extra.clone(),
        });
    }
    Ok(prefix)
}
