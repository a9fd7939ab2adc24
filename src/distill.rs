//! Knowledge distillation with quantization-aware training: the composed student (its slots
//! fake-quantize weights and activations in every forward, gradients pass straight through)
//! learns to reproduce the original model, the frozen teacher, on real training text.
//!
//! One step: a batch of sentences (batched by token count, so nothing is padded) → the teacher's
//! outputs (plain device, no autodiff) → the student's (autodiff) → the weighted loss terms of
//! `distillation.losses` → `ember_train::Trainer::step` (backward, global-norm clipping, AdamW at
//! the scheduled rate). Progress shows the loss terms, lr, steps/s and ETA; `--events` gets one
//! line per logged step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ember_config::EmberConfig;
use ember_config::types::{CalibrationSplit, LossKind};
use ember_core::lifecycle::{BitSchedule, Phase, StepClock};
use ember_models::assets::Assets;
use ember_models::{Batch, Bert, Tokenizer, text_data};
use ember_train::losses::{embedding_cosine, embedding_mse, masked_mse};
use ember_train::{Accumulation, TrainSettings, Trainer};

use crate::Error;
use crate::events::Events;
use crate::heldout::{Fidelity, HeldOut};
use crate::moq_eigen::{EigenSetup, LayerFactor};

/// The loss terms `distill` can compute, and why the others cannot run yet.
pub fn loss_support(kind: LossKind) -> Result<(), &'static str> {
    match kind {
        LossKind::EmbeddingCosine | LossKind::EmbeddingMse | LossKind::HiddenMse => Ok(()),
        LossKind::AttentionMse => Err("the attention-score taps are not built yet"),
        LossKind::LogitsKl => Err("a sentence encoder has no logits (use embedding_cosine or hidden_mse)"),
    }
}

/// A loss kind as the config spells it (`embedding_cosine`).
fn loss_name(kind: LossKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Refuses, before any work, a training config `distill` cannot run: no loss terms (DeepSpeed's
/// task loss), or a term it cannot compute yet.
pub fn check_training(config: &EmberConfig) -> Result<(), Error> {
    if config.training.is_none() {
        // `check` and `plan` accept such a config with a warning; training it needs a length.
        let missing: Vec<ember_config::ConfigError> = ember_config::training_reasons(config)
            .into_iter()
            .map(|(pointer, why)| ember_config::ConfigError::Invalid {
                pointer,
                message: format!(
                    "{why}, which needs training, but the config gives no step count: add {}",
                    ember_config::engine::STEP_COUNT_SOURCES
                ),
            })
            .collect();
        if !missing.is_empty() {
            return Err(Error::Config(ember_config::ConfigErrors(missing)));
        }
        return Ok(());
    }
    let losses = config
        .distillation
        .as_ref()
        .map(|d| d.losses.as_slice())
        .unwrap_or_default();
    if losses.is_empty() {
        // DeepSpeed's recipes fine-tune on a task's labels; a sentence encoder has none here.
        return Err(Error::NotSupported(
            "training without distillation losses: a task loss (labels) is not built yet; add `distillation.losses` (e.g. [{\"kind\": \"embedding_cosine\"}])".into(),
        ));
    }
    let refused: Vec<String> = losses
        .iter()
        .filter_map(|l| {
            loss_support(l.kind)
                .err()
                .map(|why| format!("distillation loss `{}`: {why}", loss_name(l.kind)))
        })
        .collect();
    if !refused.is_empty() {
        return Err(Error::NotSupported(refused.join("; ")));
    }
    Ok(())
}

/// What a distillation run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DistillReport {
    pub steps: u64,
    /// Mean loss over the first and the last tenth of the steps.
    pub first_loss: f64,
    pub last_loss: f64,
    pub seconds: f64,
    /// Held-out fidelity of the state kept (when measured).
    pub held_out: Option<Fidelity>,
    /// The step whose state is kept: the best held-out one once every schedule has settled,
    /// else the last.
    pub kept_step: u64,
}

/// Where training text comes from and how it is batched: the `training` section's, else (for
/// layer-by-layer distillation without one) the built-in articles in batches of 16 sentences of at
/// most 128 tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingText {
    pub data: String,
    pub batch_size: usize,
    pub max_seq_len: usize,
}

impl TrainingText {
    pub fn of(config: &EmberConfig) -> TrainingText {
        match &config.training {
            // Batches are micro batches: `batch_size` sentences per step in
            // `gradient_accumulation_steps` forwards.
            Some(t) => TrainingText {
                data: t.data.clone(),
                batch_size: (t.batch_size / t.gradient_accumulation_steps.max(1)).max(1) as usize,
                max_seq_len: t.max_seq_len as usize,
            },
            None => TrainingText {
                data: "builtin:lee_background".into(),
                batch_size: 16,
                max_seq_len: 128,
            },
        }
    }
}

/// The training sentences: `text.data` cut into sentences. Refuses a corpus smaller than one
/// batch, or one that holds a sentence of the fidelity reference (evaluation text must never be
/// trained on: whole sentences of 12 characters or more, compared after normalizing case and
/// whitespace).
pub fn training_samples(text: &TrainingText, assets: &Assets) -> Result<Vec<String>, Error> {
    let path = text_data::source_file(&text.data, assets)?;
    let samples = text_data::read_samples(&path, CalibrationSplit::Sentences, usize::MAX)?;
    if samples.len() < text.batch_size {
        return Err(Error::Other(format!(
            "{}: {} sentences, fewer than one batch of training.batch_size = {}",
            path.display(),
            samples.len(),
            text.batch_size
        )));
    }
    let normal = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let reference = crate::eval::ReferenceEmbeddings::minilm_l6()?;
    let held_out: std::collections::HashSet<String> = reference
        .texts
        .iter()
        .map(|s| normal(s))
        .filter(|s| s.len() >= 12)
        .collect();
    if let Some(s) = samples.iter().find(|s| held_out.contains(&normal(s))) {
        return Err(Error::Other(format!(
            "{}: the training text contains the evaluation sentence \"{s}\"; remove it (evaluation text must not be trained on)",
            path.display()
        )));
    }
    Ok(samples)
}

/// Sets the last `training.eval_sentences` training sentences aside for held-out measurements
/// (when `training.eval_every` > 0): `(trained on, held out)`. Refuses a corpus whose rest is
/// smaller than one batch.
pub fn hold_out(samples: Vec<String>, config: &EmberConfig) -> Result<(Vec<String>, Vec<String>), Error> {
    let Some(t) = config.training.as_ref().filter(|t| t.eval_every > 0) else {
        return Ok((samples, Vec::new()));
    };
    let held = t.eval_sentences as usize;
    if samples.len() < held + t.batch_size as usize {
        return Err(Error::Other(format!(
            "the training text has {} sentences: too few to set training.eval_sentences = {held} aside and still fill a batch of {} (lower eval_sentences, or eval_every = 0)",
            samples.len(),
            t.batch_size
        )));
    }
    let mut samples = samples;
    let held_out = samples.split_off(samples.len() - held);
    Ok((samples, held_out))
}

/// `samples` tokenized (at most `text.max_seq_len` tokens) and batched by token count.
pub fn training_batches(text: &TrainingText, samples: &[String], tokenizer_path: &Path) -> Result<Vec<Batch>, Error> {
    let tokenizer = Tokenizer::from_file_with_max_length(tokenizer_path, text.max_seq_len)?;
    Ok(text_data::length_batches(&tokenizer, samples, text.batch_size)?)
}

/// Where a run keeps its checkpoint, and whether it continues one.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// Written every `training.checkpoint_every` steps, atomically; `None`: no checkpoints.
    pub path: Option<PathBuf>,
    /// Continue from `path` (which must hold a checkpoint of this run).
    pub resume: bool,
    /// The run's identity ([`fingerprint`]).
    pub fingerprint: String,
}

/// The checkpoint next to an artifact: `model.ember` → `model.ember.ckpt`.
pub fn default_checkpoint(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".ckpt");
    PathBuf::from(name)
}

/// A run's identity: the config (every key that shapes the result) and the teacher model (name
/// and shapes). A checkpoint of another run is refused.
pub fn fingerprint(config: &EmberConfig, teacher: &Bert) -> String {
    use sha2::Digest;
    let mut sha = sha2::Sha256::new();
    sha.update(serde_json::to_vec(config).unwrap_or_default());
    sha.update(format!("{:?}", teacher.config()).as_bytes());
    sha.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The student's step clock and the weight schedules on it a run reports (one per config
/// group: `(group pointer, schedule)`), from [`ember_core::Composed`].
#[derive(Debug, Clone, Default)]
pub struct StudentSchedules {
    pub clock: StepClock,
    pub weights: Vec<(String, BitSchedule)>,
    /// The first step from which nothing scheduled changes (`Plan::settled_at`): held-out
    /// measurements from then on are candidates for the kept state.
    pub settled_at: u64,
    /// MoQ's eigenvalue-scaled periods, when enabled.
    pub eigen: Option<EigenSetup>,
}

/// Each reported schedule's bits at `step` (`None`: float, before its offset), by short name.
fn bits_at(schedules: &[(String, BitSchedule)], step: u64) -> Vec<(String, Option<Phase>)> {
    schedules
        .iter()
        .map(|(pointer, s)| (group_name(pointer), s.phase(step)))
        .collect()
}

/// The step from which every reported schedule has settled.
fn latest_settle(schedules: &[(String, BitSchedule)]) -> u64 {
    ember_config::plan::settled_after(schedules.iter().map(|(_, s)| s))
}

/// `wq1` of `/compression_training/weight_quantization/different_groups/wq1`.
fn group_name(pointer: &str) -> String {
    pointer
        .rsplit('/')
        .next()
        .unwrap_or(pointer)
        .replace("~1", "/")
        .replace("~0", "~")
}

/// Trains `student` (a composed model on the plain CPU device) to match `teacher` for
/// `training.steps` optimizer steps (from the checkpoint's step when resuming); returns it on the
/// plain device with its clock at `training.steps` (every schedule settled: what clean stores).
#[allow(clippy::too_many_arguments)]
pub fn distill(
    student: Bert,
    teacher: &Bert,
    config: &EmberConfig,
    batches: &[Batch],
    held_out: &[Batch],
    schedules: &StudentSchedules,
    saving: &Checkpointing,
    quiet: bool,
    events: &mut Events,
) -> Result<(Bert, DistillReport), Error> {
    let t = config
        .training
        .as_ref()
        .ok_or_else(|| Error::Other("the config has no `training` section".into()))?;
    check_training(config)?;
    let losses = config
        .distillation
        .as_ref()
        .map(|d| d.losses.clone())
        .unwrap_or_default();
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    plain.seed(t.seed);
    let student = student.fork(&device).train();
    let mut factors: Option<Vec<LayerFactor>> = None;
    let (mut trainer, mut student) = match (&saving.path, saving.resume) {
        (Some(path), true) => {
            let checkpoint = ember_train::Checkpoint::read(path).map_err(|e| Error::Other(format!("--resume: {e}")))?;
            let resumed = Trainer::resume(TrainSettings::from_config(t), student, &checkpoint, &saving.fingerprint)
                .map_err(|e| Error::Other(format!("--resume {}: {e}", path.display())))?;
            events.emit("resumed", &serde_json::json!({ "step": checkpoint.step, "path": path }))?;
            factors = crate::moq_eigen::from_state(&checkpoint.state)?;
            resumed
        }
        (None, true) => {
            return Err(Error::Other(
                "--resume needs a checkpoint (--checkpoint or --out)".into(),
            ));
        }
        (_, false) => (Trainer::new(TrainSettings::from_config(t)), student),
    };
    let first_step = trainer.steps_done();
    if first_step > t.steps {
        return Err(Error::Other(format!(
            "the checkpoint is at step {first_step}, past training.steps = {}",
            t.steps
        )));
    }
    let micro_batches = t.gradient_accumulation_steps.max(1);
    let order = epoch_order(batches.len(), t.seed, t.steps * u64::from(micro_batches));
    let bar = crate::progress::progress_bar(t.steps, "distilling", quiet);
    bar.set_position(first_step);
    let log_every = (t.steps / 200).max(1);
    let start = Instant::now();
    let mut history = Vec::with_capacity(t.steps as usize);
    let held = if held_out.is_empty() || t.eval_every == 0 {
        None
    } else {
        Some(HeldOut::new(held_out.to_vec(), teacher, &plain)?)
    };
    // The best measured state once every schedule has settled: (step, fidelity, model).
    let mut best: Option<(u64, Fidelity, Bert)> = None;
    let mut curve: Vec<(u64, Fidelity)> = Vec::new();
    // Ctrl-C from here on finishes the current step, checkpoints it and stops.
    crate::interrupt::watch();
    // The schedules reported (per group; per group and layer once eigenvalue factors exist).
    let mut reported = schedules.weights.clone();
    let mut settled_at = schedules.settled_at;
    if let (Some(setup), Some(f)) = (&schedules.eigen, &factors) {
        reported = setup.apply(f, &mut student, &schedules.weights);
        settled_at = settled_at.max(latest_settle(&reported));
    }
    let mut phases = bits_at(&reported, first_step.saturating_sub(1));
    for step in first_step..t.steps {
        // Schedules (offsets, MoQ's bits and blend) follow the step before the forward.
        schedules.clock.set(step);
        if let Some(setup) = &schedules.eigen
            && factors.is_none()
            && step >= setup.at
        {
            let batch = &batches[order[(step * u64::from(micro_batches)) as usize]];
            let targets = TeacherTargets::of(teacher, batch, &losses, &plain, &device)?;
            let plain_student = student.clone().valid();
            let estimated = setup.estimate(
                &plain_student,
                &schedules.clock,
                &device,
                // One teacher forward serves every gradient of the estimate.
                |m| student_loss(m, &targets, batch, &losses, &device).map(|(l, _)| l),
                |b| bar.set_message(format!("estimating the Hessian's dominant eigenvalue of layer {b}")),
            )?;
            events.emit("eigenvalue", &serde_json::json!({ "step": step, "layers": estimated }))?;
            reported = setup.apply(&estimated, &mut student, &schedules.weights);
            settled_at = settled_at.max(latest_settle(&reported));
            factors = Some(estimated);
        }
        let now = bits_at(&reported, step);
        for (group, is) in &now {
            // A schedule new at this step (per layer once eigenvalue factors exist) is reported too.
            let was = phases.iter().find(|(g, _)| g == group).map(|(_, p)| p.map(|p| p.bits));
            if step == first_step || was != Some(is.map(|p| p.bits)) {
                events.emit(
                    "bits",
                    &serde_json::json!({ "step": step, "group": group, "bits": is.map(|p| p.bits), "float_share": is.map(|p| p.float_share) }),
                )?;
            }
        }
        phases = now;
        // `training.batch_size` sentences per step, in `gradient_accumulation_steps` micro
        // batches whose gradients add up (each loss divided by their number).
        let mut accumulation = Accumulation::new(micro_batches);
        let mut terms: Vec<(String, f64)> = Vec::new();
        let mut loss_value = 0.0;
        for m in 0..u64::from(micro_batches) {
            let batch = &batches[order[(step * u64::from(micro_batches) + m) as usize]];
            let targets = TeacherTargets::of(teacher, batch, &losses, &plain, &device)?;
            let (loss, micro_terms) = student_loss(&student, &targets, batch, &losses, &device)?;
            let loss = accumulation.scale(loss);
            loss_value += f64::from(loss.clone().inner().into_scalar::<f32>());
            if terms.is_empty() {
                terms = micro_terms.iter().map(|(k, _)| (k.clone(), 0.0)).collect();
            }
            for ((_, sum), (_, v)) in terms.iter_mut().zip(&micro_terms) {
                *sum += v / f64::from(micro_batches);
            }
            if !loss_value.is_finite() {
                return Err(Error::Other(format!(
                    "the training loss is not finite at step {step} ({loss_value}); lower training.lr"
                )));
            }
            accumulation.add(&student, loss);
        }
        let (next, report) = trainer.step_with(student, accumulation.finish());
        student = next;
        history.push(loss_value);
        bar.set_position(step + 1);
        let rate = (step + 1 - first_step) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let shown: Vec<String> = terms.iter().map(|(k, v)| format!("{k} {v:.5}")).collect();
        let bits: Vec<String> = phases
            .iter()
            .map(|(g, p)| match p {
                Some(p) if p.float_share > 0.0 => format!("{g} W{} r{:.2}", p.bits, p.float_share),
                Some(p) => format!("{g} W{}", p.bits),
                None => format!("{g} fp32"),
            })
            .collect();
        bar.set_message(format!(
            "distilling: loss {loss_value:.5} ({}), lr {:.2e}, {rate:.2} steps/s{}{}",
            shown.join(", "),
            report.lr,
            if bits.is_empty() { "" } else { ", " },
            bits.join(", ")
        ));
        let done = step + 1;
        if let Some(held) = &held
            && (done % t.eval_every == 0 || done == t.steps)
        {
            // The state after `done` steps runs at the schedules' phase of step `done`.
            schedules.clock.set(done);
            let state = student.clone().valid();
            let f = held.measure(&state, &plain)?;
            let candidate = done >= settled_at;
            events.emit(
                "eval",
                &serde_json::json!({ "step": done, "cos_mean": f.cos_mean, "cos_min": f.cos_min, "sentences": held.sentences(), "candidate": candidate }),
            )?;
            curve.push((done, f));
            if candidate && best.as_ref().is_none_or(|(_, b, _)| f.cos_mean > b.cos_mean) {
                best = Some((done, f, state));
            }
        }
        let interrupted = crate::interrupt::requested();
        if let Some(path) = &saving.path
            && step + 1 < t.steps
            && (interrupted || (t.checkpoint_every > 0 && (step + 1) % t.checkpoint_every == 0))
        {
            let bytes = trainer
                .checkpoint(
                    &student,
                    &saving.fingerprint,
                    &crate::moq_eigen::state(factors.as_deref()),
                )
                .map_err(Error::Other)?;
            ember_train::Checkpoint::write(path, &bytes).map_err(Error::Other)?;
            events.emit(
                "checkpoint",
                &serde_json::json!({ "step": step + 1, "path": path, "bytes": bytes.len() }),
            )?;
        }
        if interrupted && step + 1 < t.steps {
            bar.finish_and_clear();
            events.emit("interrupted", &serde_json::json!({ "step": step + 1 }))?;
            return Err(Error::Interrupted(match &saving.path {
                Some(path) => format!(
                    "interrupted after step {} of {}; {} holds the run (continue it with the same command and --resume); no artifact was written",
                    step + 1,
                    t.steps,
                    path.display()
                ),
                None => format!(
                    "interrupted after step {} of {}; nothing was saved (--out or --checkpoint keeps a checkpoint)",
                    step + 1,
                    t.steps
                ),
            }));
        }
        if step % log_every == 0 || step + 1 == t.steps {
            events.emit(
                "train_step",
                &serde_json::json!({
                    "step": step,
                    "loss": loss_value,
                    "terms": terms.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                    "lr": report.lr,
                    "grad_norm": report.grad_norm,
                    "steps_per_s": rate,
                    "bits": phases.iter().map(|(g, p)| (g.clone(), serde_json::json!(p.map(|p| p.bits)))).collect::<serde_json::Map<_, _>>(),
                }),
            )?;
        }
    }
    bar.finish_and_clear();
    // The trained model's state: every schedule settled (the plan refuses one that is not).
    schedules.clock.set(t.steps);
    let (first_loss, last_loss) = ember_train::first_and_last_tenth(&history);
    let mut report = DistillReport {
        steps: t.steps - first_step,
        first_loss,
        last_loss,
        seconds: start.elapsed().as_secs_f64(),
        held_out: curve.last().map(|(_, f)| *f),
        kept_step: t.steps,
    };
    let model = match best {
        Some((step, f, state)) if step < t.steps => {
            events.emit(
                "best",
                &serde_json::json!({ "step": step, "cos_mean": f.cos_mean, "cos_min": f.cos_min, "final_cos_mean": report.held_out.map(|f| f.cos_mean) }),
            )?;
            report.kept_step = step;
            report.held_out = Some(f);
            state
        }
        _ => student.valid(),
    };
    Ok((model, report))
}

/// What the frozen teacher gives one batch, moved to the autodiff device as loss constants:
/// its sentence embeddings and (when a term needs them) every layer's hidden states.
struct TeacherTargets {
    embedding: Tensor<2>,
    hidden: Vec<Tensor<3>>,
}

impl TeacherTargets {
    /// The teacher's forward on `batch` (without autodiff, on `plain`), for `losses`.
    fn of(
        teacher: &Bert,
        batch: &Batch,
        losses: &[ember_config::types::DistillationLoss],
        plain: &Device,
        device: &Device,
    ) -> Result<TeacherTargets, Error> {
        let (out, hidden) = if losses.iter().any(|l| l.kind == LossKind::HiddenMse) {
            teacher.encode_with_hidden(batch, plain)?
        } else {
            (teacher.encode(batch, plain)?, Vec::new())
        };
        Ok(TeacherTargets {
            embedding: Tensor::<2>::from_data(out.embedding.into_data(), device),
            hidden: hidden
                .into_iter()
                .map(|h| Tensor::<3>::from_data(h.into_data(), device))
                .collect(),
        })
    }
}

/// The weighted distillation loss of `student` against the teacher's `targets` for one batch,
/// with each term's value (`(name, value)`, unweighted).
fn student_loss(
    student: &Bert,
    targets: &TeacherTargets,
    batch: &Batch,
    losses: &[ember_config::types::DistillationLoss],
    device: &Device,
) -> Result<(Tensor<1>, Vec<(String, f64)>), Error> {
    let (s_out, s_hidden) = if targets.hidden.is_empty() {
        (student.encode(batch, device)?, Vec::new())
    } else {
        student.encode_with_hidden(batch, device)?
    };
    let (_, mask) = batch.to_tensors(device);
    let mut terms = Vec::with_capacity(losses.len());
    let mut total: Option<Tensor<1>> = None;
    for l in losses {
        let term = match l.kind {
            LossKind::EmbeddingCosine => embedding_cosine(s_out.embedding.clone(), targets.embedding.clone()),
            LossKind::EmbeddingMse => embedding_mse(s_out.embedding.clone(), targets.embedding.clone()),
            LossKind::HiddenMse => {
                // Student layer i ↔ teacher layer i (same depth), averaged over layers.
                let n = s_hidden.len().max(1) as f64;
                let mut sum: Option<Tensor<1>> = None;
                for (s, t) in s_hidden.iter().zip(&targets.hidden) {
                    let m = masked_mse(s.clone(), t.clone(), mask.clone());
                    sum = Some(match sum {
                        Some(acc) => acc + m,
                        None => m,
                    });
                }
                sum.ok_or_else(|| Error::Other("hidden_mse: the model has no layers".into()))?
                    .div_scalar(n)
            }
            other => return Err(Error::NotSupported(format!("distillation loss {other:?}"))),
        };
        let value = f64::from(term.clone().inner().into_scalar::<f32>());
        terms.push((loss_name(l.kind), value));
        let weighted = term.mul_scalar(l.weight);
        total = Some(match total {
            Some(acc) => acc + weighted,
            None => weighted,
        });
    }
    let loss = total.ok_or_else(|| Error::Other("no distillation loss terms".into()))?;
    Ok((loss, terms))
}

/// The batch index of every step: each epoch visits every batch once, in an order shuffled by
/// `seed` (xorshift, so a run is reproducible).
fn epoch_order(batches: usize, seed: u64, steps: u64) -> Vec<usize> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(steps as usize);
    while (out.len() as u64) < steps {
        let mut epoch: Vec<usize> = (0..batches).collect();
        for i in (1..epoch.len()).rev() {
            epoch.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        out.extend(epoch);
    }
    out.truncate(steps as usize);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_visits_every_batch_once() {
        let order = epoch_order(5, 3, 12);
        assert_eq!(order.len(), 12);
        for epoch in order.chunks(5).take(2) {
            let mut e = epoch.to_vec();
            e.sort();
            assert_eq!(e, [0, 1, 2, 3, 4]);
        }
        assert_eq!(order, epoch_order(5, 3, 12), "reproducible");
        assert_ne!(order[..5], epoch_order(5, 4, 12)[..5], "the seed changes the order");
    }
}
