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
use ember_train::{TrainSettings, Trainer};

use crate::Error;
use crate::events::Events;

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
            Some(t) => TrainingText {
                data: t.data.clone(),
                batch_size: t.batch_size as usize,
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
}

impl StudentSchedules {
    /// Each group's bits at `step` (`None`: float, before its offset), by short group name.
    fn bits_at(&self, step: u64) -> Vec<(String, Option<Phase>)> {
        self.weights
            .iter()
            .map(|(pointer, s)| (group_name(pointer), s.phase(step)))
            .collect()
    }
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
    let (mut trainer, mut student) = match (&saving.path, saving.resume) {
        (Some(path), true) => {
            let checkpoint = ember_train::Checkpoint::read(path).map_err(|e| Error::Other(format!("--resume: {e}")))?;
            let resumed = Trainer::resume(TrainSettings::from_config(t), student, &checkpoint, &saving.fingerprint)
                .map_err(|e| Error::Other(format!("--resume {}: {e}", path.display())))?;
            events.emit("resumed", &serde_json::json!({ "step": checkpoint.step, "path": path }))?;
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
    let order = epoch_order(batches.len(), t.seed, t.steps);
    let hidden_needed = losses.iter().any(|l| l.kind == LossKind::HiddenMse);
    let bar = crate::progress::progress_bar(t.steps, "distilling", quiet);
    bar.set_position(first_step);
    let log_every = (t.steps / 200).max(1);
    let start = Instant::now();
    let mut history = Vec::with_capacity(t.steps as usize);
    let mut phases = schedules.bits_at(first_step.saturating_sub(1));
    for step in first_step..t.steps {
        // Schedules (offsets, MoQ's bits and blend) follow the step before the forward.
        schedules.clock.set(step);
        let now = schedules.bits_at(step);
        for ((group, was), (_, is)) in phases.iter().zip(&now) {
            if step == first_step || was.map(|p| p.bits) != is.map(|p| p.bits) {
                events.emit(
                    "bits",
                    &serde_json::json!({ "step": step, "group": group, "bits": is.map(|p| p.bits), "float_share": is.map(|p| p.float_share) }),
                )?;
            }
        }
        phases = now;
        let batch = &batches[order[step as usize]];
        let (t_out, t_hidden) = if hidden_needed {
            teacher.encode_with_hidden(batch, &plain)?
        } else {
            (teacher.encode(batch, &plain)?, Vec::new())
        };
        let (s_out, s_hidden) = if hidden_needed {
            student.encode_with_hidden(batch, &device)?
        } else {
            (student.encode(batch, &device)?, Vec::new())
        };
        let on = |x: Tensor<2>| Tensor::<2>::from_data(x.into_data(), &device);
        let on3 = |x: Tensor<3>| Tensor::<3>::from_data(x.into_data(), &device);
        let (_, mask) = batch.to_tensors(&device);
        let mut terms = Vec::with_capacity(losses.len());
        let mut total: Option<Tensor<1>> = None;
        for l in &losses {
            let term = match l.kind {
                LossKind::EmbeddingCosine => embedding_cosine(s_out.embedding.clone(), on(t_out.embedding.clone())),
                LossKind::EmbeddingMse => embedding_mse(s_out.embedding.clone(), on(t_out.embedding.clone())),
                LossKind::HiddenMse => {
                    // Student layer i ↔ teacher layer i (same depth), averaged over layers.
                    let n = s_hidden.len().max(1) as f64;
                    let mut sum: Option<Tensor<1>> = None;
                    for (s, t) in s_hidden.iter().zip(&t_hidden) {
                        let m = masked_mse(s.clone(), on3(t.clone()), mask.clone());
                        sum = Some(match sum {
                            Some(acc) => acc + m,
                            None => m,
                        });
                    }
                    sum.expect("a model has layers").div_scalar(n)
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
        let loss = total.expect("at least one loss term");
        let loss_value = f64::from(loss.clone().inner().into_scalar::<f32>());
        if !loss_value.is_finite() {
            return Err(Error::Other(format!(
                "the training loss is not finite at step {step} ({loss_value}); lower training.lr"
            )));
        }
        let (next, report) = trainer.step(student, loss);
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
        if let Some(path) = &saving.path
            && t.checkpoint_every > 0
            && (step + 1) % t.checkpoint_every == 0
            && step + 1 < t.steps
        {
            let bytes = trainer
                .checkpoint(&student, &saving.fingerprint)
                .map_err(Error::Other)?;
            ember_train::Checkpoint::write(path, &bytes).map_err(Error::Other)?;
            events.emit(
                "checkpoint",
                &serde_json::json!({ "step": step + 1, "path": path, "bytes": bytes.len() }),
            )?;
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
    let report = DistillReport {
        steps: t.steps - first_step,
        first_loss,
        last_loss,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((student.valid(), report))
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
