//! A sentence encoder: tokenizer + BERT + mean pooling, texts in, L2-normalized embeddings out.

use std::path::Path;

use burn::tensor::Device;

use crate::bert::Bert;
use crate::tokenizer::{Batch, Tokenizer};
use crate::{Result, loader};

/// A model with its tokenizer, on a device: the thing that turns sentences into embeddings.
#[derive(Debug)]
pub struct SentenceEncoder {
    /// The encoder.
    pub model: Bert,
    /// Its tokenizer (padding off, truncation at 256).
    pub tokenizer: Tokenizer,
    /// Where the model runs.
    pub device: Device,
}

impl SentenceEncoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from an HF model directory.
    pub fn from_dir(dir: &Path, name: &str, device: &Device) -> Result<SentenceEncoder> {
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let model = loader::load_bert(dir, name, device)?;
        Ok(SentenceEncoder {
            model,
            tokenizer,
            device: device.clone(),
        })
    }

    /// L2-normalized sentence embeddings, in input order, computed `batch_size` sentences at a
    /// time (sentences are grouped by length to waste little work on padding; padding does not
    /// change a sentence's embedding).
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.embed_with_progress(texts, batch_size, |_| {})
    }

    /// [`SentenceEncoder::embed`], calling `progress(n)` after each batch of `n` sentences.
    pub fn embed_with_progress<S: AsRef<str>>(
        &self,
        texts: &[S],
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let encoded = texts
            .iter()
            .map(|t| self.tokenizer.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].input_ids.len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch = Batch::pad(&chunk.iter().map(|&i| encoded[i].clone()).collect::<Vec<_>>());
            let rows = self.embed_batch(&batch)?;
            for (&i, row) in chunk.iter().zip(rows) {
                out[i] = row;
            }
            progress(chunk.len());
        }
        Ok(out)
    }

    /// Embeddings of one already padded batch, one row per sentence.
    pub fn embed_batch(&self, batch: &Batch) -> Result<Vec<Vec<f32>>> {
        if batch.batch == 0 {
            return Ok(Vec::new());
        }
        let output = self.model.encode(batch, &self.device)?;
        let d = output.embedding.dims()[1];
        let flat = output
            .embedding
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| crate::Error::Input(format!("reading embeddings back: {e:?}")))?;
        Ok(flat.chunks(d).map(<[f32]>::to_vec).collect())
    }
}
