//! A whole DeepSpeed `ds_config.json`: its engine keys mapped onto Ember's `training` section.
//!
//! - Batch sizes follow DeepSpeed's inference (runtime/config.py): `train_batch_size` =
//!   `train_micro_batch_size_per_gpu` × `gradient_accumulation_steps` on one device; the missing
//!   one is derived, a contradiction is refused with DeepSpeed's message.
//! - `gradient_clipping` is the global-norm clip (absent in a DeepSpeed file: 0, DeepSpeed's code
//!   default, no clipping).
//! - `optimizer`: Adam / AdamW with FusedAdam's defaults; `adam_w_mode` (default true) selects
//!   decoupled decay, false L2 decay. Any other optimizer, no bias correction or AMSGrad would
//!   change the result and are refused.
//! - `scheduler`: WarmupLR, WarmupDecayLR, WarmupCosineLR, reproduced by `ember-train`; without
//!   one a DeepSpeed optimizer runs at a constant lr, as DeepSpeed's does.
//! - The run's length: `training.steps`, else the scheduler's `total_num_steps`, else
//!   `compose --steps N`; `ember check` and `ember plan` accept a config without one and say
//!   what `compose` will need.
//! - Where the `training` section sets a value a DeepSpeed key also sets, equal values are
//!   accepted (the note says so) and different ones refused.
//! - Engine-only keys (ZeRO, fp16/bf16 on a CPU run, logging, all-reduce settings) are accepted
//!   and listed as not applicable here, with the reason.

use serde_json::Value;

use crate::error::ConfigError;
use crate::types::*;

/// Where a run's length can come from, in order: the advice every "no step count" message gives.
pub const STEP_COUNT_SOURCES: &str =
    "`training.steps`, a DeepSpeed `scheduler` with `total_num_steps`, or pass `compose --steps N`";

/// What resolving the engine keys found: the notes `ember plan` prints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineNotes {
    /// `key: what Ember does with it` for every DeepSpeed engine key the config has.
    pub notes: Vec<String>,
}

/// Whether the config has DeepSpeed engine keys that shape training.
pub fn has_training_keys(cfg: &EmberConfig) -> bool {
    cfg.train_batch_size.is_some()
        || cfg.train_micro_batch_size_per_gpu.is_some()
        || cfg.gradient_accumulation_steps.is_some()
        || cfg.gradient_clipping.is_some()
        || cfg.optimizer.is_some()
        || cfg.scheduler.is_some()
}

/// Maps the engine keys of `cfg` onto `cfg.training` (creating it when the config has DeepSpeed
/// training keys and a step count: the scheduler's `total_num_steps`, else `steps`). `raw` is
/// the config as written (to tell a `training` value the user wrote from a default).
pub(crate) fn apply_engine_keys(
    cfg: &mut EmberConfig,
    raw: &Value,
    steps: Option<u64>,
    errors: &mut Vec<ConfigError>,
) -> EngineNotes {
    let mut notes = EngineNotes::default();
    not_applicable(cfg, &mut notes.notes);
    if !has_training_keys(cfg) {
        return notes;
    }
    let had_section = cfg.training.is_some();
    let total = cfg.scheduler.as_ref().and_then(|s| s.params.total_num_steps);
    let mut t = match cfg.training.take() {
        Some(t) => t,
        None => {
            // The section DeepSpeed's file implies; steps filled in below (or the run waits for
            // `compose --steps`).
            Training::with_steps(total.or(steps).unwrap_or(1))
        }
    };
    let mut m = Merge {
        raw,
        errors,
        notes: &mut notes.notes,
    };
    // Batch sizes (one device: world size 1).
    let (tbs, mbs, gas) = (
        cfg.train_batch_size,
        cfg.train_micro_batch_size_per_gpu,
        cfg.gradient_accumulation_steps,
    );
    let batch = match (tbs, mbs, gas) {
        (Some(t), Some(m), Some(g)) => Some((t, m, g)),
        (Some(t), Some(m), None) => Some((t, m, t / m.max(1))),
        (Some(t), None, Some(g)) => Some((t, t / g.max(1), g)),
        (None, Some(m), Some(g)) => Some((m * g, m, g)),
        (Some(t), None, None) => Some((t, t, 1)),
        (None, Some(m), None) => Some((m, m, 1)),
        (None, None, Some(_)) => {
            m.errors.push(ConfigError::invalid(
                "/gradient_accumulation_steps",
                "Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided (as DeepSpeed requires)",
            ));
            None
        }
        (None, None, None) => {
            m.notes.push(format!(
                "train_batch_size: absent; training.batch_size = {} sentences per step",
                t.batch_size
            ));
            None
        }
    };
    if let Some((tbs, mbs, gas)) = batch {
        if tbs != mbs * gas || tbs == 0 {
            m.errors.push(ConfigError::invalid(
                "/train_batch_size",
                format!(
                    "train_batch_size = {tbs} is not train_micro_batch_size_per_gpu × gradient_accumulation_steps = {mbs} × {gas} on one device (DeepSpeed's check)"
                ),
            ));
        } else {
            if m.agree(
                "batch_size",
                "train_batch_size",
                f64::from(t.batch_size),
                f64::from(tbs),
            ) {
                t.batch_size = tbs;
            }
            if m.agree(
                "gradient_accumulation_steps",
                "gradient_accumulation_steps",
                f64::from(t.gradient_accumulation_steps),
                f64::from(gas),
            ) {
                t.gradient_accumulation_steps = gas;
            }
        }
    }
    match cfg.gradient_clipping {
        Some(c) if m.agree("max_grad_norm", "gradient_clipping", t.max_grad_norm, c) => t.max_grad_norm = c,
        Some(_) => {}
        None if !m.written("max_grad_norm") => {
            t.max_grad_norm = 0.0;
            m.notes
                .push("gradient_clipping: absent, DeepSpeed's default 0 (no clipping)".into());
        }
        None => {}
    }
    match &cfg.optimizer {
        Some(o) => optimizer(o, &mut t, &mut m),
        None => m.notes.push(format!(
            "optimizer: absent (DeepSpeed would train with the script's optimizer); AdamW at training.lr = {}",
            t.lr
        )),
    }
    match &cfg.scheduler {
        Some(s) => {
            for key in ["lr_schedule", "warmup_steps"] {
                if m.written(key) {
                    m.errors.push(ConfigError::invalid(
                        format!("/training/{key}"),
                        "DeepSpeed's `scheduler` sets the lr schedule; keep one of them",
                    ));
                }
            }
            if m.written("scheduler") {
                m.errors.push(ConfigError::invalid(
                    "/scheduler",
                    "both the top-level `scheduler` and `training.scheduler` are given; keep one",
                ));
            }
            let name = serde_json::to_value(s.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            m.notes
                .push(format!("scheduler: {name} → training.scheduler (reproduced exactly)"));
            t.scheduler = Some(s.clone());
        }
        None if cfg.optimizer.is_some() && !m.written("lr_schedule") => {
            t.lr_schedule = LrSchedule::Constant;
            m.notes
                .push("scheduler: absent, so the optimizer's lr is constant (as in DeepSpeed)".into());
        }
        None => {}
    }
    // The run's length.
    if had_section {
        if let Some(total) = total
            && total != t.steps
        {
            m.notes.push(format!(
                "training.steps = {} sets the run's length; the scheduler's total_num_steps = {total} only shapes its lr",
                t.steps
            ));
        }
        cfg.training = Some(t);
    } else if let Some(n) = total.or(steps) {
        t.steps = n;
        m.notes.push(format!(
            "the run is {n} steps ({})",
            if total.is_some() {
                "the scheduler's total_num_steps"
            } else {
                "compose --steps"
            }
        ));
        cfg.training = Some(t);
    } else {
        m.notes
            .push(format!("no step count: `compose` needs one: add {STEP_COUNT_SOURCES}"));
    }
    notes
}

fn optimizer(o: &DsOptimizer, t: &mut Training, m: &mut Merge<'_>) {
    let kind = o.kind.to_lowercase();
    if kind != "adam" && kind != "adamw" {
        m.errors.push(ConfigError::invalid(
            "/optimizer/type",
            format!(
                "`{}`: Ember trains with Adam or AdamW; another optimizer would change the result",
                o.kind
            ),
        ));
        return;
    }
    let p = &o.params;
    let lr = p.lr.unwrap_or(1e-3);
    if m.agree("lr", "optimizer.params.lr", t.lr, lr) {
        t.lr = lr;
    }
    let [b1, b2] = p.betas.unwrap_or([0.9, 0.999]);
    if m.agree("betas", "optimizer.params.betas[0]", t.betas[0], b1) {
        t.betas[0] = b1;
    }
    if m.agree("betas", "optimizer.params.betas[1]", t.betas[1], b2) {
        t.betas[1] = b2;
    }
    let eps = p.eps.unwrap_or(1e-8);
    if m.agree("eps", "optimizer.params.eps", t.eps, eps) {
        t.eps = eps;
    }
    let wd = p.weight_decay.unwrap_or(0.0);
    if m.agree("weight_decay", "optimizer.params.weight_decay", t.weight_decay, wd) {
        t.weight_decay = wd;
    }
    let decoupled = kind == "adamw" || p.adam_w_mode.unwrap_or(true);
    if !m.written("decoupled_weight_decay") {
        t.decoupled_weight_decay = decoupled;
        m.notes.push(format!(
            "optimizer.type: {} → training.decoupled_weight_decay = {decoupled} ({})",
            o.kind,
            if decoupled {
                "AdamW"
            } else {
                "Adam with L2 decay, adam_w_mode: false"
            }
        ));
    } else if t.decoupled_weight_decay != decoupled {
        m.errors.push(ConfigError::invalid(
            "/training/decoupled_weight_decay",
            format!(
                "{} contradicts DeepSpeed's optimizer ({} with adam_w_mode {decoupled}); keep one of them",
                t.decoupled_weight_decay, o.kind
            ),
        ));
    }
    if wd > 0.0 {
        m.notes.push(
            "optimizer.params.weight_decay: biases and LayerNorms are not decayed (as the DeepSpeed examples' training scripts group them; a config-built DeepSpeed optimizer decays every parameter)"
                .into(),
        );
    }
    if p.bias_correction == Some(false) {
        m.errors.push(ConfigError::invalid(
            "/optimizer/params/bias_correction",
            "false would change the result and Ember's Adam always corrects the moments' bias",
        ));
    }
    if p.amsgrad == Some(true) {
        m.errors.push(ConfigError::invalid(
            "/optimizer/params/amsgrad",
            "AMSGrad is not built (DeepSpeed's FusedAdam refuses it too)",
        ));
    }
    if p.torch_adam.is_some() {
        m.notes
            .push("optimizer.params.torch_adam: not applicable here (the same Adam math)".into());
    }
}

/// Merging DeepSpeed's values into the `training` section as written.
struct Merge<'a> {
    raw: &'a Value,
    errors: &'a mut Vec<ConfigError>,
    notes: &'a mut Vec<String>,
}

impl Merge<'_> {
    /// Whether the config wrote `training.<key>` itself.
    fn written(&self, key: &str) -> bool {
        self.raw.pointer(&format!("/training/{key}")).is_some()
    }

    /// Whether DeepSpeed's `ds_value` should be set as `training.<ember>`: yes when the config
    /// did not write that key; when it did, equal values are noted and different ones refused.
    fn agree(&mut self, ember: &str, deepspeed: &str, ember_value: f64, ds_value: f64) -> bool {
        if !self.written(ember) {
            self.notes.push(format!("{deepspeed}: {ds_value} → training.{ember}"));
            return true;
        }
        if (ember_value - ds_value).abs() > 1e-12 * ember_value.abs().max(ds_value.abs()) {
            self.errors.push(ConfigError::invalid(
                format!("/training/{ember}"),
                format!("{ember_value} contradicts DeepSpeed's `{deepspeed}` = {ds_value}; keep one of them"),
            ));
        } else {
            self.notes
                .push(format!("{deepspeed}: {ds_value}, the same as training.{ember}"));
        }
        false
    }
}

/// The rules of DeepSpeed's scheduler constructors, as errors before any work; `at` is the
/// block's JSON pointer (`/scheduler` or `/training/scheduler`).
pub(crate) fn check_scheduler(s: &DsScheduler, at: &str, errors: &mut Vec<ConfigError>) {
    let p = &s.params;
    let needs_total = matches!(s.kind, DsSchedulerKind::WarmupDecayLr | DsSchedulerKind::WarmupCosineLr);
    match p.total_num_steps {
        None if needs_total => errors.push(ConfigError::missing(
            format!("{at}/params"),
            "total_num_steps",
            "where the decay ends (DeepSpeed requires it for this scheduler)",
        )),
        Some(t) if s.kind == DsSchedulerKind::WarmupCosineLr && t == s.warmup_steps() => {
            errors.push(ConfigError::invalid(
                format!("{at}/params/total_num_steps"),
                "equals warmup_num_steps: the cosine has no steps to decay over (DeepSpeed divides by zero)",
            ))
        }
        _ => {}
    }
    for (key, value) in [
        ("warmup_min_lr", p.warmup_min_lr),
        ("warmup_max_lr", p.warmup_max_lr),
        ("warmup_min_ratio", p.warmup_min_ratio),
        ("cos_min_ratio", p.cos_min_ratio),
    ] {
        if let Some(v) = value
            && !(v >= 0.0 && v.is_finite())
        {
            errors.push(ConfigError::range(format!("{at}/params/{key}"), v, ">= 0"));
        }
    }
    if s.kind != DsSchedulerKind::WarmupCosineLr {
        for (key, set) in [
            ("warmup_min_ratio", p.warmup_min_ratio.is_some()),
            ("cos_min_ratio", p.cos_min_ratio.is_some()),
        ] {
            if set {
                errors.push(ConfigError::invalid(
                    format!("{at}/params/{key}"),
                    format!(
                        "a WarmupCosineLR parameter; {:?} does not take it (DeepSpeed raises TypeError)",
                        s.kind
                    ),
                ));
            }
        }
    } else {
        for (key, set) in [
            ("warmup_min_lr", p.warmup_min_lr.is_some()),
            ("warmup_max_lr", p.warmup_max_lr.is_some()),
        ] {
            if set {
                errors.push(ConfigError::invalid(
                    format!("{at}/params/{key}"),
                    "WarmupCosineLR scales the optimizer's lr and does not take it (DeepSpeed raises TypeError); use warmup_min_ratio",
                ));
            }
        }
    }
}

/// Notes for the engine-only keys: what each would do in DeepSpeed and why it does not apply.
fn not_applicable(cfg: &EmberConfig, notes: &mut Vec<String>) {
    let enabled = |v: &Option<Value>| {
        v.as_ref()
            .is_some_and(|v| v.get("enabled").and_then(Value::as_bool).unwrap_or(false))
    };
    let mut na = |key: &str, present: bool, why: &str| {
        if present {
            notes.push(format!("{key}: not applicable here ({why})"));
        }
    };
    na(
        "steps_per_print",
        cfg.steps_per_print.is_some(),
        "logging; Ember logs progress and `--events`",
    );
    na("wall_clock_breakdown", cfg.wall_clock_breakdown.is_some(), "timers");
    na("memory_breakdown", cfg.memory_breakdown.is_some(), "memory logging");
    na(
        "prescale_gradients",
        cfg.prescale_gradients.is_some(),
        "gradient division around the all-reduce: the identity on one device",
    );
    na(
        "gradient_predivide_factor",
        cfg.gradient_predivide_factor.is_some(),
        "gradient division around the all-reduce: the identity on one device",
    );
    na(
        "zero_optimization",
        cfg.zero_optimization.is_some(),
        "ZeRO partitions optimizer state across devices; one device holds it whole",
    );
    na(
        "zero_allow_untested_optimizer",
        cfg.zero_allow_untested_optimizer.is_some(),
        "a ZeRO switch",
    );
    na(
        "fp16",
        cfg.fp16.is_some(),
        if enabled(&cfg.fp16) {
            "Ember trains in fp32 on the CPU: no loss scaling and no steps skipped on overflow"
        } else {
            "disabled"
        },
    );
    na(
        "bf16",
        cfg.bf16.is_some(),
        if enabled(&cfg.bf16) {
            "Ember trains in fp32 on the CPU"
        } else {
            "disabled"
        },
    );
    na(
        "amp",
        cfg.amp.is_some(),
        if enabled(&cfg.amp) {
            "Ember trains in fp32 on the CPU"
        } else {
            "disabled"
        },
    );
    na(
        "communication_data_type",
        cfg.communication_data_type.is_some(),
        "the all-reduce's dtype",
    );
    na(
        "sparse_gradients",
        cfg.sparse_gradients.is_some(),
        "a sparse all-reduce",
    );
    na(
        "activation_checkpointing",
        cfg.activation_checkpointing.is_some(),
        "recomputation with the same math",
    );
    na("flops_profiler", cfg.flops_profiler.is_some(), "profiling");
    for (key, v) in [
        ("tensorboard", &cfg.tensorboard),
        ("wandb", &cfg.wandb),
        ("csv_monitor", &cfg.csv_monitor),
    ] {
        na(key, v.is_some(), "a monitor; Ember writes `--events` JSON lines");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(json: Value, steps: Option<u64>) -> (EmberConfig, Vec<String>, Vec<String>) {
        let mut cfg: EmberConfig = serde_json::from_value(json.clone()).unwrap();
        let mut errors = Vec::new();
        let notes = apply_engine_keys(&mut cfg, &json, steps, &mut errors);
        (cfg, notes.notes, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn batch_sizes_follow_deepspeeds_inference() {
        for (keys, want) in [
            (
                serde_json::json!({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 8}),
                (32, 4),
            ),
            (
                serde_json::json!({"train_batch_size": 32, "gradient_accumulation_steps": 2}),
                (32, 2),
            ),
            (
                serde_json::json!({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2}),
                (8, 2),
            ),
            (serde_json::json!({"train_batch_size": 12}), (12, 1)),
        ] {
            let mut json = keys.clone();
            json["training"] = serde_json::json!({"steps": 10});
            let (cfg, _, errors) = apply(json, None);
            assert!(errors.is_empty(), "{keys}: {errors:?}");
            let t = cfg.training.unwrap();
            assert_eq!((t.batch_size, t.gradient_accumulation_steps), want, "{keys}");
        }
        // 10 with micro 3 floors to 3 steps of 3: DeepSpeed's check refuses it.
        let (_, _, errors) = apply(
            serde_json::json!({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 3, "training": {"steps": 5}}),
            None,
        );
        assert!(
            errors[0].contains("is not train_micro_batch_size_per_gpu"),
            "{errors:?}"
        );
        let (_, _, errors) = apply(serde_json::json!({"gradient_accumulation_steps": 2}), None);
        assert!(errors[0].contains("Either train_batch_size"), "{errors:?}");
    }

    #[test]
    fn the_optimizer_maps_to_training_and_a_contradiction_is_refused() {
        let ds = serde_json::json!({
            "optimizer": {"type": "Adam", "params": {"lr": 2e-5, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.01}},
            "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 300, "warmup_num_steps": 30, "warmup_max_lr": 2e-5}},
        });
        let (cfg, notes, errors) = apply(ds.clone(), None);
        assert!(errors.is_empty(), "{errors:?}");
        let t = cfg.training.unwrap();
        assert_eq!(
            (t.steps, t.lr, t.betas, t.eps, t.weight_decay),
            (300, 2e-5, [0.8, 0.99], 1e-6, 0.01)
        );
        assert!(t.decoupled_weight_decay, "Adam's adam_w_mode defaults to true");
        assert_eq!(
            t.max_grad_norm, 0.0,
            "DeepSpeed does not clip without gradient_clipping"
        );
        assert_eq!(t.scheduler.unwrap().kind, DsSchedulerKind::WarmupDecayLr);
        assert!(notes.iter().any(|n| n.contains("total_num_steps")), "{notes:?}");
        // The same lr in both places is fine; another one is refused.
        let mut both = ds.clone();
        both["training"] = serde_json::json!({"steps": 100, "lr": 2e-5});
        assert!(apply(both.clone(), None).2.is_empty());
        both["training"]["lr"] = 1e-4.into();
        let errors = apply(both, None).2;
        assert!(
            errors[0].contains("/training/lr") && errors[0].contains("contradicts"),
            "{errors:?}"
        );
        // L2 Adam, and an optimizer Ember does not have.
        let (cfg, _, _) = apply(
            serde_json::json!({"optimizer": {"type": "adam", "params": {"adam_w_mode": false}}, "training": {"steps": 3}}),
            None,
        );
        assert!(!cfg.training.unwrap().decoupled_weight_decay);
        let errors = apply(
            serde_json::json!({"optimizer": {"type": "Lamb"}, "training": {"steps": 3}}),
            None,
        )
        .2;
        assert!(errors[0].contains("`Lamb`"), "{errors:?}");
    }

    #[test]
    fn the_step_count_comes_from_training_then_the_scheduler_then_the_command_line() {
        let ds = serde_json::json!({"train_batch_size": 8, "optimizer": {"type": "AdamW"}});
        let (cfg, notes, errors) = apply(ds.clone(), None);
        assert!(errors.is_empty() && cfg.training.is_none(), "{errors:?}");
        assert!(notes.iter().any(|n| n.contains("compose --steps")), "{notes:?}");
        let (cfg, _, _) = apply(ds, Some(42));
        assert_eq!(cfg.training.unwrap().steps, 42);
    }

    #[test]
    fn engine_only_keys_are_listed_as_not_applicable() {
        let (cfg, notes, errors) = apply(
            serde_json::json!({"zero_optimization": {"stage": 0}, "fp16": {"enabled": true}, "steps_per_print": 10}),
            None,
        );
        assert!(errors.is_empty() && cfg.training.is_none());
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("fp16: not applicable here (Ember trains in fp32"))
        );
    }
}
