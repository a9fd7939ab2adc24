//! Integer quantizers, 3…8 bits, symmetric and asymmetric, in Ember and DeepSpeed numerics.
//! DeepSpeed's formulas are transcribed from `compression/utils.py` (Sym/AsymQuantizer, compat-notes
//! §2.1–2.2) with the same float32 operation order, so results match bit for bit.

use crate::Code;
use crate::number::{Clip, Numerics};

use super::round;

/// A symmetric group's quantizer from its largest magnitude: `(scale, lowest code, highest
/// code)`; scale 0 for an all-zero or non-finite group (its codes are 0). The one formula the
/// slice quantizer below and the tensor-op fake quantization of training share.
pub fn symmetric_params(max: f32, bits: u32, numerics: Numerics) -> (f32, f32, f32) {
    let (lo, hi) = match numerics {
        Numerics::Ember => {
            let qmax = ((1i64 << (bits - 1)) - 1) as f32;
            (-qmax, qmax)
        }
        Numerics::Deepspeed => {
            let q_range = (1u64 << bits) as f32;
            (-q_range / 2.0, q_range / 2.0 - 1.0)
        }
    };
    if max == 0.0 || !max.is_finite() {
        return (0.0, lo, hi);
    }
    let scale = match numerics {
        Numerics::Ember => exact_scale(max, hi),
        Numerics::Deepspeed => 2.0 * max / (1u64 << bits) as f32,
    };
    (scale, lo, hi)
}

/// Symmetric quantization of one group; returns `(scale, 0)`.
pub(crate) fn symmetric(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [Code]) -> (f32, f32) {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (scale, lo, hi) = symmetric_params(max, bits, numerics);
    if scale == 0.0 {
        codes.fill(0);
        return (0.0, 0.0);
    }
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = round(v / scale).clamp(lo, hi) as Code;
    }
    (scale, 0.0)
}

/// An asymmetric group's quantizer from its range `[mn, mx]`: `(scale, zero)`, where Ember's
/// zero is an integer code and DeepSpeed's a value. Scale 0 for a group whose codes are all 0:
/// empty or non-finite (zero 0), all zero (Ember), or constant (DeepSpeed, whose zero then keeps
/// the constant). The one formula the slice quantizer below and the tensor-op fake quantization
/// of training share.
pub fn asymmetric_params(mn: f32, mx: f32, bits: u32, numerics: Numerics) -> (f32, f32) {
    if !(mn.is_finite() && mx.is_finite()) {
        return (0.0, 0.0);
    }
    let top = ((1u64 << bits) - 1) as f32;
    match numerics {
        Numerics::Ember => {
            // The range always includes 0 (as PyTorch's and ONNX's asymmetric quantizers do), so
            // the zero point is an integer code in [0, 2^b − 1]: it is stored as u8 and integer
            // kernels can subtract it exactly, whatever the weights. A constant group c is then
            // [0, c] (or [c, 0]) and its code dequantizes to c exactly; an all-zero group gets
            // scale 0.
            // A one-signed group takes the scale whose top code lands exactly on its extreme.
            let (mn, mx) = (mn.min(0.0), mx.max(0.0));
            let scale = if mn == 0.0 {
                exact_scale(mx, top)
            } else if mx == 0.0 {
                exact_scale(-mn, top)
            } else {
                (mx - mn) / top
            };
            if scale == 0.0 {
                return (0.0, 0.0);
            }
            (scale, round(-mn / scale))
        }
        Numerics::Deepspeed => {
            let scale = (mx - mn) / (1u64 << bits) as f32;
            if scale == 0.0 {
                // DeepSpeed divides by zero here (NaN, bug B7); the constant is kept exactly.
                return (0.0, mn);
            }
            (scale, round(mn / scale) * scale)
        }
    }
}

/// Asymmetric quantization of one group; returns `(scale, zero)`.
pub(crate) fn asymmetric(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [Code]) -> (f32, f32) {
    let (mn, mx) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (scale, zero) = asymmetric_params(mn, mx, bits, numerics);
    if scale == 0.0 {
        codes.fill(0);
        return (0.0, zero);
    }
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = asymmetric_code(v, scale, zero, bits, numerics) as Code;
    }
    (scale, zero)
}

/// One integer group, symmetric or asymmetric, with its range chosen by `clip`: writes the codes
/// and returns (scale, zero) — the one dispatch round-to-nearest and GPTQ's static groups share.
pub(crate) fn group(
    x: &[f32],
    bits: u32,
    asym: bool,
    numerics: Numerics,
    clip: Clip,
    codes: &mut [Code],
) -> (f32, f32) {
    match (asym, clip) {
        (false, Clip::None) => symmetric(x, bits, numerics, codes),
        (false, Clip::Mse) => symmetric_mse(x, bits, numerics, codes),
        (true, Clip::None) => asymmetric(x, bits, numerics, codes),
        (true, Clip::Mse) => asymmetric_mse(x, bits, numerics, codes),
    }
}

/// Clip ratios the MSE search tries after the full range: 0.99, 0.98, …, 0.50.
const CLIP_STEPS: u32 = 50;

/// The `k`-th clip ratio, `1 − k/100`.
fn clip_ratio(k: u32) -> f32 {
    1.0 - k as f32 / 100.0
}

/// Σ (value(code(x)) − x)² of a group for one (scale, zero), in f64.
fn group_error(x: &[f32], bits: u32, numerics: Numerics, asym: bool, scale: f32, zero: f32) -> f64 {
    x.iter()
        .map(|&v| {
            let q = if asym {
                asymmetric_value(asymmetric_code(v, scale, zero, bits, numerics), scale, zero, numerics)
            } else {
                symmetric_code(v, scale, bits, numerics) as f32 * scale
            };
            let d = (q - v) as f64;
            d * d
        })
        .sum()
}

/// Symmetric quantization with the MSE-searched range: the full-range scale of [`symmetric`]
/// first, then `r · max|x|` for r = 0.99 … 0.50; the scale with the smallest squared rounding
/// error wins (strictly smaller, so ties keep the wider range). Never worse than [`symmetric`].
pub(crate) fn symmetric_mse(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [Code]) -> (f32, f32) {
    let (full, _) = symmetric(x, bits, numerics, codes);
    if full == 0.0 {
        return (0.0, 0.0);
    }
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut best = (group_error(x, bits, numerics, false, full, 0.0), full);
    for k in 1..=CLIP_STEPS {
        let m = max * clip_ratio(k);
        let scale = match numerics {
            Numerics::Ember => m / ((1i32 << (bits - 1)) - 1) as f32,
            Numerics::Deepspeed => 2.0 * m / (1u64 << bits) as f32,
        };
        if scale <= 0.0 || !scale.is_finite() {
            break;
        }
        let e = group_error(x, bits, numerics, false, scale, 0.0);
        if e < best.0 {
            best = (e, scale);
        }
    }
    let scale = best.1;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = symmetric_code(v, scale, bits, numerics) as Code;
    }
    (scale, 0.0)
}

/// Asymmetric quantization with the MSE-searched range: the full min…max of [`asymmetric`]
/// first, then `r·min … r·max` for r = 0.99 … 0.50 (Ember numerics: zero point clamped to the
/// code range, so it stays an integer in [0, 2^b − 1]); the smallest squared rounding error wins
/// (ties keep the wider range). Never worse than [`asymmetric`].
pub(crate) fn asymmetric_mse(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [Code]) -> (f32, f32) {
    let (full_s, full_z) = asymmetric(x, bits, numerics, codes);
    if full_s == 0.0 {
        return (full_s, full_z);
    }
    let (mn, mx) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (mn, mx) = match numerics {
        Numerics::Ember => (mn.min(0.0), mx.max(0.0)),
        Numerics::Deepspeed => (mn, mx),
    };
    let top = ((1u64 << bits) - 1) as f32;
    let mut best = (group_error(x, bits, numerics, true, full_s, full_z), full_s, full_z);
    for k in 1..=CLIP_STEPS {
        let r = clip_ratio(k);
        let (lo, hi) = (mn * r, mx * r);
        if hi <= lo {
            break;
        }
        let (scale, zero) = match numerics {
            Numerics::Ember => {
                let s = (hi - lo) / top;
                (s, round(-lo / s).clamp(0.0, top))
            }
            Numerics::Deepspeed => {
                let s = (hi - lo) / (1u64 << bits) as f32;
                (s, round(lo / s) * s)
            }
        };
        if scale <= 0.0 || !scale.is_finite() {
            break;
        }
        let e = group_error(x, bits, numerics, true, scale, zero);
        if e < best.0 {
            best = (e, scale, zero);
        }
    }
    let (_, scale, zero) = best;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = asymmetric_code(v, scale, zero, bits, numerics) as Code;
    }
    (scale, zero)
}

/// The symmetric code of one value with a given scale (0 for a zero scale).
pub(crate) fn symmetric_code(v: f32, scale: f32, bits: u32, numerics: Numerics) -> i32 {
    if scale == 0.0 {
        return 0;
    }
    let (lo, hi) = match numerics {
        Numerics::Ember => {
            let q = ((1i32 << (bits - 1)) - 1) as f32;
            (-q, q)
        }
        Numerics::Deepspeed => {
            let r = (1u64 << bits) as f32;
            (-r / 2.0, r / 2.0 - 1.0)
        }
    };
    round(v / scale).clamp(lo, hi) as i32
}

/// The asymmetric code of one value with a given scale and zero (0 for a zero scale).
pub(crate) fn asymmetric_code(v: f32, scale: f32, zero: f32, bits: u32, numerics: Numerics) -> i32 {
    if scale == 0.0 {
        return 0;
    }
    match numerics {
        Numerics::Ember => (round(v / scale) + zero).clamp(0.0, ((1u64 << bits) - 1) as f32) as i32,
        Numerics::Deepspeed => round((v - zero) / scale).clamp(0.0, ((1u64 << bits) - 1) as f32) as i32,
    }
}

/// The value of an asymmetric code.
pub(crate) fn asymmetric_value(code: impl Into<i32>, scale: f32, zero: f32, numerics: Numerics) -> f32 {
    let code = code.into();
    match numerics {
        Numerics::Ember => (code as f32 - zero) * scale,
        Numerics::Deepspeed => code as f32 * scale + zero,
    }
}

/// `max / qmax`, nudged by at most one ulp so that `scale · qmax == max` when such a float exists:
/// the largest weight of the group is then represented exactly (a constant group quantizes to
/// itself).
fn exact_scale(max: f32, qmax: f32) -> f32 {
    let s = max / qmax;
    [s, s.next_up(), s.next_down()]
        .into_iter()
        .find(|c| c * qmax == max)
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(x: &[f32], bits: u32, n: Numerics) -> (Vec<Code>, f32) {
        let mut c = vec![0; x.len()];
        let (s, _) = symmetric(x, bits, n, &mut c);
        (c, s)
    }

    #[test]
    fn ember_symmetric_uses_the_full_signed_range_and_keeps_the_max() {
        // max|x| = 2.54 → s = 2.54/127 = 0.02; 2.54 → 127, −1.27 → −63.5 → −64 (ties to even).
        let (c, s) = sym(&[2.54, -1.27, 0.0, 0.01], 8, Numerics::Ember);
        assert_eq!(c, vec![127, -64, 0, 0]);
        assert_eq!(127.0 * s, 2.54);
        // 0.01 / 0.02 = 0.5 → 0 (ties to even), not 1.
    }

    #[test]
    fn deepspeed_symmetric_clips_the_max_by_one_step() {
        // s = 2·3.4105/256; 3.4105/s = 128 → clipped to 127 (compat-notes §2.1: 3.4105 → 3.3839).
        let (c, s) = sym(&[3.4105, -3.4105, 1.0], 8, Numerics::Deepspeed);
        assert_eq!(s, 2.0 * 3.4105f32 / 256.0);
        assert_eq!(c[0], 127);
        assert_eq!(c[1], -128);
        assert!(((c[0] as f32 * s) - 3.3839).abs() < 1e-4);
    }

    #[test]
    fn all_zero_groups_are_exact_zeros_in_both_modes() {
        for n in [Numerics::Ember, Numerics::Deepspeed] {
            let (c, s) = sym(&[0.0; 4], 8, n);
            assert_eq!((c, s), (vec![0; 4], 0.0));
            let mut codes = vec![7; 3];
            let (s, z) = asymmetric(&[0.0; 3], 4, n, &mut codes);
            assert!(codes.iter().all(|&c| asymmetric_value(c, s, z, n) == 0.0));
        }
    }

    #[test]
    fn constant_groups_quantize_to_themselves() {
        for c in [0.37f32, -2.5, 1e-20] {
            let (codes, s) = sym(&[c; 5], 4, Numerics::Ember);
            assert!(codes.iter().all(|&q| q as f32 * s == c), "{c}");
            for n in [Numerics::Ember, Numerics::Deepspeed] {
                let mut codes = vec![0; 5];
                let (s, z) = asymmetric(&[c; 5], 4, n, &mut codes);
                assert!(codes.iter().all(|&q| asymmetric_value(q, s, z, n) == c), "{c} {n:?}");
            }
        }
    }

    #[test]
    fn ember_asymmetric_zero_points_are_codes_for_one_signed_groups() {
        // [5, 6] and [−6, −5] do not contain 0: the range is widened to it, so z ∈ {0, 15} and
        // the extreme value is exact; every code dequantizes within half a step.
        for x in [[5.0f32, 5.5, 6.0], [-6.0, -5.5, -5.0]] {
            let mut c = vec![0; 3];
            let (s, z) = asymmetric(&x, 4, Numerics::Ember, &mut c);
            assert!(z == 0.0 || z == 15.0, "{x:?}: z = {z}");
            assert_eq!(s * 15.0, 6.0);
            for (&q, &v) in c.iter().zip(&x) {
                assert!((0..=15).contains(&q));
                assert!(
                    (asymmetric_value(q, s, z, Numerics::Ember) - v).abs() <= s / 2.0,
                    "{x:?}"
                );
            }
            let mut m = vec![0; 3];
            let (_, zm) = asymmetric_mse(&x, 4, Numerics::Ember, &mut m);
            assert!((0.0..=15.0).contains(&zm) && zm.fract() == 0.0);
        }
    }

    #[test]
    fn ember_asymmetric_spans_min_to_max_with_an_integer_zero() {
        // min −1, max 2, 2 bits → s = 1, z = 1; codes for −1, 0, 0.5, 2 = 0, 1, 1 (0.5 → 0 ties even, +1), 3.
        let mut c = vec![0; 4];
        let (s, z) = asymmetric(&[-1.0, 0.0, 0.5, 2.0], 2, Numerics::Ember, &mut c);
        assert_eq!((s, z), (1.0, 1.0));
        assert_eq!(c, vec![0, 1, 1, 3]);
        assert_eq!(asymmetric_value(c[3], s, z, Numerics::Ember), 2.0);
    }

    #[test]
    fn deepspeed_asymmetric_divides_by_two_to_the_bits() {
        // min −1, max 2, 2 bits → s = 3/4, z = round(−1/0.75)·0.75 = −0.75;
        // (2 + 0.75)/0.75 = 3.67 → 4 → clipped to 3 → 3·0.75 − 0.75 = 1.5 (the max loses a step).
        let mut c = vec![0; 2];
        let (s, z) = asymmetric(&[-1.0, 2.0], 2, Numerics::Deepspeed, &mut c);
        assert_eq!((s, z), (0.75, -0.75));
        assert_eq!(c, vec![0, 3]);
        assert_eq!(asymmetric_value(c[1], s, z, Numerics::Deepspeed), 1.5);
        assert_eq!(asymmetric_value(c[0], s, z, Numerics::Deepspeed), -0.75);
    }

    /// Deterministic pseudo-random groups: mostly small values plus a few outliers.
    fn groups(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        (0..n)
            .map(|g| {
                (0..len)
                    .map(|i| {
                        let v = next() * 0.05;
                        // Every third group has one outlier, some groups are shifted (asymmetric).
                        let v = if g % 3 == 0 && i == g % len { v * 20.0 } else { v };
                        if g % 5 == 1 { v + 0.03 } else { v }
                    })
                    .collect()
            })
            .collect()
    }

    fn error_of(x: &[f32], codes: &[Code], s: f32, z: f32, asym: bool, n: Numerics) -> f64 {
        x.iter()
            .zip(codes)
            .map(|(&v, &c)| {
                let q = if asym {
                    asymmetric_value(c, s, z, n)
                } else {
                    c as f32 * s
                };
                ((q - v) as f64).powi(2)
            })
            .sum()
    }

    #[test]
    fn mse_search_is_never_worse_than_the_full_range_and_keeps_codes_in_range() {
        for n in [Numerics::Ember, Numerics::Deepspeed] {
            for bits in [3, 4, 8] {
                let mut better = 0;
                for x in groups(60, 64, bits as u64) {
                    let (mut c0, mut c1) = (vec![0; 64], vec![0; 64]);
                    let (s0, _) = symmetric(&x, bits, n, &mut c0);
                    let (s1, _) = symmetric_mse(&x, bits, n, &mut c1);
                    let (e0, e1) = (
                        error_of(&x, &c0, s0, 0.0, false, n),
                        error_of(&x, &c1, s1, 0.0, false, n),
                    );
                    assert!(e1 <= e0, "sym {n:?} {bits}: {e1} > {e0}");
                    better += (e1 < e0) as usize;
                    let lim = 1i32 << (bits - 1);
                    assert!(c1.iter().all(|&c| (-lim..lim).contains(&i32::from(c))));

                    let (s0, z0) = asymmetric(&x, bits, n, &mut c0);
                    let (s1, z1) = asymmetric_mse(&x, bits, n, &mut c1);
                    let (e0, e1) = (error_of(&x, &c0, s0, z0, true, n), error_of(&x, &c1, s1, z1, true, n));
                    assert!(e1 <= e0, "asym {n:?} {bits}: {e1} > {e0}");
                    assert!(c1.iter().all(|&c| (0..1 << bits).contains(&c)));
                    if n == Numerics::Ember {
                        assert!(
                            z1.fract() == 0.0 && (0.0..(1 << bits) as f32).contains(&z1),
                            "zero {z1}"
                        );
                    }
                }
                // At 3 and 4 bits clipping pays off on many of these groups (DeepSpeed's symmetric
                // scale already clips the max by one step, so it gains less).
                if bits <= 4 {
                    let want = if n == Numerics::Ember { 20 } else { 5 };
                    assert!(better > want, "{n:?} {bits}: only {better} of 60 groups improved");
                }
            }
        }
    }

    #[test]
    fn mse_search_finds_the_best_clip_ratio_of_the_grid() {
        // Independent brute force over the same grid with Ember's symmetric formula written out:
        // s = r·max/7, q = clamp(round(x/s), −7, 7)·s, r = 1, 0.99, …, 0.50.
        for x in groups(12, 64, 7) {
            let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let best = (0..=50)
                .map(|k| {
                    let s = max * (1.0 - k as f32 / 100.0) / 7.0;
                    x.iter()
                        .map(|&v| (((v / s).round_ties_even().clamp(-7.0, 7.0) * s - v) as f64).powi(2))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            let mut c = vec![0; 64];
            let (s, _) = symmetric_mse(&x, 4, Numerics::Ember, &mut c);
            let got = error_of(&x, &c, s, 0.0, false, Numerics::Ember);
            assert!((got - best).abs() <= 1e-12 + 1e-6 * best, "{got} vs brute force {best}");
        }
    }

    #[test]
    fn mse_search_keeps_exact_groups_exact() {
        // Constant, all-zero and already-on-grid groups lose nothing: the full range wins ties.
        let sym_grid: Vec<f32> = (-7..=7).map(|i| i as f32 * 0.25).collect();
        for x in [vec![0.37f32; 8], vec![0.0; 8], sym_grid] {
            let mut c = vec![0; x.len()];
            let (s, _) = symmetric_mse(&x, 4, Numerics::Ember, &mut c);
            assert_eq!(error_of(&x, &c, s, 0.0, false, Numerics::Ember), 0.0, "{x:?}");
        }
        // min −1, max 2.75 → s = 0.25, z = 4: every value is a grid point.
        let asym_grid: Vec<f32> = (0..16).map(|i| i as f32 * 0.25 - 1.0).collect();
        for x in [vec![0.37f32; 8], vec![0.0; 8], asym_grid] {
            let mut c = vec![0; x.len()];
            let (s, z) = asymmetric_mse(&x, 4, Numerics::Ember, &mut c);
            assert_eq!(error_of(&x, &c, s, z, true, Numerics::Ember), 0.0, "{x:?}");
        }
    }
}
