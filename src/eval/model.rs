//! Resolving a `--model` argument into something to evaluate, and choosing its fp32 teacher.

use std::path::PathBuf;

use ember_models::SentenceEncoder;
use ember_models::assets::{Assets, MINILM_L6, ModelSource, resolve_model, sha256_file};

use super::Embedder;
use super::data::ReferenceEmbeddings;
use crate::Error;

/// A model loaded from a `--model` argument.
#[derive(Debug)]
pub struct LoadedModel {
    /// The name it is reported under (`minilm-l6`, or the directory's name).
    pub name: String,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The model with its tokenizer, on burn-flex.
    pub encoder: SentenceEncoder,
}

/// Loads `spec` (a known model name, fetched if needed, or an HF model directory).
pub fn load_model(spec: &str, assets: &Assets) -> Result<LoadedModel, Error> {
    let ModelSource::HfDir { dir, name } = resolve_model(spec, assets)?;
    let encoder = SentenceEncoder::from_dir(&dir, &name, &ember_models::default_device())?;
    Ok(LoadedModel { name, dir, encoder })
}

/// The teacher embeddings of the 64 reference sentences for `model`: the independent
/// onnxruntime reference when the weights are all-MiniLM-L6-v2's (by sha256), otherwise the
/// model's own fp32 embeddings (its fidelity is then 1 by construction; compressed models pass
/// their uncompressed original here instead). The flag says which one was used.
pub fn teacher_for(model: &LoadedModel) -> Result<(ReferenceEmbeddings, bool), Error> {
    let reference = ReferenceEmbeddings::minilm_l6()?;
    let minilm_sha = MINILM_L6
        .files
        .iter()
        .find(|(f, _)| *f == "model.safetensors")
        .map(|(_, s)| *s);
    let weights = model.dir.join("model.safetensors");
    if Some(sha256_file(&weights)?.as_str()) == minilm_sha {
        return Ok((reference, true));
    }
    let embeddings = Embedder::embed(&model.encoder, &reference.texts)?;
    Ok((
        ReferenceEmbeddings {
            texts: reference.texts,
            embeddings,
        },
        false,
    ))
}
