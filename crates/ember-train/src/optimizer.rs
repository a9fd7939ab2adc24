//! AdamW with PyTorch's conventions, and the optimizer step.
//!
//! burn's `AdamWConfig` defaults differ from PyTorch's (ε 1e-5, weight decay 1e-4); Ember states
//! every value: β₁ 0.9, β₂ 0.999, ε 1e-8 added outside the square root, decoupled weight decay
//! `θ ← θ·(1 − lr·λ)`. Biases and LayerNorm parameters are not decayed (a second optimizer group
//! with λ = 0, matched by parameter path: burn names a module's parameters by field, so Ember's
//! blocks' `bias` and `layer_norm` fields).

use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use ember_config::types::Training;

use crate::checkpoint::Checkpoint;
use crate::clip::clip_global_norm;
use crate::schedule::Schedule;

/// What a training run's optimizer does, every value explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub schedule: Schedule,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// `true`: AdamW's decoupled decay `θ ← θ·(1 − lr·λ)`; `false`: Adam with L2 decay `g + λ·θ`
    /// (DeepSpeed's `adam_w_mode: false`).
    pub decoupled_weight_decay: bool,
    /// Global-norm clipping of the gradients (`None`: none).
    pub max_grad_norm: Option<f64>,
}

impl TrainSettings {
    /// AdamW with PyTorch's constants (β 0.9/0.999, ε 1e-8) and gradients clipped to a global
    /// norm of 1, on `schedule` with decoupled `weight_decay`.
    pub fn adamw(schedule: Schedule, weight_decay: f64) -> TrainSettings {
        TrainSettings {
            schedule,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay,
            decoupled_weight_decay: true,
            max_grad_norm: Some(1.0),
        }
    }

    /// The settings a config's `training` section asks for.
    pub fn from_config(t: &Training) -> TrainSettings {
        let schedule = Schedule {
            peak: t.lr,
            warmup: t.warmup_steps,
            total: t.steps,
            kind: t.lr_schedule,
            deepspeed: t.scheduler.clone(),
        };
        TrainSettings {
            beta1: t.betas[0],
            beta2: t.betas[1],
            epsilon: t.eps,
            max_grad_norm: (t.max_grad_norm > 0.0).then_some(t.max_grad_norm),
            decoupled_weight_decay: t.decoupled_weight_decay,
            ..TrainSettings::adamw(schedule, t.weight_decay)
        }
    }
}

/// The mean loss over the first and over the last tenth of a run's steps (at least one step
/// each; NaN for a run of no steps): what a run report says of its progress.
pub fn first_and_last_tenth(losses: &[f64]) -> (f64, f64) {
    if losses.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let tenth = (losses.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..tenth]), mean(&losses[losses.len() - tenth..]))
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The step just taken (0-based).
    pub step: u64,
    pub lr: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
}

/// The optimizer state of a run: AdamW (two parameter groups) and the step count.
pub struct Trainer {
    settings: TrainSettings,
    optim: ModuleOptimizer,
    step: u64,
    reduction: Box<dyn GradientReduction>,
}

/// Where a step's gradients go between the backward and clipping: the one seam for data
/// parallelism (docs/scaling.md). On one device it is the identity; a run over several devices
/// averages each parameter's gradient across them here (burn's `all_reduce` on CUDA/NCCL), so
/// clipping and the optimizer see the global gradient, as in DeepSpeed.
pub trait GradientReduction: Send {
    fn reduce(&mut self, grads: GradientsParams) -> GradientsParams;
}

/// One device: the gradients as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleDevice;

impl GradientReduction for SingleDevice {
    fn reduce(&mut self, grads: GradientsParams) -> GradientsParams {
        grads
    }
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("settings", &self.settings)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Parameter paths that are never decayed: biases and LayerNorms (γ and β).
const NO_DECAY: [&str; 2] = ["bias", "layer_norm"];

impl Trainer {
    pub fn new(settings: TrainSettings) -> Trainer {
        let optim = if settings.decoupled_weight_decay {
            let adamw = |decay: f64| {
                AdamWConfig::new()
                    .with_beta_1(settings.beta1 as f32)
                    .with_beta_2(settings.beta2 as f32)
                    .with_epsilon(settings.epsilon as f32)
                    .with_weight_decay(decay as f32)
            };
            adamw(settings.weight_decay).init().with_group(
                ParamGroup::from_any_predicates(NO_DECAY.to_vec()),
                adamw(0.0).build(),
                None,
            )
        } else {
            // burn's Adam adds `λ·θ` to the gradient: L2 decay, DeepSpeed's `adam_w_mode: false`.
            let adam = |decay: f64| {
                AdamConfig::new()
                    .with_beta_1(settings.beta1 as f32)
                    .with_beta_2(settings.beta2 as f32)
                    .with_epsilon(settings.epsilon as f32)
                    .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay as f32)))
            };
            adam(settings.weight_decay).init().with_group(
                ParamGroup::from_any_predicates(NO_DECAY.to_vec()),
                adam(0.0).build(),
                None,
            )
        };
        Trainer {
            settings,
            optim,
            step: 0,
            reduction: Box::new(SingleDevice),
        }
    }

    /// The trainer with `reduction` between backward and clipping (see [`GradientReduction`]).
    pub fn with_reduction(mut self, reduction: impl GradientReduction + 'static) -> Trainer {
        self.reduction = Box::new(reduction);
        self
    }

    /// Optimizer steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The bytes of a checkpoint of `model` and this optimizer (see [`Checkpoint`]).
    /// `state` is technique state the step does not determine (null when there is none).
    pub fn checkpoint<M: Module>(
        &self,
        model: &M,
        fingerprint: &str,
        state: &serde_json::Value,
    ) -> Result<Vec<u8>, String> {
        Checkpoint::encode(model, &self.optim, self.step, fingerprint, state)
    }

    /// Continues a run from `checkpoint`: `model` (same structure) gets its parameters, a new
    /// trainer with `settings` gets its optimizer state and step. Refuses a checkpoint of
    /// another run.
    pub fn resume<M: Module>(
        settings: TrainSettings,
        model: M,
        checkpoint: &Checkpoint,
        fingerprint: &str,
    ) -> Result<(Trainer, M), String> {
        checkpoint.check_fingerprint(fingerprint)?;
        let model = checkpoint.restore_model(model)?;
        let mut trainer = Trainer::new(settings);
        trainer.optim = checkpoint.restore_optimizer(trainer.optim)?;
        trainer.step = checkpoint.step;
        Ok((trainer, model))
    }

    /// One optimizer step on `model` for `loss` (a scalar on an autodiff device): backward,
    /// global-norm clipping, AdamW at the scheduled rate.
    pub fn step<M: Module>(&mut self, model: M, loss: Tensor<1>) -> (M, StepReport) {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.step_with(model, grads)
    }

    /// One optimizer step with gradients already taken (accumulated over micro batches, see
    /// [`Accumulation`]): the reduction (identity on one device), global-norm clipping, then
    /// Adam(W) at the scheduled rate.
    pub fn step_with<M: Module>(&mut self, model: M, grads: GradientsParams) -> (M, StepReport) {
        let mut grads = self.reduction.reduce(grads);
        let grad_norm = match self.settings.max_grad_norm {
            Some(max) => clip_global_norm(&model, &mut grads, max),
            None => crate::clip::global_norm(&model, &grads),
        };
        let lr = self.settings.schedule.lr(self.step);
        let model = self.optim.step(lr, model, grads);
        let report = StepReport {
            step: self.step,
            lr,
            grad_norm,
        };
        self.step += 1;
        (model, report)
    }
}

/// Gradients summed over the micro batches of one optimizer step (DeepSpeed's gradient
/// accumulation: each micro batch's loss divided by their number, so the step sees the mean).
pub struct Accumulation<M> {
    grads: GradientsAccumulator<M>,
    micro_batches: u32,
}

impl<M: Module> Accumulation<M> {
    pub fn new(micro_batches: u32) -> Accumulation<M> {
        Accumulation {
            grads: GradientsAccumulator::new(),
            micro_batches: micro_batches.max(1),
        }
    }

    /// The loss of one micro batch as it enters the sum (divided by the number of micro batches).
    pub fn scale(&self, loss: Tensor<1>) -> Tensor<1> {
        if self.micro_batches == 1 {
            loss
        } else {
            loss.div_scalar(f64::from(self.micro_batches))
        }
    }

    /// Adds the gradients of a (scaled) micro-batch loss.
    pub fn add(&mut self, model: &M, scaled_loss: Tensor<1>) {
        let grads = GradientsParams::from_grads(scaled_loss.backward(), model);
        self.grads.accumulate(model, grads);
    }

    /// The summed gradients, for [`Trainer::step_with`].
    pub fn finish(mut self) -> GradientsParams {
        self.grads.grads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_and_last_tenth_are_their_means() {
        let losses: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(first_and_last_tenth(&losses), (1.5, 19.5));
        // Fewer than ten steps: one step each.
        assert_eq!(first_and_last_tenth(&[4.0, 2.0, 1.0]), (4.0, 1.0));
        let (a, b) = first_and_last_tenth(&[]);
        assert!(a.is_nan() && b.is_nan());
    }
}
