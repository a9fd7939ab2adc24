//! The `.ember` artifact: a [`CompressedModel`] as one safetensors file (DESIGN §7).
//!
//! - Tensors: every quantized weight's packed codes (`I8` for 5–8-bit symmetric, `U8` otherwise,
//!   `[rows, row_bytes]`), scales (`F32 [groups]`) and zero points (`U8` or `F32 [groups]`,
//!   asymmetric only); f32 weights, biases and LayerNorm γ/β as `F32` in their natural shapes; the
//!   embedded `tokenizer.json` as a `U8` tensor holding its zlib stream (RFC 1950).
//! - `__metadata__["ember"]`: the JSON [`Manifest`] (architecture, every module's tensors, formats
//!   and layouts, activation specs, resolved config, figures).
//!
//! `docs/format.md` specifies the bytes precisely enough for an independent reader
//! (`scripts/read_ember.py` is one, standard library only).
//!
//! Writing is atomic (temp file in the target's directory, fsync, rename). Reading validates
//! before it allocates: the header length against the file size, then the manifest against the
//! safetensors header and the architecture (every tensor present with the declared dtype and shape,
//! no stray tensors), then the values (codes in range, finite floats, a bounded tokenizer inflate).
//! Every problem is a [`RuntimeError::Artifact`](crate::RuntimeError::Artifact) naming the tensor
//! or manifest key, never a panic.

mod manifest;
mod read;
mod write;

use std::path::Path;

pub use manifest::{
    EmbeddingsEntry, FORMAT_VERSION, LayerEntry, LinearEntry, MANIFEST_KEY, Manifest, ModuleSummary, NormEntry,
    TOKENIZER_COMPRESSION, TensorDtype, TensorRef, TokenizerEntry, WeightEntry, WeightStorage,
};

use crate::error::Result;
use crate::model::CompressedModel;

/// Largest safetensors header a reader accepts (the `safetensors` crate's own limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Largest `tokenizer.json` a reader inflates (real ones are 0.5–20 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

/// What [`write()`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReport {
    /// Size of the written file.
    pub bytes: u64,
}

/// Writes `model` to `path` atomically: the model is validated and serialized first, then written
/// to a temp file next to `path`, synced and renamed over it. On any failure an existing file at
/// `path` is left untouched and the temp file is removed.
///
/// # Errors
/// [`RuntimeError::Invalid`](crate::RuntimeError::Invalid) for a model that is inconsistent (shapes
/// against the architecture, codes, non-finite values), [`RuntimeError::Io`](crate::RuntimeError::Io)
/// for the file system.
pub fn write(model: &CompressedModel, path: &Path) -> Result<WriteReport> {
    let bytes = to_bytes(model)?;
    write::atomic_write(path, &bytes)?;
    Ok(WriteReport {
        bytes: bytes.len() as u64,
    })
}

/// Serializes `model` to the bytes of a `.ember` file (deterministic: equal models give equal
/// bytes).
///
/// # Errors
/// [`RuntimeError::Invalid`](crate::RuntimeError::Invalid) for an inconsistent model.
pub fn to_bytes(model: &CompressedModel) -> Result<Vec<u8>> {
    write::to_bytes(model)
}

/// Reads and validates a `.ember` file.
///
/// # Errors
/// [`RuntimeError::Artifact`](crate::RuntimeError::Artifact) naming what is wrong with the file,
/// [`RuntimeError::Io`](crate::RuntimeError::Io) when it cannot be read.
pub fn read(path: &Path) -> Result<CompressedModel> {
    read::read_file(path)
}

/// Reads only the header of a `.ember` file: the manifest, checked against the safetensors header
/// and the file size (for `ember inspect`; the tensor data is not read).
///
/// # Errors
/// As [`read`], for the header.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    read::read_manifest_file(path)
}

/// Reads a `.ember` file from memory; `origin` names it in errors.
///
/// # Errors
/// [`RuntimeError::Artifact`](crate::RuntimeError::Artifact) naming what is wrong.
pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<CompressedModel> {
    read::from_bytes(bytes, origin)
}
