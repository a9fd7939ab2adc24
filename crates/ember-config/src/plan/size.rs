//! Shapes, bytes and kernels after clean, per module. The byte counts are what the `.ember`
//! artifact stores: packed codes (int8, int4 two per byte, ternary 2 bits, binary 1 bit; 3-bit codes
//! in the 4-bit container, 5–7-bit codes in the 8-bit one), one f32 scale per group (plus an f32
//! zero point per group when asymmetric), f32 biases. Sparse masks are stored dense (zeros), so they
//! do not shrink a module; structural pruning does.

use super::*;
use crate::inventory::{Site, SiteKind};

/// Bytes of a site stored densely in f32 (weight + bias).
pub(crate) fn dense_bytes(site: &Site) -> u64 {
    let bias = if site.has_bias { site.shape[0] } else { 0 };
    ((site.numel() + bias) * 4) as u64
}

pub(crate) fn module_plan(site: &Site, teacher_path: Option<String>, techniques: Vec<Applied>) -> ModulePlan {
    let shape_after = shape_after(site, &techniques);
    let rows = shape_after[0];
    let numel: usize = shape_after.iter().product();
    let bias = if site.has_bias { rows as u64 * 4 } else { 0 };
    let wq = techniques.iter().find_map(|a| match &a.params {
        Params::WeightQuant(w) => Some(w),
        _ => None,
    });
    let weight_bytes = match wq {
        None => numel as u64 * 4,
        Some(w) => {
            let cols = numel / rows.max(1);
            let codes = rows as u64 * (cols as u64 * w.container_bits() as u64).div_ceil(8);
            let groups = match w.grouping {
                Grouping::PerRow => rows as u64,
                Grouping::RowBlocks(g) => g as u64,
                Grouping::InputGroups(g) => rows as u64 * (cols as u64).div_ceil(g.max(1) as u64),
            };
            let per_group = if w.quantization_type == QuantizationType::Asymmetric && w.bits > 2 {
                8
            } else {
                4
            };
            codes + groups * per_group
        }
    };
    let act = techniques.iter().find_map(|a| match &a.params {
        Params::ActivationQuant(q) => Some(q),
        _ => None,
    });
    ModulePlan {
        path: site.path.clone(),
        teacher_path,
        kind: site.kind,
        role: site.role,
        shape: site.shape.clone(),
        shape_after,
        has_bias: site.has_bias,
        kernel: kernel(site.kind, wq, act),
        techniques,
        bytes_before: dense_bytes(site),
        bytes_after: weight_bytes + bias,
    }
}

/// Structural pruning slices rows (row pruning, Q/K/V of pruned heads) and columns (the module
/// after a row-pruned one, the O projection of pruned heads). Without related modules DeepSpeed
/// only zeroes the rows (the consumer is unknown); Ember follows it, so the shape stays.
fn shape_after(site: &Site, techniques: &[Applied]) -> Vec<usize> {
    let mut shape = site.shape.clone();
    for a in techniques {
        match (&a.params, &a.link) {
            (Params::Row(p), Link::Main { with_related: true }) => shape[0] = kept(p.dense_ratio, site.shape[0]),
            (Params::Row(p), Link::Related { .. }) => shape[1] = kept(p.dense_ratio, site.shape[1]),
            (Params::Head(h), Link::Main { with_related: true }) => {
                let head_dim = site.shape[1] / h.num_heads.max(1) as usize;
                shape[1] = h.kept_heads as usize * head_dim;
            }
            (Params::Head(h), Link::Related { .. }) => {
                let head_dim = site.shape[0] / h.num_heads.max(1) as usize;
                shape[0] = h.kept_heads as usize * head_dim;
            }
            (Params::Channel(p), Link::Main { with_related: true }) => shape[0] = kept(p.dense_ratio, site.shape[0]),
            (Params::Channel(p), Link::Related { .. }) if shape.len() > 1 => {
                shape[1] = kept(p.dense_ratio, site.shape[1])
            }
            _ => {}
        }
    }
    shape
}

fn kernel(kind: SiteKind, wq: Option<&WeightQuantPlan>, act: Option<&ActivationQuantPlan>) -> String {
    match kind {
        SiteKind::Embedding => match wq {
            None => "lookup_f32".into(),
            Some(w) => format!("lookup_{}", weight_format(w)),
        },
        SiteKind::Linear | SiteKind::Conv2d => {
            let prefix = if kind == SiteKind::Conv2d { "conv_" } else { "" };
            match (wq, act) {
                (None, None) => format!("{prefix}gemm_f32"),
                (None, Some(a)) => format!("{prefix}gemm_f32 (A{} quantize-dequantize)", a.bits),
                (Some(w), None) => format!("{prefix}gemm_f32_{}", weight_format(w)),
                (Some(w), Some(_)) if w.format.is_some() => {
                    format!("{prefix}gemm_f32_{} (A quantize-dequantize)", weight_format(w))
                }
                (Some(w), Some(_)) => format!(
                    "{prefix}gemm_i8{}",
                    match w.container_bits() {
                        1 => "_binary".to_string(),
                        2 => "_ternary".to_string(),
                        b => format!("i{b}"),
                    }
                ),
            }
        }
    }
}

fn weight_format(w: &WeightQuantPlan) -> String {
    match (w.format, w.container_bits()) {
        (Some(f), _) => f.name().replace('-', "_"),
        (None, 1) => "binary".into(),
        (None, 2) => "ternary".into(),
        (None, b) => format!("i{b}"),
    }
}
