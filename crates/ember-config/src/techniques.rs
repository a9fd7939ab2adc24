//! What each built-in technique is, stated once. The planner resolves groups with these facts,
//! the composer's built-in techniques answer `Technique::accepts` from them, and whether a use of
//! a technique needs the training loop is decided here alone ([`training_reasons`]): validation
//! refuses a config that needs training but has no `training` section, the plan's
//! `needs_training` is that list being non-empty, and the composer reports it as not runnable.

use crate::inventory::SiteKind;
use crate::types::{EmberConfig, Layerwise, PruningMethod};

/// One built-in technique: its `compression_training` key, the site kinds its groups may match,
/// and whether it shrinks related modules (`related_modules` only means something then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TechniqueFacts {
    pub key: &'static str,
    pub accepts: &'static [SiteKind],
    pub uses_related: bool,
}

const fn facts(key: &'static str, accepts: &'static [SiteKind], uses_related: bool) -> TechniqueFacts {
    TechniqueFacts {
        key,
        accepts,
        uses_related,
    }
}

pub const WEIGHT_QUANTIZATION: TechniqueFacts = facts(
    "weight_quantization",
    &[SiteKind::Linear, SiteKind::Embedding, SiteKind::Conv2d],
    false,
);
pub const ACTIVATION_QUANTIZATION: TechniqueFacts =
    facts("activation_quantization", &[SiteKind::Linear, SiteKind::Conv2d], false);
pub const SPARSE_PRUNING: TechniqueFacts = facts("sparse_pruning", &[SiteKind::Linear, SiteKind::Conv2d], false);
pub const ROW_PRUNING: TechniqueFacts = facts("row_pruning", &[SiteKind::Linear], true);
/// Matches the attention output projection; Q/K/V are its related modules.
pub const HEAD_PRUNING: TechniqueFacts = facts("head_pruning", &[SiteKind::Linear], true);
pub const CHANNEL_PRUNING: TechniqueFacts = facts("channel_pruning", &[SiteKind::Conv2d], true);

/// Every built-in technique, in forward order inside a layer.
pub const BUILTIN_TECHNIQUES: [TechniqueFacts; 6] = [
    WEIGHT_QUANTIZATION,
    SPARSE_PRUNING,
    ROW_PRUNING,
    HEAD_PRUNING,
    ACTIVATION_QUANTIZATION,
    CHANNEL_PRUNING,
];

/// The facts of the built-in technique under `key`.
pub fn builtin_technique(key: &str) -> Option<&'static TechniqueFacts> {
    BUILTIN_TECHNIQUES.iter().find(|t| t.key == key)
}

const CT: &str = "/compression_training";

/// The uses of techniques that change during training, `(JSON pointer, reason)` each: a schedule
/// that starts after step 0, MoQ, a learned (non-`l1`) mask. They need the per-step lifecycle.
pub fn scheduled_reasons(cfg: &EmberConfig) -> Vec<(String, String)> {
    let ct = &cfg.compression_training;
    let mut reasons: Vec<(String, String)> = Vec::new();
    let offset = |key: &str, enabled: bool, offset: u64, reasons: &mut Vec<(String, String)>| {
        if enabled && offset > 0 {
            reasons.push((
                format!("{CT}/{key}/shared_parameters/schedule_offset"),
                format!("{key} starts at step {offset} (DeepSpeed's default is 1000; set 0 for post-training use)"),
            ));
        }
    };
    let learned = |key: &str, enabled: bool, method: PruningMethod, reasons: &mut Vec<(String, String)>| {
        if enabled && method != PruningMethod::L1 {
            let name = match method {
                PruningMethod::Topk => "topk",
                _ => "snip_momentum",
            };
            reasons.push((
                format!("{CT}/{key}/shared_parameters/method"),
                format!("{key} with method `{name}` learns its mask"),
            ));
        }
    };
    if let Some(t) = &ct.weight_quantization {
        let s = &t.shared_parameters;
        offset(WEIGHT_QUANTIZATION.key, s.enabled, s.schedule_offset, &mut reasons);
        if s.enabled && !s.quantize_weight_in_forward {
            reasons.push((
                format!("{CT}/weight_quantization/shared_parameters/quantize_weight_in_forward"),
                "MoQ (quantize_weight_in_forward: false) quantizes after optimizer steps".into(),
            ));
        }
    }
    if let Some(t) = &ct.activation_quantization {
        let s = &t.shared_parameters;
        offset(ACTIVATION_QUANTIZATION.key, s.enabled, s.schedule_offset, &mut reasons);
    }
    let pruning = [
        ct.sparse_pruning.as_ref().map(|t| {
            (
                SPARSE_PRUNING.key,
                t.shared_parameters.enabled,
                t.shared_parameters.schedule_offset,
                t.shared_parameters.method,
            )
        }),
        ct.row_pruning.as_ref().map(|t| {
            (
                ROW_PRUNING.key,
                t.shared_parameters.enabled,
                t.shared_parameters.schedule_offset,
                t.shared_parameters.method,
            )
        }),
        ct.head_pruning.as_ref().map(|t| {
            (
                HEAD_PRUNING.key,
                t.shared_parameters.enabled,
                t.shared_parameters.schedule_offset,
                t.shared_parameters.method,
            )
        }),
        ct.channel_pruning.as_ref().map(|t| {
            (
                CHANNEL_PRUNING.key,
                t.shared_parameters.enabled,
                t.shared_parameters.schedule_offset,
                t.shared_parameters.method,
            )
        }),
    ];
    for (key, enabled, start, method) in pruning.into_iter().flatten() {
        offset(key, enabled, start, &mut reasons);
        learned(key, enabled, method, &mut reasons);
    }
    reasons
}

/// The config's layer-by-layer distillation (ZeroQuant LKD), when enabled.
pub fn layerwise_distillation(cfg: &EmberConfig) -> Option<&Layerwise> {
    cfg.distillation.as_ref()?.layerwise.as_ref().filter(|l| l.enabled)
}

/// Whether composing `cfg` trains the model: a `training` section, or layer-by-layer
/// distillation.
pub fn trains(cfg: &EmberConfig) -> bool {
    cfg.training.is_some() || layerwise_distillation(cfg).is_some()
}

/// Every reason `cfg` needs the training loop (with the JSON pointer of the key that asks for
/// it): the [`scheduled_reasons`] and distillation losses.
pub fn training_reasons(cfg: &EmberConfig) -> Vec<(String, String)> {
    let mut reasons = scheduled_reasons(cfg);
    if let Some(d) = &cfg.distillation
        && !d.losses.is_empty()
    {
        reasons.push((
            "/distillation/losses".into(),
            "distillation losses are minimised by training".into(),
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_every_technique_accepts_something() {
        for (i, t) in BUILTIN_TECHNIQUES.iter().enumerate() {
            assert!(!t.accepts.is_empty(), "{}", t.key);
            assert_eq!(builtin_technique(t.key), Some(&BUILTIN_TECHNIQUES[i]));
        }
        assert_eq!(builtin_technique("layer_reduction"), None);
    }
}
