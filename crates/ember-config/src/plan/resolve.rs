//! Resolving a validated config against an inventory: layer reduction first (the student's
//! module list), then each technique's groups matched with `re.search` semantics, related modules
//! resolved structurally (same block), then sizes and kernels per module.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::*;
use crate::custom::Catalog;
use crate::error::{ConfigError, ConfigErrors, push_pointer};
use crate::inventory::{Inventory, Site, SiteKind, SiteRole};
use crate::suggest::nearest_paths;
use crate::techniques::{
    ACTIVATION_QUANTIZATION, CHANNEL_PRUNING, HEAD_PRUNING, ROW_PRUNING, SPARSE_PRUNING, TechniqueFacts,
    WEIGHT_QUANTIZATION,
};
use crate::types::*;

const CT: &str = "/compression_training";

/// The largest period factor MoQ's eigenvalue can give a layer: `1 + ⌊4·λ/λ_max⌋`.
pub const EIGEN_MAX_FACTOR: u64 = 5;

/// Resolves `config` against `inventory`. Every problem is reported, each with its JSON pointer.
pub fn resolve_plan(config: &EmberConfig, inventory: &Inventory, catalog: &Catalog) -> Result<Plan, ConfigErrors> {
    let mut r = Resolver {
        cfg: config,
        errors: Vec::new(),
        warnings: Vec::new(),
        applied: BTreeMap::new(),
        match_mode: config.ember.match_mode,
    };
    let (sites, layers) = r.layer_reduction(inventory);
    r.techniques(&sites, catalog, &inventory.model);
    r.schedules_settle();
    r.eigenvalue(inventory);
    if !r.errors.is_empty() {
        return Err(ConfigErrors(collapse_repeats(r.errors)));
    }
    let mut applied = std::mem::take(&mut r.applied);
    let modules = sites
        .iter()
        .map(|(site, teacher)| {
            let techniques = applied.remove(&site.path).unwrap_or_default();
            super::size::module_plan(site, teacher.clone(), techniques, config.ember.numerics)
        })
        .collect();
    let dropped_layers = layers
        .as_ref()
        .map_or(0, |l| l.teacher_layers.saturating_sub(l.keep.len()) as u64);
    let other_param_bytes = inventory.other_param_bytes - dropped_layers * inventory.layer_other_param_bytes;
    Ok(Plan {
        model: inventory.model.clone(),
        numerics: config.ember.numerics,
        match_mode: config.ember.match_mode,
        layers,
        modules,
        other_param_bytes,
        needs_training: needs_training(config),
        warnings: r.warnings,
    })
}

struct Resolver<'a> {
    cfg: &'a EmberConfig,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Techniques per module path, in the order they were resolved.
    applied: BTreeMap<String, Vec<Applied>>,
    match_mode: MatchMode,
}

/// What one technique needs from the resolver.
struct TechniqueSpec<'a> {
    key: &'a str,
    accepts: &'a [SiteKind],
    uses_related: bool,
    schedule: Schedule,
}

impl TechniqueSpec<'static> {
    /// A built-in technique, its facts from the one table, scheduled from `start` (to `end`).
    fn builtin(facts: &'static TechniqueFacts, start: u64, end: Option<u64>) -> Self {
        TechniqueSpec {
            key: facts.key,
            accepts: facts.accepts,
            uses_related: facts.uses_related,
            schedule: Schedule { start, end },
        }
    }
}

impl Resolver<'_> {
    /// With a `training` section, every quantization schedule must be settled (final bits, no
    /// float share) before the last step: the model clean stores is then the one the last steps
    /// trained. One error per group.
    fn schedules_settle(&mut self) {
        let Some(steps) = self.cfg.training.as_ref().map(|t| t.steps) else {
            return;
        };
        let eigen = self.cfg.eigenvalue.as_ref().is_some_and(|e| e.enabled);
        let mut seen = std::collections::BTreeSet::new();
        for a in self.applied.values().flatten() {
            if !seen.insert(a.pointer.clone()) {
                continue;
            }
            let technique = format!("{CT}/{}", a.technique);
            let late = |start: u64| {
                format!(
                    "{} starts at step {start}, but training ends after {steps} steps (`training.steps`), so it would never train{}",
                    a.technique,
                    if start == 1000 {
                        " (1000 is DeepSpeed's default offset)"
                    } else {
                        ""
                    }
                )
            };
            match &a.params {
                Params::WeightQuant(w) => {
                    let mut schedule = w.bit_schedule(a.schedule.start);
                    // With eigenvalue-scaled periods a layer's factor is known only at the
                    // offset: the schedule must settle even with the largest, 5.
                    if eigen {
                        schedule.factor = EIGEN_MAX_FACTOR;
                    }
                    if schedule.offset >= steps {
                        self.errors.push(ConfigError::invalid(
                            format!("{technique}/shared_parameters/schedule_offset"),
                            late(schedule.offset),
                        ));
                        continue;
                    }
                    match schedule.settled_at() {
                        None => self.errors.push(ConfigError::invalid(
                            format!("{technique}/shared_parameters/fp16_mixed_quantize/quantize_change_ratio"),
                            "0 never lowers the float share of the blended weight, so the weights would never be fully quantized; use a ratio > 0 (DeepSpeed's default is 0.001)",
                        )),
                        Some(at) if at >= steps => self.errors.push(ConfigError::invalid(
                            format!("{}/params/quantization_period", a.pointer),
                            format!(
                                "the schedule ({}) settles at step {at}{}, not before the last of training.steps = {steps}; raise training.steps above {at} or shorten the period",
                                schedule.describe(),
                                if eigen { " with the largest eigenvalue factor, 5" } else { "" }
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                Params::ActivationQuant(_) if a.schedule.start >= steps => self.errors.push(ConfigError::invalid(
                    format!("{technique}/shared_parameters/schedule_offset"),
                    late(a.schedule.start),
                )),
                _ => {}
            }
        }
    }

    /// `eigenvalue`, when enabled: a layer stack the model has, at least one layer, and a MoQ
    /// group whose periods it can scale.
    fn eigenvalue(&mut self, inv: &Inventory) {
        let Some(e) = self.cfg.eigenvalue.as_ref().filter(|e| e.enabled) else {
            return;
        };
        let local = e.layer_name.strip_prefix("bert.").unwrap_or(&e.layer_name);
        if local != inv.layer_prefix {
            self.errors.push(ConfigError::invalid(
                "/eigenvalue/layer_name",
                format!(
                    "`{}` is not the layer stack of {}; its layers are `{}.N`",
                    e.layer_name, inv.model, inv.layer_prefix
                ),
            ));
        }
        if e.layer_num == 0 || e.layer_num as usize > inv.num_layers {
            self.errors.push(ConfigError::range(
                "/eigenvalue/layer_num",
                e.layer_num,
                format!(
                    "1..={} (the layers of {} that get their own estimate; DeepSpeed asserts ≥ 1)",
                    inv.num_layers, inv.model
                ),
            ));
        }
        if !(e.tol > 0.0 && e.tol.is_finite()) {
            self.errors.push(ConfigError::range("/eigenvalue/tol", e.tol, "> 0"));
        }
        if !(e.stability >= 0.0 && e.stability.is_finite()) {
            self.errors
                .push(ConfigError::range("/eigenvalue/stability", e.stability, ">= 0"));
        }
        let anneals = self
            .applied
            .values()
            .flatten()
            .any(|a| matches!(&a.params, Params::WeightQuant(w) if w.lowers_bits()));
        if !anneals {
            self.errors.push(ConfigError::invalid(
                "/eigenvalue/enabled",
                "the eigenvalue scales MoQ's periods, but no weight_quantization group anneals (quantize_weight_in_forward: false with start_bits > target_bits)",
            ));
        }
    }

    /// Builds the student's site list (renamed layers when layer reduction is on).
    fn layer_reduction(&mut self, inv: &Inventory) -> (Vec<(Site, Option<String>)>, Option<LayerPlan>) {
        let all: Vec<(Site, Option<String>)> = inv.sites.iter().map(|s| (s.clone(), None)).collect();
        let Some(lr) = self
            .cfg
            .compression_training
            .layer_reduction
            .as_ref()
            .filter(|l| l.enabled)
        else {
            return (all, None);
        };
        let p = format!("{CT}/layer_reduction");
        let prefix = lr.module_name_prefix.clone().unwrap_or_default();
        if prefix != inv.layer_prefix && !prefix.ends_with(&format!(".{}", inv.layer_prefix)) {
            self.errors.push(ConfigError::invalid(
                format!("{p}/module_name_prefix"),
                format!(
                    "`{prefix}` is not the layer stack of {}; its layers are `{}.N`",
                    inv.model, inv.layer_prefix
                ),
            ));
        }
        let keep: Vec<usize> = lr
            .teacher_layer
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|l| l as usize)
            .collect();
        for (i, &t) in keep.iter().enumerate() {
            if t >= inv.num_layers {
                self.errors.push(ConfigError::range(
                    format!("{p}/teacher_layer/{i}"),
                    t,
                    format!(
                        "0..={} ({} has {} layers)",
                        inv.num_layers.saturating_sub(1),
                        inv.model,
                        inv.num_layers
                    ),
                ));
            }
        }
        for (i, name) in lr.other_module_name.iter().flatten().enumerate() {
            let local = name.strip_prefix("bert.").unwrap_or(name);
            if !inv
                .sites
                .iter()
                .any(|s| s.path == local || s.path.starts_with(&format!("{local}.")))
            {
                self.warnings.push(format!(
                    "{p}/other_module_name/{i}: `{name}` is not part of {} (no such module); it is ignored",
                    inv.model
                ));
            }
        }
        let block_of = |s: &Site| -> Option<usize> {
            let rest = s.path.strip_prefix(&format!("{}.", inv.layer_prefix))?;
            rest.split('.').next()?.parse().ok()
        };
        let mut sites = Vec::new();
        let mut dropped_bytes = 0;
        for s in &inv.sites {
            match block_of(s) {
                None => sites.push((s.clone(), None)),
                Some(t) if keep.contains(&t) => {}
                Some(_) => dropped_bytes += super::size::dense_bytes(s),
            }
        }
        // Student layers in student order, each a renamed copy of its teacher layer.
        let mut student = Vec::new();
        for (i, &t) in keep.iter().enumerate() {
            let from = format!("{}.{t}", inv.layer_prefix);
            let to = format!("{}.{i}", inv.layer_prefix);
            for s in inv.sites.iter().filter(|s| block_of(s) == Some(t)) {
                let mut renamed = s.clone();
                renamed.path = format!("{to}{}", &s.path[from.len()..]);
                renamed.block = Some(to.clone());
                student.push((renamed, Some(s.path.clone())));
            }
        }
        // Embeddings first, then the layer stack, as in the model.
        let (head, tail): (Vec<_>, Vec<_>) = sites.into_iter().partition(|(s, _)| s.kind == SiteKind::Embedding);
        let mut out = head;
        out.extend(student);
        out.extend(tail);
        let dropped_layers = inv.num_layers.saturating_sub(keep.len()) as u64;
        dropped_bytes += dropped_layers * inv.layer_other_param_bytes;
        (
            out,
            Some(LayerPlan {
                teacher_layers: inv.num_layers,
                keep,
                dropped_bytes,
            }),
        )
    }

    fn techniques(&mut self, sites: &[(Site, Option<String>)], catalog: &Catalog, model: &str) {
        let ct = &self.cfg.compression_training;
        if let Some(t) = ct.weight_quantization.as_ref().filter(|t| t.shared_parameters.enabled) {
            let s = &t.shared_parameters;
            let spec = TechniqueSpec::builtin(&WEIGHT_QUANTIZATION, s.schedule_offset, None);
            self.technique(
                &spec,
                t.different_groups.as_ref(),
                sites,
                model,
                |g: &WeightQuantParams, site: &Site| {
                    let bits = g.target_bits.unwrap_or(8);
                    let layout = if site.kind == SiteKind::Embedding {
                        GroupLayout::PerRow
                    } else if let Some(gs) = s.group_size.or(g.group_size) {
                        // A group at least as wide as the row is one scale per output row.
                        if gs as usize >= site.shape[1..].iter().product::<usize>() {
                            GroupLayout::PerRow
                        } else {
                            GroupLayout::RowGroups(gs as usize)
                        }
                    } else {
                        GroupLayout::Chunks(s.quantize_groups as usize)
                    };
                    Params::WeightQuant(WeightQuantPlan {
                        mode: if s.quantize_weight_in_forward {
                            QuantMode::Forward
                        } else {
                            QuantMode::Moq
                        },
                        bits,
                        start_bits: if s.quantize_weight_in_forward {
                            bits
                        } else {
                            g.start_bits.unwrap_or(bits)
                        },
                        period: g.quantization_period,
                        quantization_type: s.quantization_type,
                        layout,
                        format: s.format.or(g.format),
                        // GPTQ needs a layer's inputs: an embedding lookup has none, it rounds
                        // to nearest.
                        rounding: if site.kind == SiteKind::Embedding && s.rounding == Rounding::Gptq {
                            Rounding::Nearest
                        } else {
                            s.rounding
                        },
                        clip: s.clip,
                        mixed_change_ratio: s
                            .fp16_mixed_quantize
                            .enabled
                            .then_some(s.fp16_mixed_quantize.quantize_change_ratio),
                    })
                },
            );
        }
        // The four pruning techniques differ only in what they accept and how the kept fraction
        // becomes their params.
        if let Some(t) = ct
            .sparse_pruning
            .as_ref()
            .filter(|t| t.shared_parameters.enabled && t.different_groups.is_some())
        {
            let s = &t.shared_parameters;
            let end = s.schedule_offset_end.unwrap_or(s.schedule_offset);
            let spec = TechniqueSpec::builtin(&SPARSE_PRUNING, s.schedule_offset, Some(end));
            self.pruning(&spec, t.different_groups.as_ref(), sites, model, |dense_ratio| {
                Params::Sparse(PrunePlan {
                    method: s.method,
                    dense_ratio,
                })
            });
        }
        // Row and channel pruning (before head pruning: forward order inside a Linear): output
        // rows or channels, with related modules sliced to match.
        let rows = [
            ct.row_pruning.as_ref().map(|t| {
                let s = &t.shared_parameters;
                (
                    &ROW_PRUNING,
                    s.enabled,
                    s.schedule_offset,
                    s.method,
                    &t.different_groups,
                    Params::Row as fn(PrunePlan) -> Params,
                )
            }),
            ct.channel_pruning.as_ref().map(|t| {
                let s = &t.shared_parameters;
                (
                    &CHANNEL_PRUNING,
                    s.enabled,
                    s.schedule_offset,
                    s.method,
                    &t.different_groups,
                    Params::Channel as fn(PrunePlan) -> Params,
                )
            }),
        ];
        for (facts, _, start, method, groups, variant) in rows.into_iter().flatten().filter(|r| r.1) {
            let spec = TechniqueSpec::builtin(facts, start, None);
            self.pruning(&spec, groups.as_ref(), sites, model, |dense_ratio| {
                variant(PrunePlan { method, dense_ratio })
            });
        }
        if let Some(t) = ct.head_pruning.as_ref().filter(|t| t.shared_parameters.enabled) {
            let s = &t.shared_parameters;
            let spec = TechniqueSpec::builtin(&HEAD_PRUNING, s.schedule_offset, None);
            let num_heads = s.num_heads.unwrap_or(1);
            self.pruning(&spec, t.different_groups.as_ref(), sites, model, |dense_ratio| {
                let kept_heads = kept(dense_ratio, num_heads as usize) as u32;
                Params::Head(HeadPrunePlan {
                    method: s.method,
                    dense_ratio,
                    num_heads,
                    kept_heads,
                })
            });
        }
        if let Some(t) = ct
            .activation_quantization
            .as_ref()
            .filter(|t| t.shared_parameters.enabled)
        {
            let s = &t.shared_parameters;
            let spec = TechniqueSpec::builtin(&ACTIVATION_QUANTIZATION, s.schedule_offset, None);
            self.technique(
                &spec,
                t.different_groups.as_ref(),
                sites,
                model,
                |g: &ActivationQuantParams, _| {
                    Params::ActivationQuant(ActivationQuantPlan {
                        bits: g.bits.unwrap_or(8),
                        quantization_type: s.quantization_type,
                        range: s.range_calibration,
                    })
                },
            );
        }
        for (key, t) in &ct.custom {
            let Some(custom) = catalog.get(key) else {
                continue;
            };
            let enabled = t
                .shared_parameters
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !enabled {
                continue;
            }
            let start = t
                .shared_parameters
                .get("schedule_offset")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let spec = TechniqueSpec {
                key,
                accepts: &custom.accepts,
                uses_related: false,
                schedule: Schedule { start, end: None },
            };
            let shared = t.shared_parameters.clone();
            self.technique(&spec, t.different_groups.as_ref(), sites, model, |g: &Value, _| {
                // DeepSpeed's merge: {**group.params, **shared_parameters}.
                let mut merged = g.as_object().cloned().unwrap_or_default();
                if let Some(s) = shared.as_object() {
                    merged.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Params::Custom(Value::Object(merged))
            });
        }
    }

    /// A pruning technique: its groups' `dense_ratio` (validated present) becomes `params`.
    fn pruning(
        &mut self,
        spec: &TechniqueSpec,
        groups: Option<&BTreeMap<String, Group<DenseRatioParams>>>,
        sites: &[(Site, Option<String>)],
        model: &str,
        params: impl Fn(f64) -> Params,
    ) {
        self.technique(spec, groups, sites, model, |g: &DenseRatioParams, _| {
            params(g.dense_ratio.unwrap_or(1.0))
        });
    }

    fn technique<P>(
        &mut self,
        spec: &TechniqueSpec,
        groups: Option<&BTreeMap<String, Group<P>>>,
        sites: &[(Site, Option<String>)],
        model: &str,
        params: impl Fn(&P, &Site) -> Params,
    ) {
        let tp = push_pointer(CT, spec.key);
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for (name, group) in groups.into_iter().flatten() {
            let gp = push_pointer(&format!("{tp}/different_groups"), name);
            if group.related_modules.is_some() && !spec.uses_related {
                self.errors.push(ConfigError::RelatedModules {
                    pointer: format!("{gp}/related_modules"),
                    message: format!(
                        "{} does not shrink other modules; related_modules only apply to row, head and channel pruning",
                        spec.key
                    ),
                });
            }
            for (i, pattern) in group.modules.iter().enumerate() {
                let pp = format!("{gp}/modules/{i}");
                let Some(re) = self.regex(pattern) else {
                    continue;
                };
                let matched: Vec<&Site> = sites.iter().map(|(s, _)| s).filter(|s| re.is_match(&s.path)).collect();
                if matched.is_empty() {
                    self.errors.push(ConfigError::NoMatch {
                        pointer: pp.clone(),
                        pattern: pattern.clone(),
                        model: model.to_string(),
                        nearest: nearest_paths(pattern, sites.iter().map(|(s, _)| s.path.as_str()), 3),
                    });
                    continue;
                }
                for site in matched {
                    if !self.site_ok(spec, site, pattern, &pp) {
                        continue;
                    }
                    if let Some(first) = owner.get(&site.path) {
                        if first != name {
                            self.errors.push(ConfigError::DoubleMatch {
                                pointer: pp.clone(),
                                module: site.path.clone(),
                                technique: spec.key.to_string(),
                                first: first.clone(),
                                second: name.clone(),
                            });
                        }
                        continue;
                    }
                    owner.insert(site.path.clone(), name.clone());
                    let p = params(&group.params, site);
                    if let Params::Head(h) = &p
                        && site.num_heads.is_some_and(|n| n != h.num_heads as usize)
                    {
                        self.errors.push(ConfigError::invalid(
                            format!("{tp}/shared_parameters/num_heads"),
                            format!(
                                "is {} but `{}` has {} heads",
                                h.num_heads,
                                site.path,
                                site.num_heads.unwrap_or(0)
                            ),
                        ));
                    }
                    let related = group
                        .related_modules
                        .as_ref()
                        .and_then(|r| r.get(i))
                        .filter(|r| spec.uses_related && !r.is_empty());
                    if let Some(related) = related {
                        self.related(spec, site, related, sites, &gp, i, &p, name);
                    }
                    self.push(
                        site,
                        spec,
                        name,
                        &gp,
                        Link::Main {
                            with_related: related.is_some(),
                        },
                        p,
                    );
                }
            }
        }
    }

    fn site_ok(&mut self, spec: &TechniqueSpec, site: &Site, pattern: &str, pp: &str) -> bool {
        let accepts = spec.accepts.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
        if !spec.accepts.contains(&site.kind) {
            self.errors.push(ConfigError::UnsupportedSite {
                pointer: pp.to_string(),
                technique: spec.key.to_string(),
                kind: site.kind.name().to_string(),
                module: site.path.clone(),
                pattern: pattern.to_string(),
                accepts,
            });
            return false;
        }
        if spec.key == HEAD_PRUNING.key && site.role != SiteRole::AttentionOutput {
            self.errors.push(ConfigError::UnsupportedSite {
                pointer: pp.to_string(),
                technique: spec.key.to_string(),
                kind: site.kind.name().to_string(),
                module: site.path.clone(),
                pattern: pattern.to_string(),
                accepts: "the attention output projection (`attention.output.dense`), with Q/K/V as related modules"
                    .into(),
            });
            return false;
        }
        true
    }

    /// Resolves `related_modules[i]` for one main module: each pattern must match exactly one
    /// module in the main module's block, and its shape must line up with the main module's.
    #[allow(clippy::too_many_arguments)]
    fn related(
        &mut self,
        spec: &TechniqueSpec,
        main: &Site,
        patterns: &[String],
        sites: &[(Site, Option<String>)],
        gp: &str,
        i: usize,
        params: &Params,
        group: &str,
    ) {
        for (j, pattern) in patterns.iter().enumerate() {
            let rp = format!("{gp}/related_modules/{i}/{j}");
            let Some(re) = self.regex(pattern) else {
                continue;
            };
            let found: Vec<&Site> = sites
                .iter()
                .map(|(s, _)| s)
                .filter(|s| s.path != main.path && s.block == main.block && re.is_match(&s.path))
                .collect();
            let block = main.block.clone().unwrap_or_default();
            if found.len() != 1 {
                let names: Vec<String> = found.iter().map(|s| format!("`{}`", s.path)).collect();
                self.errors.push(ConfigError::RelatedModules {
                    pointer: rp,
                    message: format!(
                        "pattern `{pattern}` must match exactly one module in block `{block}` (next to `{}`), but matches {}{}",
                        main.path,
                        found.len(),
                        if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) }
                    ),
                });
                continue;
            }
            let rel = found[0];
            // Row pruning removes the related module's input columns; head pruning its output rows.
            let (ok, what) = match params {
                Params::Row(_) => (
                    rel.shape.get(1) == main.shape.first(),
                    format!(
                        "its input width {} must equal the output rows {} of",
                        dim(rel, 1),
                        dim(main, 0)
                    ),
                ),
                Params::Head(_) => (
                    rel.shape.first() == main.shape.get(1)
                        && matches!(rel.role, SiteRole::Query | SiteRole::Key | SiteRole::Value),
                    format!(
                        "it must be a Q/K/V projection with {} output rows = the input width {} of",
                        dim(rel, 0),
                        dim(main, 1)
                    ),
                ),
                _ => (true, String::new()),
            };
            if !ok {
                self.errors.push(ConfigError::RelatedModules {
                    pointer: rp,
                    message: format!(
                        "`{}` does not line up with `{}`: {what} `{}`",
                        rel.path, main.path, main.path
                    ),
                });
                continue;
            }
            self.push(
                rel,
                spec,
                group,
                gp,
                Link::Related {
                    main: main.path.clone(),
                },
                params.clone(),
            );
        }
    }

    fn push(&mut self, site: &Site, spec: &TechniqueSpec, group: &str, gp: &str, link: Link, params: Params) {
        self.applied.entry(site.path.clone()).or_default().push(Applied {
            technique: spec.key.to_string(),
            group: group.to_string(),
            pointer: gp.to_string(),
            link,
            schedule: spec.schedule,
            params,
        });
    }

    fn regex(&self, pattern: &str) -> Option<Regex> {
        match self.match_mode {
            MatchMode::Search => Regex::new(pattern).ok(),
            MatchMode::Full => Regex::new(&format!("^(?:{pattern})$")).ok(),
        }
    }
}

/// One pattern usually matches the same module in every layer, so one mistake would be reported
/// once per layer. Errors that differ only in layer indices are folded into the first.
fn collapse_repeats(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let layer_index = Regex::new(r"\.\d+\b").expect("valid regex");
    let mut out: Vec<(String, ConfigError, usize)> = Vec::new();
    for e in errors {
        let key = format!("{}|{}", e.pointer(), layer_index.replace_all(&e.to_string(), ".N"));
        match out.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, n)) => *n += 1,
            None => out.push((key, e, 0)),
        }
    }
    out.into_iter()
        .map(|(_, e, n)| {
            if n == 0 {
                return e;
            }
            let pointer = e.pointer().to_string();
            let text = e.to_string();
            let message = text.strip_prefix(&format!("{pointer}: ")).unwrap_or(&text).to_string();
            ConfigError::invalid(
                pointer,
                format!(
                    "{message} (and the same in {n} more layer{})",
                    if n == 1 { "" } else { "s" }
                ),
            )
        })
        .collect()
}

fn dim(s: &Site, i: usize) -> String {
    s.shape.get(i).map_or("?".into(), |d| d.to_string())
}

fn needs_training(cfg: &EmberConfig) -> bool {
    !crate::techniques::training_reasons(cfg).is_empty()
}
