//! The compose pipeline as a library call (the `compose` example and `ember compose` both use it):
//! config → validated config → plan → load the model → attach techniques → calibrate → clean →
//! measure the cleaned model on Ember's CPU engine → write the `.ember` artifact (with `out`) →
//! evaluate (with `eval`: the artifact when one is written, else the composed model).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_config::{EmberConfig, Inventory, ParsedConfig, Plan};
use ember_core::{Composer, Registry};
use ember_models::assets::Assets;
use ember_models::{CleanOptions, SentenceEncoder, StagedBatch, Tokenizer, clean, text_data};
use ember_runtime::Meta;

use crate::Error;
use crate::eval::{EvalData, EvalReport, LoadedModel, ReferenceEmbeddings, evaluate, load_model, teacher_for};
use crate::events::Events;
use crate::runner::{DeviceKind, Runner};

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
    /// Training checkpoint (default: the artifact's path with `.ckpt` appended).
    pub checkpoint: Option<PathBuf>,
    /// Continue the training run saved in the checkpoint.
    pub resume: bool,
    /// Optimizer steps when the config gives none (`compose --steps`).
    pub steps: Option<u64>,
}

/// What a compose run produced.
#[derive(Debug, Clone)]
pub struct ComposeOutcome {
    pub plan: Plan,
    pub warnings: Vec<String>,
    /// What became of a DeepSpeed file's engine keys (`key: …`).
    pub notes: Vec<String>,
    /// Quality of the composed model, with `eval`.
    pub eval: Option<EvalReport>,
    /// Seconds spent attaching and calibrating (model loading excluded).
    pub compose_seconds: f64,
    /// The artifact written, with `out` (or the config's `export.path`).
    pub artifact: Option<ArtifactSummary>,
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

/// A config file's text, read with the size limit (`/dev/zero` as a config is an error, not an
/// endless read).
fn read_config_text(path: &Path) -> Result<String, Error> {
    ember_config::read_text_bounded(path, ember_config::MAX_CONFIG_BYTES).map_err(|e| Error::io(path, e))
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<ParsedConfig, Error> {
    let text = read_config_text(path)?;
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
            "unknown model `{source}`: use a built-in name ({}) or a directory with an HF config.json",
            ember_config::known_model_names().join(", ")
        )));
    }
    let text = ember_config::read_text_bounded(&config, ember_config::hf_config::MAX_HF_CONFIG_BYTES)
        .map_err(|e| Error::io(&config, e))?;
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
    let text = read_config_text(&opts.config)?;
    let parsed = ember_config::parse_config_with_steps(&text, &registry.catalog(), opts.steps)?;
    let config = &parsed.config;
    let source = opts.model.clone().unwrap_or_else(|| config.model.source.clone());
    let out = opts
        .out
        .clone()
        .or_else(|| config.export.as_ref().map(|e| PathBuf::from(&e.path)));
    // No output may be an input (the config, a model directory, the other output), checked
    // before any work; the event file is created only by its first event.
    let model_path = Path::new(&source);
    let mut inputs: Vec<&Path> = vec![&opts.config];
    if model_path.exists() {
        inputs.push(model_path);
    }
    let mut events = Events::open(opts.events.as_deref(), &inputs)?;
    if let Some(out) = &out {
        let mut reads = inputs.clone();
        reads.extend(opts.events.as_deref());
        crate::fsutil::check_output(out, &reads)?;
    }
    // The training checkpoint follows the same rules (a resumed run reads and rewrites it).
    let checkpoint = config.training.as_ref().and(
        opts.checkpoint
            .clone()
            .or_else(|| out.as_ref().map(|o| crate::distill::default_checkpoint(o))),
    );
    if let Some(ckpt) = &checkpoint {
        let mut others = inputs.clone();
        others.extend(opts.events.as_deref());
        others.extend(out.as_deref());
        crate::fsutil::check_output(ckpt, &others)?;
        if opts.resume && !ckpt.is_file() {
            return Err(Error::Other(format!(
                "--resume: no checkpoint at {} (a run writes one every training.checkpoint_every steps)",
                ckpt.display()
            )));
        }
    } else if opts.resume {
        return Err(Error::Other(
            "--resume continues a training run: the config has no `training` section, or there is no --checkpoint / --out".into(),
        ));
    }
    let composer = Composer::new(registry.clone());
    let plan = composer.plan(config, &inventory_for(&source)?)?;
    let mut warnings = parsed.warnings.clone();
    warnings.extend(plan.warnings.iter().cloned());
    let plan_event = serde_json::json!({ "model": plan.model, "bytes_before": plan.bytes_before(), "bytes_after": plan.bytes_after(), "techniques": plan.techniques() });
    if opts.dry_run {
        events.emit("plan", &plan_event)?;
        return Ok(ComposeOutcome {
            plan,
            warnings,
            notes: parsed.notes.clone(),
            eval: None,
            compose_seconds: 0.0,
            artifact: None,
        });
    }
    // Refuse what cannot run before fetching or loading anything.
    composer.check_supported(config, &plan)?;
    crate::distill::check_training(config)?;
    events.emit("plan", &plan_event)?;

    let assets = Assets::from_env()?.quiet(opts.quiet);
    // A missing or empty calibration or training file is reported before the model is fetched or
    // loaded.
    if composer.needs_calibration(&plan) {
        calibration_samples(config, &assets)?;
    }
    if ember_config::trains(config) {
        let samples = crate::distill::training_samples(&crate::distill::TrainingText::of(config), &assets)?;
        crate::distill::hold_out(samples, config)?;
    }
    let loaded = load_model(&source, &assets)?;
    let dir = loaded.dir.clone();
    let teacher = if opts.eval || out.is_some() {
        Some(teacher_for(&loaded)?.0)
    } else {
        None
    };
    let start = Instant::now();
    // Written to an artifact, the composed model is only cleaned (fidelity and eval run on the
    // artifact), so it keeps no frozen copies.
    let finish = if out.is_some() {
        Finish::Clean
    } else {
        Finish::Inference
    };
    let run = EncoderRun {
        quiet: opts.quiet,
        events: &mut events,
        finish,
        checkpoint,
        resume: opts.resume,
    };
    let encoder = compose_encoder(&composer, config, loaded, &assets, run)?;
    let compose_seconds = start.elapsed().as_secs_f64();

    let mut eval = None;
    let mut artifact = None;
    if let (Some(out), Some(teacher)) = (&out, &teacher) {
        let written = write_artifact(encoder, config, &dir, out, teacher, opts, compose_seconds, &assets)?;
        events.emit("artifact", &serde_json::to_value(&written).unwrap_or_default())?;
        eval = written.eval.clone();
        artifact = Some(written);
    } else if let Some(teacher) = &teacher {
        let report = run_eval(&encoder, teacher, &assets, opts.quiet)?;
        events.emit("eval", &serde_json::to_value(&report).unwrap_or_default())?;
        eval = Some(report);
    }
    Ok(ComposeOutcome {
        plan,
        warnings,
        notes: parsed.notes.clone(),
        eval,
        compose_seconds,
        artifact,
    })
}

/// What `compose --out` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArtifactSummary {
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    /// Fidelity of the artifact run by Ember's CPU engine (64 reference sentences).
    pub cos_mean: f64,
    pub cos_min: f64,
    /// Kernel per Linear module, as the CPU engine runs it.
    pub kernels: Vec<(String, String)>,
    /// The full evaluation of the artifact, with `--eval`.
    pub eval: Option<EvalReport>,
    /// Peak resident memory of the process while composing and cleaning, MB.
    pub peak_rss_mb: f64,
}

/// Cleans the composed model, measures the cleaned model on Ember's CPU engine, and writes the
/// artifact with those figures in its manifest.
#[allow(clippy::too_many_arguments)]
fn write_artifact(
    encoder: SentenceEncoder,
    config: &EmberConfig,
    model_dir: &Path,
    out: &Path,
    teacher: &ReferenceEmbeddings,
    opts: &ComposeOptions,
    compose_seconds: f64,
    assets: &Assets,
) -> Result<ArtifactSummary, Error> {
    let tokenizer_path = model_dir.join("tokenizer.json");
    let tokenizer = std::fs::read_to_string(&tokenizer_path).map_err(|e| Error::io(&tokenizer_path, e))?;
    let mut cleaned = clean(
        &encoder.model,
        &CleanOptions {
            tokenizer: Some(tokenizer),
            max_seq_length: Some(encoder.tokenizer.max_length()),
            meta: Meta {
                ember_version: env!("CARGO_PKG_VERSION").to_string(),
                config: serde_json::to_value(config).map_err(|e| Error::Other(e.to_string()))?,
                figures: serde_json::Map::new(),
            },
            prune: Default::default(),
        },
    )?;
    // The composed burn model is not needed past clean: free it before the engine and the
    // artifact bytes are built (peak memory of `compose --out`).
    drop(encoder);
    crate::memory::release_freed();
    let runner = Runner::from_compressed(&cleaned, &out.display().to_string(), DeviceKind::Cpu, None)?;
    let got = runner.embed_with_progress(&teacher.texts, 32, |_| {})?;
    let cos: Vec<f64> = got
        .iter()
        .zip(&teacher.embeddings)
        .map(|(a, b)| crate::eval::metrics::cosine(a, b))
        .collect();
    let cos_mean = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
    let cos_min = cos.iter().copied().fold(f64::INFINITY, f64::min);
    let eval = if opts.eval {
        Some(run_eval(&runner, teacher, assets, opts.quiet)?)
    } else {
        None
    };
    let kernels = match &runner.backend {
        crate::runner::Backend::Cpu { engine, .. } => engine
            .kernels()
            .iter()
            .map(|k| (k.name.clone(), k.kernel.clone()))
            .collect(),
        crate::runner::Backend::Burn(_) => Vec::new(),
    };
    let peak_rss_mb = crate::memory::peak_rss_mb();
    let figures = &mut cleaned.meta.figures;
    figures.insert("cos_mean".into(), cos_mean.into());
    figures.insert("cos_min".into(), cos_min.into());
    figures.insert("compose_seconds".into(), compose_seconds.into());
    figures.insert("compose_peak_rss_mb".into(), peak_rss_mb.into());
    if let Some(report) = &eval
        && let Ok(serde_json::Value::Object(map)) = serde_json::to_value(report)
    {
        figures.extend(map);
    }
    // The engine is not needed for writing: free it (and what it freed) first.
    drop(runner);
    crate::memory::release_freed();
    let report = ember_runtime::artifact::write(&cleaned, out)?;
    Ok(ArtifactSummary {
        path: out.to_path_buf(),
        bytes: report.bytes,
        cos_mean,
        cos_min,
        kernels,
        eval,
        peak_rss_mb,
    })
}

fn run_eval(
    model: &dyn crate::eval::Embedder,
    teacher: &ReferenceEmbeddings,
    assets: &Assets,
    quiet: bool,
) -> Result<EvalReport, Error> {
    let data = EvalData::load(assets)?;
    let bar = crate::progress::progress_bar(0, "evaluating", quiet);
    let report = evaluate(model, teacher, &data, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// How [`compose_encoder`] runs: progress, events, what the model is finished for, and where a
/// training run keeps its checkpoint.
pub struct EncoderRun<'a> {
    pub quiet: bool,
    pub events: &'a mut Events,
    pub finish: Finish,
    /// Where training writes its checkpoint every `training.checkpoint_every` steps (none: no
    /// checkpoints).
    pub checkpoint: Option<PathBuf>,
    /// Continue the training run of `checkpoint` instead of starting afresh.
    pub resume: bool,
}

impl<'a> EncoderRun<'a> {
    /// A quiet-or-not run finished for `finish`, without checkpoints.
    pub fn new(quiet: bool, events: &'a mut Events, finish: Finish) -> EncoderRun<'a> {
        EncoderRun {
            quiet,
            events,
            finish,
            checkpoint: None,
            resume: false,
        }
    }
}

/// What the composed model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Run on burn: quantized weights precomputed (a frozen copy of each).
    Inference,
    /// Only cleaned into an artifact: no frozen copies (one copy of the model in memory).
    Clean,
}

/// Attaches `config`'s techniques to a loaded model, calibrates it when a static range or GPTQ
/// needs it (a layer at a time), and finishes it for `finish`, with its tokenizer.
pub fn compose_encoder(
    composer: &Composer,
    config: &EmberConfig,
    loaded: LoadedModel,
    assets: &Assets,
    run: EncoderRun<'_>,
) -> Result<SentenceEncoder, Error> {
    let EncoderRun {
        quiet,
        events,
        finish,
        checkpoint,
        resume,
    } = run;
    let SentenceEncoder {
        model,
        tokenizer,
        device,
    } = loaded.encoder;
    // The teacher of distillation is the original model (its parameters are shared, not copied,
    // until training replaces the student's).
    let teacher = ember_config::trains(config).then(|| model.clone());
    let mut composed = composer.compose(model, config)?;
    events.emit(
        "attached",
        &serde_json::json!({ "modules": composed.plan.modules.iter().filter(|m| !m.techniques.is_empty()).count() }),
    )?;
    if composed.needs_calibration {
        let sentences = calibration_samples(config, assets)?;
        let calib_tokenizer = Tokenizer::from_file_with_max_length(
            &loaded.dir.join("tokenizer.json"),
            config.calibration.max_seq_len as usize,
        )?;
        let batches = text_data::length_batches(&calib_tokenizer, &sentences, config.calibration.batch_size as usize)?;
        let n_batches = batches.len();
        // A layer at a time: each layer's modules finish (GPTQ solved, its Gram matrices freed)
        // before the next layer runs, with the results of a one-pass calibration.
        let stages = composed.model.stages();
        let bar = crate::progress::progress_bar((stages.len() * n_batches) as u64, "calibrating", quiet);
        let mut failure = None;
        let carries = batches.into_iter().map(|b| Some(StagedBatch::Tokens(b))).collect();
        let mut last_stage = 0;
        let calibrated = composed.calibrate_in_stages(
            &stages,
            carries,
            |m, stage, b| {
                if stage != last_stage {
                    // The previous layer's Gram matrices were just freed.
                    crate::memory::release_freed();
                    last_stage = stage;
                }
                match m.run_stage(stage, b?, &device) {
                    Ok(next) => Some(next),
                    Err(e) => {
                        failure.get_or_insert(e);
                        None
                    }
                }
            },
            |done, _| bar.set_position(done as u64),
        );
        bar.finish_and_clear();
        if let Some(e) = failure {
            return Err(e.into());
        }
        calibrated?;
        crate::memory::release_freed();
        events.emit(
            "calibrated",
            &serde_json::json!({ "batches": n_batches, "sentences": sentences.len() }),
        )?;
    }
    if let Some(teacher) = teacher {
        let text = crate::distill::TrainingText::of(config);
        let samples = crate::distill::training_samples(&text, assets)?;
        let (samples, held_out) = crate::distill::hold_out(samples, config)?;
        let tokenizer_path = loaded.dir.join("tokenizer.json");
        let batches = crate::distill::training_batches(&text, &samples, &tokenizer_path)?;
        let held_out = if held_out.is_empty() {
            Vec::new()
        } else {
            crate::distill::training_batches(&text, &held_out, &tokenizer_path)?
        };
        // ZeroQuant's order: layer-by-layer distillation first, then (with `training`) the
        // whole model.
        if let Some(lkd) = ember_config::layerwise_distillation(config) {
            let student = std::mem::replace(&mut composed.model, teacher.clone());
            let (trained, reports) = crate::layerwise::layerwise(student, &teacher, lkd, &batches, quiet, events)?;
            composed.model = trained;
            events.emit(
                "lkd",
                &serde_json::json!({ "layers": reports.len(), "steps_per_layer": lkd.steps }),
            )?;
        }
        if config.training.is_some() {
            let saving = crate::distill::Checkpointing {
                path: checkpoint,
                resume,
                fingerprint: crate::distill::fingerprint(config, &teacher),
            };
            let schedules = crate::distill::StudentSchedules {
                clock: composed.clock().clone(),
                weights: composed.plan.weight_schedules(),
                settled_at: composed.plan.settled_at(),
                eigen: crate::moq_eigen::EigenSetup::of(config, &composed.plan),
            };
            let student = std::mem::replace(&mut composed.model, teacher.clone());
            let (trained, report) = crate::distill::distill(
                student, &teacher, config, &batches, &held_out, &schedules, &saving, quiet, events,
            )?;
            composed.model = trained;
            events.emit("trained", &serde_json::to_value(&report).unwrap_or_default())?;
        }
        drop(teacher);
    }
    let composed = match finish {
        Finish::Inference => composed.into_inference()?,
        Finish::Clean => composed.into_clean_ready()?,
    };
    Ok(SentenceEncoder {
        model: composed.model,
        tokenizer,
        device,
    })
}

/// The calibration samples a config asks for (`calibration.data`, `split`, `samples`).
fn calibration_samples(config: &EmberConfig, assets: &Assets) -> Result<Vec<String>, Error> {
    let c = &config.calibration;
    let path = text_data::source_file(&c.data, assets)?;
    Ok(text_data::read_samples(&path, c.split, c.samples as usize)?)
}
