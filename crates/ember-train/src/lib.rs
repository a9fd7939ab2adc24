//! Ember's training loop on burn autodiff (the training issue builds QAT, MoQ, KD and LKD on it):
//!
//! - [`schedule`]: the learning rate per step (warmup, then constant, linear or cosine decay), a
//!   closed form of the step, so a resumed run continues it exactly.
//! - [`clip`]: **global**-norm gradient clipping over every parameter (PyTorch's
//!   `clip_grad_norm_`; burn's `GradientClipping::Norm` clips each tensor on its own).
//! - [`optimizer`]: AdamW with PyTorch's conventions (β = 0.9/0.999, ε = 1e-8 outside the square
//!   root, decoupled weight decay) and no decay on biases and LayerNorms; one
//!   [`optimizer::Trainer::step`] = backward → clip → AdamW at the scheduled rate.
//!
//! - [`checkpoint`]: model + optimizer state + step in one atomically written, digested file;
//!   a resumed run continues exactly.
//! - [`losses`]: distillation terms (embedding cosine and MSE, hidden-state MSE over real tokens).
//!
//! The crate knows optimizers, schedules and losses, not BERT: the model is any burn `Module`, the loss
//! any scalar tensor on an autodiff device.

pub mod checkpoint;
pub mod clip;
pub mod eigen;
pub mod losses;
pub mod optimizer;
pub mod schedule;

pub use checkpoint::Checkpoint;
pub use clip::{clip_global_norm, global_norm};
pub use optimizer::{
    Accumulation, GradientReduction, SingleDevice, StepReport, TrainSettings, Trainer, first_and_last_tenth,
};
pub use schedule::Schedule;
