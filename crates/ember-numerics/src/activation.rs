//! Activation quantization, defined once. The composer's fake quantization (burn tensor ops in
//! `ember-core`), the CPU engine's SIMD quantizers and the kernels' fused int8 quantizer are
//! tested bit for bit against [`ActSpec::fake_quantize_row`] and [`RowQuant`].
//!
//! In f32 with `round` = round-half-to-even:
//!
//! | spec | scale `s` | code | value |
//! |---|---|---|---|
//! | symmetric, Ember | `max\|x\| / (2^(b−1)−1)` | `q = clamp(round(x/s), ±(2^(b−1)−1))` | `q·s` |
//! | symmetric, DeepSpeed | `2·max\|x\| / 2^b` | `q = clamp(round(x/s), −2^(b−1), 2^(b−1)−1)` | `q·s` |
//! | asymmetric, Ember | `(max−min) / (2^b−1)`, `z = round(−min/s)` | `u = clamp(round(x/s)+z, 0, 2^b−1)` | `(u−z)·s` |
//! | asymmetric, DeepSpeed | `(max−min) / 2^b`, `zf = round(min/s)·s` | `u = clamp(round((x−zf)/s), 0, 2^b−1)` | `u·s + zf` |
//!
//! `max`/`min` are per row (token) for [`ActRange::Dynamic`], the calibrated values for
//! [`ActRange::Static`] (symmetric uses `max(|min|, |max|)`). A zero scale gives codes 0
//! (symmetric: value 0; asymmetric: a constant row, every value exactly `min`).
//!
//! For integer kernels every row is one generic form `u = clamp(round((x − sub)/s) + add, lo,
//! hi)`, fed as the i8 code `c = u − shift` (`shift = 2^(b−1)` for asymmetric, so `c` fits i8 for
//! `b ≤ 8`) with scale `s`; the kernel's `s·Σ c·w` is completed by `offset · Σ_k w[n,k]`, with
//! `offset = s·(2^(b−1) − z)` (Ember) or `s·2^(b−1) + zf` (DeepSpeed).

use crate::number::Numerics;

/// How a Linear's input is quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ActSpec {
    /// 2 to 8 (codes narrower than 8 bits are carried in int8 lanes).
    pub bits: u32,
    pub symmetric: bool,
    pub numerics: Numerics,
    pub range: ActRange,
}

/// Where an activation quantizer's range comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)
)]
pub enum ActRange {
    /// Per token (row), computed on every call.
    Dynamic,
    /// Fixed by calibration for the whole tensor: `[min, max]`.
    Static { min: f32, max: f32 },
}

/// One row's quantizer in the generic form of the module header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowQuant {
    /// Scale `s` (0 for an all-zero or constant row).
    pub scale: f32,
    pub sub: f32,
    pub add: f32,
    pub lo: f32,
    pub hi: f32,
    /// Subtracted from `u` to give the i8 code.
    pub shift: f32,
    /// Asymmetric only: what an integer kernel's `s·Σ c·w` misses, per unit of `Σ w`.
    pub offset: f32,
    /// Asymmetric with `s = 0`: every value of the row is this.
    pub constant: Option<f32>,
}

impl ActSpec {
    /// Why `spec` cannot be computed in int8 lanes (bits outside 2..=8, or a static range that is
    /// not a finite `min ≤ max`).
    pub fn problem(&self) -> Option<String> {
        if !(2..=8).contains(&self.bits) {
            return Some(format!(
                "activation quantization to {} bits is not supported (2 to 8 bits run in int8 lanes)",
                self.bits
            ));
        }
        match self.range {
            ActRange::Static { min, max } if !(min.is_finite() && max.is_finite() && min <= max) => Some(format!(
                "static activation range [{min}, {max}] is not a finite range with min ≤ max; recalibrate"
            )),
            _ => None,
        }
    }

    /// The range the quantizer of `row` uses: the calibrated one, or the row's own min and max.
    pub fn row_range(&self, row: &[f32]) -> (f32, f32) {
        match self.range {
            ActRange::Static { min, max } => (min, max),
            ActRange::Dynamic => row.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            }),
        }
    }

    /// The quantizer of a row whose range is `[min, max]`.
    pub fn row_quant(&self, min: f32, max: f32) -> RowQuant {
        let b = self.bits;
        if self.symmetric {
            let max_abs = min.abs().max(max.abs());
            let (scale, lo, hi) = match self.numerics {
                Numerics::Ember => {
                    let qmax = ((1i32 << (b - 1)) - 1) as f32;
                    (max_abs / qmax, -qmax, qmax)
                }
                Numerics::Deepspeed => {
                    let range = (1u64 << b) as f32;
                    (max_abs * 2.0 / range, -range / 2.0, range / 2.0 - 1.0)
                }
            };
            return RowQuant {
                scale,
                sub: 0.0,
                add: 0.0,
                lo,
                hi,
                shift: 0.0,
                offset: 0.0,
                constant: None,
            };
        }
        let half = (1u32 << (b - 1)) as f32;
        let top = ((1u64 << b) - 1) as f32;
        let scale = match self.numerics {
            Numerics::Ember => (max - min) / top,
            Numerics::Deepspeed => (max - min) / (1u64 << b) as f32,
        };
        if scale == 0.0 {
            return RowQuant {
                scale: 0.0,
                sub: 0.0,
                add: 0.0,
                lo: 0.0,
                hi: 0.0,
                shift: 0.0,
                offset: min,
                constant: Some(min),
            };
        }
        let (sub, add, offset) = match self.numerics {
            Numerics::Ember => {
                let z = (-min / scale).round_ties_even();
                (0.0, z, scale * (half - z))
            }
            Numerics::Deepspeed => {
                let zf = (min / scale).round_ties_even() * scale;
                (zf, 0.0, scale * half + zf)
            }
        };
        RowQuant {
            scale,
            sub,
            add,
            lo: 0.0,
            hi: top,
            shift: half,
            offset,
            constant: None,
        }
    }

    /// Fake quantization of one row in place: `x ← value(code(x))`.
    pub fn fake_quantize_row(&self, row: &mut [f32]) {
        let (min, max) = self.row_range(row);
        self.row_quant(min, max).fake_quantize(row);
    }

    /// The i8 codes `c = u − shift` of one row; returns the row's quantizer (scale and offset).
    pub fn quantize_row_codes(&self, row: &[f32], codes: &mut [i8]) -> RowQuant {
        let (min, max) = self.row_range(row);
        let rq = self.row_quant(min, max);
        for (c, &x) in codes.iter_mut().zip(row) {
            *c = rq.i8_code(x);
        }
        rq
    }
}

impl RowQuant {
    /// The unsigned (asymmetric) or signed (symmetric) code `u` of `x`, as f32 (never NaN: `max`
    /// and `min` return the bound for a NaN input, which keeps the integer conversion defined).
    #[inline(always)]
    pub fn code(&self, x: f32) -> f32 {
        (((x - self.sub) / self.scale).round_ties_even() + self.add)
            .max(self.lo)
            .min(self.hi)
    }

    /// The i8 code `u − shift` of `x` (0 for a zero scale).
    #[inline(always)]
    pub fn i8_code(&self, x: f32) -> i8 {
        if self.scale == 0.0 {
            return 0;
        }
        // `code` is integral in [lo, hi] ⊂ [−128, 255], so `code − shift` lies in [−128, 127].
        (self.code(x) - self.shift) as i8
    }

    /// The value a code stands for: `(u − add)·s + sub`.
    #[inline(always)]
    pub fn value(&self, u: f32) -> f32 {
        (u - self.add) * self.scale + self.sub
    }

    /// `row ← value(code(row))`.
    pub fn fake_quantize(&self, row: &mut [f32]) {
        if let Some(c) = self.constant {
            row.iter_mut().for_each(|v| *v = c);
        } else if self.scale == 0.0 {
            row.iter_mut().for_each(|v| *v = 0.0);
        } else {
            for v in row.iter_mut() {
                *v = self.value(self.code(*v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bits: u32, symmetric: bool, numerics: Numerics, range: ActRange) -> ActSpec {
        ActSpec {
            bits,
            symmetric,
            numerics,
            range,
        }
    }

    fn fake(s: ActSpec, row: &[f32]) -> Vec<f32> {
        let mut r = row.to_vec();
        s.fake_quantize_row(&mut r);
        r
    }

    #[test]
    fn symmetric_ember_int8_is_max_over_127() {
        let s = spec(8, true, Numerics::Ember, ActRange::Dynamic);
        // s = 1.27/127 = 0.01: 0.5 → 50 codes, 1.27 → 127, −0.004 → round(−0.4) = 0.
        let got = fake(s, &[0.5, -1.27, -0.004, 1.0]);
        let step = 1.27f32 / 127.0;
        assert_eq!(got, vec![50.0 * step, -127.0 * step, 0.0, 100.0 * step]);
    }

    #[test]
    fn symmetric_deepspeed_int4_reaches_minus_eight() {
        // s = 2·4/16 = 0.5: −4 → −8 (DeepSpeed's extra negative code), 4 → clamp(8) = 7.
        let s = spec(4, true, Numerics::Deepspeed, ActRange::Dynamic);
        assert_eq!(fake(s, &[-4.0, 4.0, 1.2, 0.25]), vec![-4.0, 3.5, 1.0, 0.0]);
    }

    #[test]
    fn asymmetric_ember_keeps_min_and_max_on_the_grid() {
        // [−1, 2] in 3 steps of 1 (b = 2): z = 1; 0.4 → 0, 1.6 → 2, 0.5 → round-half-even 0.
        let s = spec(2, false, Numerics::Ember, ActRange::Static { min: -1.0, max: 2.0 });
        assert_eq!(
            fake(s, &[-1.0, 2.0, 0.4, 1.6, 0.5, 9.0]),
            vec![-1.0, 2.0, 0.0, 2.0, 0.0, 2.0]
        );
        let rq = s.row_quant(-1.0, 2.0);
        // codes u − 2: −1 → u 0 → −2; 2 → u 3 → 1; offset = s·(2 − z) = 1.
        assert_eq!((rq.i8_code(-1.0), rq.i8_code(2.0), rq.offset), (-2, 1, 1.0));
    }

    #[test]
    fn asymmetric_deepspeed_snaps_the_zero_to_the_grid() {
        // [−1, 2], b = 2: s = 3/4, zf = round(−4/3)·0.75 = −0.75; max 2 → u = clamp(round(11/3)) = 3.
        let s = spec(2, false, Numerics::Deepspeed, ActRange::Dynamic);
        assert_eq!(fake(s, &[-1.0, 2.0, 0.0]), vec![-0.75, 1.5, 0.0]);
    }

    #[test]
    fn zero_and_constant_rows_quantize_to_themselves() {
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for symmetric in [true, false] {
                let s = spec(8, symmetric, numerics, ActRange::Dynamic);
                assert_eq!(fake(s, &[0.0; 4]), vec![0.0; 4]);
                if !symmetric {
                    assert_eq!(fake(s, &[0.3; 3]), vec![0.3; 3]);
                }
            }
        }
    }

    #[test]
    fn codes_and_offset_reconstruct_the_fake_value() {
        let row: Vec<f32> = (0..37).map(|i| ((i * 29 % 37) as f32 - 11.0) * 0.173).collect();
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for symmetric in [true, false] {
                for bits in [2, 4, 7, 8] {
                    let s = spec(bits, symmetric, numerics, ActRange::Dynamic);
                    let mut codes = vec![0i8; row.len()];
                    let rq = s.quantize_row_codes(&row, &mut codes);
                    let want = fake(s, &row);
                    for (i, (&c, &w)) in codes.iter().zip(&want).enumerate() {
                        let got = c as f32 * rq.scale + rq.offset;
                        assert!((got - w).abs() <= 1e-5 * w.abs().max(1.0), "{s:?} [{i}]: {got} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn problems_name_bits_and_bad_ranges() {
        assert!(
            spec(9, true, Numerics::Ember, ActRange::Dynamic)
                .problem()
                .unwrap()
                .contains("9 bits")
        );
        let bad = spec(8, false, Numerics::Ember, ActRange::Static { min: 1.0, max: 0.0 });
        assert!(bad.problem().unwrap().contains("recalibrate"));
        assert_eq!(spec(4, false, Numerics::Ember, ActRange::Dynamic).problem(), None);
    }
}
