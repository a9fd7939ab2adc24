//! The one trait every technique implements, built-in or user-registered.
//!
//! A technique names its config key, says which site kinds it accepts, and attaches its state to
//! the slots of each module the plan assigns to it. Hooks for what happens later (per-step
//! schedules, losses, clean) have defaults so post-training techniques implement only `attach`.

use ember_config::plan::{Applied, ModulePlan};
use ember_config::types::{Calibration, Numerics};
use ember_config::{CustomTechniqueSpec, SiteKind};

use crate::error::CoreError;
use crate::lifecycle::StepClock;
use crate::slots::{EmbeddingSlots, LinearSlots};

/// The slots of one module, by kind.
pub enum SiteSlots<'a> {
    Linear(&'a mut LinearSlots),
    Embedding(&'a mut EmbeddingSlots),
}

/// What every attach sees besides the module.
#[derive(Debug, Clone)]
pub struct AttachContext {
    pub numerics: Numerics,
    pub calibration: Calibration,
    /// The composition's training step: scheduled state (offsets, MoQ bits, masks) follows it.
    pub clock: StepClock,
}

/// A compression technique.
pub trait Technique: Send + Sync {
    /// The key under `compression_training` (`weight_quantization`, or a user technique's own).
    fn key(&self) -> &str;

    /// Site kinds the technique can attach to.
    fn accepts(&self) -> &[SiteKind];

    /// For user techniques: the JSON Schemas config validation checks their params against.
    /// Built-in DeepSpeed techniques return `None` (the config crate knows them).
    fn config_spec(&self) -> Option<CustomTechniqueSpec> {
        None
    }

    /// `Err(reason)` when this use of the technique cannot run yet; the composer reports it as
    /// "not supported yet" before touching the model.
    fn supports(&self, _module: &ModulePlan, _applied: &Applied) -> Result<(), String> {
        Ok(())
    }

    /// Attaches the technique's state to one module's slots.
    fn attach(
        &self,
        module: &ModulePlan,
        applied: &Applied,
        slots: SiteSlots<'_>,
        ctx: &AttachContext,
    ) -> Result<(), CoreError>;

    /// Called after calibration batches ran, for each module this technique attached to: turn
    /// observations into fixed parameters (static activation ranges).
    fn finish_calibration(
        &self,
        _module: &ModulePlan,
        _slots: SiteSlots<'_>,
        _ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        Ok(())
    }

    /// Whether this attachment needs calibration batches before use.
    fn needs_calibration(&self, _applied: &Applied) -> bool {
        false
    }

    /// Per-step hook of the training loop (schedules, mask updates). Post-training techniques
    /// ignore it.
    fn step(&self, _step: u64) {}
}
