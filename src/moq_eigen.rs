//! MoQ's eigenvalue-scaled periods (`eigenvalue.enabled`), Ember's semantics: once, at the MoQ
//! offset, each of the first `layer_num` layers gets the dominant eigenvalue λ_b of the training
//! loss's Hessian restricted to its parameters (power iteration on finite-difference
//! Hessian-vector products, `ember_train::eigen`, on the float student and the step's first
//! micro batch); its annealing MoQ modules then double their period times `1 + ⌊4·|λ_b|/max|λ|⌋`
//! after each bit drop (DeepSpeed's factor). Layers with sharper curvature lose bits more slowly.
//! The factors are technique state: checkpoints carry them, and a resumed run reuses them.

use burn::tensor::Device;
use ember_config::EmberConfig;
use ember_config::plan::Plan;
use ember_core::CompressibleModel;
use ember_core::lifecycle::{BitSchedule, StepClock};
use ember_models::Bert;
use ember_train::eigen::{PowerIteration, dominant_eigenvalue, period_factors};

use crate::Error;

/// What the estimate needs, resolved from the config and the plan.
#[derive(Debug, Clone)]
pub struct EigenSetup {
    pub opts: PowerIteration,
    /// The step whose forward is preceded by the estimate (the earliest annealing MoQ offset).
    pub at: u64,
    /// The layers estimated, in order.
    pub layers: Vec<EstimatedLayer>,
    /// Annealing MoQ groups with modules outside the estimated layers (factor 1): reported as
    /// they are.
    pub outside: Vec<String>,
}

/// A layer that gets its own estimate.
#[derive(Debug, Clone)]
pub struct EstimatedLayer {
    pub index: usize,
    /// Its module-path prefix (`encoder.layer.3`).
    pub prefix: String,
    /// Its annealing MoQ modules: (path, config group pointer, schedule).
    pub modules: Vec<(String, String, BitSchedule)>,
}

/// One layer's estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerFactor {
    pub layer: usize,
    pub eigenvalue: f64,
    /// |λ| / max |λ| (1 for a zero estimate, as DeepSpeed).
    pub ratio: f64,
    pub factor: u64,
}

impl EigenSetup {
    /// The setup of `config` on `plan`, when `eigenvalue.enabled`.
    pub fn of(config: &EmberConfig, plan: &Plan) -> Option<EigenSetup> {
        let e = config.eigenvalue.as_ref().filter(|e| e.enabled)?;
        let prefix = e.layer_name.strip_prefix("bert.").unwrap_or(&e.layer_name).to_string();
        let mut at = u64::MAX;
        let layers = (0..e.layer_num as usize)
            .map(|b| {
                let layer = format!("{prefix}.{b}");
                let modules = plan
                    .modules
                    .iter()
                    .filter(|m| m.path.starts_with(&format!("{layer}.")))
                    .flat_map(|m| {
                        m.techniques.iter().filter_map(|a| match &a.params {
                            ember_config::plan::Params::WeightQuant(w) if w.lowers_bits() => {
                                Some((m.path.clone(), a.pointer.clone(), w.bit_schedule(a.schedule.start)))
                            }
                            _ => None,
                        })
                    })
                    .collect::<Vec<_>>();
                for (_, _, s) in &modules {
                    at = at.min(s.offset);
                }
                EstimatedLayer {
                    index: b,
                    prefix: layer,
                    modules,
                }
            })
            .collect();
        let inside = |path: &str| (0..e.layer_num as usize).any(|b| path.starts_with(&format!("{prefix}.{b}.")));
        let mut outside: Vec<String> = Vec::new();
        for m in plan.modules.iter().filter(|m| !inside(&m.path)) {
            for a in &m.techniques {
                if let ember_config::plan::Params::WeightQuant(w) = &a.params
                    && w.lowers_bits()
                    && !outside.contains(&a.pointer)
                {
                    outside.push(a.pointer.clone());
                }
            }
        }
        Some(EigenSetup {
            opts: PowerIteration {
                max_iter: e.max_iter,
                tol: e.tol,
                stability: e.stability,
                seed: config.training.as_ref().map_or(0, |t| t.seed),
            },
            at: if at == u64::MAX { 0 } else { at },
            layers,
            outside,
        })
    }

    /// Estimates every layer's eigenvalue on the float student (`clock` held in float meanwhile)
    /// with `loss`, and returns the factors.
    pub fn estimate(
        &self,
        student: &Bert,
        clock: &StepClock,
        device: &Device,
        loss: impl Fn(&Bert) -> Result<burn::tensor::Tensor<1>, Error>,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<LayerFactor>, Error> {
        clock.set_float(true);
        let mut eigenvalues = Vec::with_capacity(self.layers.len());
        let result = (|| {
            for layer in &self.layers {
                progress(layer.index);
                let prefix = &layer.prefix;
                let under = |path: &str| path == prefix || path.starts_with(&format!("{prefix}."));
                let e = dominant_eigenvalue(student, under, device, &loss, self.opts)?.unwrap_or(0.0);
                eigenvalues.push(e);
            }
            Ok::<(), Error>(())
        })();
        clock.set_float(false);
        result?;
        Ok(self
            .layers
            .iter()
            .zip(period_factors(&eigenvalues))
            .zip(&eigenvalues)
            .map(|((layer, (ratio, factor)), &eigenvalue)| LayerFactor {
                layer: layer.index,
                eigenvalue,
                ratio,
                factor,
            })
            .collect())
    }

    /// Sets each layer's factor on its annealing MoQ modules of `student`; returns the
    /// schedules to report, one per (group, layer) (`group@layerN`), plus `groups`' entries for
    /// groups with modules outside the estimated layers.
    pub fn apply(
        &self,
        factors: &[LayerFactor],
        student: &mut Bert,
        groups: &[(String, BitSchedule)],
    ) -> Vec<(String, BitSchedule)> {
        let mut reported: Vec<(String, BitSchedule)> = groups
            .iter()
            .filter(|(p, _)| self.outside.contains(p))
            .cloned()
            .collect();
        for (layer, f) in self.layers.iter().zip(factors) {
            let b = layer.index;
            for (path, pointer, schedule) in &layer.modules {
                if let Some(ws) = student.linear_slots(path).and_then(|s| s.weight_schedule.as_mut()) {
                    ws.bits.factor = f.factor;
                }
                let name = format!("{pointer}@layer{b}");
                if !reported.iter().any(|(n, _)| n == &name) {
                    reported.push((
                        name,
                        BitSchedule {
                            factor: f.factor,
                            ..*schedule
                        },
                    ));
                }
            }
        }
        reported
    }
}

/// Checkpoint state: the factors, when estimated.
pub fn state(factors: Option<&[LayerFactor]>) -> serde_json::Value {
    match factors {
        Some(f) => serde_json::json!({ "eigenvalue_factors": f }),
        None => serde_json::Value::Null,
    }
}

/// The factors a checkpoint's state carries, if any.
pub fn from_state(state: &serde_json::Value) -> Result<Option<Vec<LayerFactor>>, Error> {
    match state.get("eigenvalue_factors") {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::Other(format!("the checkpoint's eigenvalue factors are corrupt: {e}"))),
    }
}
