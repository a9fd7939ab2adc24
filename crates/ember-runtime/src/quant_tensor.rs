//! A quantized weight in its storage form: codes bit-packed row by row, plus one scale (α) per
//! group and, for asymmetric schemes, one zero point per group. This is what the artifact holds
//! and what `docs/format.md` documents; the CPU engine repacks it into the kernels' panel layout
//! at load time (`crate::packed`).
//!
//! | scheme | stored code `u` | bits | value |
//! |---|---|---|---|
//! | symmetric, 5–8 bits | `q` as a signed byte (I8) | 8 | `q · s` |
//! | symmetric, 3–4 bits | `q + 8` | 4 | `q · s` |
//! | asymmetric, 5–8 bits | `q` (U8) | 8 | Ember: `(q − z) · s`; DeepSpeed: `q · s + z` |
//! | asymmetric, 3–4 bits | `q` | 4 | as above |
//! | ternary | `q + 1` | 2 | `q · α` |
//! | binary | `1` for +1, `0` for −1 | 1 | `q · α` |
//! | fp8 e4m3 / e5m2, fp6 e3m2 | the format's bit pattern | 8 | `grid(u) · s` |
//! | fp4 e2m1 | the format's bit pattern | 4 | `grid(u) · s` |
//!
//! Each row starts on a byte boundary; inside a byte, codes fill from the least significant bit.

use ember_numerics::Numerics;
use ember_numerics::{
    self as numerics, GroupLayout, MiniFloat, Quantized, Scheme, WeightSpec, code_range, code_value, stored_scheme,
};

use crate::error::RuntimeError;

/// Zero points of an asymmetric tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Zeros {
    /// Symmetric, ternary, binary and float schemes.
    None,
    /// Integer zero points (Ember numerics).
    U8(Vec<u8>),
    /// Float offsets (DeepSpeed numerics: `z = round(min/s)·s`).
    F32(Vec<f32>),
}

impl Zeros {
    fn len(&self) -> usize {
        match self {
            Zeros::None => 0,
            Zeros::U8(z) => z.len(),
            Zeros::F32(z) => z.len(),
        }
    }

    fn get(&self, g: usize) -> f32 {
        match self {
            Zeros::None => 0.0,
            Zeros::U8(z) => z[g] as f32,
            Zeros::F32(z) => z[g],
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        match self {
            Zeros::None => 0,
            Zeros::U8(z) => z.len(),
            Zeros::F32(z) => z.len() * 4,
        }
    }
}

/// A packed quantized matrix `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    pub rows: usize,
    pub cols: usize,
    pub scheme: Scheme,
    pub numerics: Numerics,
    pub layout: GroupLayout,
    /// `[rows, row_bytes]`, see the module table.
    pub codes: Vec<u8>,
    /// One per group, in `group_ranges` order.
    pub scales: Vec<f32>,
    pub zeros: Zeros,
}

pub use ember_numerics::{code_bits, row_bytes};

impl QuantTensor {
    /// Packs the codes and parameters `numerics::quantize` produced. A binary tensor with a zero
    /// code (DeepSpeed's `sign(0) = 0`) is stored as ternary, which has the same value formula.
    ///
    /// # Errors
    /// A code outside its scheme's range (never produced by `numerics::quantize`) or parameter
    /// counts that do not match the layout.
    pub fn from_quantized(q: &Quantized) -> Result<QuantTensor, RuntimeError> {
        let groups = q.layout.groups(q.rows, q.cols);
        if q.codes.len() != q.rows * q.cols || q.scales.len() != groups {
            return Err(RuntimeError::Invalid(format!(
                "quantized tensor [{}, {}] has {} codes and {} scales (expected {} and {groups})",
                q.rows,
                q.cols,
                q.codes.len(),
                q.scales.len(),
                q.rows * q.cols
            )));
        }
        // Decided from the scheme alone, as `ember plan` predicts it.
        let scheme = stored_scheme(q.scheme, q.numerics);
        let zeros = match scheme {
            Scheme::Asymmetric { .. } => {
                if q.zeros.len() != groups {
                    return Err(RuntimeError::Invalid(format!(
                        "asymmetric tensor has {} zero points for {groups} groups",
                        q.zeros.len()
                    )));
                }
                match q.numerics {
                    Numerics::Ember => {
                        let (_, top) = code_range(scheme, q.numerics);
                        if let Some(g) = q
                            .zeros
                            .iter()
                            .position(|z| z.fract() != 0.0 || !(0.0..=top as f32).contains(z))
                        {
                            return Err(RuntimeError::Invalid(format!(
                                "zero point {} of group {g} is not a code in [0, {top}]",
                                q.zeros[g]
                            )));
                        }
                        Zeros::U8(q.zeros.iter().map(|&z| z as u8).collect())
                    }
                    Numerics::Deepspeed => Zeros::F32(q.zeros.clone()),
                }
            }
            _ => Zeros::None,
        };
        let (lo, hi) = code_range(scheme, q.numerics);
        let bits = code_bits(scheme);
        let rb = row_bytes(scheme, q.cols);
        let mut codes = vec![0u8; q.rows * rb];
        for r in 0..q.rows {
            for c in 0..q.cols {
                let v = i32::from(q.codes[r * q.cols + c]);
                if v < lo || v > hi {
                    return Err(RuntimeError::Invalid(format!(
                        "code {v} at [{r}, {c}] is outside [{lo}, {hi}] for {scheme:?}"
                    )));
                }
                let u = store(scheme, v);
                let bit = c * bits;
                codes[r * rb + bit / 8] |= u << (bit % 8);
            }
        }
        Ok(QuantTensor {
            rows: q.rows,
            cols: q.cols,
            scheme,
            numerics: q.numerics,
            layout: q.layout,
            codes,
            scales: q.scales.clone(),
            zeros,
        })
    }

    /// The signed (symmetric, ternary, binary), unsigned (asymmetric) or bit-pattern (float)
    /// code at `[r, c]`, as `numerics` defines it.
    #[inline]
    pub fn code(&self, r: usize, c: usize) -> i32 {
        let bits = code_bits(self.scheme);
        let bit = c * bits;
        let byte = self.codes[r * row_bytes(self.scheme, self.cols) + bit / 8];
        let u = (byte >> (bit % 8)) & (((1u16 << bits) - 1) as u8);
        load(self.scheme, u)
    }

    /// The unpacked form `numerics` works on.
    pub fn to_quantized(&self) -> Quantized {
        let mut codes = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            // Stored codes are at most 8 bits wide: every one fits a `Code`.
            codes.extend((0..self.cols).map(|c| self.code(r, c) as ember_numerics::Code));
        }
        Quantized {
            scheme: self.scheme,
            numerics: self.numerics,
            layout: self.layout,
            rows: self.rows,
            cols: self.cols,
            codes,
            scales: self.scales.clone(),
            zeros: (0..self.zeros.len()).map(|g| self.zeros.get(g)).collect(),
        }
    }

    /// All values as f32, row-major — bit for bit `numerics::dequantize` of the source codes.
    pub fn dequantize(&self) -> Vec<f32> {
        numerics::dequantize(&self.to_quantized())
    }

    /// Row `r` as f32 (the same formula, reading only that row's codes).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let grid = self.grid();
        (0..self.cols)
            .map(|c| {
                let g = self.group_of(r, c);
                code_value(
                    self.scheme,
                    self.numerics,
                    grid.as_ref(),
                    self.code(r, c),
                    self.scales[g],
                    self.zeros.get(g),
                )
            })
            .collect()
    }

    /// The group element `[r, c]` belongs to.
    pub fn group_of(&self, r: usize, c: usize) -> usize {
        match self.layout {
            GroupLayout::PerRow => r,
            GroupLayout::RowGroups(g) => r * self.cols.div_ceil(g.max(1)) + c / g.max(1),
            GroupLayout::Chunks(n) => (r * self.cols + c) / ((self.rows * self.cols) / n.max(1)).max(1),
        }
    }

    /// The minifloat grid of a float scheme.
    pub fn grid(&self) -> Option<MiniFloat> {
        match self.scheme {
            Scheme::Float(f) => Some(MiniFloat::of(f)),
            _ => None,
        }
    }

    /// How it is stored: what the storage and kernel rules of `ember_numerics` look at.
    pub fn spec(&self) -> WeightSpec {
        WeightSpec {
            scheme: self.scheme,
            numerics: self.numerics,
            layout: self.layout,
        }
    }

    /// Bytes of storage: codes, scales and zero points ([`WeightSpec::stored_bytes`], the formula
    /// `ember plan` uses; [`Self::validate`] checks that the buffers have exactly these sizes).
    pub fn storage_bytes(&self) -> usize {
        self.spec().stored_bytes(self.rows, self.cols) as usize
    }

    /// Effective bits per weight, scales included.
    pub fn bits_per_weight(&self) -> f64 {
        self.storage_bytes() as f64 * 8.0 / (self.rows * self.cols).max(1) as f64
    }

    /// Short name for tables: `int8`, `int4`, `uint8`, `uint4`, `ternary`, `binary`, `fp8-e4m3`…
    pub fn format_name(&self) -> String {
        numerics::format_name(self.scheme)
    }

    /// Checks that codes, scales and zero points have the sizes the shape and layout need, and
    /// that every stored code is one the scheme can hold (used by the artifact loader).
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let groups = self.layout.groups(self.rows, self.cols);
        if !self.layout.fits(self.rows, self.cols) {
            return Err(RuntimeError::Invalid(format!(
                "group layout {:?} does not fit a [{}, {}] tensor",
                self.layout, self.rows, self.cols
            )));
        }
        let want = self.rows * row_bytes(self.scheme, self.cols);
        if self.codes.len() != want {
            return Err(RuntimeError::Invalid(format!(
                "codes hold {} bytes but a [{}, {}] {} tensor needs {want}",
                self.codes.len(),
                self.rows,
                self.cols,
                self.format_name()
            )));
        }
        if self.scales.len() != groups {
            return Err(RuntimeError::Invalid(format!(
                "{} scales for {groups} groups",
                self.scales.len()
            )));
        }
        if let Some(i) = self.scales.iter().position(|s| !s.is_finite()) {
            return Err(RuntimeError::Invalid(format!(
                "the scale of group {i} is {}, not a finite number",
                self.scales[i]
            )));
        }
        if stored_scheme(self.scheme, self.numerics) != self.scheme {
            return Err(RuntimeError::Invalid(format!(
                "{} is stored as {} under {:?} numerics",
                self.format_name(),
                numerics::format_name(stored_scheme(self.scheme, self.numerics)),
                self.numerics
            )));
        }
        let zeros_ok = match (&self.zeros, self.scheme, self.numerics) {
            (Zeros::None, Scheme::Asymmetric { .. }, _) => false,
            (Zeros::None, _, _) => true,
            (Zeros::U8(z), Scheme::Asymmetric { .. }, Numerics::Ember) => z.len() == groups,
            (Zeros::F32(z), Scheme::Asymmetric { .. }, Numerics::Deepspeed) => z.len() == groups,
            _ => false,
        };
        if !zeros_ok {
            return Err(RuntimeError::Invalid(format!(
                "{} zero points for a {} tensor with {groups} groups",
                self.zeros.len(),
                self.format_name()
            )));
        }
        if let Zeros::F32(z) = &self.zeros
            && z.iter().any(|v| !v.is_finite())
        {
            return Err(RuntimeError::Invalid("a zero point is not finite".into()));
        }
        let (lo, hi) = code_range(self.scheme, self.numerics);
        if let Zeros::U8(z) = &self.zeros
            && let Some(g) = z.iter().position(|&v| v as i32 > hi)
        {
            return Err(RuntimeError::Invalid(format!(
                "zero point {} of group {g} is outside the codes [0, {hi}]",
                z[g]
            )));
        }
        for r in 0..self.rows {
            for c in 0..self.cols {
                let v = self.code(r, c);
                if v < lo || v > hi {
                    return Err(RuntimeError::Invalid(format!(
                        "stored code {v} at [{r}, {c}] is outside [{lo}, {hi}] for {}",
                        self.format_name()
                    )));
                }
            }
        }
        Ok(())
    }
}

fn store(scheme: Scheme, q: i32) -> u8 {
    match scheme {
        Scheme::Symmetric { bits } if bits <= 4 => (q + 8) as u8,
        Scheme::Symmetric { .. } => q as i8 as u8,
        Scheme::Ternary => (q + 1) as u8,
        Scheme::Binary => u8::from(q > 0),
        _ => q as u8,
    }
}

fn load(scheme: Scheme, u: u8) -> i32 {
    match scheme {
        Scheme::Symmetric { bits } if bits <= 4 => u as i32 - 8,
        Scheme::Symmetric { .. } => u as i8 as i32,
        Scheme::Ternary => u as i32 - 1,
        Scheme::Binary => {
            if u == 1 {
                1
            } else {
                -1
            }
        }
        _ => u as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_numerics::{FloatFormat, quantize};

    fn weights(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32))
            .collect()
    }

    #[test]
    fn every_scheme_round_trips_bit_for_bit() {
        let (rows, cols) = (6, 70);
        let w = weights(rows * cols);
        let schemes = [
            Scheme::Symmetric { bits: 8 },
            Scheme::Symmetric { bits: 6 },
            Scheme::Symmetric { bits: 4 },
            Scheme::Symmetric { bits: 3 },
            Scheme::Asymmetric { bits: 8 },
            Scheme::Asymmetric { bits: 4 },
            Scheme::Ternary,
            Scheme::Binary,
            Scheme::Float(FloatFormat::E4m3),
            Scheme::Float(FloatFormat::E5m2),
            Scheme::Float(FloatFormat::E3m2),
            Scheme::Float(FloatFormat::E2m1),
        ];
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for layout in [GroupLayout::PerRow, GroupLayout::RowGroups(32), GroupLayout::Chunks(3)] {
                for scheme in schemes {
                    let q = quantize(&w, rows, cols, layout, scheme, numerics);
                    let t = QuantTensor::from_quantized(&q).unwrap();
                    t.validate().unwrap();
                    let want = numerics::dequantize(&q);
                    let got = t.dequantize();
                    let what = format!("{scheme:?} {layout:?} {numerics:?}");
                    assert_eq!(
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{what}"
                    );
                    for r in 0..rows {
                        assert_eq!(
                            t.dequantize_row(r),
                            want[r * cols..(r + 1) * cols].to_vec(),
                            "{what} row {r}"
                        );
                    }
                    assert_eq!(t.codes.len(), rows * row_bytes(t.scheme, cols), "{what}");
                }
            }
        }
    }

    #[test]
    fn deepspeed_binary_is_stored_as_ternary_with_or_without_zero_codes() {
        for w in [[0.0f32, 1.0, -2.0, 0.5], [0.3, 1.0, -2.0, 0.5]] {
            let q = quantize(&w, 1, 4, GroupLayout::PerRow, Scheme::Binary, Numerics::Deepspeed);
            let t = QuantTensor::from_quantized(&q).unwrap();
            assert_eq!(t.scheme, Scheme::Ternary);
            assert_eq!(t.dequantize(), numerics::dequantize(&q));
            assert_eq!(t.storage_bytes(), t.codes.len() + t.scales.len() * 4);
        }
    }

    #[test]
    fn storage_bytes_are_the_buffers_the_plan_predicts() {
        let (rows, cols) = (6, 70);
        let w = weights(rows * cols);
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for scheme in [
                Scheme::Asymmetric { bits: 4 },
                Scheme::Symmetric { bits: 3 },
                Scheme::Binary,
            ] {
                let t = QuantTensor::from_quantized(&quantize(
                    &w,
                    rows,
                    cols,
                    GroupLayout::RowGroups(32),
                    scheme,
                    numerics,
                ))
                .unwrap();
                assert_eq!(
                    t.storage_bytes(),
                    t.codes.len() + t.scales.len() * 4 + t.zeros.bytes(),
                    "{scheme:?}"
                );
            }
        }
    }

    #[test]
    fn validate_rejects_a_code_outside_the_scheme() {
        let w = weights(2 * 8);
        let q = quantize(&w, 2, 8, GroupLayout::PerRow, Scheme::Ternary, Numerics::Ember);
        let mut t = QuantTensor::from_quantized(&q).unwrap();
        t.codes[0] = 0xff; // stored 3 = code +2
        assert!(t.validate().unwrap_err().to_string().contains("outside"));
        let mut t = QuantTensor::from_quantized(&q).unwrap();
        t.scales.pop();
        assert!(t.validate().is_err());
    }
}
