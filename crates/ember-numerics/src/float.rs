//! Minifloat value grids (fp8 e4m3/e5m2, fp6 e3m2, fp4 e2m1) with a per-group scale
//! s = max|x| / max(format); codes are the formats' bit patterns, rounded to the nearest grid value
//! with ties to the even mantissa.
//!
//! | format | exponent bias | max | special values |
//! |---|---|---|---|
//! | e4m3 (OCP "FN") | 7 | 448 | no infinities; S.1111.111 is NaN |
//! | e5m2 | 15 | 57344 | IEEE-like: exponent 11111 is inf/NaN |
//! | e3m2 (OCP MX FP6) | 3 | 28 | none |
//! | e2m1 (OCP MX FP4) | 1 | 6 | none |

use crate::number::FloatFormat;

/// A minifloat format's non-negative finite values, indexed by code (sign bit clear).
#[derive(Debug, Clone)]
pub struct MiniFloat {
    format: FloatFormat,
    /// `values[code]` for every finite non-negative code; ascending.
    values: Vec<f32>,
    sign_bit: u8,
}

impl MiniFloat {
    pub fn of(format: FloatFormat) -> MiniFloat {
        let (e_bits, m_bits) = match format {
            FloatFormat::E4m3 => (4u32, 3u32),
            FloatFormat::E5m2 => (5, 2),
            FloatFormat::E3m2 => (3, 2),
            FloatFormat::E2m1 => (2, 1),
        };
        let bias = (1i32 << (e_bits - 1)) - 1;
        let max_exp = (1u32 << e_bits) - 1;
        let mut values = Vec::new();
        for code in 0u32..(1 << (e_bits + m_bits)) {
            let e = code >> m_bits;
            let m = code & ((1 << m_bits) - 1);
            let special = match format {
                FloatFormat::E4m3 => e == max_exp && m == (1 << m_bits) - 1,
                FloatFormat::E5m2 => e == max_exp,
                _ => false,
            };
            if special {
                break;
            }
            let frac = m as f32 / (1u32 << m_bits) as f32;
            let v = if e == 0 {
                frac * 2f32.powi(1 - bias)
            } else {
                (1.0 + frac) * 2f32.powi(e as i32 - bias)
            };
            values.push(v);
        }
        MiniFloat {
            format,
            values,
            sign_bit: 1 << (e_bits + m_bits),
        }
    }

    pub fn format(&self) -> FloatFormat {
        self.format
    }

    /// The largest finite value.
    pub fn max(&self) -> f32 {
        *self.values.last().expect("a format has values")
    }

    /// The value of a code (sign bit included).
    pub fn value(&self, code: u8) -> f32 {
        let v = self
            .values
            .get((code & !self.sign_bit) as usize)
            .copied()
            .unwrap_or(f32::NAN);
        if code & self.sign_bit != 0 { -v } else { v }
    }

    /// The code nearest to `v` (ties to the even code, i.e. the even mantissa).
    pub fn encode(&self, v: f32) -> u8 {
        let a = v.abs().min(self.max());
        let i = self.values.partition_point(|&x| x < a);
        let code = if i == 0 {
            0
        } else if i >= self.values.len() {
            self.values.len() - 1
        } else {
            let (lo, hi) = (self.values[i - 1], self.values[i]);
            let (dl, dh) = (a - lo, hi - a);
            if dl < dh || (dl == dh && (i - 1) % 2 == 0) {
                i - 1
            } else {
                i
            }
        };
        if v < 0.0 && code != 0 {
            code as u8 | self.sign_bit
        } else {
            code as u8
        }
    }

    /// Quantizes one group; returns the scale.
    pub(crate) fn quantize_group(&self, x: &[f32], codes: &mut [crate::Code]) -> f32 {
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 || !max.is_finite() {
            codes.fill(0);
            return 0.0;
        }
        let scale = max / self.max();
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = crate::Code::from(self.encode(v / scale));
        }
        scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_the_published_maxima_and_sizes() {
        // OCP 8-bit spec: e4m3 max 448 (126 finite positive codes + 0), e5m2 max 57344.
        let e4m3 = MiniFloat::of(FloatFormat::E4m3);
        assert_eq!((e4m3.max(), e4m3.values.len()), (448.0, 127));
        assert_eq!(MiniFloat::of(FloatFormat::E5m2).max(), 57344.0);
        assert_eq!(MiniFloat::of(FloatFormat::E3m2).max(), 28.0);
        let e2m1 = MiniFloat::of(FloatFormat::E2m1);
        assert_eq!(e2m1.values, vec![0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
    }

    #[test]
    fn encode_rounds_to_nearest_with_ties_to_even() {
        let f = MiniFloat::of(FloatFormat::E2m1);
        assert_eq!(f.value(f.encode(2.4)), 2.0);
        assert_eq!(f.value(f.encode(2.5)), 2.0); // tie between 2 (code 4) and 3 (code 5): even code
        assert_eq!(f.value(f.encode(3.5)), 4.0); // tie between 3 (code 5) and 4 (code 6)
        assert_eq!(f.value(f.encode(-5.0)), -4.0); // tie between 4 (code 6) and 6 (code 7)
        assert_eq!(f.value(f.encode(100.0)), 6.0);
        assert_eq!(f.encode(-0.1), 0);
    }

    #[test]
    fn subnormals_are_on_the_grid() {
        let f = MiniFloat::of(FloatFormat::E4m3);
        // Smallest e4m3 subnormal: 2^-9.
        assert_eq!(f.value(1), 2f32.powi(-9));
        assert_eq!(f.value(f.encode(2f32.powi(-9) * 1.4)), 2f32.powi(-9));
    }
}
