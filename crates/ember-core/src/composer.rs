//! The composer: config + model → plan → techniques attached to the model's slots → (calibration).
//!
//! ```text
//! Composer::new(registry).compose(model, &config)?   // plan + attach; refuses what cannot run yet
//!     .calibrate(batches, |model, batch| forward)?    // only when a static range or GPTQ needs it
//! ```
//!
//! A model that can run its forward in stages (embeddings, then each layer) calibrates with
//! [`Composed::calibrate_in_stages`] instead: each stage's modules finish (static ranges fixed,
//! GPTQ solved, Gram matrices freed) before the next stage runs, with the same results.

use ember_config::plan::{Link, ModulePlan};
use ember_config::{EmberConfig, Inventory, Plan, SiteKind};

use crate::error::CoreError;
use crate::lifecycle::StepClock;
use crate::registry::Registry;
use crate::slots::{EmbeddingSlots, LinearSlots};
use crate::technique::{AttachContext, SiteSlots};

/// A model whose compressible sites the composer can reach by path.
pub trait CompressibleModel {
    /// The model's sites (paths in HF naming, kinds, shapes).
    fn inventory(&self) -> Inventory;
    /// The slots of a Linear site.
    fn linear_slots(&mut self, path: &str) -> Option<&mut LinearSlots>;
    /// The slots of an Embedding site.
    fn embedding_slots(&mut self, path: &str) -> Option<&mut EmbeddingSlots>;
    /// Precomputes every transformed weight for inference (each block calls its slots' `precompute`
    /// with its current weight). Called before calibrating (weights do not change during
    /// calibration) and again after it, when GPTQ's Gram matrices are complete.
    fn precompute_weights(&mut self);
    /// Runs the GPTQ solves only (`LinearSlots::solve` with each Linear's weight), for a model
    /// that will be cleaned rather than run ([`Composed::into_clean_ready`]). The default
    /// precomputes everything (correct, without the memory saving).
    fn solve_weights(&mut self) {
        self.precompute_weights();
    }
    /// The current weight of the Linear or Embedding at `path`, for per-module work
    /// ([`Composed::calibrate_in_stages`]). The default exposes none (such a model calibrates in
    /// one pass).
    fn site_weight(&self, path: &str) -> Option<burn::tensor::Tensor<2>> {
        let _ = path;
        None
    }
    /// Called once every technique is attached: a model may link slots that read the same input
    /// (e.g. one Gram matrix for attention's query, key and value, see
    /// [`GramObserver::sharing`](crate::observer::GramObserver::sharing)).
    fn link_slots(&mut self) {}
}

/// Applies configs to models with the techniques of a registry.
#[derive(Debug, Clone)]
pub struct Composer {
    registry: Registry,
}

/// A model with compression state attached, and the plan that put it there.
#[derive(Debug)]
pub struct Composed<M> {
    pub model: M,
    pub plan: Plan,
    ctx: AttachContext,
    registry: Registry,
    /// Whether [`Composed::calibrate`] must run before the model is used.
    pub needs_calibration: bool,
}

impl Composer {
    pub fn new(registry: Registry) -> Composer {
        Composer { registry }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Resolves the plan of `config` on `model`'s inventory (what `--dry-run` prints).
    pub fn plan(&self, config: &EmberConfig, inventory: &Inventory) -> Result<Plan, CoreError> {
        Ok(ember_config::resolve_plan(config, inventory, &self.registry.catalog())?)
    }

    /// Plans and attaches. Everything that cannot run yet is reported together, before the model
    /// is touched.
    pub fn compose<M: CompressibleModel>(&self, mut model: M, config: &EmberConfig) -> Result<Composed<M>, CoreError> {
        let plan = self.plan(config, &model.inventory())?;
        self.check_supported(config, &plan)?;
        let ctx = AttachContext {
            numerics: config.ember.numerics,
            calibration: config.calibration.clone(),
            clock: StepClock::new(),
        };
        let mut needs_calibration = false;
        for module in &plan.modules {
            for applied in &module.techniques {
                let technique = self.technique(&applied.technique)?;
                needs_calibration |= technique.needs_calibration(applied);
                let slots = slots_of(&mut model, module)?;
                technique.attach(module, applied, slots, &ctx)?;
            }
        }
        model.link_slots();
        Ok(Composed {
            model,
            plan,
            ctx,
            registry: self.registry.clone(),
            needs_calibration,
        })
    }

    fn technique(&self, key: &str) -> Result<&std::sync::Arc<dyn crate::technique::Technique>, CoreError> {
        self.registry
            .get(key)
            .ok_or_else(|| CoreError::NotSupported(format!("no technique is registered for `{key}`")))
    }

    /// Whether composing `plan` will need calibration batches (static ranges, GPTQ).
    pub fn needs_calibration(&self, plan: &Plan) -> bool {
        plan.modules
            .iter()
            .flat_map(|m| &m.techniques)
            .any(|a| self.registry.get(&a.technique).is_some_and(|t| t.needs_calibration(a)))
    }

    /// Every reason the plan cannot run yet, reported together ("not supported yet: …").
    pub fn check_supported(&self, config: &EmberConfig, plan: &Plan) -> Result<(), CoreError> {
        let mut reasons: Vec<String> = Vec::new();
        let mut add = |r: String| {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        };
        if plan.layers.is_some() {
            add("layer_reduction: building the student (keeping and renaming layers) is not built yet".into());
        }
        if ember_config::trains(config)
            && plan
                .modules
                .iter()
                .filter_map(|m| m.weight_quant())
                .any(|w| w.rounding == ember_config::types::Rounding::Gptq)
        {
            add("rounding: gptq with training: GPTQ's codes would stay fixed while the weights train; train from round-to-nearest (`rounding: nearest`)".into());
        }
        for module in &plan.modules {
            for applied in &module.techniques {
                match self.registry.get(&applied.technique) {
                    None => add(format!("no technique is registered for `{}`", applied.technique)),
                    Some(t) if !t.accepts().contains(&module.kind) => add(format!(
                        "{}: `{}` is a {}; the registered technique handles {}",
                        applied.technique,
                        module.path,
                        module.kind.name(),
                        t.accepts().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                    )),
                    Some(t) => {
                        if let Err(why) = t.supports(module, applied) {
                            add(format!("{}: {why}", applied.technique));
                        }
                    }
                }
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(CoreError::NotSupported(reasons.join("; ")))
        }
    }
}

fn slots_of<'m, M: CompressibleModel>(model: &'m mut M, module: &ModulePlan) -> Result<SiteSlots<'m>, CoreError> {
    let missing = || CoreError::Attach {
        path: module.path.clone(),
        message: "the model has no such compressible module".into(),
    };
    Ok(match module.kind {
        SiteKind::Linear => SiteSlots::Linear(model.linear_slots(&module.path).ok_or_else(missing)?),
        SiteKind::Embedding => SiteSlots::Embedding(model.embedding_slots(&module.path).ok_or_else(missing)?),
        SiteKind::Conv2d => return Err(missing()),
    })
}

impl<M> Composed<M> {
    /// The training step the model's scheduled slots follow: the training loop sets it before
    /// each forward (see [`crate::lifecycle`]).
    pub fn clock(&self) -> &StepClock {
        &self.ctx.clock
    }
}

impl<M: CompressibleModel> Composed<M> {
    /// Runs `forward` over the calibration batches (no gradient: the caller's model lives on a
    /// device without autodiff), then fixes every static range. `progress` is called after each
    /// batch with (done, total).
    pub fn calibrate<B>(
        &mut self,
        batches: &[B],
        mut forward: impl FnMut(&M, &B),
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(), CoreError> {
        if !self.needs_calibration {
            return Ok(());
        }
        if batches.is_empty() {
            return Err(CoreError::Calibration(
                "no calibration batches (is the calibration file empty?)".into(),
            ));
        }
        // Post-training weights do not change while calibrating: quantize them once, not in every
        // forward. GPTQ slots have no Gram matrix yet, so they hold round-to-nearest weights here
        // and are re-solved by `into_inference`.
        self.model.precompute_weights();
        for (i, b) in batches.iter().enumerate() {
            forward(&self.model, b);
            progress(i + 1, batches.len());
        }
        for m in 0..self.plan.modules.len() {
            self.finish_module(m)?;
        }
        self.needs_calibration = false;
        Ok(())
    }

    /// Calibration one stage at a time. `stages` are module-path prefixes in forward order (a
    /// BERT: `embeddings`, `encoder.layer.0`, …); `run(model, i, carry)` runs stage `i` on one
    /// batch's carry (its tokens before stage 0, then its hidden states) and returns the next
    /// carry. Before stage `i` runs, its modules' weights are precomputed (as [`Self::calibrate`]
    /// does for the whole model); after every batch has passed it, its modules finish
    /// calibrating (static ranges fixed, GPTQ solved, Gram matrices freed) and their frozen
    /// copies are dropped. Each stage sees exactly the inputs the one-pass calibration gives it,
    /// so the results are the same bit for bit; but only one stage's Gram matrices and frozen
    /// weights are alive at a time. Returns the last carries.
    pub fn calibrate_in_stages<C>(
        &mut self,
        stages: &[String],
        carries: Vec<C>,
        mut run: impl FnMut(&M, usize, C) -> C,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<C>, CoreError> {
        if !self.needs_calibration {
            return Ok(carries);
        }
        if carries.is_empty() {
            return Err(CoreError::Calibration(
                "no calibration batches (is the calibration file empty?)".into(),
            ));
        }
        let under = |path: &str, prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        };
        let total = stages.len() * carries.len();
        let mut carries = carries;
        let mut done = 0;
        let mut finished = vec![false; self.plan.modules.len()];
        for (i, prefix) in stages.iter().enumerate() {
            let members: Vec<usize> = (0..self.plan.modules.len())
                .filter(|&m| !self.plan.modules[m].techniques.is_empty() && under(&self.plan.modules[m].path, prefix))
                .collect();
            for &m in &members {
                self.with_weight(m, |slots, w| match slots {
                    SiteSlots::Linear(s) => s.precompute(w),
                    SiteSlots::Embedding(s) => s.precompute(w),
                })?;
            }
            carries = carries
                .into_iter()
                .map(|c| {
                    let c = run(&self.model, i, c);
                    done += 1;
                    progress(done, total);
                    c
                })
                .collect();
            for &m in &members {
                self.finish_module(m)?;
                finished[m] = true;
                self.with_weight(m, |slots, w| match slots {
                    SiteSlots::Linear(s) => {
                        s.solve(w);
                        s.frozen = None;
                    }
                    SiteSlots::Embedding(s) => s.frozen = None,
                })?;
            }
        }
        // Modules outside every stage observed whatever the stages ran through them.
        for (m, done) in finished.into_iter().enumerate() {
            if !done {
                self.finish_module(m)?;
            }
        }
        self.needs_calibration = false;
        Ok(carries)
    }

    /// Ends the calibration of plan module `m` (each technique that needed it).
    fn finish_module(&mut self, m: usize) -> Result<(), CoreError> {
        let module = &self.plan.modules[m];
        for applied in module.techniques.iter().filter(|a| matches!(a.link, Link::Main { .. })) {
            let Some(t) = self.registry.get(&applied.technique) else {
                continue;
            };
            if t.needs_calibration(applied) {
                let slots = slots_of(&mut self.model, module)?;
                t.finish_calibration(module, slots, &self.ctx)?;
            }
        }
        Ok(())
    }

    /// Calls `f` with plan module `m`'s slots and its current weight; an error when the model
    /// does not expose the weight ([`CompressibleModel::site_weight`]).
    fn with_weight(
        &mut self,
        m: usize,
        f: impl FnOnce(SiteSlots<'_>, burn::tensor::Tensor<2>),
    ) -> Result<(), CoreError> {
        let module = &self.plan.modules[m];
        let w = self.model.site_weight(&module.path).ok_or_else(|| CoreError::Attach {
            path: module.path.clone(),
            message: "the model does not expose this module's weight, which staged calibration needs".into(),
        })?;
        f(slots_of(&mut self.model, module)?, w);
        Ok(())
    }

    /// Finishes a post-training model that will only be cleaned (its compressed form runs on
    /// another engine): GPTQ solves as for inference, but no frozen fake-quantized copy of any
    /// weight is kept (clean recomputes round-to-nearest codes from the weights, and GPTQ's from
    /// `quantized`), so composing for an artifact holds one copy of the model, not two. Its
    /// forward stays correct, only slower (weights are fake-quantized on every call).
    pub fn into_clean_ready(mut self) -> Result<Composed<M>, CoreError> {
        if self.needs_calibration {
            return Err(CoreError::Calibration(
                "the plan has static activation ranges; calibrate before use".into(),
            ));
        }
        self.model.solve_weights();
        for module in &self.plan.modules {
            match slots_of(&mut self.model, module) {
                Ok(SiteSlots::Linear(s)) => s.frozen = None,
                Ok(SiteSlots::Embedding(s)) => s.frozen = None,
                Err(_) => {}
            }
        }
        Ok(self)
    }

    /// Finishes a post-training model for inference: precomputes quantized weights.
    pub fn into_inference(mut self) -> Result<Composed<M>, CoreError> {
        if self.needs_calibration {
            return Err(CoreError::Calibration(
                "the plan has static activation ranges; calibrate before use".into(),
            ));
        }
        self.model.precompute_weights();
        Ok(self)
    }
}
