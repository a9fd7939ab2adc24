//! The manifest: the JSON document in `__metadata__["ember"]` that says what every tensor of the
//! file is. Written and parsed by hand (not serde derive) so that a parse error names its key path
//! (`manifest.layers[2].query.weight.codes.shape: missing`) and every problem of the document is
//! reported, not only the first. Leaves that are serde types elsewhere (`Architecture`, `ActSpec`,
//! `Numerics`, `FloatFormat`) use their serde forms. `docs/format.md` documents every key.

use std::fmt::Write as _;

use ember_numerics::{FloatFormat, Numerics};
use ember_numerics::{GroupLayout, LinearKernel, Scheme, WeightSpec, format_name, linear_kernel, lookup_kernel};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::model::{ActRange, ActSpec, Architecture};
use crate::quant_tensor::{code_bits, row_bytes};

/// The manifest format this Ember writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `__metadata__` key that holds the manifest.
pub const MANIFEST_KEY: &str = "ember";
/// How the embedded `tokenizer.json` is compressed: a zlib stream (RFC 1950: deflate with a
/// 2-byte header and an Adler-32 trailer), what Python's `zlib.decompress` reads by default.
pub const TOKENIZER_COMPRESSION: &str = "zlib";

/// The element types an artifact uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorDtype {
    F32,
    I8,
    U8,
}

impl TensorDtype {
    /// The safetensors name (`F32`, `I8`, `U8`).
    pub fn name(self) -> &'static str {
        match self {
            TensorDtype::F32 => "F32",
            TensorDtype::I8 => "I8",
            TensorDtype::U8 => "U8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorDtype::F32 => 4,
            TensorDtype::I8 | TensorDtype::U8 => 1,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<TensorDtype> {
        match s {
            "F32" => Some(TensorDtype::F32),
            "I8" => Some(TensorDtype::I8),
            "U8" => Some(TensorDtype::U8),
            _ => None,
        }
    }
}

/// A tensor of the file, as the manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The safetensors tensor name.
    pub name: String,
    pub dtype: TensorDtype,
    pub shape: Vec<usize>,
}

impl TensorRef {
    pub(crate) fn new(name: String, dtype: TensorDtype, shape: Vec<usize>) -> TensorRef {
        TensorRef { name, dtype, shape }
    }

    /// Elements (`None` on overflow, which only a corrupt manifest declares).
    pub fn elements(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Bytes of data (saturating; a corrupt manifest's overflow is caught by the reader first).
    pub fn bytes(&self) -> u64 {
        self.elements()
            .and_then(|n| n.checked_mul(self.dtype.size()))
            .map_or(u64::MAX, |b| b as u64)
    }
}

/// The `.ember` manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub ember_version: String,
    pub architecture: Architecture,
    pub embeddings: EmbeddingsEntry,
    pub layers: Vec<LayerEntry>,
    pub tokenizer: Option<TokenizerEntry>,
    /// The resolved config (`null` for an uncompressed model).
    pub config: Value,
    /// Measured figures (`size_bytes`, `cos_mean`, …).
    pub figures: Map<String, Value>,
}

/// The embedding tables and their LayerNorm.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsEntry {
    pub word: WeightEntry,
    pub position: WeightEntry,
    pub token_type: WeightEntry,
    pub norm: NormEntry,
}

/// One encoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerEntry {
    pub query: LinearEntry,
    pub key: LinearEntry,
    pub value: LinearEntry,
    pub attn_out: LinearEntry,
    pub attn_norm: NormEntry,
    pub ffn_in: LinearEntry,
    pub ffn_out: LinearEntry,
    pub out_norm: NormEntry,
}

impl LinearEntry {
    /// The kernel family the CPU engine runs this module with, decided from the stored scheme
    /// alone (as `ember plan` predicts it).
    pub fn kernel(&self) -> LinearKernel {
        let w = &self.weight;
        linear_kernel(w.spec(), w.rows, w.cols, self.act.map(|a| a.bits))
    }
}

/// One weight-bearing module of an artifact, as `ember inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSummary {
    /// `encoder.layer.0.attention.self.query`, `embeddings.word_embeddings`.
    pub name: String,
    /// The stored format (`int8`, `uint4`, `f32`, …).
    pub format: String,
    /// Bytes of the module's tensors in the file: the weight's (codes, scales, zero points, or
    /// f32 values) plus the f32 bias, if any.
    pub bytes: u64,
    /// The kernel family (`gemm_i8i8`, `lookup_int8`, …).
    pub kernel: String,
}

impl LayerEntry {
    /// The six linears with their manifest keys, in [`crate::Layer::linears`] order.
    pub fn linears(&self) -> [(&'static str, &LinearEntry); 6] {
        [
            ("query", &self.query),
            ("key", &self.key),
            ("value", &self.value),
            ("attn_out", &self.attn_out),
            ("ffn_in", &self.ffn_in),
            ("ffn_out", &self.ffn_out),
        ]
    }
}

/// A Linear: weight, optional bias, optional input activation quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearEntry {
    /// The module's path in the source model (`encoder.layer.4.attention.self.query`).
    pub name: String,
    pub weight: WeightEntry,
    /// `F32 [rows]`.
    pub bias: Option<TensorRef>,
    pub act: Option<ActSpec>,
}

/// A LayerNorm: `F32 [d_model]` γ and β.
#[derive(Debug, Clone, PartialEq)]
pub struct NormEntry {
    pub gamma: TensorRef,
    pub beta: TensorRef,
    pub eps: f32,
}

/// A weight matrix `[rows, cols]` and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightEntry {
    pub rows: usize,
    pub cols: usize,
    /// `f32`, `int8`, `uint4`, `ternary`, `fp8-e4m3`, … (see [`crate::Weight::format_name`]).
    pub format: String,
    /// Bytes of all the weight's tensors (codes + scales + zero points, or the f32 values).
    pub storage_bytes: u64,
    /// `storage_bytes · 8 / (rows · cols)`.
    pub bits_per_weight: f64,
    pub storage: WeightStorage,
}

/// Plain f32 values or packed codes with their group parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightStorage {
    /// `F32 [rows, cols]`.
    F32 { values: TensorRef },
    /// Codes `I8|U8 [rows, row_bytes]`, scales `F32 [groups]`, zero points `U8|F32 [groups]`.
    Quant {
        scheme: Scheme,
        numerics: Numerics,
        layout: GroupLayout,
        codes: TensorRef,
        scales: TensorRef,
        zeros: Option<TensorRef>,
    },
}

/// The embedded `tokenizer.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerEntry {
    /// `U8 [compressed bytes]`.
    pub tensor: TensorRef,
    /// Always [`TOKENIZER_COMPRESSION`].
    pub compression: String,
    /// Length of the inflated `tokenizer.json`; the reader inflates no further.
    pub uncompressed_bytes: u64,
}

/// The manifest's name of a quantization scheme, its bits and float format.
pub(crate) fn scheme_parts(scheme: Scheme) -> (&'static str, u32, Option<FloatFormat>) {
    match scheme {
        Scheme::Symmetric { bits } => ("symmetric", bits, None),
        Scheme::Asymmetric { bits } => ("asymmetric", bits, None),
        Scheme::Ternary => ("ternary", 2, None),
        Scheme::Binary => ("binary", 1, None),
        Scheme::Float(f) => ("float", f.bits(), Some(f)),
    }
}

/// Columns of the `ember inspect` table.
const COLUMNS: usize = 7;

/// The dtype of a scheme's codes: `I8` for 5–8-bit symmetric (two's complement codes), `U8`
/// otherwise (offset, unsigned or packed codes).
pub(crate) fn codes_dtype(scheme: Scheme) -> TensorDtype {
    match scheme {
        Scheme::Symmetric { bits } if bits > 4 => TensorDtype::I8,
        _ => TensorDtype::U8,
    }
}

impl WeightEntry {
    /// What the weight stores (`None`: f32 values).
    pub fn spec(&self) -> Option<WeightSpec> {
        match &self.storage {
            WeightStorage::F32 { .. } => None,
            WeightStorage::Quant {
                scheme,
                numerics,
                layout,
                ..
            } => Some(WeightSpec {
                scheme: *scheme,
                numerics: *numerics,
                layout: *layout,
            }),
        }
    }

    /// Bytes of the weight's tensors, from their dtypes and shapes.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, t)| t.bytes())
            .fold(0, u64::saturating_add)
    }

    /// Every tensor of the weight.
    pub fn tensors(&self) -> Vec<(&'static str, &TensorRef)> {
        match &self.storage {
            WeightStorage::F32 { values } => vec![("values", values)],
            WeightStorage::Quant {
                codes, scales, zeros, ..
            } => {
                let mut v = vec![("codes", codes), ("scales", scales)];
                if let Some(z) = zeros {
                    v.push(("zeros", z));
                }
                v
            }
        }
    }
}

impl Manifest {
    /// Every tensor the manifest references, with its manifest key path
    /// (`layers[0].query.weight.codes`), in manifest order.
    pub fn tensors(&self) -> Vec<(String, &TensorRef)> {
        fn weight<'a>(out: &mut Vec<(String, &'a TensorRef)>, at: String, w: &'a WeightEntry) {
            for (k, t) in w.tensors() {
                out.push((format!("{at}.{k}"), t));
            }
        }
        let mut out = Vec::new();
        let e = &self.embeddings;
        for (k, w) in [
            ("word", &e.word),
            ("position", &e.position),
            ("token_type", &e.token_type),
        ] {
            weight(&mut out, format!("embeddings.{k}"), w);
        }
        out.push(("embeddings.norm.gamma".into(), &e.norm.gamma));
        out.push(("embeddings.norm.beta".into(), &e.norm.beta));
        for (i, l) in self.layers.iter().enumerate() {
            for (k, lin) in l.linears() {
                weight(&mut out, format!("layers[{i}].{k}.weight"), &lin.weight);
                if let Some(b) = &lin.bias {
                    out.push((format!("layers[{i}].{k}.bias"), b));
                }
            }
            for (k, n) in [("attn_norm", &l.attn_norm), ("out_norm", &l.out_norm)] {
                out.push((format!("layers[{i}].{k}.gamma"), &n.gamma));
                out.push((format!("layers[{i}].{k}.beta"), &n.beta));
            }
        }
        if let Some(t) = &self.tokenizer {
            out.push(("tokenizer.tensor".into(), &t.tensor));
        }
        out
    }

    /// Bytes of all tensor data in the file: weights, biases, LayerNorms and the compressed
    /// tokenizer (the file adds 8 bytes and the header).
    pub fn total_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, t)| t.bytes())
            .fold(0u64, u64::saturating_add)
    }

    /// Model parameters: weight elements, biases and LayerNorm γ/β.
    pub fn params(&self) -> u64 {
        let weights: u64 = self
            .weights()
            .iter()
            .map(|(_, _, w)| (w.rows as u64).saturating_mul(w.cols as u64))
            .fold(0, u64::saturating_add);
        let vectors: u64 = self
            .vectors()
            .iter()
            .map(|t| t.elements().unwrap_or(0) as u64)
            .fold(0, u64::saturating_add);
        weights.saturating_add(vectors)
    }

    /// Biases and LayerNorm γ/β.
    fn vectors(&self) -> Vec<&TensorRef> {
        self.tensors()
            .into_iter()
            .filter(|(k, _)| k.ends_with(".bias") || k.ends_with(".gamma") || k.ends_with(".beta"))
            .map(|(_, t)| t)
            .collect()
    }

    /// Every weight: (module name, manifest key path, entry).
    fn weights(&self) -> Vec<(String, String, &WeightEntry)> {
        let e = &self.embeddings;
        let mut out: Vec<(String, String, &WeightEntry)> = crate::names::EMBEDDING_TABLES
            .iter()
            .zip(["embeddings.word", "embeddings.position", "embeddings.token_type"])
            .zip([&e.word, &e.position, &e.token_type])
            .map(|((name, key), w)| (name.to_string(), key.to_string(), w))
            .collect();
        for (i, l) in self.layers.iter().enumerate() {
            for (k, lin) in l.linears() {
                out.push((lin.name.clone(), format!("layers[{i}].{k}.weight"), &lin.weight));
            }
        }
        out
    }

    /// Every weight-bearing module in model order: embeddings, then each layer's six Linears.
    pub fn modules(&self) -> Vec<ModuleSummary> {
        let e = &self.embeddings;
        let mut out: Vec<ModuleSummary> = crate::names::EMBEDDING_TABLES
            .into_iter()
            .zip([&e.word, &e.position, &e.token_type])
            .map(|(name, w)| ModuleSummary {
                name: name.into(),
                format: w.format.clone(),
                bytes: w.tensor_bytes(),
                kernel: lookup_kernel(w.spec()),
            })
            .collect();
        for l in &self.layers {
            for (_, lin) in l.linears() {
                out.push(ModuleSummary {
                    name: lin.name.clone(),
                    format: lin.weight.format.clone(),
                    bytes: lin
                        .weight
                        .tensor_bytes()
                        .saturating_add(lin.bias.as_ref().map_or(0, TensorRef::bytes)),
                    kernel: lin.kernel().name(),
                });
            }
        }
        out
    }

    /// A table for `ember inspect`: per module its format, shape, bytes, bits per weight and
    /// activation quantization; then biases + LayerNorms, the tokenizer, and the totals.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; COLUMNS]> = Vec::new();
        rows.push(["module", "format", "shape", "bytes", "bits/w", "act", "kernel"].map(String::from));
        let e = &self.embeddings;
        let mut weight_row = |name: &str, w: &WeightEntry, act: Option<&ActSpec>, kernel: String| {
            rows.push([
                name.to_string(),
                w.format.clone(),
                format!("{}×{}", w.rows, w.cols),
                group_digits(w.storage_bytes),
                format!("{:.2}", w.bits_per_weight),
                act.map_or("-".into(), act_text),
                kernel,
            ]);
        };
        for (name, w) in [
            ("embeddings.word_embeddings", &e.word),
            ("embeddings.position_embeddings", &e.position),
            ("embeddings.token_type_embeddings", &e.token_type),
        ] {
            weight_row(name, w, None, lookup_kernel(w.spec()));
        }
        for l in &self.layers {
            for (_, lin) in l.linears() {
                weight_row(&lin.name, &lin.weight, lin.act.as_ref(), lin.kernel().name());
            }
        }
        let mut weight_bytes = 0u64;
        let mut weight_params = 0u64;
        for (_, _, w) in self.weights() {
            weight_bytes = weight_bytes.saturating_add(w.storage_bytes);
            weight_params = weight_params.saturating_add((w.rows as u64).saturating_mul(w.cols as u64));
        }
        let vectors = self.vectors();
        let vector_bytes: u64 = vectors.iter().map(|t| t.bytes()).fold(0, u64::saturating_add);
        let vector_params: u64 = vectors
            .iter()
            .map(|t| t.elements().unwrap_or(0) as u64)
            .fold(0, u64::saturating_add);
        rows.push([
            format!("biases and LayerNorms ({} tensors)", vectors.len()),
            "f32".into(),
            format!("{} values", group_digits(vector_params)),
            group_digits(vector_bytes),
            "32.00".into(),
            "-".into(),
            "-".into(),
        ]);
        if let Some(t) = &self.tokenizer {
            rows.push([
                format!(
                    "tokenizer.json ({}, {} bytes inflated)",
                    t.compression,
                    group_digits(t.uncompressed_bytes)
                ),
                "-".into(),
                "-".into(),
                group_digits(t.tensor.bytes()),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        let mut widths = [0usize; COLUMNS];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                let pad = w - c.chars().count();
                // Numbers right-aligned, text left-aligned.
                if (3..=4).contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    if i + 1 < COLUMNS {
                        line.push_str(&" ".repeat(pad));
                    }
                }
                if i + 1 < COLUMNS {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let params = weight_params.saturating_add(vector_params);
        let model_bytes = weight_bytes.saturating_add(vector_bytes);
        let f32_bytes = params.saturating_mul(4);
        let _ = writeln!(
            out,
            "total: {} params in {} bytes ({:.2} bits/weight), {:.2}× smaller than f32 ({} bytes); \
             {} bytes of tensor data with the tokenizer",
            group_digits(params),
            group_digits(model_bytes),
            model_bytes as f64 * 8.0 / params.max(1) as f64,
            f32_bytes as f64 / model_bytes.max(1) as f64,
            group_digits(f32_bytes),
            group_digits(self.total_bytes()),
        );
        out
    }

    /// The manifest as the JSON value stored in the file.
    pub fn to_value(&self) -> Result<Value, String> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            layers.push(json!({
                "query": linear_json(&l.query)?,
                "key": linear_json(&l.key)?,
                "value": linear_json(&l.value)?,
                "attn_out": linear_json(&l.attn_out)?,
                "attn_norm": norm_json(&l.attn_norm),
                "ffn_in": linear_json(&l.ffn_in)?,
                "ffn_out": linear_json(&l.ffn_out)?,
                "out_norm": norm_json(&l.out_norm),
            }));
        }
        let e = &self.embeddings;
        Ok(json!({
            "format_version": self.format_version,
            "ember_version": self.ember_version,
            "architecture": serde_json::to_value(&self.architecture).map_err(|e| e.to_string())?,
            "embeddings": {
                "word": weight_json(&e.word),
                "position": weight_json(&e.position),
                "token_type": weight_json(&e.token_type),
                "norm": norm_json(&e.norm),
            },
            "layers": layers,
            "tokenizer": self.tokenizer.as_ref().map(|t| json!({
                "tensor": ref_json(&t.tensor),
                "compression": t.compression,
                "uncompressed_bytes": t.uncompressed_bytes,
            })),
            "config": self.config,
            "figures": self.figures,
        }))
    }

    /// The manifest as JSON text.
    pub(crate) fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(&self.to_value()?).map_err(|e| e.to_string())
    }

    /// Parses manifest JSON text: structure, types and the manifest's own consistency (format
    /// names, code bits, row bytes agree with the scheme). Every problem found is returned.
    pub(crate) fn from_json(text: &str) -> Result<Manifest, Vec<String>> {
        let value: Value = serde_json::from_str(text).map_err(|e| vec![format!("manifest is not valid JSON: {e}")])?;
        let mut p = Vec::new();
        let m = parse_manifest(&value, &mut p);
        match m {
            Some(m) if p.is_empty() => Ok(m),
            _ => {
                if p.is_empty() {
                    p.push("manifest: invalid".into());
                }
                Err(p)
            }
        }
    }
}

/// Serializes as the JSON document stored in the file (`ember inspect --json`).
impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

fn act_text(a: &ActSpec) -> String {
    let kind = if a.symmetric { "sym" } else { "asym" };
    match a.range {
        ActRange::Dynamic => format!("a{} {kind} per-token", a.bits),
        ActRange::Static { min, max } => format!("a{} {kind} static [{min}, {max}]", a.bits),
    }
}

/// `1234567` → `1,234,567`.
fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ref_json(t: &TensorRef) -> Value {
    json!({ "name": t.name, "dtype": t.dtype.name(), "shape": t.shape })
}

fn norm_json(n: &NormEntry) -> Value {
    json!({ "gamma": ref_json(&n.gamma), "beta": ref_json(&n.beta), "eps": n.eps })
}

fn linear_json(l: &LinearEntry) -> Result<Value, String> {
    Ok(json!({
        "name": l.name,
        "weight": weight_json(&l.weight),
        "bias": l.bias.as_ref().map(ref_json),
        "act": match &l.act {
            Some(a) => serde_json::to_value(a).map_err(|e| e.to_string())?,
            None => Value::Null,
        },
    }))
}

fn layout_json(l: GroupLayout) -> Value {
    match l {
        GroupLayout::PerRow => json!({ "kind": "per_row" }),
        GroupLayout::RowGroups(size) => json!({ "kind": "row_groups", "size": size }),
        GroupLayout::Chunks(count) => json!({ "kind": "chunks", "count": count }),
    }
}

fn weight_json(w: &WeightEntry) -> Value {
    let mut m = Map::new();
    m.insert("shape".into(), json!([w.rows, w.cols]));
    m.insert("format".into(), json!(w.format));
    m.insert("storage_bytes".into(), json!(w.storage_bytes));
    m.insert("bits_per_weight".into(), json!(w.bits_per_weight));
    match &w.storage {
        WeightStorage::F32 { values } => {
            m.insert("values".into(), ref_json(values));
        }
        WeightStorage::Quant {
            scheme,
            numerics,
            layout,
            codes,
            scales,
            zeros,
        } => {
            let (name, bits, float_format) = scheme_parts(*scheme);
            m.insert("scheme".into(), json!(name));
            m.insert("bits".into(), json!(bits));
            m.insert("float_format".into(), json!(float_format));
            m.insert("numerics".into(), json!(numerics));
            m.insert("layout".into(), layout_json(*layout));
            m.insert("code_bits".into(), json!(code_bits(*scheme)));
            m.insert("row_bytes".into(), json!(row_bytes(*scheme, w.cols)));
            m.insert("codes".into(), ref_json(codes));
            m.insert("scales".into(), ref_json(scales));
            m.insert("zeros".into(), zeros.as_ref().map_or(Value::Null, ref_json));
        }
    }
    Value::Object(m)
}

// ---- parsing ------------------------------------------------------------------------------------

type Problems = Vec<String>;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being parsed, with its key path for messages.
struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
}

impl<'v> Obj<'v> {
    fn new(v: &'v Value, path: String, p: &mut Problems) -> Option<Obj<'v>> {
        match v {
            Value::Object(map) => Some(Obj { path, map }),
            other => {
                p.push(format!("{path}: expected an object, found {}", kind(other)));
                None
            }
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn field(&self, key: &str, p: &mut Problems) -> Option<&'v Value> {
        let v = self.map.get(key);
        if v.is_none() {
            p.push(format!("{}: missing", self.at(key)));
        }
        v
    }

    fn de<T: DeserializeOwned>(&self, key: &str, p: &mut Problems) -> Option<T> {
        let v = self.field(key, p)?;
        serde_json::from_value(v.clone())
            .map_err(|e| p.push(format!("{}: {e}", self.at(key))))
            .ok()
    }

    fn obj(&self, key: &str, p: &mut Problems) -> Option<Obj<'v>> {
        Obj::new(self.field(key, p)?, self.at(key), p)
    }

    /// A key whose value may be `null` (the key itself is required).
    fn nullable<T>(
        &self,
        key: &str,
        p: &mut Problems,
        parse: impl FnOnce(&'v Value, String, &mut Problems) -> Option<T>,
    ) -> Option<Option<T>> {
        let v = self.field(key, p)?;
        if v.is_null() {
            Some(None)
        } else {
            parse(v, self.at(key), p).map(Some)
        }
    }

    /// Reports keys that are not in `keys`.
    fn known(&self, keys: &[&str], p: &mut Problems) {
        for k in self.map.keys() {
            if !keys.contains(&k.as_str()) {
                p.push(format!(
                    "{}: unknown key (expected one of {})",
                    self.at(k),
                    keys.join(", ")
                ));
            }
        }
    }
}

fn parse_manifest(v: &Value, p: &mut Problems) -> Option<Manifest> {
    let o = Obj::new(v, "manifest".into(), p)?;
    // The version first: a newer file gets "upgrade", not a list of unknown keys.
    let version: u64 = o.de("format_version", p)?;
    if version != u64::from(FORMAT_VERSION) {
        p.push(format!(
            "manifest.format_version: {version} is not supported; this Ember reads format version \
             {FORMAT_VERSION} (a file from a newer Ember needs a newer Ember)"
        ));
        return None;
    }
    o.known(
        &[
            "format_version",
            "ember_version",
            "architecture",
            "embeddings",
            "layers",
            "tokenizer",
            "config",
            "figures",
        ],
        p,
    );
    let ember_version: Option<String> = o.de("ember_version", p);
    let architecture: Option<Architecture> = o.de("architecture", p);
    let embeddings = o.obj("embeddings", p).and_then(|e| {
        e.known(&["word", "position", "token_type", "norm"], p);
        let word = weight(&e, "word", p);
        let position = weight(&e, "position", p);
        let token_type = weight(&e, "token_type", p);
        let norm = norm(&e, "norm", p);
        Some(EmbeddingsEntry {
            word: word?,
            position: position?,
            token_type: token_type?,
            norm: norm?,
        })
    });
    let layers = o.field("layers", p).and_then(|v| match v {
        Value::Array(items) => {
            let parsed: Vec<Option<LayerEntry>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| layer(item, format!("manifest.layers[{i}]"), p))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
        other => {
            p.push(format!("manifest.layers: expected an array, found {}", kind(other)));
            None
        }
    });
    let tokenizer = o.nullable("tokenizer", p, |v, path, p| {
        let t = Obj::new(v, path, p)?;
        t.known(&["tensor", "compression", "uncompressed_bytes"], p);
        let tensor = tensor_ref(&t, "tensor", p);
        let compression: Option<String> = t.de("compression", p);
        if let Some(c) = &compression
            && c != TOKENIZER_COMPRESSION
        {
            p.push(format!(
                "{}: `{c}` is not supported; expected `{TOKENIZER_COMPRESSION}`",
                t.at("compression")
            ));
        }
        let uncompressed_bytes: Option<u64> = t.de("uncompressed_bytes", p);
        Some(TokenizerEntry {
            tensor: tensor?,
            compression: compression?,
            uncompressed_bytes: uncompressed_bytes?,
        })
    });
    let config = o.field("config", p).cloned();
    let figures = o.field("figures", p).and_then(|v| match v {
        Value::Object(m) => Some(m.clone()),
        other => {
            p.push(format!("manifest.figures: expected an object, found {}", kind(other)));
            None
        }
    });
    Some(Manifest {
        format_version: FORMAT_VERSION,
        ember_version: ember_version?,
        architecture: architecture?,
        embeddings: embeddings?,
        layers: layers?,
        tokenizer: tokenizer?,
        config: config?,
        figures: figures?,
    })
}

fn layer(v: &Value, path: String, p: &mut Problems) -> Option<LayerEntry> {
    let o = Obj::new(v, path, p)?;
    o.known(
        &[
            "query",
            "key",
            "value",
            "attn_out",
            "attn_norm",
            "ffn_in",
            "ffn_out",
            "out_norm",
        ],
        p,
    );
    let query = linear(&o, "query", p);
    let key = linear(&o, "key", p);
    let value = linear(&o, "value", p);
    let attn_out = linear(&o, "attn_out", p);
    let attn_norm = norm(&o, "attn_norm", p);
    let ffn_in = linear(&o, "ffn_in", p);
    let ffn_out = linear(&o, "ffn_out", p);
    let out_norm = norm(&o, "out_norm", p);
    Some(LayerEntry {
        query: query?,
        key: key?,
        value: value?,
        attn_out: attn_out?,
        attn_norm: attn_norm?,
        ffn_in: ffn_in?,
        ffn_out: ffn_out?,
        out_norm: out_norm?,
    })
}

fn linear(parent: &Obj<'_>, key: &str, p: &mut Problems) -> Option<LinearEntry> {
    let o = parent.obj(key, p)?;
    o.known(&["name", "weight", "bias", "act"], p);
    let name: Option<String> = o.de("name", p);
    let w = weight(&o, "weight", p);
    let bias = o.nullable("bias", p, tensor_ref_value);
    let act = o.nullable("act", p, |v, path, p| {
        serde_json::from_value::<ActSpec>(v.clone())
            .map_err(|e| p.push(format!("{path}: {e}")))
            .ok()
    });
    Some(LinearEntry {
        name: name?,
        weight: w?,
        bias: bias?,
        act: act?,
    })
}

fn norm(parent: &Obj<'_>, key: &str, p: &mut Problems) -> Option<NormEntry> {
    let o = parent.obj(key, p)?;
    o.known(&["gamma", "beta", "eps"], p);
    let gamma = tensor_ref(&o, "gamma", p);
    let beta = tensor_ref(&o, "beta", p);
    let eps: Option<f32> = o.de("eps", p);
    Some(NormEntry {
        gamma: gamma?,
        beta: beta?,
        eps: eps?,
    })
}

fn tensor_ref(parent: &Obj<'_>, key: &str, p: &mut Problems) -> Option<TensorRef> {
    tensor_ref_value(parent.field(key, p)?, parent.at(key), p)
}

fn tensor_ref_value(v: &Value, path: String, p: &mut Problems) -> Option<TensorRef> {
    let o = Obj::new(v, path, p)?;
    o.known(&["name", "dtype", "shape"], p);
    let name: Option<String> = o.de("name", p);
    let dtype = o.de::<String>("dtype", p).and_then(|d| {
        let t = TensorDtype::parse(&d);
        if t.is_none() {
            p.push(format!("{}: `{d}` is not one of F32, I8, U8", o.at("dtype")));
        }
        t
    });
    let shape: Option<Vec<usize>> = o.de("shape", p);
    Some(TensorRef {
        name: name?,
        dtype: dtype?,
        shape: shape?,
    })
}

const WEIGHT_KEYS: [&str; 4] = ["shape", "format", "storage_bytes", "bits_per_weight"];

fn weight(parent: &Obj<'_>, key: &str, p: &mut Problems) -> Option<WeightEntry> {
    let o = parent.obj(key, p)?;
    let shape: Option<[usize; 2]> = o.de("shape", p);
    let format: Option<String> = o.de("format", p);
    let storage_bytes: Option<u64> = o.de("storage_bytes", p);
    let bits_per_weight: Option<f64> = o.de("bits_per_weight", p);
    let format = format?;
    let [rows, cols] = shape?;
    let storage = if format == "f32" {
        o.known(&[&WEIGHT_KEYS[..], &["values"]].concat(), p);
        let values = tensor_ref(&o, "values", p)?;
        WeightStorage::F32 { values }
    } else {
        o.known(
            &[
                &WEIGHT_KEYS[..],
                &[
                    "scheme",
                    "bits",
                    "float_format",
                    "numerics",
                    "layout",
                    "code_bits",
                    "row_bytes",
                    "codes",
                    "scales",
                    "zeros",
                ],
            ]
            .concat(),
            p,
        );
        let scheme = scheme(&o, p);
        let numerics: Option<Numerics> = o.de("numerics", p);
        let layout = layout(&o, p);
        let declared_code_bits: Option<usize> = o.de("code_bits", p);
        let declared_row_bytes: Option<usize> = o.de("row_bytes", p);
        let codes = tensor_ref(&o, "codes", p);
        let scales = tensor_ref(&o, "scales", p);
        let zeros = o.nullable("zeros", p, tensor_ref_value);
        let scheme = scheme?;
        let name = format_name(scheme);
        if format != name {
            p.push(format!(
                "{}: `{format}` does not match the scheme, which is {name}",
                o.at("format")
            ));
        }
        if let Some(b) = declared_code_bits
            && b != code_bits(scheme)
        {
            p.push(format!(
                "{}: {b}, but {name} stores {}-bit codes",
                o.at("code_bits"),
                code_bits(scheme)
            ));
        }
        if let Some(b) = declared_row_bytes
            && Some(b) != cols.checked_mul(code_bits(scheme)).map(|bits| bits.div_ceil(8))
        {
            p.push(format!(
                "{}: {b}, but a row of {cols} {name} codes takes {} bytes",
                o.at("row_bytes"),
                cols.saturating_mul(code_bits(scheme)).div_ceil(8)
            ));
        }
        WeightStorage::Quant {
            scheme,
            numerics: numerics?,
            layout: layout?,
            codes: codes?,
            scales: scales?,
            zeros: zeros?,
        }
    };
    Some(WeightEntry {
        rows,
        cols,
        format,
        storage_bytes: storage_bytes?,
        bits_per_weight: bits_per_weight?,
        storage,
    })
}

fn scheme(o: &Obj<'_>, p: &mut Problems) -> Option<Scheme> {
    let name: Option<String> = o.de("scheme", p);
    let bits: Option<u32> = o.de("bits", p);
    let float_format = o.nullable("float_format", p, |v, path, p| {
        serde_json::from_value::<FloatFormat>(v.clone())
            .map_err(|e| p.push(format!("{path}: {e}")))
            .ok()
    });
    let (name, bits, float_format) = (name?, bits?, float_format?);
    let at = o.at("scheme");
    let scheme = match (name.as_str(), float_format) {
        ("symmetric" | "asymmetric", None) => {
            if !(3..=8).contains(&bits) {
                p.push(format!("{}: {bits}; integer schemes take 3 to 8 bits", o.at("bits")));
                return None;
            }
            if name == "symmetric" {
                Scheme::Symmetric { bits }
            } else {
                Scheme::Asymmetric { bits }
            }
        }
        ("ternary", None) => Scheme::Ternary,
        ("binary", None) => Scheme::Binary,
        ("float", Some(f)) => Scheme::Float(f),
        ("float", None) => {
            p.push(format!("{}: null, but a float scheme needs one", o.at("float_format")));
            return None;
        }
        ("symmetric" | "asymmetric" | "ternary" | "binary", Some(_)) => {
            p.push(format!(
                "{}: set, but only the float scheme has a float format",
                o.at("float_format")
            ));
            return None;
        }
        (other, _) => {
            p.push(format!(
                "{at}: `{other}` is not one of symmetric, asymmetric, ternary, binary, float"
            ));
            return None;
        }
    };
    let (_, want, _) = scheme_parts(scheme);
    if bits != want {
        p.push(format!(
            "{}: {bits}, but {} has {want} bits",
            o.at("bits"),
            format_name(scheme)
        ));
        return None;
    }
    Some(scheme)
}

fn layout(parent: &Obj<'_>, p: &mut Problems) -> Option<GroupLayout> {
    let o = parent.obj("layout", p)?;
    let kind: String = o.de("kind", p)?;
    let positive = |key: &str, p: &mut Problems| -> Option<usize> {
        let n: usize = o.de(key, p)?;
        if n == 0 {
            p.push(format!("{}: 0; must be at least 1", o.at(key)));
            return None;
        }
        Some(n)
    };
    match kind.as_str() {
        "per_row" => {
            o.known(&["kind"], p);
            Some(GroupLayout::PerRow)
        }
        "row_groups" => {
            o.known(&["kind", "size"], p);
            positive("size", p).map(GroupLayout::RowGroups)
        }
        "chunks" => {
            o.known(&["kind", "count"], p);
            positive("count", p).map(GroupLayout::Chunks)
        }
        other => {
            p.push(format!(
                "{}: `{other}` is not one of per_row, row_groups, chunks",
                o.at("kind")
            ));
            None
        }
    }
}
