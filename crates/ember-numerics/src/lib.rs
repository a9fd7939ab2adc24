//! Quantizer numerics on plain `f32` slices: the single source of truth for what a quantized weight
//! is. Fake quantization (`dequantize(quantize(w))`) and clean's packing both call these functions,
//! so a cleaned model's dequantized weights equal the composed model's fake-quantized weights bit
//! for bit by construction.
//!
//! | quantizer | Ember numerics (default) | DeepSpeed numerics |
//! |---|---|---|
//! | symmetric | s = max\|x\|/(2^(b−1)−1), q ∈ ±(2^(b−1)−1) | s = 2·max\|x\|/2^b, q ∈ [−2^(b−1), 2^(b−1)−1] |
//! | asymmetric | s = (max−min)/(2^b−1), z = round(−min/s), q = clamp(round(x/s)+z) | s = (max−min)/2^b, z = round(min/s)·s, q = clamp(round((x−z)/s)) |
//! | ternary | Δ = 0.7·mean\|x\|, α = mean of \|x\| over \|x\| > Δ | same |
//! | binary | α = mean\|x\|, code = sign(x) (0 → +) | same (sign(0) = 0) |
//! | fp8/fp6/fp4 | s = max\|x\|/max(format), code = nearest grid value (ties to even) | — |
//!
//! `round` is round-half-to-even (torch's). Means are summed in f64 and rounded once, so they do not
//! depend on summation order (compat-notes §7). Epsilon guard: an all-zero group has scale 0 and
//! codes 0 and dequantizes to exact zeros — in both modes (DeepSpeed returns NaN there, bug B7).

mod float;
mod gptq;
mod groups;
mod int;
mod ternary;

pub use float::MiniFloat;
pub use gptq::gptq;
pub use groups::{GroupLayout, group_ranges};

use ember_config::types::{FloatFormat, Numerics};

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

/// Codes and per-group parameters of one quantized tensor. `codes` hold signed integers
/// (symmetric, ternary, binary), unsigned integers (asymmetric) or minifloat bit patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub scheme: Scheme,
    pub numerics: Numerics,
    pub layout: GroupLayout,
    pub rows: usize,
    pub cols: usize,
    pub codes: Vec<i32>,
    /// One scale (or α) per group, in [`group_ranges`] order.
    pub scales: Vec<f32>,
    /// Asymmetric only: the zero point per group (an integer code in Ember numerics, a float offset
    /// snapped to the grid in DeepSpeed numerics).
    pub zeros: Vec<f32>,
}

/// Quantizes a row-major `[rows, cols]` weight.
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
    assert_eq!(w.len(), rows * cols, "weight length does not match its shape");
    let ranges = group_ranges(rows, cols, layout);
    let mut q = Quantized {
        scheme,
        numerics,
        layout,
        rows,
        cols,
        codes: vec![0; w.len()],
        scales: Vec::with_capacity(ranges.len()),
        zeros: Vec::new(),
    };
    let grid = match scheme {
        Scheme::Float(f) => Some(MiniFloat::of(f)),
        _ => None,
    };
    for group in ranges {
        let x = &w[group.clone()];
        let codes = &mut q.codes[group];
        let (scale, zero) = match scheme {
            Scheme::Symmetric { bits } => int::symmetric(x, bits, numerics, codes),
            Scheme::Asymmetric { bits } => int::asymmetric(x, bits, numerics, codes),
            Scheme::Ternary => (ternary::ternary(x, codes), 0.0),
            Scheme::Binary => (ternary::binary(x, numerics, codes), 0.0),
            Scheme::Float(_) => (
                grid.as_ref().expect("float scheme has a grid").quantize_group(x, codes),
                0.0,
            ),
        };
        q.scales.push(scale);
        if matches!(scheme, Scheme::Asymmetric { .. }) {
            q.zeros.push(zero);
        }
    }
    q
}

/// The float values the codes stand for.
pub fn dequantize(q: &Quantized) -> Vec<f32> {
    let mut out = vec![0f32; q.codes.len()];
    let grid = q.grid();
    for (g, group) in group_ranges(q.rows, q.cols, q.layout).into_iter().enumerate() {
        let s = q.scales[g];
        let z = q.zeros.get(g).copied().unwrap_or(0.0);
        for i in group {
            out[i] = code_value(q.scheme, q.numerics, grid.as_ref(), q.codes[i], s, z);
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

/// `dequantize(quantize(w))`: what the composed model computes with.
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
