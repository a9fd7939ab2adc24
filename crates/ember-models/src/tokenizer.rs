//! The tokenizer (HF `tokenizer.json` through the `tokenizers` crate) and the padded [`Batch`] it
//! produces for the model.
//!
//! The shipped MiniLM `tokenizer.json` bakes in fixed padding and truncation at 128; Ember turns
//! padding off (batches pad to their longest sentence) and truncates at 256 tokens, the
//! `max_seq_length` sentence-transformers uses for all-MiniLM-L6-v2.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::TruncationParams;

use crate::{Error, Result};

/// sentence-transformers' `max_seq_length` for the MiniLM family.
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// One tokenized sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, `[CLS] … [SEP]`.
    pub input_ids: Vec<u32>,
    /// Segment ids (all 0 for a single sentence).
    pub token_type_ids: Vec<u32>,
    /// 1 for every token (padding is off, so there is none yet).
    pub attention_mask: Vec<u32>,
}

/// A WordPiece tokenizer with padding off and truncation at `max_length`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`, turns its padding off and truncates at [`DEFAULT_MAX_LENGTH`].
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        Tokenizer::from_file_with_max_length(path, DEFAULT_MAX_LENGTH)
    }

    /// Loads `tokenizer.json` with padding off and truncation at `max_length` tokens.
    pub fn from_file_with_max_length(path: &Path, max_length: usize) -> Result<Tokenizer> {
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                what: "tokenizer.json",
            });
        }
        let inner =
            tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Tokenizer::configure(inner, max_length, &path.display().to_string())
    }

    /// Loads a tokenizer from the text of a `tokenizer.json` (e.g. the one embedded in a `.ember`
    /// artifact); `origin` names where it came from in errors.
    pub fn from_json(json: &str, max_length: usize, origin: &str) -> Result<Tokenizer> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| Error::Tokenizer(format!("{origin}: embedded tokenizer: {e}")))?;
        Tokenizer::configure(inner, max_length, origin)
    }

    fn configure(mut inner: tokenizers::Tokenizer, max_length: usize, origin: &str) -> Result<Tokenizer> {
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(format!("{origin}: {e}")))?;
        Ok(Tokenizer { inner, max_length })
    }

    /// Number of token ids the tokenizer can produce (its vocabulary, added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The truncation length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes one sentence (special tokens added, truncated, not padded).
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Encoded {
            input_ids: enc.get_ids().to_vec(),
            token_type_ids: enc.get_type_ids().to_vec(),
            attention_mask: enc.get_attention_mask().to_vec(),
        })
    }

    /// Tokenizes sentences and pads them into one batch.
    pub fn batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Batch> {
        let encoded = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Batch::pad(&encoded))
    }
}

/// Sentences padded to a common length, row-major `[batch, seq]`, ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Token ids, padded with 0 (`[PAD]`).
    pub input_ids: Vec<i64>,
    /// 1 = token, 0 = padding.
    pub attention_mask: Vec<i64>,
    /// Number of sentences.
    pub batch: usize,
    /// Padded length (the longest sentence).
    pub seq: usize,
}

impl Batch {
    /// Pads encoded sentences to the longest one.
    pub fn pad(encoded: &[Encoded]) -> Batch {
        let seq = encoded.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
        let mut input_ids = vec![0i64; encoded.len() * seq];
        let mut attention_mask = vec![0i64; encoded.len() * seq];
        for (row, e) in encoded.iter().enumerate() {
            for (j, (&id, &m)) in e.input_ids.iter().zip(&e.attention_mask).enumerate() {
                input_ids[row * seq + j] = i64::from(id);
                attention_mask[row * seq + j] = i64::from(m);
            }
        }
        Batch {
            input_ids,
            attention_mask,
            batch: encoded.len(),
            seq,
        }
    }

    /// The ids and mask as `[batch, seq]` int tensors on `device`.
    pub fn to_tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let shape = [self.batch, self.seq];
        (
            Tensor::from_data(TensorData::new(self.input_ids.clone(), shape), device),
            Tensor::from_data(TensorData::new(self.attention_mask.clone(), shape), device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_fills_with_zeros_and_masks_them() {
        let e = |n: u32| Encoded {
            input_ids: (1..=n).collect(),
            token_type_ids: vec![0; n as usize],
            attention_mask: vec![1; n as usize],
        };
        let b = Batch::pad(&[e(2), e(3)]);
        assert_eq!((b.batch, b.seq), (2, 3));
        assert_eq!(b.input_ids, vec![1, 2, 0, 1, 2, 3]);
        assert_eq!(b.attention_mask, vec![1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn missing_tokenizer_file_is_an_error() {
        let err = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    }
}
