//! Scalar reference kernels: always compiled, simple and obviously correct. The AVX2 kernels in
//! `arch/x86_64/` carry the same names and must reproduce these results bit for bit for the
//! integer kernels (same exact i32 group sums, then the same f32 operations in the same order):
//!
//! ```text
//! d[m,n,g] = Σ_{k ∈ g} qa[m,k] · qw[n,k]                 (exact, i32)
//! acc      = 0;  for g in groups: acc = acc + (d as f32) · sw[n,g]
//! y[m,n]   = acc · sa[m]  (+ bias[n])
//! ```
//!
//! The weight-only kernels (f32 activations) accumulate in f32; their AVX2 versions sum in a
//! different order, so tests compare them with a tolerance.

use crate::formats::activation::QuantizedActivations;
use crate::formats::binary::PackedBinary;
use crate::formats::int4::PackedInt4;
use crate::formats::int8::PackedInt8;
use crate::formats::ternary::PackedTernary;

/// Per-token dynamic symmetric quantization of one row; returns the scale (0 for a zero row).
pub fn quantize_row_i8(x: &[f32], out: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let s = max / 127.0;
    quantize_row_i8_static(x, s, out);
    s
}

/// Quantization of one row with a given scale: `clamp(round_half_even(x / s), −127, 127)`.
pub fn quantize_row_i8_static(x: &[f32], s: f32, out: &mut [i8]) {
    if s == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return;
    }
    for (q, &v) in out.iter_mut().zip(x) {
        *q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
}

/// The shared integer reference: signed weight codes `qw` row-major `[n × k]`, groups of `group`
/// inputs with scale `sw(n, g)`.
fn integer_gemm(
    a: &QuantizedActivations,
    qw: &[i8],
    n: usize,
    group: usize,
    sw: impl Fn(usize, usize) -> f32,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let k = a.cols();
    let group = group.max(1);
    for m in 0..a.rows() {
        let qa = a.row(m);
        for j in 0..n {
            let row = &qw[j * k..(j + 1) * k];
            let mut acc = 0f32;
            for (g, (wa, ww)) in qa.chunks(group).zip(row.chunks(group)).enumerate() {
                let d: i32 = wa.iter().zip(ww).map(|(&x, &w)| x as i32 * w as i32).sum();
                acc += d as f32 * sw(j, g);
            }
            let mut out = acc * a.scales()[m];
            if let Some(b) = bias {
                out += b[j];
            }
            y[m * n + j] = out;
        }
    }
}

/// int8 activations × int8 weights (per-row or per-group scales) → f32 `[m × n]`.
pub fn gemm_i8i8(a: &QuantizedActivations, w: &PackedInt8, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    let group = w.group_size().unwrap_or(w.cols());
    integer_gemm(a, &w.unpack(), w.rows(), group, |n, g| w.scale(n, g), bias, y);
}

/// int8 activations × int4 weights (per-group scales and zero points) → f32.
pub fn gemm_i8i4(a: &QuantizedActivations, w: &PackedInt4, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    integer_gemm(a, &w.unpack(), w.rows(), w.group_size(), |n, g| w.scale(n, g), bias, y);
}

/// int8 activations × ternary weights (per-row α) → f32.
pub fn gemm_i8_ternary(a: &QuantizedActivations, w: &PackedTernary, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    integer_gemm(a, &w.unpack(), w.rows(), w.cols(), |n, _| w.alpha(n), bias, y);
}

/// int8 activations × binary weights (per-row α) → f32.
pub fn gemm_i8_binary(a: &QuantizedActivations, w: &PackedBinary, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    integer_gemm(a, &w.unpack(), w.rows(), w.cols(), |n, _| w.alpha(n), bias, y);
}

/// The shared weight-only reference: f32 activations `[m × k]`, integer weights, f32 sums.
#[allow(clippy::too_many_arguments)]
fn weight_only_gemm(
    a: &[f32],
    m: usize,
    k: usize,
    qw: &[i8],
    n: usize,
    group: usize,
    sw: impl Fn(usize, usize) -> f32,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let group = group.max(1);
    for i in 0..m {
        let x = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let row = &qw[j * k..(j + 1) * k];
            let mut acc = 0f32;
            for (g, (xa, ww)) in x.chunks(group).zip(row.chunks(group)).enumerate() {
                let d: f32 = xa.iter().zip(ww).map(|(&v, &q)| v * q as f32).sum();
                acc += d * sw(j, g);
            }
            y[i * n + j] = acc + bias.map_or(0.0, |b| b[j]);
        }
    }
}

/// f32 activations `[m × k]` × int8 weights → f32 (weight-only quantization).
pub fn gemm_f32_i8(a: &[f32], m: usize, w: &PackedInt8, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    let group = w.group_size().unwrap_or(w.cols());
    weight_only_gemm(
        a,
        m,
        w.cols(),
        &w.unpack(),
        w.rows(),
        group,
        |n, g| w.scale(n, g),
        bias,
        y,
    );
}

/// f32 activations `[m × k]` × int4 weights → f32 (weight-only quantization).
pub fn gemm_f32_i4(a: &[f32], m: usize, w: &PackedInt4, bias: Option<&[f32]>, y: &mut [f32]) {
    use crate::WeightFormat;
    weight_only_gemm(
        a,
        m,
        w.cols(),
        &w.unpack(),
        w.rows(),
        w.group_size(),
        |n, g| w.scale(n, g),
        bias,
        y,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i8i8_reference_matches_a_hand_computed_product() {
        // y = [1 2; 3 4] · [1 −1; 2 0]ᵀ with sa = [1, 0.5], sw = [2, 1], bias = [0.25, 0]
        let a = QuantizedActivations::from_codes(&[1, 2, 3, 4], 2, 2, &[1.0, 0.5]).unwrap();
        let w = PackedInt8::pack(&[1, -1, 2, 0], 2, 2, &[2.0, 1.0], None).unwrap();
        let mut y = [0f32; 4];
        gemm_i8i8(&a, &w, Some(&[0.25, 0.0]), &mut y);
        assert_eq!(y, [-2.0 + 0.25, 2.0, -1.0 + 0.25, 3.0]);
    }
}
