//! A model ready to run, whatever it is and wherever it runs: an HF model directory (or known
//! name) on burn, or a `.ember` artifact on Ember's CPU engine (`--device cpu`, integer kernels) or
//! on a burn device (`--device flex|wgpu|cuda`, burn's quantized tensors). `embed`, `eval` and
//! `bench` all go through [`Runner`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_models::assets::Assets;
use ember_models::{Batch, SentenceEncoder, Tokenizer};
use ember_runtime::CompressedModel;
use ember_runtime::cpu::{Engine, EngineOptions};

use crate::Error;
use crate::eval::{Embedder, LoadedModel, ReferenceEmbeddings, load_model, teacher_for};

/// Where a model runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceKind {
    /// Ember's CPU engine for `.ember` artifacts (integer kernels, all cores); burn-flex for
    /// uncompressed models.
    #[default]
    Cpu,
    /// burn's CPU backend (burn-flex).
    Flex,
    /// burn's wgpu backend (build with `--features wgpu`).
    Wgpu,
    /// burn's CUDA backend: not offered by this build (burn-cuda downloads LLVM when it is built);
    /// selecting it says so and points to `wgpu`, which runs on NVIDIA GPUs through Vulkan.
    Cuda,
}

impl DeviceKind {
    fn burn_name(self) -> &'static str {
        match self {
            DeviceKind::Cpu | DeviceKind::Flex => "flex",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// Whether `spec` names a `.ember` artifact rather than a model name or HF directory.
pub fn is_artifact(spec: &str) -> bool {
    let p = Path::new(spec);
    p.extension().is_some_and(|e| e == "ember") || (p.is_file() && !p.is_dir())
}

/// How the model is executed. A process holds one or two of these and never moves them in a hot
/// loop, so the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// An uncompressed HF model (or an artifact rebuilt) on a burn device.
    Burn(SentenceEncoder),
    /// A compressed model on Ember's CPU engine.
    Cpu { engine: Engine, tokenizer: Tokenizer },
}

/// A loaded model with its name and how it runs.
pub struct Runner {
    /// Reported name (`minilm-l6`, or the artifact's file name).
    pub name: String,
    /// The architecture's source model name (`minilm-l6` for a MiniLM artifact).
    pub source: String,
    /// What executes it, for tables (`ember-cpu`, `burn-flex`, `burn-wgpu`).
    pub engine_name: String,
    pub backend: Backend,
    /// The artifact path, when it is one.
    pub artifact: Option<PathBuf>,
    /// The HF directory, when it is one.
    pub loaded_dir: Option<PathBuf>,
    /// Seconds to read the file and prepare the engine.
    pub load_seconds: f64,
}

impl Runner {
    /// Opens `spec` (known name, HF directory, or `.ember` file) on `device`.
    ///
    /// # Errors
    /// Unreadable or corrupt files, unknown names, a device this build lacks.
    pub fn open(spec: &str, device: DeviceKind, threads: Option<usize>, assets: &Assets) -> Result<Runner, Error> {
        let start = Instant::now();
        if is_artifact(spec) {
            let path = PathBuf::from(spec);
            let model = ember_runtime::artifact::read(&path)?;
            let name = path
                .file_name()
                .map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned());
            let mut runner = Runner::from_compressed(&model, &path.display().to_string(), device, threads)?;
            runner.name = name;
            runner.artifact = Some(path);
            runner.load_seconds = start.elapsed().as_secs_f64();
            return Ok(runner);
        }
        let loaded = match device {
            DeviceKind::Cpu | DeviceKind::Flex => load_model(spec, assets)?,
            other => {
                let mut loaded = load_model(spec, assets)?;
                let device = ember_models::burn_engine::device_from_name(other.burn_name())?;
                loaded.encoder = SentenceEncoder::from_dir(&loaded.dir, &loaded.name, &device)?;
                loaded
            }
        };
        Ok(Runner {
            name: loaded.name.clone(),
            source: loaded.name.clone(),
            engine_name: format!("burn-{}", device.burn_name()),
            loaded_dir: Some(loaded.dir.clone()),
            backend: Backend::Burn(loaded.encoder),
            artifact: None,
            load_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Runs an in-memory compressed model (`origin` names it in errors).
    ///
    /// # Errors
    /// A model without an embedded tokenizer, or one the engine cannot prepare.
    pub fn from_compressed(
        model: &CompressedModel,
        origin: &str,
        device: DeviceKind,
        threads: Option<usize>,
    ) -> Result<Runner, Error> {
        let json = model.tokenizer.as_deref().ok_or_else(|| {
            Error::Other(format!(
                "{origin}: the artifact has no embedded tokenizer; it cannot embed text"
            ))
        })?;
        let tokenizer = Tokenizer::from_json(json, model.arch.max_seq_length, origin)?;
        // A tokenizer that can emit ids the model has no embedding for is a bad artifact: caught
        // here, at load, not later as if the user's text were at fault.
        if tokenizer.vocab_size() > model.arch.vocab_size {
            return Err(Error::Other(format!(
                "{origin}: the embedded tokenizer has {} tokens but the model's vocabulary has {}; the artifact's tokenizer does not belong to its model",
                tokenizer.vocab_size(),
                model.arch.vocab_size
            )));
        }
        let (backend, engine_name) = match device {
            DeviceKind::Cpu => {
                let engine = Engine::new(model, EngineOptions { threads, isa: None })?;
                (Backend::Cpu { engine, tokenizer }, "ember-cpu".to_string())
            }
            other => {
                let device = ember_models::burn_engine::device_from_name(other.burn_name())?;
                let bert = ember_models::burn_engine::bert_from_compressed(model, &device)?;
                (
                    Backend::Burn(SentenceEncoder {
                        model: bert,
                        tokenizer,
                        device,
                    }),
                    format!("burn-{}", other.burn_name()),
                )
            }
        };
        Ok(Runner {
            name: model.arch.name.clone(),
            source: model.arch.name.clone(),
            engine_name,
            backend,
            artifact: None,
            loaded_dir: None,
            load_seconds: 0.0,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        match &self.backend {
            Backend::Burn(e) => &e.tokenizer,
            Backend::Cpu { tokenizer, .. } => tokenizer,
        }
    }

    /// L2-normalized sentence embeddings of one padded batch.
    ///
    /// # Errors
    /// Token ids the model does not know, or a sequence longer than its positions.
    pub fn forward(&self, batch: &Batch) -> Result<Vec<Vec<f32>>, Error> {
        match &self.backend {
            Backend::Burn(e) => Ok(e.embed_batch(batch)?),
            Backend::Cpu { engine, .. } => {
                let to_u32 = |v: &[i64]| -> Result<Vec<u32>, Error> {
                    v.iter()
                        .map(|&x| {
                            u32::try_from(x)
                                .map_err(|_| Error::Other(format!("token id {x} is not a valid vocabulary index")))
                        })
                        .collect()
                };
                let out = engine.forward(
                    &to_u32(&batch.input_ids)?,
                    &to_u32(&batch.attention_mask)?,
                    batch.batch,
                    batch.seq,
                )?;
                Ok(out.embeddings.chunks(out.d_model.max(1)).map(<[f32]>::to_vec).collect())
            }
        }
    }

    /// Embeds texts in batches of `batch_size`, calling `progress(n)` after each batch.
    ///
    /// # Errors
    /// Tokenizer or forward failures.
    pub fn embed_with_progress<S: AsRef<str>>(
        &self,
        texts: &[S],
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, Error> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch_size.max(1)) {
            let batch = self.tokenizer().batch(chunk)?;
            let embeddings = self.forward(&batch)?;
            // Either engine: NaN or inf embeddings are an error, never output (the CPU engine
            // also names the layer where they first appear).
            if let Some(i) = embeddings.iter().position(|e| e.iter().any(|v| !v.is_finite())) {
                return Err(Error::Other(format!(
                    "the model produced a non-finite embedding (NaN or inf) for sentence {}: its weights overflow f32; check the model's LayerNorm weights and scales",
                    out.len() + i + 1
                )));
            }
            out.extend(embeddings);
            progress(chunk.len());
        }
        Ok(out)
    }

    /// The fp32 teacher embeddings to measure this model's fidelity against, and whether they are
    /// the independent onnxruntime reference (all-MiniLM-L6-v2) rather than computed here.
    ///
    /// # Errors
    /// The source model of an artifact cannot be fetched or loaded.
    pub fn teacher(&self, assets: &Assets) -> Result<(ReferenceEmbeddings, bool), Error> {
        match (&self.loaded_dir, &self.backend) {
            (Some(dir), Backend::Burn(encoder)) => {
                // An uncompressed model: its own weights decide which reference applies.
                let loaded = LoadedModel {
                    name: self.name.clone(),
                    dir: dir.clone(),
                    encoder: SentenceEncoder {
                        model: encoder.model.clone(),
                        tokenizer: encoder.tokenizer.clone(),
                        device: encoder.device.clone(),
                    },
                };
                teacher_for(&loaded)
            }
            _ if self.source == ember_models::assets::MINILM_L6.key => Ok((ReferenceEmbeddings::minilm_l6()?, true)),
            _ => teacher_for(&load_model(&self.source, assets)?),
        }
    }
}

impl Embedder for Runner {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        self.embed_with_progress(texts, 32, |_| {})
    }
}
