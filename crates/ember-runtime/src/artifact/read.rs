//! Reading, in the order that keeps a bad file cheap: the 8-byte header length against the file
//! size and a cap, then the header (safetensors tensor index + manifest) against itself, the
//! architecture and the data length, and only then the tensor data; the decoded model is checked
//! once more for values (codes in range, finite floats) and the tokenizer is inflated no further
//! than its declared length.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use ember_numerics::Scheme;
use flate2::{Decompress, FlushDecompress, Status};
use serde_json::{Map, Value};

use super::manifest::{
    LinearEntry, MANIFEST_KEY, Manifest, NormEntry, TensorDtype, TensorRef, WeightEntry, WeightStorage, codes_dtype,
};
use super::write::bits_per_weight;
use super::{MAX_HEADER_BYTES, MAX_TOKENIZER_BYTES};
use crate::check::{check_arch, check_model, join_problems};
use crate::error::{Result, RuntimeError};
use crate::model::{CompressedLinear, CompressedModel, Embeddings, Layer, LayerNormParams, Meta, Weight};
use crate::quant_tensor::{QuantTensor, Zeros, row_bytes};

fn artifact(origin: &Path, reason: String) -> RuntimeError {
    RuntimeError::Artifact {
        path: origin.to_path_buf(),
        reason,
    }
}

fn io(origin: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: origin.to_path_buf(),
        source,
    }
}

/// A tensor of the safetensors header.
#[derive(Debug)]
struct Entry {
    dtype: TensorDtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A validated header: manifest and tensor index agree with each other and with the data length.
pub(crate) struct Header {
    pub manifest: Manifest,
    index: BTreeMap<String, Entry>,
}

/// The header length from the 8-byte prefix, checked against the cap and the file length.
fn header_len(prefix: [u8; 8], file_len: u64) -> Result<usize, String> {
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "the header length prefix says {n} bytes, over the {MAX_HEADER_BYTES}-byte limit \
             (not a safetensors file, or a corrupt one)"
        ));
    }
    if n < 2 {
        return Err(format!(
            "the header length prefix says {n} bytes, too short for a JSON header"
        ));
    }
    let available = file_len.saturating_sub(8);
    if n > available {
        return Err(format!(
            "the header length prefix says {n} bytes but only {available} bytes follow it \
             (the file is truncated, or not a safetensors file)"
        ));
    }
    // n ≤ MAX_HEADER_BYTES fits in usize on every supported platform.
    usize::try_from(n).map_err(|_| format!("header length {n} does not fit in memory"))
}

fn too_short(file_len: u64) -> String {
    format!("the file is {file_len} bytes, too short for a safetensors header (8-byte length + JSON)")
}

pub(crate) fn read_file(path: &Path) -> Result<CompressedModel> {
    let (header, mut file, data_len) = read_header_file(path)?;
    let data_len =
        usize::try_from(data_len).map_err(|_| artifact(path, "the tensor data does not fit in memory".into()))?;
    let mut data = Vec::new();
    data.try_reserve_exact(data_len)
        .map_err(|_| artifact(path, format!("cannot allocate {data_len} bytes for the tensor data")))?;
    (&mut file)
        .take(data_len as u64)
        .read_to_end(&mut data)
        .map_err(io(path))?;
    if data.len() != data_len {
        return Err(artifact(
            path,
            format!(
                "the file ended after {} of {data_len} bytes of tensor data (it changed while being read?)",
                data.len()
            ),
        ));
    }
    decode(header, &data).map_err(|p| artifact(path, join_problems(p)))
}

pub(crate) fn read_manifest_file(path: &Path) -> Result<Manifest> {
    read_header_file(path).map(|(h, _, _)| h.manifest)
}

/// Opens `path` and reads and validates its header; returns the file positioned at the data.
fn read_header_file(path: &Path) -> Result<(Header, File, u64)> {
    let mut file = File::open(path).map_err(io(path))?;
    let file_len = file.metadata().map_err(io(path))?.len();
    if file_len < 8 {
        return Err(artifact(path, too_short(file_len)));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io(path))?;
    let n = header_len(prefix, file_len).map_err(|r| artifact(path, r))?;
    let mut header = vec![0u8; n];
    file.read_exact(&mut header).map_err(io(path))?;
    let data_len = file_len - 8 - n as u64;
    let h = parse_header(&header, data_len).map_err(|p| artifact(path, join_problems(p)))?;
    Ok((h, file, data_len))
}

pub(crate) fn from_bytes(bytes: &[u8], origin: &Path) -> Result<CompressedModel> {
    let file_len = bytes.len() as u64;
    let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(artifact(origin, too_short(file_len)));
    };
    let n = header_len(*prefix, file_len).map_err(|r| artifact(origin, r))?;
    let (header, data) = rest.split_at(n);
    let h = parse_header(header, data.len() as u64).map_err(|p| artifact(origin, join_problems(p)))?;
    decode(h, data).map_err(|p| artifact(origin, join_problems(p)))
}

/// The message for a safetensors file that is not an Ember artifact.
fn no_manifest() -> String {
    format!(
        "no Ember manifest: `__metadata__.{MANIFEST_KEY}` is missing. This is a plain safetensors file \
         (an HF `model.safetensors`?): pass its model directory or a known model name instead, or \
         compose an artifact with `ember compose --config <recipe> --out model.ember`"
    )
}

/// Parses the safetensors header and the manifest and checks them against each other, the
/// architecture and the length of the data that follows.
fn parse_header(bytes: &[u8], data_len: u64) -> Result<Header, Vec<String>> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| vec![format!("the header is not UTF-8 text (corrupt file?): {e}")])?;
    let map: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        vec![format!(
            "the header is not a safetensors JSON object (corrupt file?): {e}"
        )]
    })?;
    let mut p = Vec::new();
    let mut manifest_text = None;
    let mut index = BTreeMap::new();
    for (name, v) in &map {
        if name == "__metadata__" {
            match v {
                Value::Object(meta) => {
                    for (k, v) in meta {
                        match (k.as_str(), v) {
                            (MANIFEST_KEY, Value::String(s)) => manifest_text = Some(s.as_str()),
                            (_, Value::String(_)) => {} // other tools' metadata: ignored
                            (k, other) => p.push(format!(
                                "__metadata__.{k}: safetensors metadata values are strings, found {}",
                                json_kind(other)
                            )),
                        }
                    }
                }
                other => p.push(format!("__metadata__: expected an object, found {}", json_kind(other))),
            }
            continue;
        }
        match parse_entry(name, v) {
            Ok(e) => {
                index.insert(name.clone(), e);
            }
            Err(e) => p.push(e),
        }
    }
    if manifest_text.is_none() {
        // A safetensors file without Ember's manifest (an HF checkpoint?): saying so is the whole
        // story; its tensors' dtypes and layout are not an artifact's problems.
        return Err(vec![no_manifest()]);
    }
    check_offsets(&index, data_len, &mut p);
    if !p.is_empty() {
        // A truncated or corrupt tensor index: the manifest's problems would only be echoes.
        return Err(p);
    }
    let Some(manifest_text) = manifest_text else {
        p.push(no_manifest());
        return Err(p);
    };
    let manifest = match Manifest::from_json(manifest_text) {
        Ok(m) => m,
        Err(mut problems) => {
            p.append(&mut problems);
            return Err(p);
        }
    };
    check_consistency(&manifest, &index, &mut p);
    if p.is_empty() {
        Ok(Header { manifest, index })
    } else {
        Err(p)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One tensor entry: `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`.
fn parse_entry(name: &str, v: &Value) -> Result<Entry, String> {
    let at = format!("tensor `{name}`");
    let Value::Object(o) = v else {
        return Err(format!("{at}: expected an object, found {}", json_kind(v)));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !["dtype", "shape", "data_offsets"].contains(&k.as_str()))
    {
        return Err(format!("{at}: unknown key `{k}`"));
    }
    let field = |k: &str| o.get(k).ok_or_else(|| format!("{at}: `{k}` is missing"));
    let dtype = match field("dtype")? {
        Value::String(s) => TensorDtype::parse(s)
            .ok_or_else(|| format!("{at}: dtype `{s}` is not used by .ember files (F32, I8, U8)"))?,
        other => return Err(format!("{at}: dtype must be a string, found {}", json_kind(other))),
    };
    let shape: Vec<usize> = serde_json::from_value(field("shape")?.clone())
        .map_err(|e| format!("{at}: shape must be a list of sizes: {e}"))?;
    let [begin, end]: [u64; 2] = serde_json::from_value(field("data_offsets")?.clone())
        .map_err(|e| format!("{at}: data_offsets must be [begin, end]: {e}"))?;
    if begin > end {
        return Err(format!("{at}: data_offsets [{begin}, {end}] end before they begin"));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("{at}: shape {shape:?} is too large"))?;
    if bytes as u64 != end - begin {
        return Err(format!(
            "{at}: a {} tensor of shape {shape:?} is {bytes} bytes but its data_offsets span {}",
            dtype.name(),
            end - begin
        ));
    }
    let (Ok(begin), Ok(end)) = (usize::try_from(begin), usize::try_from(end)) else {
        return Err(format!("{at}: data_offsets do not fit in memory"));
    };
    Ok(Entry {
        dtype,
        shape,
        begin,
        end,
    })
}

/// Tensors must tile the data exactly: contiguous from 0, no overlap, ending at the file's end.
fn check_offsets(index: &BTreeMap<String, Entry>, data_len: u64, p: &mut Vec<String>) {
    let mut by_offset: Vec<(&String, &Entry)> = index.iter().collect();
    by_offset.sort_by_key(|(_, e)| (e.begin, e.end));
    let mut at = 0usize;
    for (name, e) in by_offset {
        if e.begin != at {
            p.push(format!(
                "tensor `{name}`: data starts at byte {} but the previous tensor ends at {at} \
                 (overlapping or gapped tensors)",
                e.begin
            ));
            return;
        }
        at = e.end;
    }
    let end = at as u64;
    if end > data_len {
        p.push(format!(
            "the tensors need {end} bytes of data but the file holds {data_len} after the header \
             (the file is truncated)"
        ));
    } else if end < data_len {
        p.push(format!(
            "the file holds {} bytes after the last tensor that no tensor accounts for",
            data_len - end
        ));
    }
}

/// `[a, b]` for messages.
fn dims(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// The manifest against the architecture (every declared dtype and shape is the one the
/// architecture and scheme imply) and against the tensor index (every declared tensor is there
/// as declared, every tensor is declared exactly once).
fn check_consistency(m: &Manifest, index: &BTreeMap<String, Entry>, p: &mut Vec<String>) {
    let layer_dims = match check_arch(&m.architecture, "manifest.architecture") {
        Ok(d) => d,
        Err(mut problems) => {
            p.append(&mut problems);
            return;
        }
    };
    let a = &m.architecture;
    let d = a.d_model;
    if m.layers.len() != layer_dims.len() {
        p.push(format!(
            "manifest.layers: {} entries but the architecture has {} layers",
            m.layers.len(),
            layer_dims.len()
        ));
    }
    let e = &m.embeddings;
    check_weight_entry("manifest.embeddings.word", &e.word, a.vocab_size, d, p);
    check_weight_entry("manifest.embeddings.position", &e.position, a.max_positions, d, p);
    check_weight_entry("manifest.embeddings.token_type", &e.token_type, a.type_vocab_size, d, p);
    check_norm_entry("manifest.embeddings.norm", &e.norm, d, p);
    for (i, (l, ld)) in m.layers.iter().zip(&layer_dims).enumerate() {
        let shapes = crate::names::layer_linear_shapes(d, ld.attn, ld.d_ff);
        for ((k, lin), (rows, cols)) in l.linears().into_iter().zip(shapes) {
            check_linear_entry(&format!("manifest.layers[{i}].{k}"), lin, rows, cols, p);
        }
        check_norm_entry(&format!("manifest.layers[{i}].attn_norm"), &l.attn_norm, d, p);
        check_norm_entry(&format!("manifest.layers[{i}].out_norm"), &l.out_norm, d, p);
    }
    if let Some(t) = &m.tokenizer {
        expect_ref(
            "manifest.tokenizer.tensor",
            &t.tensor,
            TensorDtype::U8,
            &[t.tensor.shape.first().copied().unwrap_or(0)],
            "a compressed tokenizer",
            p,
        );
        if t.uncompressed_bytes > MAX_TOKENIZER_BYTES {
            p.push(format!(
                "manifest.tokenizer.uncompressed_bytes: {} is over the {MAX_TOKENIZER_BYTES}-byte limit",
                t.uncompressed_bytes
            ));
        }
    }
    // Declared tensors against the file's.
    let mut referenced: BTreeMap<&str, String> = BTreeMap::new();
    for (key, r) in m.tensors() {
        let at = format!("manifest.{key}");
        if let Some(first) = referenced.insert(&r.name, at.clone()) {
            p.push(format!("{at}: tensor `{}` is already used by {first}", r.name));
            continue;
        }
        match index.get(&r.name) {
            None => p.push(format!("{at}: tensor `{}` is not in the file", r.name)),
            Some(e) if e.dtype != r.dtype || e.shape != r.shape => p.push(format!(
                "{at}: tensor `{}` is {} {} in the file but the manifest declares {} {}",
                r.name,
                e.dtype.name(),
                dims(&e.shape),
                r.dtype.name(),
                dims(&r.shape)
            )),
            Some(_) => {}
        }
    }
    for name in index.keys() {
        if !referenced.contains_key(name.as_str()) {
            p.push(format!("tensor `{name}` is in the file but not in the manifest"));
        }
    }
}

fn expect_ref(at: &str, r: &TensorRef, dtype: TensorDtype, shape: &[usize], what: &str, p: &mut Vec<String>) {
    if r.dtype != dtype || r.shape != shape {
        p.push(format!(
            "{at}: declared {} {}, but {what} is {} {}",
            r.dtype.name(),
            dims(&r.shape),
            dtype.name(),
            dims(shape)
        ));
    }
}

fn check_norm_entry(at: &str, n: &NormEntry, d: usize, p: &mut Vec<String>) {
    expect_ref(
        &format!("{at}.gamma"),
        &n.gamma,
        TensorDtype::F32,
        &[d],
        "LayerNorm γ",
        p,
    );
    expect_ref(&format!("{at}.beta"), &n.beta, TensorDtype::F32, &[d], "LayerNorm β", p);
}

fn check_linear_entry(at: &str, l: &LinearEntry, rows: usize, cols: usize, p: &mut Vec<String>) {
    check_weight_entry(&format!("{at}.weight"), &l.weight, rows, cols, p);
    if let Some(b) = &l.bias {
        expect_ref(&format!("{at}.bias"), b, TensorDtype::F32, &[rows], "the bias", p);
    }
}

fn check_weight_entry(at: &str, w: &WeightEntry, rows: usize, cols: usize, p: &mut Vec<String>) {
    if (w.rows, w.cols) != (rows, cols) {
        p.push(format!(
            "{at}.shape: [{}, {}] but the architecture needs [{rows}, {cols}]",
            w.rows, w.cols
        ));
        return;
    }
    let bytes: u64 = w.tensors().iter().map(|(_, t)| t.bytes()).fold(0, u64::saturating_add);
    match &w.storage {
        WeightStorage::F32 { values } => {
            expect_ref(
                &format!("{at}.values"),
                values,
                TensorDtype::F32,
                &[rows, cols],
                "an f32 weight",
                p,
            );
        }
        WeightStorage::Quant {
            scheme,
            layout,
            codes,
            scales,
            zeros,
            ..
        } => {
            if !layout.fits(rows, cols) {
                p.push(format!(
                    "{at}.layout: {layout:?} does not divide a [{rows}, {cols}] weight"
                ));
                return;
            }
            let groups = layout.groups(rows, cols);
            expect_ref(
                &format!("{at}.codes"),
                codes,
                codes_dtype(*scheme),
                &[rows, row_bytes(*scheme, cols)],
                &format!("a [{rows}, {cols}] {} weight's codes", w.format),
                p,
            );
            expect_ref(
                &format!("{at}.scales"),
                scales,
                TensorDtype::F32,
                &[groups],
                &format!("{groups} groups' scales"),
                p,
            );
            match (zeros, scheme) {
                (Some(z), Scheme::Asymmetric { .. }) => {
                    let dtype = if z.dtype == TensorDtype::U8 {
                        TensorDtype::U8
                    } else {
                        TensorDtype::F32
                    };
                    expect_ref(
                        &format!("{at}.zeros"),
                        z,
                        dtype,
                        &[groups],
                        &format!("{groups} groups' zero points (U8 or F32)"),
                        p,
                    );
                }
                (None, Scheme::Asymmetric { .. }) => {
                    p.push(format!("{at}.zeros: null, but an asymmetric weight has zero points"));
                }
                (Some(_), _) => p.push(format!("{at}.zeros: set, but only asymmetric weights have zero points")),
                (None, _) => {}
            }
        }
    }
    if w.storage_bytes != bytes {
        p.push(format!(
            "{at}.storage_bytes: {} but its tensors hold {bytes} bytes",
            w.storage_bytes
        ));
    }
    let bpw = bits_per_weight(bytes, rows, cols);
    let close = (w.bits_per_weight - bpw).abs() <= 1e-9 * bpw.max(1.0);
    if !close {
        p.push(format!(
            "{at}.bits_per_weight: {} but its tensors hold {bpw} bits per weight",
            w.bits_per_weight
        ));
    }
}

// ---- decoding -----------------------------------------------------------------------------------

struct Data<'a> {
    index: &'a BTreeMap<String, Entry>,
    data: &'a [u8],
}

impl Data<'_> {
    /// A tensor's bytes (validated by `parse_header`; a miss is reported, never a panic).
    fn bytes(&self, r: &TensorRef) -> Result<&[u8], String> {
        self.index
            .get(&r.name)
            .and_then(|e| self.data.get(e.begin..e.end))
            .ok_or_else(|| format!("tensor `{}` is missing from the data", r.name))
    }

    fn f32s(&self, r: &TensorRef) -> Result<Vec<f32>, String> {
        Ok(self
            .bytes(r)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn weight(&self, w: &WeightEntry) -> Result<Weight, String> {
        Ok(match &w.storage {
            WeightStorage::F32 { values } => Weight::F32 {
                rows: w.rows,
                cols: w.cols,
                values: self.f32s(values)?,
            },
            WeightStorage::Quant {
                scheme,
                numerics,
                layout,
                codes,
                scales,
                zeros,
            } => Weight::Quant(QuantTensor {
                rows: w.rows,
                cols: w.cols,
                scheme: *scheme,
                numerics: *numerics,
                layout: *layout,
                codes: self.bytes(codes)?.to_vec(),
                scales: self.f32s(scales)?,
                zeros: match zeros {
                    None => Zeros::None,
                    Some(z) if z.dtype == TensorDtype::U8 => Zeros::U8(self.bytes(z)?.to_vec()),
                    Some(z) => Zeros::F32(self.f32s(z)?),
                },
            }),
        })
    }

    fn norm(&self, n: &NormEntry) -> Result<LayerNormParams, String> {
        Ok(LayerNormParams {
            gamma: self.f32s(&n.gamma)?,
            beta: self.f32s(&n.beta)?,
            eps: n.eps,
        })
    }

    fn linear(&self, l: &LinearEntry) -> Result<CompressedLinear, String> {
        Ok(CompressedLinear {
            name: l.name.clone(),
            weight: self.weight(&l.weight)?,
            bias: l.bias.as_ref().map(|b| self.f32s(b)).transpose()?,
            act: l.act,
        })
    }
}

fn decode(h: Header, data: &[u8]) -> Result<CompressedModel, Vec<String>> {
    let Header { manifest: m, index } = h;
    let d = Data { index: &index, data };
    let one = |e: String| vec![e];
    let e = &m.embeddings;
    let embeddings = Embeddings {
        word: d.weight(&e.word).map_err(one)?,
        position: d.weight(&e.position).map_err(one)?,
        token_type: d.weight(&e.token_type).map_err(one)?,
        norm: d.norm(&e.norm).map_err(one)?,
    };
    let mut layers = Vec::with_capacity(m.layers.len());
    for l in &m.layers {
        layers.push(Layer {
            query: d.linear(&l.query).map_err(one)?,
            key: d.linear(&l.key).map_err(one)?,
            value: d.linear(&l.value).map_err(one)?,
            attn_out: d.linear(&l.attn_out).map_err(one)?,
            attn_norm: d.norm(&l.attn_norm).map_err(one)?,
            ffn_in: d.linear(&l.ffn_in).map_err(one)?,
            ffn_out: d.linear(&l.ffn_out).map_err(one)?,
            out_norm: d.norm(&l.out_norm).map_err(one)?,
        });
    }
    let tokenizer = match &m.tokenizer {
        Some(t) => Some(inflate(d.bytes(&t.tensor).map_err(one)?, t.uncompressed_bytes).map_err(one)?),
        None => None,
    };
    let model = CompressedModel {
        arch: m.architecture,
        embeddings,
        layers,
        tokenizer,
        meta: Meta {
            ember_version: m.ember_version,
            config: m.config,
            figures: m.figures,
        },
    };
    let problems = check_model(&model);
    if problems.is_empty() { Ok(model) } else { Err(problems) }
}

/// Inflates the tokenizer's zlib stream to exactly `declared` bytes: never more (a stream that
/// inflates further is refused as soon as it passes the declared length), with the Adler-32
/// checksum verified and no bytes after the stream.
fn inflate(compressed: &[u8], declared: u64) -> Result<String, String> {
    let at = "tokenizer";
    if declared > MAX_TOKENIZER_BYTES {
        return Err(format!(
            "{at}: declares {declared} bytes, over the {MAX_TOKENIZER_BYTES}-byte limit"
        ));
    }
    let limit = declared as usize + 1; // one byte more than declared shows a longer stream
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    let mut z = Decompress::new(true);
    loop {
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let input = compressed.get(z.total_in() as usize..).unwrap_or(&[]);
        let status = z
            .decompress_vec(input, &mut out, FlushDecompress::Finish)
            .map_err(|e| format!("{at}: the zlib stream is corrupt ({e})"))?;
        if out.len() > declared as usize {
            return Err(format!(
                "{at}: the zlib stream inflates past its declared {declared} bytes"
            ));
        }
        if status == Status::StreamEnd {
            break;
        }
        if out.len() == out.capacity() {
            let grow = out.capacity().max(4096).min(limit - out.len());
            out.reserve_exact(grow);
        } else if z.total_in() == in_before && z.total_out() == out_before {
            return Err(format!("{at}: the zlib stream is truncated"));
        }
    }
    if out.len() as u64 != declared {
        return Err(format!(
            "{at}: inflates to {} bytes but the manifest declares {declared}",
            out.len()
        ));
    }
    if z.total_in() as usize != compressed.len() {
        return Err(format!(
            "{at}: {} bytes follow the end of the zlib stream",
            compressed.len() - z.total_in() as usize
        ));
    }
    String::from_utf8(out).map_err(|e| format!("{at}: tokenizer.json is not UTF-8 ({e})"))
}
