//! Ternary (TWN) and binary quantizers, DeepSpeed's `TernaryQuantizer`/`BinaryQuantizer`
//! (compat-notes §2.3–2.4). Means are summed in f64 and rounded once, so α does not depend on
//! summation order or thread count (compat-notes §7).

use crate::number::Numerics;

/// Ternary: Δ = 0.7·mean|x|, α = mean of |x| over |x| > Δ, codes ∈ {−1, 0, +1}. Returns α.
pub(crate) fn ternary(x: &[f32], codes: &mut [crate::Code]) -> f32 {
    let n = x.len().max(1);
    let mean = (x.iter().map(|v| v.abs() as f64).sum::<f64>() / n as f64) as f32;
    let delta = 0.7f32 * mean;
    let (sum, count) = x
        .iter()
        .filter(|v| v.abs() > delta)
        .fold((0f64, 0usize), |(s, k), v| (s + v.abs() as f64, k + 1));
    let alpha = if count == 0 { 0.0 } else { (sum / count as f64) as f32 };
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = if v > delta {
            1
        } else if v < -delta {
            -1
        } else {
            0
        };
    }
    alpha
}

/// Binary: α = mean|x|, code = sign(x). One bit cannot store 0, so Ember numerics map an exact
/// zero to +1; DeepSpeed numerics keep torch's sign(0) = 0. Returns α.
pub(crate) fn binary(x: &[f32], numerics: Numerics, codes: &mut [crate::Code]) -> f32 {
    let n = x.len().max(1);
    let alpha = (x.iter().map(|v| v.abs() as f64).sum::<f64>() / n as f64) as f32;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = if v < 0.0 {
            -1
        } else if v > 0.0 || numerics == Numerics::Ember {
            1
        } else {
            0
        };
    }
    alpha
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ternary_thresholds_at_seven_tenths_of_the_mean() {
        // mean|x| = (4 + 1 + 0.5 + 2.5)/4 = 2 → Δ = 1.4; kept: 4, −2.5 → α = 3.25.
        let mut c = vec![0; 4];
        let a = ternary(&[4.0, 1.0, -0.5, -2.5], &mut c);
        assert_eq!(a, 3.25);
        assert_eq!(c, vec![1, 0, 0, -1]);
    }

    #[test]
    fn ternary_of_a_zero_row_is_zero_not_nan() {
        let mut c = vec![5; 3];
        assert_eq!(ternary(&[0.0; 3], &mut c), 0.0);
        assert_eq!(c, vec![0; 3]);
    }

    #[test]
    fn binary_scale_is_the_mean_magnitude() {
        let mut c = vec![0; 4];
        assert_eq!(binary(&[1.0, -3.0, 0.0, 2.0], Numerics::Ember, &mut c), 1.5);
        assert_eq!(c, vec![1, -1, 1, 1]);
        binary(&[1.0, -3.0, 0.0, 2.0], Numerics::Deepspeed, &mut c);
        assert_eq!(c, vec![1, -1, 0, 1]);
    }
}
