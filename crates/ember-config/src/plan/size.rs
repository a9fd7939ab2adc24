//! Shapes, bytes and kernels after clean, per module. Bytes and kernel names come from
//! `ember_numerics::WeightSpec` / `linear_kernel`, the same code the artifact writer and the CPU
//! engine use, so `ember plan` predicts `ember inspect` exactly without loading weights. Sparse
//! masks are stored dense (zeros), so they do not shrink a module; structural pruning does.

use super::*;
use ember_numerics::{linear_kernel, lookup_kernel};

use crate::inventory::{Site, SiteKind};

/// Bytes of a site stored densely in f32 (weight + bias).
pub(crate) fn dense_bytes(site: &Site) -> u64 {
    let bias = if site.has_bias { site.shape[0] } else { 0 };
    ((site.numel() + bias) * 4) as u64
}

pub(crate) fn module_plan(
    site: &Site,
    teacher_path: Option<String>,
    techniques: Vec<Applied>,
    numerics: Numerics,
) -> ModulePlan {
    let shape_after = shape_after(site, &techniques);
    let rows = shape_after[0];
    let numel: usize = shape_after.iter().product();
    let bias = if site.has_bias { rows as u64 * 4 } else { 0 };
    let wq = techniques.iter().find_map(|a| match &a.params {
        Params::WeightQuant(w) => Some(w),
        _ => None,
    });
    let act = techniques.iter().find_map(|a| match &a.params {
        Params::ActivationQuant(q) => Some(q),
        _ => None,
    });
    let cols = numel / rows.max(1);
    let spec = wq.map(|w| w.spec(numerics));
    let weight_bytes = spec.map_or(numel as u64 * 4, |s| s.stored_bytes(rows, cols));
    let kernel = match site.kind {
        SiteKind::Embedding => lookup_kernel(spec),
        SiteKind::Linear => linear_kernel(spec, rows, cols, act.map(|a| a.bits)).name(),
        SiteKind::Conv2d => format!("conv_{}", linear_kernel(spec, rows, cols, act.map(|a| a.bits)).name()),
    };
    ModulePlan {
        path: site.path.clone(),
        teacher_path,
        kind: site.kind,
        role: site.role,
        shape: site.shape.clone(),
        shape_after,
        has_bias: site.has_bias,
        kernel,
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
