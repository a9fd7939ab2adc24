//! AdamW with PyTorch's conventions, and the optimizer step.
//!
//! burn's `AdamWConfig` defaults differ from PyTorch's (ε 1e-5, weight decay 1e-4); Ember states
//! every value: β₁ 0.9, β₂ 0.999, ε 1e-8 added outside the square root, decoupled weight decay
//! `θ ← θ·(1 − lr·λ)`. Biases and LayerNorm parameters are not decayed (a second optimizer group
//! with λ = 0, matched by parameter path: burn names a module's parameters by field, so Ember's
//! blocks' `bias` and `layer_norm` fields).

use burn::module::{Module, ParamGroup};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
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
        };
        TrainSettings::adamw(schedule, t.weight_decay)
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
        let adamw = |decay: f64| {
            AdamWConfig::new()
                .with_beta_1(settings.beta1 as f32)
                .with_beta_2(settings.beta2 as f32)
                .with_epsilon(settings.epsilon as f32)
                .with_weight_decay(decay as f32)
        };
        let optim = adamw(settings.weight_decay).init().with_group(
            ParamGroup::from_any_predicates(NO_DECAY.to_vec()),
            adamw(0.0).build(),
            None,
        );
        Trainer {
            settings,
            optim,
            step: 0,
        }
    }

    /// Optimizer steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The bytes of a checkpoint of `model` and this optimizer (see [`Checkpoint`]).
    pub fn checkpoint<M: Module>(&self, model: &M, fingerprint: &str) -> Result<Vec<u8>, String> {
        Checkpoint::encode(model, &self.optim, self.step, fingerprint)
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
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
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
