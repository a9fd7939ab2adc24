//! Integer quantizers, 3…8 bits, symmetric and asymmetric, in Ember and DeepSpeed numerics.
//! DeepSpeed's formulas are transcribed from `compression/utils.py` (Sym/AsymQuantizer, compat-notes
//! §2.1–2.2) with the same float32 operation order, so results match bit for bit.

use ember_config::types::Numerics;

use super::round;

/// Symmetric quantization of one group; returns `(scale, 0)`.
pub(crate) fn symmetric(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [i32]) -> (f32, f32) {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.fill(0);
        return (0.0, 0.0);
    }
    let (scale, lo, hi) = match numerics {
        Numerics::Ember => {
            let qmax = ((1i32 << (bits - 1)) - 1) as f32;
            (exact_scale(max, qmax), -qmax, qmax)
        }
        Numerics::Deepspeed => {
            let q_range = (1u64 << bits) as f32;
            (2.0 * max / q_range, -q_range / 2.0, q_range / 2.0 - 1.0)
        }
    };
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = round(v / scale).clamp(lo, hi) as i32;
    }
    (scale, 0.0)
}

/// Asymmetric quantization of one group; returns `(scale, zero)`.
pub(crate) fn asymmetric(x: &[f32], bits: u32, numerics: Numerics, codes: &mut [i32]) -> (f32, f32) {
    let (mn, mx) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let top = ((1u64 << bits) - 1) as f32;
    if x.is_empty() || !(mn.is_finite() && mx.is_finite()) {
        codes.fill(0);
        return (0.0, 0.0);
    }
    match numerics {
        Numerics::Ember => {
            // A constant group c gets scale |c| and zero ∓1, so its single code dequantizes to c
            // exactly; an all-zero group gets scale 0.
            let scale = if mx > mn { (mx - mn) / top } else { mn.abs() };
            if scale == 0.0 {
                codes.fill(0);
                return (0.0, 0.0);
            }
            let zero = round(-mn / scale);
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = (round(v / scale) + zero).clamp(0.0, top) as i32;
            }
            (scale, zero)
        }
        Numerics::Deepspeed => {
            let q_range = (1u64 << bits) as f32;
            let scale = (mx - mn) / q_range;
            if scale == 0.0 {
                // DeepSpeed divides by zero here (NaN, bug B7); the constant is kept exactly.
                codes.fill(0);
                return (0.0, mn);
            }
            let zero = round(mn / scale) * scale;
            for (c, &v) in codes.iter_mut().zip(x) {
                *c = round((v - zero) / scale).clamp(0.0, q_range - 1.0) as i32;
            }
            (scale, zero)
        }
    }
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
pub(crate) fn asymmetric_value(code: i32, scale: f32, zero: f32, numerics: Numerics) -> f32 {
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

    fn sym(x: &[f32], bits: u32, n: Numerics) -> (Vec<i32>, f32) {
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
}
