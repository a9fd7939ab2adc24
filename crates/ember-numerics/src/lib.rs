//! Quantizer numerics on plain `f32` slices: the single source of truth for what a quantized weight
//! is. Fake quantization (`dequantize(quantize(w))`) and clean's packing both call these functions,
//! so a cleaned model's dequantized weights equal the composed model's fake-quantized weights bit
//! for bit by construction.
//!
//! | quantizer | Ember numerics (default) | DeepSpeed numerics |
//! |---|---|---|
//! | symmetric | s = max\|x\|/(2^(b−1)−1), q ∈ ±(2^(b−1)−1) | s = 2·max\|x\|/2^b, q ∈ [−2^(b−1), 2^(b−1)−1] |
//! | asymmetric | range widened to include 0; s = (max−min)/(2^b−1), z = round(−min/s) ∈ [0, 2^b−1], q = clamp(round(x/s)+z) | s = (max−min)/2^b, z = round(min/s)·s, q = clamp(round((x−z)/s)) |
//! | ternary | Δ = 0.7·mean\|x\|, α = mean of \|x\| over \|x\| > Δ | same |
//! | binary | α = mean\|x\|, code = sign(x) (0 → +) | same (sign(0) = 0) |
//! | fp8/fp6/fp4 | s = max\|x\|/max(format), code = nearest grid value (ties to even) | — |
//!
//! `round` is round-half-to-even (torch's). Means are summed in f64 and rounded once, so they do not
//! depend on summation order (compat-notes §7). Epsilon guard: an all-zero group has scale 0 and
//! codes 0 and dequantizes to exact zeros — in both modes (DeepSpeed returns NaN there, bug B7).

mod activation;
mod float;
mod gptq;
mod groups;
mod int;
mod number;
mod storage;
mod ternary;

pub use activation::{ActRange, ActSpec, RowQuant};
pub use float::MiniFloat;
pub use gptq::{gptq, gptq_blocks};
pub use groups::{GroupLayout, group_ranges};
pub use int::{asymmetric_params, symmetric_params};
pub use number::{Clip, FloatFormat, Numerics};
pub use storage::{
    IntFormat, KernelGroups, LinearKernel, WeightSpec, code_bits, code_range, format_name, linear_kernel,
    lookup_kernel, row_bytes, stored_scheme, zero_point_bytes,
};

use rayon::prelude::*;

/// What a weight is quantized to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// Integer codes, 3…8 bits.
    Symmetric {
        bits: u32,
    },
    Asymmetric {
        bits: u32,
    },
    /// Codes −1, 0, +1 with one α per group.
    Ternary,
    /// Codes −1, +1 with one α per group.
    Binary,
    /// A minifloat value grid with one scale per group.
    Float(FloatFormat),
}

impl Scheme {
    /// The scheme a plan's bits, type and format ask for.
    pub fn from_plan(bits: u32, asymmetric: bool, format: Option<FloatFormat>) -> Scheme {
        match (format, bits) {
            (Some(f), _) => Scheme::Float(f),
            (None, 1) => Scheme::Binary,
            (None, 2) => Scheme::Ternary,
            (None, b) if asymmetric => Scheme::Asymmetric { bits: b },
            (None, b) => Scheme::Symmetric { bits: b },
        }
    }
}

/// One stored code: a signed integer (symmetric −128…127, ternary, binary), an unsigned one
/// (asymmetric 0…255) or a minifloat bit pattern (0…255). Two bytes hold every case; a
/// model's codes are held until clean packs them (GPTQ's for MiniLM: 10.6 M of them).
pub type Code = i16;

/// Codes and per-group parameters of one quantized tensor. `codes` hold signed integers
/// (symmetric, ternary, binary), unsigned integers (asymmetric) or minifloat bit patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub scheme: Scheme,
    pub numerics: Numerics,
    pub layout: GroupLayout,
    pub rows: usize,
    pub cols: usize,
    pub codes: Vec<Code>,
    /// One scale (or α) per group, in [`group_ranges`] order.
    pub scales: Vec<f32>,
    /// Asymmetric only: the zero point per group (an integer code in Ember numerics, a float offset
    /// snapped to the grid in DeepSpeed numerics).
    pub zeros: Vec<f32>,
}

/// Quantizes a row-major `[rows, cols]` weight with every group's full range
/// ([`quantize_with`] and [`Clip::None`]).
///
/// # Panics
/// If `w.len() != rows * cols` or the layout does not fit the shape (checked by the plan first).
pub fn quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
) -> Quantized {
    quantize_with(w, rows, cols, layout, scheme, numerics, Clip::None)
}

/// Quantizes a row-major `[rows, cols]` weight; `clip` chooses each group's range for integer
/// schemes ([`Clip::Mse`]: the clip ratio with the smallest squared rounding error; ternary,
/// binary and float schemes ignore it). Groups are independent and quantized in parallel; the
/// result does not depend on the thread count.
///
/// # Panics
/// If `w.len() != rows * cols` or the layout does not fit the shape (checked by the plan first).
pub fn quantize_with(
    w: &[f32],
    rows: usize,
    cols: usize,
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
    clip: Clip,
) -> Quantized {
    assert_eq!(w.len(), rows * cols, "weight length does not match its shape");
    let ranges = group_ranges(rows, cols, layout);
    let mut codes = vec![0; w.len()];
    let grid = match scheme {
        Scheme::Float(f) => Some(MiniFloat::of(f)),
        _ => None,
    };
    // Every layout's groups are contiguous and in order: cut the codes into one slice per group.
    let mut slices = Vec::with_capacity(ranges.len());
    let mut rest: &mut [Code] = &mut codes;
    let mut at = 0;
    for r in &ranges {
        assert_eq!(r.start, at, "groups tile the weight in order");
        let (head, tail) = rest.split_at_mut(r.len());
        slices.push(head);
        rest = tail;
        at = r.end;
    }
    let params: Vec<(f32, f32)> = ranges
        .par_iter()
        .zip(slices.into_par_iter())
        .with_min_len(64)
        .map(|(group, codes)| {
            let x = &w[group.clone()];
            match scheme {
                Scheme::Symmetric { bits } => int::group(x, bits, false, numerics, clip, codes),
                Scheme::Asymmetric { bits } => int::group(x, bits, true, numerics, clip, codes),
                Scheme::Ternary => (ternary::ternary(x, codes), 0.0),
                Scheme::Binary => (ternary::binary(x, numerics, codes), 0.0),
                Scheme::Float(_) => (
                    grid.as_ref().expect("float scheme has a grid").quantize_group(x, codes),
                    0.0,
                ),
            }
        })
        .collect();
    let asym = matches!(scheme, Scheme::Asymmetric { .. });
    Quantized {
        scheme,
        numerics,
        layout,
        rows,
        cols,
        codes,
        scales: params.iter().map(|p| p.0).collect(),
        zeros: if asym {
            params.iter().map(|p| p.1).collect()
        } else {
            Vec::new()
        },
    }
}

/// The float values the codes stand for.
pub fn dequantize(q: &Quantized) -> Vec<f32> {
    let mut out = vec![0f32; q.codes.len()];
    let grid = q.grid();
    for (g, group) in group_ranges(q.rows, q.cols, q.layout).into_iter().enumerate() {
        let s = q.scales[g];
        let z = q.zeros.get(g).copied().unwrap_or(0.0);
        for i in group {
            out[i] = code_value(q.scheme, q.numerics, grid.as_ref(), i32::from(q.codes[i]), s, z);
        }
    }
    out
}

/// The value of one code with its group's scale (α) and zero point: the one formula every
/// dequantizer (fake quantization, the artifact reader, the runtime's embedding lookup) uses.
/// `grid` is the scheme's [`MiniFloat`] for float schemes (see [`Quantized::grid`]).
#[inline]
pub fn code_value(
    scheme: Scheme,
    numerics: Numerics,
    grid: Option<&MiniFloat>,
    code: i32,
    scale: f32,
    zero: f32,
) -> f32 {
    match (scheme, grid) {
        (Scheme::Asymmetric { .. }, _) => int::asymmetric_value(code, scale, zero, numerics),
        (Scheme::Float(_), Some(grid)) => grid.value(code as u8) * scale,
        _ => code as f32 * scale,
    }
}

impl Quantized {
    /// The minifloat grid of a float scheme (`None` for integer schemes).
    pub fn grid(&self) -> Option<MiniFloat> {
        match self.scheme {
            Scheme::Float(f) => Some(MiniFloat::of(f)),
            _ => None,
        }
    }
}

/// `dequantize(quantize(w))`: what the composed model computes with (full-range groups).
pub fn fake_quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    layout: GroupLayout,
    scheme: Scheme,
    numerics: Numerics,
) -> Vec<f32> {
    dequantize(&quantize(w, rows, cols, layout, scheme, numerics))
}

/// Round half to even, as torch and burn do.
#[inline]
pub(crate) fn round(x: f32) -> f32 {
    x.round_ties_even()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * if i % 97 == 0 { 8.0 } else { 1.0 })
            .collect()
    }

    #[test]
    fn quantize_with_mse_clip_is_deterministic_and_never_worse_per_group() {
        let (rows, cols) = (48, 200); // ragged last group of each row (200 = 3·64 + 8)
        let w = weights(rows * cols);
        for scheme in [Scheme::Symmetric { bits: 4 }, Scheme::Asymmetric { bits: 4 }] {
            let layout = GroupLayout::RowGroups(64);
            let full = quantize(&w, rows, cols, layout, scheme, Numerics::Ember);
            let mse = quantize_with(&w, rows, cols, layout, scheme, Numerics::Ember, Clip::Mse);
            // Same thread pool or a single thread: the same codes.
            let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
            let again = single.install(|| quantize_with(&w, rows, cols, layout, scheme, Numerics::Ember, Clip::Mse));
            assert_eq!(mse, again);
            assert_eq!(mse.scales.len(), layout.groups(rows, cols));
            let (d_full, d_mse) = (dequantize(&full), dequantize(&mse));
            let mut improved = 0;
            for g in group_ranges(rows, cols, layout) {
                let err = |d: &[f32]| g.clone().map(|i| ((d[i] - w[i]) as f64).powi(2)).sum::<f64>();
                assert!(err(&d_mse) <= err(&d_full), "{scheme:?} group {g:?}");
                improved += (err(&d_mse) < err(&d_full)) as usize;
            }
            assert!(improved > 0, "{scheme:?}");
        }
    }

    #[test]
    fn clip_does_not_change_ternary_binary_or_float_schemes() {
        let w = weights(4 * 64);
        for scheme in [Scheme::Ternary, Scheme::Binary, Scheme::Float(FloatFormat::E2m1)] {
            let layout = GroupLayout::RowGroups(32);
            assert_eq!(
                quantize(&w, 4, 64, layout, scheme, Numerics::Ember),
                quantize_with(&w, 4, 64, layout, scheme, Numerics::Ember, Clip::Mse)
            );
        }
    }
}
