//! Writing: the model is checked, laid out as named tensors + manifest, serialized with the
//! `safetensors` crate (so the file is what every safetensors reader expects) and written
//! atomically.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use safetensors::tensor::{Dtype, TensorView};

use super::manifest::{
    EmbeddingsEntry, FORMAT_VERSION, LayerEntry, LinearEntry, MANIFEST_KEY, Manifest, NormEntry, TOKENIZER_COMPRESSION,
    TensorDtype, TensorRef, TokenizerEntry, WeightEntry, WeightStorage, codes_dtype,
};
use crate::check::check_model;
use crate::check::join_problems;
use crate::error::{Result, RuntimeError};
use crate::model::{CompressedLinear, CompressedModel, LayerNormParams, Weight};
use crate::names;
use crate::quant_tensor::{Zeros, row_bytes};

/// The name of the tokenizer tensor.
const TOKENIZER_TENSOR: &str = "tokenizer.json.zlib";

/// The tensors of the file, in the order they are laid out.
#[derive(Default)]
struct Tensors<'m> {
    list: Vec<(TensorRef, Cow<'m, [u8]>)>,
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl<'m> Tensors<'m> {
    fn push(&mut self, name: String, dtype: TensorDtype, shape: Vec<usize>, data: Cow<'m, [u8]>) -> TensorRef {
        let r = TensorRef::new(name, dtype, shape);
        self.list.push((r.clone(), data));
        r
    }

    fn f32(&mut self, name: String, shape: Vec<usize>, v: &[f32]) -> TensorRef {
        self.push(name, TensorDtype::F32, shape, Cow::Owned(le_bytes(v)))
    }

    fn weight(&mut self, base: &str, w: &'m Weight) -> WeightEntry {
        let (rows, cols) = (w.rows(), w.cols());
        let name = format!("{base}.weight");
        let storage = match w {
            Weight::F32 { values, .. } => WeightStorage::F32 {
                values: self.f32(name, vec![rows, cols], values),
            },
            Weight::Quant(q) => {
                let groups = q.scales.len();
                let codes = self.push(
                    format!("{name}.codes"),
                    codes_dtype(q.scheme),
                    vec![rows, row_bytes(q.scheme, cols)],
                    Cow::Borrowed(&q.codes),
                );
                let scales = self.f32(format!("{name}.scales"), vec![groups], &q.scales);
                let zeros = match &q.zeros {
                    Zeros::None => None,
                    Zeros::U8(z) => Some(self.push(
                        format!("{name}.zeros"),
                        TensorDtype::U8,
                        vec![z.len()],
                        Cow::Borrowed(z),
                    )),
                    Zeros::F32(z) => Some(self.f32(format!("{name}.zeros"), vec![z.len()], z)),
                };
                WeightStorage::Quant {
                    scheme: q.scheme,
                    numerics: q.numerics,
                    layout: q.layout,
                    codes,
                    scales,
                    zeros,
                }
            }
        };
        let storage_bytes = w.storage_bytes() as u64;
        WeightEntry {
            rows,
            cols,
            format: w.format_name(),
            storage_bytes,
            bits_per_weight: bits_per_weight(storage_bytes, rows, cols),
            storage,
        }
    }

    fn norm(&mut self, base: &str, n: &LayerNormParams) -> NormEntry {
        NormEntry {
            gamma: self.f32(format!("{base}.weight"), vec![n.gamma.len()], &n.gamma),
            beta: self.f32(format!("{base}.bias"), vec![n.beta.len()], &n.beta),
            eps: n.eps,
        }
    }

    fn linear(&mut self, base: &str, l: &'m CompressedLinear) -> LinearEntry {
        LinearEntry {
            name: l.name.clone(),
            weight: self.weight(base, &l.weight),
            bias: l
                .bias
                .as_ref()
                .map(|b| self.f32(format!("{base}.bias"), vec![b.len()], b)),
            act: l.act,
        }
    }
}

/// `bytes · 8 / (rows · cols)`, the manifest's `bits_per_weight`.
pub(crate) fn bits_per_weight(bytes: u64, rows: usize, cols: usize) -> f64 {
    bytes as f64 * 8.0 / (rows as f64 * cols as f64).max(1.0)
}

fn compress(text: &str) -> io::Result<Vec<u8>> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    z.write_all(text.as_bytes())?;
    z.finish()
}

pub(crate) fn to_bytes(model: &CompressedModel) -> Result<Vec<u8>> {
    let problems = check_model(model);
    if !problems.is_empty() {
        return Err(RuntimeError::Invalid(join_problems(problems)));
    }
    let mut t = Tensors::default();
    let e = &model.embeddings;
    let embeddings = EmbeddingsEntry {
        word: t.weight(names::EMBEDDING_TABLES[0], &e.word),
        position: t.weight(names::EMBEDDING_TABLES[1], &e.position),
        token_type: t.weight(names::EMBEDDING_TABLES[2], &e.token_type),
        norm: t.norm(names::EMBEDDINGS_NORM, &e.norm),
    };
    let mut layers = Vec::with_capacity(model.layers.len());
    for (i, l) in model.layers.iter().enumerate() {
        let p = |m: &str| names::in_layer(i, m);
        let [q, k, v, ao, fi, fo] = names::LAYER_LINEARS.map(p);
        let [attn_norm, out_norm] = names::LAYER_NORMS.map(p);
        layers.push(LayerEntry {
            query: t.linear(&q, &l.query),
            key: t.linear(&k, &l.key),
            value: t.linear(&v, &l.value),
            attn_out: t.linear(&ao, &l.attn_out),
            attn_norm: t.norm(&attn_norm, &l.attn_norm),
            ffn_in: t.linear(&fi, &l.ffn_in),
            ffn_out: t.linear(&fo, &l.ffn_out),
            out_norm: t.norm(&out_norm, &l.out_norm),
        });
    }
    let tokenizer = match &model.tokenizer {
        Some(text) => {
            let z =
                compress(text).map_err(|e| RuntimeError::Invalid(format!("compressing tokenizer.json failed: {e}")))?;
            let len = z.len();
            Some(TokenizerEntry {
                tensor: t.push(TOKENIZER_TENSOR.into(), TensorDtype::U8, vec![len], Cow::Owned(z)),
                compression: TOKENIZER_COMPRESSION.into(),
                uncompressed_bytes: text.len() as u64,
            })
        }
        None => None,
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        ember_version: model.meta.ember_version.clone(),
        architecture: model.arch.clone(),
        embeddings,
        layers,
        tokenizer,
        config: model.meta.config.clone(),
        figures: model.meta.figures.clone(),
    };
    let json = manifest
        .to_json()
        .map_err(|e| RuntimeError::Invalid(format!("the manifest does not serialize: {e}")))?;
    let mut views = Vec::with_capacity(t.list.len());
    for (r, data) in &t.list {
        let dtype = match r.dtype {
            TensorDtype::F32 => Dtype::F32,
            TensorDtype::I8 => Dtype::I8,
            TensorDtype::U8 => Dtype::U8,
        };
        let view = TensorView::new(dtype, r.shape.clone(), data)
            .map_err(|e| RuntimeError::Invalid(format!("tensor `{}`: {e}", r.name)))?;
        views.push((r.name.clone(), view));
    }
    let metadata = HashMap::from([(MANIFEST_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| RuntimeError::Invalid(format!("safetensors serialization failed: {e}")))
}

/// Writes `bytes` to `path` atomically ([`crate::output::write_atomic`]).
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::output::write_atomic(path, bytes).map_err(|source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    })
}
