//! Ember's built-in techniques: weight quantization (integer, ternary, binary, minifloat;
//! DeepSpeed row-block groups, Ember input groups, per-row embeddings; in training on a
//! schedule: `schedule_offset`, MoQ's bit annealing and blend, stochastic rounding) and
//! activation quantization (per-token dynamic, or static ranges from calibration; from its
//! `schedule_offset` on). Pruning and layer reduction are refused with "not supported yet"
//! until their masks exist.

use ember_config::SiteKind;
use ember_config::plan::{Applied, ModulePlan, Params};
use ember_config::techniques::{ACTIVATION_QUANTIZATION, TechniqueFacts, WEIGHT_QUANTIZATION};
use ember_config::types::{QuantizationType, RangeCalibration, RangeMethod, Rounding};

use crate::error::CoreError;
use crate::fake_quant::{ActRange, ActSpec, WeightQuant};
use crate::lifecycle::{ActivationSchedule, WeightSchedule};
use crate::observer::{GramObserver, RangeObserver};
use crate::technique::{AttachContext, SiteSlots, Technique};

/// `weight_quantization`.
#[derive(Debug, Default)]
pub struct WeightQuantization;

impl WeightQuantization {
    fn spec(module: &ModulePlan, applied: &Applied, ctx: &AttachContext) -> Result<WeightQuant, CoreError> {
        let Params::WeightQuant(p) = &applied.params else {
            return Err(CoreError::Attach {
                path: module.path.clone(),
                message: "weight_quantization got foreign params".into(),
            });
        };
        let spec = p.spec(ctx.numerics);
        let layout = spec.layout;
        let (rows, cols) = (module.shape[0], module.shape[1..].iter().product());
        if !layout.fits(rows, cols) {
            return Err(CoreError::Attach {
                path: module.path.clone(),
                message: format!(
                    "quantize_groups = {} does not divide its {rows}×{cols} = {} weights (set `{}/shared_parameters/quantize_groups` to a divisor, or use group_size)",
                    layout.groups(rows, cols),
                    rows * cols,
                    "/compression_training/weight_quantization"
                ),
            });
        }
        Ok(WeightQuant {
            scheme: spec.scheme,
            layout,
            numerics: spec.numerics,
            clip: p.clip,
        })
    }
}

impl WeightQuantization {
    /// The training schedule of this attachment on the composition's clock, when anything
    /// changes with the step (an offset, MoQ's bits or blend, stochastic rounding).
    fn schedule(applied: &Applied, ctx: &AttachContext) -> Option<WeightSchedule> {
        let Params::WeightQuant(p) = &applied.params else {
            return None;
        };
        let bits = p.bit_schedule(applied.schedule.start);
        let stochastic = p.rounding == Rounding::Stochastic;
        (bits.offset > 0 || bits.anneals() || stochastic).then(|| WeightSchedule {
            clock: ctx.clock.clone(),
            bits,
            stochastic,
        })
    }
}

impl Technique for WeightQuantization {
    fn key(&self) -> &str {
        WEIGHT_QUANTIZATION.key
    }

    fn accepts(&self) -> &[SiteKind] {
        WEIGHT_QUANTIZATION.accepts
    }

    fn needs_calibration(&self, applied: &Applied) -> bool {
        matches!(&applied.params, Params::WeightQuant(p) if p.rounding == Rounding::Gptq)
    }

    fn attach(
        &self,
        module: &ModulePlan,
        applied: &Applied,
        slots: SiteSlots<'_>,
        ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        let spec = Self::spec(module, applied, ctx)?;
        let gptq = self.needs_calibration(applied);
        let schedule = Self::schedule(applied, ctx);
        match slots {
            SiteSlots::Linear(s) => {
                s.weight_quant = Some(spec);
                s.weight_schedule = schedule;
                // GPTQ needs the layer's calibration inputs; `precompute` runs it afterwards.
                s.gram = gptq.then(GramObserver::new);
            }
            // An embedding has no input to compensate over: round to nearest.
            SiteSlots::Embedding(s) => {
                s.weight_quant = Some(spec);
                s.weight_schedule = schedule;
            }
        }
        Ok(())
    }

    fn finish_calibration(
        &self,
        module: &ModulePlan,
        slots: SiteSlots<'_>,
        _ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        if let SiteSlots::Linear(s) = slots
            && let Some(g) = &s.gram
            && g.rows() == 0
        {
            return Err(CoreError::Calibration(format!(
                "no activations reached `{}` for GPTQ",
                module.path
            )));
        }
        Ok(())
    }
}

/// `activation_quantization` (the input of the matched Linear).
#[derive(Debug, Default)]
pub struct ActivationQuantization;

impl Technique for ActivationQuantization {
    fn key(&self) -> &str {
        ACTIVATION_QUANTIZATION.key
    }

    fn accepts(&self) -> &[SiteKind] {
        ACTIVATION_QUANTIZATION.accepts
    }

    fn needs_calibration(&self, applied: &Applied) -> bool {
        matches!(&applied.params, Params::ActivationQuant(p) if p.range == RangeCalibration::Static)
    }

    fn attach(
        &self,
        module: &ModulePlan,
        applied: &Applied,
        slots: SiteSlots<'_>,
        ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        let (Params::ActivationQuant(p), SiteSlots::Linear(s)) = (&applied.params, slots) else {
            return Err(CoreError::Attach {
                path: module.path.clone(),
                message: "activation quantization attaches to Linear inputs only".into(),
            });
        };
        s.act_schedule = (applied.schedule.start > 0).then(|| ActivationSchedule {
            clock: ctx.clock.clone(),
            offset: applied.schedule.start,
        });
        match p.range {
            RangeCalibration::Dynamic => {
                s.act_quant = Some(ActSpec {
                    bits: p.bits,
                    symmetric: p.quantization_type == QuantizationType::Symmetric,
                    range: ActRange::Dynamic,
                    numerics: ctx.numerics,
                });
            }
            // The quantizer is installed once calibration has fixed its range.
            RangeCalibration::Static => s.observer = Some(RangeObserver::new()),
        }
        Ok(())
    }

    fn finish_calibration(
        &self,
        module: &ModulePlan,
        slots: SiteSlots<'_>,
        ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        let SiteSlots::Linear(s) = slots else { return Ok(()) };
        let Some(observer) = s.observer.take() else {
            return Ok(());
        };
        let Some(p) = module.activation_quant() else {
            return Ok(());
        };
        let range = match ctx.calibration.method {
            RangeMethod::Minmax => observer.min_max(),
            RangeMethod::Percentile => observer.percentile_range(ctx.calibration.percentile),
        };
        let Some((min, max)) = range else {
            return Err(CoreError::Calibration(format!(
                "no activations reached `{}`; is it used by the model's forward?",
                module.path
            )));
        };
        s.act_quant = Some(ActSpec {
            bits: p.bits,
            symmetric: p.quantization_type == QuantizationType::Symmetric,
            range: ActRange::Static { min, max },
            numerics: ctx.numerics,
        });
        Ok(())
    }
}

/// A DeepSpeed technique whose training-time machinery does not exist yet: it validates and plans,
/// and `compose` refuses it with "not supported yet".
#[derive(Debug)]
pub struct NotYet {
    pub facts: TechniqueFacts,
    pub why: &'static str,
}

impl Technique for NotYet {
    fn key(&self) -> &str {
        self.facts.key
    }

    fn accepts(&self) -> &[SiteKind] {
        self.facts.accepts
    }

    fn supports(&self, _module: &ModulePlan, _applied: &Applied) -> Result<(), String> {
        Err(self.why.to_string())
    }

    fn attach(
        &self,
        module: &ModulePlan,
        _applied: &Applied,
        _slots: SiteSlots<'_>,
        _ctx: &AttachContext,
    ) -> Result<(), CoreError> {
        Err(CoreError::NotSupported(format!(
            "{} on `{}`: {}",
            self.facts.key, module.path, self.why
        )))
    }
}
