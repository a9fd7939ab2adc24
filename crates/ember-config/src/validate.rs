//! Semantic rules a schema cannot express: required-when-enabled keys, bit/format combinations,
//! ratio ranges, regexes that must compile, schedules that need a training section. Every rule
//! reports with the JSON pointer of the offending value. Rules that need the model's module list
//! live in `plan/`.

use std::collections::{BTreeMap, BTreeSet};

use crate::custom::Catalog;
use crate::error::{ConfigError, push_pointer};
use crate::types::*;

const CT: &str = "/compression_training";

/// Built-in calibration/training text sources.
pub const BUILTIN_TEXTS: &[&str] = &["builtin:lee_background"];

pub(crate) fn validate(
    cfg: &EmberConfig,
    catalog: &Catalog,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) {
    let ct = &cfg.compression_training;
    if let Some(t) = &ct.weight_quantization {
        weight_quantization(t, errors, warnings);
    }
    if let Some(t) = &ct.activation_quantization {
        let p = format!("{CT}/activation_quantization");
        groups_required(t.shared_parameters.enabled, &t.different_groups, &p, errors);
        for (name, g) in groups(&t.different_groups) {
            let gp = group_ptr(&p, name);
            match g.params.bits {
                None => errors.push(ConfigError::missing(
                    format!("{gp}/params"),
                    "bits",
                    "activation bits, 8 or 4",
                )),
                Some(b) if b != 4 && b != 8 => errors.push(ConfigError::range(
                    format!("{gp}/params/bits"),
                    b,
                    "4 or 8 (activation quantization)",
                )),
                _ => {}
            }
            patterns(g, &gp, errors);
        }
    }
    if let Some(t) = &ct.sparse_pruning {
        let p = format!("{CT}/sparse_pruning");
        let s = &t.shared_parameters;
        if s.method != PruningMethod::SnipMomentum || t.different_groups.is_some() {
            groups_required(s.enabled, &t.different_groups, &p, errors);
        }
        if let Some(end) = s.schedule_offset_end
            && end < s.schedule_offset
        {
            errors.push(ConfigError::range(
                format!("{p}/shared_parameters/schedule_offset_end"),
                end,
                format!(">= schedule_offset ({})", s.schedule_offset),
            ));
        }
        if !(s.dense_ratio > 0.0 && s.dense_ratio < 1.0) {
            errors.push(ConfigError::range(
                format!("{p}/shared_parameters/dense_ratio"),
                s.dense_ratio,
                "0 < dense_ratio < 1",
            ));
        }
        if !valid_block_pattern(&s.block_pattern) {
            errors.push(ConfigError::invalid(
                format!("{p}/shared_parameters/block_pattern"),
                format!(
                    "`{}` is not a block pattern; write `NxM` (e.g. `4x1`) or `N:M` (e.g. `2:4`)",
                    s.block_pattern
                ),
            ));
        }
        for (i, pat) in s.excluded_modules.iter().enumerate() {
            regex_ok(pat, &format!("{p}/shared_parameters/excluded_modules/{i}"), errors);
        }
        dense_ratio_groups(&t.different_groups, &p, errors);
    }
    if let Some(t) = &ct.row_pruning {
        let p = format!("{CT}/row_pruning");
        groups_required(t.shared_parameters.enabled, &t.different_groups, &p, errors);
        no_snip(t.shared_parameters.method, &p, errors);
        dense_ratio_groups(&t.different_groups, &p, errors);
    }
    if let Some(t) = &ct.head_pruning {
        let p = format!("{CT}/head_pruning");
        groups_required(t.shared_parameters.enabled, &t.different_groups, &p, errors);
        no_snip(t.shared_parameters.method, &p, errors);
        if t.shared_parameters.enabled && t.shared_parameters.num_heads.is_none() {
            errors.push(ConfigError::missing(
                format!("{p}/shared_parameters"),
                "num_heads",
                "head pruning needs the model's heads per layer",
            ));
        }
        dense_ratio_groups(&t.different_groups, &p, errors);
    }
    if let Some(t) = &ct.channel_pruning {
        let p = format!("{CT}/channel_pruning");
        groups_required(t.shared_parameters.enabled, &t.different_groups, &p, errors);
        no_snip(t.shared_parameters.method, &p, errors);
        dense_ratio_groups(&t.different_groups, &p, errors);
    }
    if let Some(lr) = &ct.layer_reduction {
        layer_reduction(lr, errors);
    }
    for (key, t) in &ct.custom {
        let p = push_pointer(CT, key);
        let enabled = t
            .shared_parameters
            .get("enabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        groups_required(enabled, &t.different_groups, &p, errors);
        for (name, g) in groups(&t.different_groups) {
            patterns(g, &group_ptr(&p, name), errors);
        }
        debug_assert!(catalog.get(key).is_some(), "the schema walk rejected unclaimed keys");
    }
    distillation(cfg, errors);
    calibration(&cfg.calibration, errors);
    if let Some(t) = &cfg.training {
        training(t, errors);
        if let Some(s) = &t.scheduler {
            let at = if cfg.scheduler.is_some() {
                "/scheduler"
            } else {
                "/training/scheduler"
            };
            crate::engine::check_scheduler(s, at, errors);
        }
    }
    needs_training(cfg, warnings);
}

fn weight_quantization(
    t: &TechniqueSection<WeightQuantShared, WeightQuantParams>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) {
    let p = format!("{CT}/weight_quantization");
    let s = &t.shared_parameters;
    groups_required(s.enabled, &t.different_groups, &p, errors);
    if s.group_size.is_some() && s.quantize_groups != 1 {
        errors.push(ConfigError::invalid(
            format!("{p}/shared_parameters/group_size"),
            format!("`group_size` (scales along the input dimension) and `quantize_groups` = {} (blocks of output rows) are two groupings; keep one", s.quantize_groups),
        ));
    }
    if s.rounding == Rounding::Gptq {
        let rp = format!("{p}/shared_parameters/rounding");
        if !s.quantize_weight_in_forward {
            errors.push(ConfigError::invalid(&rp, "`gptq` is post-training rounding; it needs `quantize_weight_in_forward: true` (MoQ rounds with `nearest` or `stochastic`)"));
        }
        if s.quantize_groups != 1 {
            errors.push(ConfigError::invalid(
                &rp,
                "`gptq` needs per-row or `group_size` scales, not `quantize_groups` row blocks",
            ));
        }
        if s.format.is_some() {
            errors.push(ConfigError::invalid(
                &rp,
                "`gptq` rounds integer codes; it does not apply to a floating-point `format`",
            ));
        }
    }
    for (name, g) in groups(&t.different_groups) {
        let gp = group_ptr(&p, name);
        let params = &g.params;
        let Some(target) = params.target_bits else {
            errors.push(ConfigError::missing(
                format!("{gp}/params"),
                "target_bits",
                "the final bits: 8…3, 2 = ternary, 1 = binary",
            ));
            continue;
        };
        match params.start_bits {
            None => errors.push(ConfigError::missing(
                format!("{gp}/params"),
                "start_bits",
                "DeepSpeed requires it; in forward mode it is ignored, so set it equal to target_bits",
            )),
            Some(start) if !s.quantize_weight_in_forward && start < target => errors.push(ConfigError::range(
                format!("{gp}/params/start_bits"),
                start,
                format!(">= target_bits ({target}); MoQ lowers bits from start to target"),
            )),
            Some(start) if !s.quantize_weight_in_forward && start > 16 => errors.push(ConfigError::range(
                format!("{gp}/params/start_bits"),
                start,
                format!("{target}…16 (MoQ's integer phases run at 16 bits at most)"),
            )),
            Some(start) if s.quantize_weight_in_forward && start != target => warnings.push(format!(
                "{gp}/params/start_bits: {start} is ignored in forward mode (quantize_weight_in_forward: true); the quantizer uses target_bits = {target} from the start, as DeepSpeed does"
            )),
            _ => {}
        }
        if !s.quantize_weight_in_forward
            && s.format.or(params.format).is_some()
            && params.start_bits.is_some_and(|start| start != target)
        {
            errors.push(ConfigError::invalid(
                format!("{gp}/params/start_bits"),
                "MoQ anneals integer bits; a floating-point `format` has no bits to lower (set start_bits = target_bits)",
            ));
        }
        if target <= 2 && s.quantization_type == QuantizationType::Asymmetric {
            errors.push(ConfigError::invalid(
                format!("{p}/shared_parameters/quantization_type"),
                format!("asymmetric quantization needs at least 3 bits, but group `{name}` has target_bits = {target} ({}); use symmetric", if target == 2 { "ternary" } else { "binary" }),
            ));
        }
        if s.clip == Clip::Mse && (target < 3 || s.format.or(params.format).is_some()) {
            errors.push(ConfigError::invalid(
                format!("{p}/shared_parameters/clip"),
                format!(
                    "`clip: mse` searches the range of integer codes of 3…8 bits; group `{name}` has {}",
                    if s.format.or(params.format).is_some() {
                        "a floating-point format".to_string()
                    } else {
                        format!(
                            "target_bits = {target} ({})",
                            if target == 2 { "ternary" } else { "binary" }
                        )
                    }
                ),
            ));
        }
        if s.rounding == Rounding::Gptq && (target < 3 || params.format.is_some()) {
            errors.push(ConfigError::invalid(
                format!("{gp}/params/target_bits"),
                format!(
                    "`gptq` rounding needs integer codes of 3…8 bits; group `{name}` has {}",
                    if params.format.is_some() {
                        "a floating-point format".to_string()
                    } else {
                        format!("target_bits = {target}")
                    }
                ),
            ));
        }
        let format = s.format.or(params.format);
        if let Some(f) = format
            && f.bits() != target
        {
            errors.push(ConfigError::invalid(
                format!("{gp}/params/target_bits"),
                format!(
                    "format {} stores {} bits per weight; set target_bits to {}",
                    f.name(),
                    f.bits(),
                    f.bits()
                ),
            ));
        }
        if s.group_size.is_some() && params.group_size.is_some() && s.group_size != params.group_size {
            warnings.push(format!(
                "{gp}/params/group_size: overridden by shared_parameters.group_size = {} (shared parameters win, as in DeepSpeed)",
                s.group_size.unwrap_or_default()
            ));
        }
        if params.group_size.is_some() && s.quantize_groups != 1 {
            errors.push(ConfigError::invalid(
                format!("{gp}/params/group_size"),
                format!(
                    "`group_size` and shared `quantize_groups` = {} are two groupings; keep one",
                    s.quantize_groups
                ),
            ));
        }
        patterns(g, &gp, errors);
    }
}

fn layer_reduction(lr: &LayerReduction, errors: &mut Vec<ConfigError>) {
    let p = format!("{CT}/layer_reduction");
    if !lr.enabled {
        return;
    }
    if lr.module_name_prefix.is_none() {
        errors.push(ConfigError::missing(
            &p,
            "module_name_prefix",
            "the path before the layer index, e.g. `encoder.layer`",
        ));
    }
    match &lr.teacher_layer {
        None => errors.push(ConfigError::missing(
            &p,
            "teacher_layer",
            "the teacher layers the student keeps, e.g. [1, 3, 5, 7, 9, 11]",
        )),
        Some(layers) if layers.is_empty() => errors.push(ConfigError::invalid(
            format!("{p}/teacher_layer"),
            "must list at least one teacher layer",
        )),
        Some(layers) => {
            let mut seen = BTreeMap::new();
            for (i, l) in layers.iter().enumerate() {
                if let Some(first) = seen.insert(*l, i) {
                    errors.push(ConfigError::invalid(
                        format!("{p}/teacher_layer/{i}"),
                        format!("teacher layer {l} is listed twice (entries {first} and {i}); each student layer needs its own teacher layer"),
                    ));
                }
            }
            if let Some(k) = lr.keep_number_layer
                && k as usize != layers.len()
            {
                errors.push(ConfigError::invalid(
                    format!("{p}/keep_number_layer"),
                    format!("{k} does not match teacher_layer, which keeps {} layers", layers.len()),
                ));
            }
        }
    }
}

fn distillation(cfg: &EmberConfig, errors: &mut Vec<ConfigError>) {
    let Some(d) = &cfg.distillation else { return };
    if d.teacher != "original" {
        errors.push(ConfigError::NotOneOf {
            pointer: "/distillation/teacher".into(),
            value: d.teacher.clone(),
            allowed: vec!["original".into()],
            suggestion: None,
        });
    }
    let mut kinds = BTreeSet::new();
    for (i, l) in d.losses.iter().enumerate() {
        let lp = format!("/distillation/losses/{i}");
        if !kinds.insert(format!("{:?}", l.kind)) {
            errors.push(ConfigError::invalid(
                &lp,
                format!(
                    "loss `{}` is listed twice; give it one weight",
                    serde_json::to_value(l.kind).unwrap_or_default().as_str().unwrap_or("?")
                ),
            ));
        }
        match (l.kind, l.temperature) {
            (LossKind::LogitsKl, Some(t)) if !(t > 0.0 && t.is_finite()) => {
                errors.push(ConfigError::range(format!("{lp}/temperature"), t, "> 0"))
            }
            (LossKind::LogitsKl, _) | (_, None) => {}
            (_, Some(_)) => errors.push(ConfigError::invalid(
                format!("{lp}/temperature"),
                "only `logits_kl` has a temperature",
            )),
        }
        if !l.weight.is_finite() {
            errors.push(ConfigError::range(format!("{lp}/weight"), l.weight, ">= 0"));
        }
    }
    if let Some(lw) = &d.layerwise
        && !(lw.lr > 0.0 && lw.lr.is_finite())
    {
        errors.push(ConfigError::range("/distillation/layerwise/lr", lw.lr, "> 0"));
    }
}

fn calibration(c: &Calibration, errors: &mut Vec<ConfigError>) {
    if !(c.percentile > 0.0 && c.percentile <= 100.0) {
        errors.push(ConfigError::range(
            "/calibration/percentile",
            c.percentile,
            "0 < percentile <= 100",
        ));
    }
    builtin_text("/calibration/data", &c.data, errors);
}

/// A `builtin:` text source must be one Ember has.
fn builtin_text(pointer: &str, data: &str, errors: &mut Vec<ConfigError>) {
    if let Some(name) = data.strip_prefix("builtin:")
        && !BUILTIN_TEXTS.contains(&data)
    {
        let names: Vec<&str> = BUILTIN_TEXTS.iter().map(|b| &b[8..]).collect();
        errors.push(ConfigError::NotOneOf {
            pointer: pointer.into(),
            value: data.to_string(),
            allowed: BUILTIN_TEXTS.iter().map(|s| s.to_string()).collect(),
            suggestion: crate::suggest::did_you_mean(name, names).map(|s| format!("builtin:{s}")),
        });
    }
}

fn training(t: &Training, errors: &mut Vec<ConfigError>) {
    if !(t.lr > 0.0 && t.lr.is_finite()) {
        errors.push(ConfigError::range("/training/lr", t.lr, "> 0"));
    }
    if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
        errors.push(ConfigError::range("/training/weight_decay", t.weight_decay, ">= 0"));
    }
    if t.gradient_accumulation_steps == 0 || !t.batch_size.is_multiple_of(t.gradient_accumulation_steps) {
        errors.push(ConfigError::invalid(
            "/training/gradient_accumulation_steps",
            format!(
                "{} micro batches do not split training.batch_size = {} sentences evenly",
                t.gradient_accumulation_steps, t.batch_size
            ),
        ));
    }
    if !(t.max_grad_norm >= 0.0 && t.max_grad_norm.is_finite()) {
        errors.push(ConfigError::range(
            "/training/max_grad_norm",
            t.max_grad_norm,
            ">= 0 (0: no clipping)",
        ));
    }
    for (i, b) in t.betas.iter().enumerate() {
        if !(0.0..1.0).contains(b) {
            errors.push(ConfigError::range(format!("/training/betas/{i}"), b, "[0, 1)"));
        }
    }
    if !(t.eps > 0.0 && t.eps.is_finite()) {
        errors.push(ConfigError::range("/training/eps", t.eps, "> 0"));
    }
    if t.scheduler.is_none() && t.warmup_steps >= t.steps {
        errors.push(ConfigError::invalid(
            "/training/warmup_steps",
            format!(
                "warmup of {} steps does not end before training does ({} steps)",
                t.warmup_steps, t.steps
            ),
        ));
    }
    if t.max_seq_len < 2 {
        errors.push(ConfigError::range(
            "/training/max_seq_len",
            t.max_seq_len as f64,
            ">= 2 ([CLS] and [SEP])",
        ));
    }
    builtin_text("/training/data", &t.data, errors);
}

/// Techniques whose schedule starts after step 0, MoQ, learnable (topk) masks and distillation
/// losses all need Ember's training loop; without a `training` section that is an error now,
/// not a silent no-op later.
fn needs_training(cfg: &EmberConfig, warnings: &mut Vec<String>) {
    if cfg.training.is_some() {
        return;
    }
    for (pointer, why) in crate::techniques::training_reasons(cfg) {
        warnings.push(format!(
            "{pointer}: {why}, which needs training; `compose` will need a step count: add {}",
            crate::engine::STEP_COUNT_SOURCES
        ));
    }
}

fn groups<P>(g: &Option<BTreeMap<String, Group<P>>>) -> impl Iterator<Item = (&String, &Group<P>)> {
    g.iter().flat_map(|m| m.iter())
}

fn group_ptr(technique: &str, name: &str) -> String {
    push_pointer(&format!("{technique}/different_groups"), name)
}

fn groups_required<P>(enabled: bool, g: &Option<BTreeMap<String, Group<P>>>, p: &str, errors: &mut Vec<ConfigError>) {
    if enabled && g.as_ref().is_none_or(|m| m.is_empty()) {
        errors.push(ConfigError::missing(
            p,
            "different_groups",
            "an enabled technique needs at least one group with `params` and `modules`",
        ));
    }
}

fn no_snip(method: PruningMethod, p: &str, errors: &mut Vec<ConfigError>) {
    if method == PruningMethod::SnipMomentum {
        errors.push(ConfigError::NotOneOf {
            pointer: format!("{p}/shared_parameters/method"),
            value: "snip_momentum".into(),
            allowed: vec!["l1".into(), "topk".into()],
            suggestion: None,
        });
    }
}

fn dense_ratio_groups(g: &Option<BTreeMap<String, Group<DenseRatioParams>>>, p: &str, errors: &mut Vec<ConfigError>) {
    for (name, group) in groups(g) {
        let gp = group_ptr(p, name);
        match group.params.dense_ratio {
            None => errors.push(ConfigError::missing(
                format!("{gp}/params"),
                "dense_ratio",
                "the fraction of weights/rows/heads KEPT, in (0, 1]",
            )),
            Some(r) if !(r > 0.0 && r <= 1.0) => errors.push(ConfigError::range(
                format!("{gp}/params/dense_ratio"),
                r,
                "0 < dense_ratio <= 1 (the fraction kept)",
            )),
            _ => {}
        }
        patterns(group, &gp, errors);
    }
}

fn patterns<P>(g: &Group<P>, gp: &str, errors: &mut Vec<ConfigError>) {
    if g.modules.is_empty() {
        errors.push(ConfigError::invalid(
            format!("{gp}/modules"),
            "lists no pattern; name the modules this group applies to",
        ));
    }
    for (i, pat) in g.modules.iter().enumerate() {
        regex_ok(pat, &format!("{gp}/modules/{i}"), errors);
    }
    if let Some(related) = &g.related_modules {
        if related.len() != g.modules.len() {
            errors.push(ConfigError::RelatedModules {
                pointer: format!("{gp}/related_modules"),
                message: format!(
                    "has {} list(s) but `modules` has {} pattern(s); related_modules[i] lists the modules that shrink with modules[i]",
                    related.len(),
                    g.modules.len()
                ),
            });
        }
        for (i, list) in related.iter().enumerate() {
            for (j, pat) in list.iter().enumerate() {
                regex_ok(pat, &format!("{gp}/related_modules/{i}/{j}"), errors);
            }
        }
    }
}

fn regex_ok(pattern: &str, pointer: &str, errors: &mut Vec<ConfigError>) {
    if let Err(e) = regex::Regex::new(pattern) {
        let message = match e {
            regex::Error::Syntax(s) => s
                .lines()
                .last()
                .unwrap_or("syntax error")
                .trim_start_matches("error: ")
                .to_string(),
            other => other.to_string(),
        };
        errors.push(ConfigError::InvalidRegex {
            pointer: pointer.to_string(),
            pattern: pattern.to_string(),
            message,
        });
    }
}

fn valid_block_pattern(p: &str) -> bool {
    let parts: Vec<&str> = if p.contains('x') {
        p.split('x').collect()
    } else {
        p.split(':').collect()
    };
    parts.len() == 2 && parts.iter().all(|s| s.parse::<u32>().is_ok_and(|n| n > 0))
}
