//! `ember embed`: sentences in (one per line), `{"text", "embedding"}` JSON lines out.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use ember_models::assets::Assets;

use crate::Error;
use crate::fsutil::write_atomic;
use crate::progress::progress_bar;
use crate::runner::{DeviceKind, Runner};

/// Arguments of `ember embed`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// Model: a known name (`minilm-l6`, fetched on first use), an HF model directory
    /// (config.json, model.safetensors, tokenizer.json), or a `.ember` artifact.
    #[arg(long)]
    pub model: String,
    /// Where to run: `cpu` (Ember's engine for artifacts, burn-flex otherwise), `flex`, `wgpu`, `cuda`.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Text file, one sentence per line (blank lines are skipped).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: one JSON object per line, `{"text": …, "embedding": […]}` (L2-normalized).
    #[arg(long)]
    pub output: PathBuf,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
}

/// One output line.
#[derive(serde::Serialize)]
struct Line<'a> {
    text: &'a str,
    embedding: &'a [f32],
}

/// Runs `ember embed`.
pub fn run(args: &EmbedArgs, quiet: bool) -> Result<(), Error> {
    let model_path = Path::new(&args.model);
    let mut inputs: Vec<&Path> = vec![&args.input];
    if model_path.exists() {
        inputs.push(model_path);
    }
    crate::fsutil::check_output(&args.output, &inputs)?;
    let text = ember_config::read_text_bounded(&args.input, ember_config::MAX_TEXT_BYTES)
        .map_err(|e| Error::io(&args.input, e))?;
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let assets = Assets::from_env()?.quiet(quiet);
    let model = Runner::open(&args.model, args.device, None, &assets)?;
    let bar = progress_bar(texts.len() as u64, "embedding", quiet);
    let embeddings = model.embed_with_progress(&texts, args.batch as usize, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let mut lines = String::new();
    for (text, embedding) in texts.iter().zip(&embeddings) {
        // A struct (not `json!`) so the f32s print in their shortest f32 form.
        let line = serde_json::to_string(&Line { text, embedding }).map_err(|e| Error::Other(e.to_string()))?;
        let _ = writeln!(lines, "{line}");
    }
    write_atomic(&args.output, lines.as_bytes())?;
    if !quiet {
        eprintln!(
            "wrote {} embeddings ({} dims) to {}",
            texts.len(),
            embeddings.first().map_or(0, Vec::len),
            args.output.display()
        );
    }
    Ok(())
}
