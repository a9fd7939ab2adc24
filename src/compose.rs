//! The compose pipeline as a library call (the `compose` example and `ember compose` both use it):
//! config → validated config → plan → load the model → attach techniques → calibrate → evaluate.
//! Writing the cleaned `.ember` artifact lands with the artifact issue; until then `--out` is
//! refused up front with "not supported yet".

use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_config::{EmberConfig, Inventory, ParsedConfig, Plan};
use ember_core::{Composer, Registry};
use ember_models::assets::Assets;
use ember_models::{SentenceEncoder, Tokenizer};

use crate::Error;
use crate::eval::{EvalData, EvalReport, LoadedModel, evaluate, load_model, teacher_for};
use crate::events::Events;

/// What to compose.
#[derive(Debug, Clone, Default)]
pub struct ComposeOptions {
    pub config: PathBuf,
    /// Overrides the config's `model.source`.
    pub model: Option<String>,
    /// Overrides the config's `export.path`.
    pub out: Option<PathBuf>,
    /// Stop after resolving the plan.
    pub dry_run: bool,
    /// Evaluate the composed model (fidelity vs fp32 and the quality metrics).
    pub eval: bool,
    pub quiet: bool,
    /// JSON-lines event log.
    pub events: Option<PathBuf>,
}

/// What a compose run produced.
#[derive(Debug, Clone)]
pub struct ComposeOutcome {
    pub plan: Plan,
    pub warnings: Vec<String>,
    /// Quality of the composed model, with `eval`.
    pub eval: Option<EvalReport>,
    /// Seconds spent attaching and calibrating (model loading excluded).
    pub compose_seconds: f64,
}

/// The techniques this build knows: Ember's built-ins. A user crate builds its own registry and
/// calls [`compose_with`].
pub fn registry() -> Registry {
    Registry::with_builtins()
}

/// The config-side catalog of the built-in registry.
pub fn catalog() -> ember_config::Catalog {
    registry().catalog()
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<ParsedConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(ember_config::parse_config(&text, &catalog())?)
}

/// The module inventory of a model given by name or HF directory, without loading weights.
pub fn inventory_for(source: &str) -> Result<Inventory, Error> {
    if let Some(inv) = ember_config::known_model(source) {
        return Ok(inv);
    }
    let dir = Path::new(source);
    let config = dir.join("config.json");
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "unknown model `{source}`: use a built-in name (minilm-l6, minilm-l3, bert-base) or a directory with an HF config.json"
        )));
    }
    let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| source.to_string());
    ember_config::bert_from_hf_config(&name, &text).map_err(|e| Error::Other(format!("{}: {e}", config.display())))
}

/// Runs the pipeline with the built-in registry.
pub fn compose(opts: &ComposeOptions) -> Result<ComposeOutcome, Error> {
    compose_with(&registry(), opts)
}

/// Runs the pipeline with `registry` (built-ins plus whatever a user crate registered).
pub fn compose_with(registry: &Registry, opts: &ComposeOptions) -> Result<ComposeOutcome, Error> {
    let mut events = Events::open(opts.events.as_deref())?;
    let text = std::fs::read_to_string(&opts.config).map_err(|e| Error::io(&opts.config, e))?;
    let parsed = ember_config::parse_config(&text, &registry.catalog())?;
    let config = &parsed.config;
    let source = opts.model.clone().unwrap_or_else(|| config.model.source.clone());
    let composer = Composer::new(registry.clone());
    let plan = composer.plan(config, &inventory_for(&source)?)?;
    let mut warnings = parsed.warnings.clone();
    warnings.extend(plan.warnings.iter().cloned());
    events.emit("plan", &serde_json::json!({ "model": plan.model, "bytes_before": plan.bytes_before(), "bytes_after": plan.bytes_after(), "techniques": plan.techniques() }))?;
    if opts.dry_run {
        return Ok(ComposeOutcome {
            plan,
            warnings,
            eval: None,
            compose_seconds: 0.0,
        });
    }
    // Refuse what cannot run before fetching or loading anything.
    composer.check_supported(config, &plan)?;
    if let Some(out) = opts
        .out
        .clone()
        .or_else(|| config.export.as_ref().map(|e| PathBuf::from(&e.path)))
    {
        return Err(Error::NotSupported(format!(
            "writing {}: cleaning into packed storage and the .ember artifact are not built yet (compose --eval measures the composed model)",
            out.display()
        )));
    }

    let assets = Assets::from_env()?.quiet(opts.quiet);
    // A missing or empty calibration file is reported before the model is fetched or loaded.
    if composer.needs_calibration(&plan) {
        calibration_sentences(config, &assets)?;
    }
    let loaded = load_model(&source, &assets)?;
    let teacher = if opts.eval { Some(teacher_for(&loaded)?.0) } else { None };
    let start = Instant::now();
    let encoder = compose_encoder(&composer, config, loaded, &assets, opts.quiet, &mut events)?;
    let compose_seconds = start.elapsed().as_secs_f64();

    let mut eval = None;
    if let Some(teacher) = teacher {
        let data = EvalData::load(&assets)?;
        let bar = crate::cli::embed::progress_bar(0, "evaluating", opts.quiet);
        let report = evaluate(&encoder, &teacher, &data, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        events.emit("eval", &serde_json::to_value(&report).unwrap_or_default())?;
        eval = Some(report);
    }
    Ok(ComposeOutcome {
        plan,
        warnings,
        eval,
        compose_seconds,
    })
}

/// Attaches `config`'s techniques to a loaded model, calibrates it when a static range needs it,
/// and returns it ready for inference (quantized weights precomputed), with its tokenizer.
pub fn compose_encoder(
    composer: &Composer,
    config: &EmberConfig,
    loaded: LoadedModel,
    assets: &Assets,
    quiet: bool,
    events: &mut Events,
) -> Result<SentenceEncoder, Error> {
    let SentenceEncoder {
        model,
        tokenizer,
        device,
    } = loaded.encoder;
    let mut composed = composer.compose(model, config)?;
    events.emit(
        "attached",
        &serde_json::json!({ "modules": composed.plan.modules.iter().filter(|m| !m.techniques.is_empty()).count() }),
    )?;
    if composed.needs_calibration {
        let sentences = calibration_sentences(config, assets)?;
        let calib_tokenizer = Tokenizer::from_file_with_max_length(
            &loaded.dir.join("tokenizer.json"),
            config.calibration.max_seq_len as usize,
        )?;
        let batches = sentences
            .chunks(config.calibration.batch_size.max(1) as usize)
            .map(|chunk| calib_tokenizer.batch(chunk))
            .collect::<Result<Vec<_>, _>>()?;
        let bar = crate::cli::embed::progress_bar(batches.len() as u64, "calibrating", quiet);
        let mut failure = None;
        composed.calibrate(
            &batches,
            |m, b| {
                if let Err(e) = m.encode(b, &device)
                    && failure.is_none()
                {
                    failure = Some(e);
                }
            },
            |done, _| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        if let Some(e) = failure {
            return Err(e.into());
        }
        events.emit(
            "calibrated",
            &serde_json::json!({ "batches": batches.len(), "sentences": sentences.len() }),
        )?;
    }
    let composed = composed.into_inference()?;
    Ok(SentenceEncoder {
        model: composed.model,
        tokenizer,
        device,
    })
}

/// The calibration sentences a config asks for: the built-in real text (300 news articles, one
/// per line, disjoint from the evaluation data) or a user file with one sentence per line.
pub fn calibration_sentences(config: &EmberConfig, assets: &Assets) -> Result<Vec<String>, Error> {
    let c = &config.calibration;
    let path = match c.data.as_str() {
        "builtin:lee_background" => assets.gensim_file("lee_background.cor")?,
        other => PathBuf::from(other),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let sentences: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(c.samples as usize)
        .map(String::from)
        .collect();
    if sentences.is_empty() {
        let why = "calibration data has no sentences (one per line expected)";
        return Err(Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        ));
    }
    Ok(sentences)
}
