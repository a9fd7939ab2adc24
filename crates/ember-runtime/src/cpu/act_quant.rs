//! Activation quantization as the composer's fake quantization defines it
//! (`ember_core::fake_quant::ActQuant`), in f32 with `round` = round-half-to-even:
//!
//! | spec | scale `s` | code | value |
//! |---|---|---|---|
//! | symmetric, Ember | `max\|x\| / (2^(b−1)−1)` | `q = clamp(round(x/s), ±(2^(b−1)−1))` | `q·s` |
//! | symmetric, DeepSpeed | `2·max\|x\| / 2^b` | `q = clamp(round(x/s), −2^(b−1), 2^(b−1)−1)` | `q·s` |
//! | asymmetric, Ember | `(max−min) / (2^b−1)`, `z = round(−min/s)` | `u = clamp(round(x/s)+z, 0, 2^b−1)` | `(u−z)·s` |
//! | asymmetric, DeepSpeed | `(max−min) / 2^b`, `zf = round(min/s)·s` | `u = clamp(round((x−zf)/s), 0, 2^b−1)` | `u·s + zf` |
//!
//! `max`/`min` are per row (token) for [`ActRange::Dynamic`], the calibrated values for
//! [`ActRange::Static`] (symmetric uses `max(|min|, |max|)`). A zero scale gives codes 0 (symmetric:
//! value 0; asymmetric: a constant row, every value exactly `min`).
//!
//! For the integer kernels every row is one generic form `u = clamp(round((x − sub)/s) + add, lo,
//! hi)`, fed as the i8 code `c = u − shift` (`shift = 2^(b−1)` for asymmetric, so `c` fits i8 for
//! `b ≤ 8`) with scale `s`; the kernel's `s·Σ c·w` is completed by `offset · Σ_k w[n,k]`, with
//! `offset = s·(2^(b−1) − z)` (Ember) or `s·2^(b−1) + zf` (DeepSpeed).

use ember_config::types::Numerics;
use rayon::prelude::*;

use crate::model::{ActRange, ActSpec};

/// Rows per parallel task (and the size below which quantization stays on one thread).
const ROWS_PER_TASK: usize = 16;

/// Why the engine cannot run `spec` (codes must fit i8 lanes; a static range must be a range).
pub(crate) fn unsupported(spec: &ActSpec) -> Option<String> {
    if !(2..=8).contains(&spec.bits) {
        return Some(format!(
            "activation quantization to {} bits is not supported (2 to 8 bits run in int8 lanes)",
            spec.bits
        ));
    }
    match spec.range {
        ActRange::Static { min, max } if !(min.is_finite() && max.is_finite() && min <= max) => Some(format!(
            "static activation range [{min}, {max}] is not a finite range with min ≤ max; recalibrate"
        )),
        _ => None,
    }
}

/// One row's quantizer in the generic form of the module header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowQuant {
    /// Scale `s` (0 for an all-zero or constant row).
    pub scale: f32,
    sub: f32,
    add: f32,
    lo: f32,
    hi: f32,
    shift: f32,
    /// Asymmetric only: what the kernel's `s·Σ c·w` misses, per unit of `Σ w`.
    pub offset: f32,
    /// Asymmetric with `s = 0`: every value of the row is this.
    constant: Option<f32>,
}

impl RowQuant {
    /// The quantizer for a row whose range is `[min, max]` (`max_abs` for symmetric specs).
    pub(crate) fn new(spec: &ActSpec, min: f32, max: f32) -> RowQuant {
        let b = spec.bits;
        if spec.symmetric {
            let max_abs = min.abs().max(max.abs());
            let (scale, lo, hi) = match spec.numerics {
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
        let scale = match spec.numerics {
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
        let (sub, add, offset) = match spec.numerics {
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

    /// The unsigned (asymmetric) or signed (symmetric) code `u` of `x`, as f32 (never NaN: `max`
    /// and `min` return the bound for a NaN input, which keeps the integer conversion defined).
    #[inline(always)]
    fn code(&self, x: f32) -> f32 {
        (((x - self.sub) / self.scale).round_ties_even() + self.add)
            .max(self.lo)
            .min(self.hi)
    }
}

#[inline(always)]
fn row_quant(simd: super::ops::Simd, spec: &ActSpec, x: &[f32]) -> RowQuant {
    match spec.range {
        ActRange::Static { min, max } => RowQuant::new(spec, min, max),
        ActRange::Dynamic => {
            let (mn, mx) = super::ops::min_max(simd, x);
            RowQuant::new(spec, mn, mx)
        }
    }
}

super::ops::simd_fn!(
    /// Codes of one row for the integer kernels: `c = u − shift` into `codes`; returns the row's
    /// quantizer (its `scale` and `offset`).
    fn quantize_row_codes(simd; spec: &ActSpec, x: &[f32], codes: &mut [i8]) -> RowQuant {
        let rq = row_quant(simd, spec, x);
        if rq.scale == 0.0 {
            codes.iter_mut().for_each(|c| *c = 0);
            return rq;
        }
        for (c, &v) in codes.iter_mut().zip(x) {
            // SAFETY: `code` is an integral float in [lo, hi] (never NaN), so `code − shift` lies
            // in [−128, 127] and converts exactly.
            *c = unsafe { (rq.code(v) - rq.shift).to_int_unchecked::<i32>() } as i8;
        }
        rq
    }
);

super::ops::simd_fn!(
    /// Fake quantization of one row in place: `x ← value(code(x))`, as the composer computes it.
    fn fake_quantize_row(simd; spec: &ActSpec, x: &mut [f32]) {
        let rq = row_quant(simd, spec, x);
        if let Some(c) = rq.constant {
            x.iter_mut().for_each(|v| *v = c);
            return;
        }
        if rq.scale == 0.0 {
            x.iter_mut().for_each(|v| *v = 0.0);
            return;
        }
        for v in x.iter_mut() {
            *v = (rq.code(*v) - rq.add) * rq.scale + rq.sub;
        }
    }
);

/// Integer codes of a `[rows, cols]` activation: `(codes, scales, offsets)`, offsets only for
/// asymmetric specs. Rows run in parallel on the current rayon pool when `parallel`. (The engine
/// writes codes straight into the kernels' layout with `quantize_row_codes`; this plain form is
/// the tests' reference.)
#[cfg(test)]
pub(crate) fn quantize_codes(
    simd: super::ops::Simd,
    parallel: bool,
    spec: &ActSpec,
    x: &[f32],
    rows: usize,
    cols: usize,
) -> (Vec<i8>, Vec<f32>, Option<Vec<f32>>) {
    let mut codes = vec![0i8; rows * cols];
    let mut params = vec![RowQuant::new(spec, 0.0, 0.0); rows];
    let work = |(xs, (cs, ps)): (&[f32], (&mut [i8], &mut [RowQuant]))| {
        for ((xr, cr), p) in xs.chunks(cols).zip(cs.chunks_mut(cols)).zip(ps.iter_mut()) {
            *p = quantize_row_codes(simd, spec, xr, cr);
        }
    };
    let chunk = ROWS_PER_TASK * cols;
    if parallel && rows > ROWS_PER_TASK && cols > 0 {
        x.par_chunks(chunk)
            .zip(codes.par_chunks_mut(chunk).zip(params.par_chunks_mut(ROWS_PER_TASK)))
            .for_each(work);
    } else if cols > 0 {
        x.chunks(chunk)
            .zip(codes.chunks_mut(chunk).zip(params.chunks_mut(ROWS_PER_TASK)))
            .for_each(work);
    }
    let scales = params.iter().map(|p| p.scale).collect();
    let offsets = (!spec.symmetric).then(|| params.iter().map(|p| p.offset).collect());
    (codes, scales, offsets)
}

/// Fake quantization of a `[rows, cols]` activation (a quantized input for an f32 GEMM).
pub(crate) fn fake_quantize(
    simd: super::ops::Simd,
    parallel: bool,
    spec: &ActSpec,
    x: &[f32],
    cols: usize,
) -> Vec<f32> {
    let mut out = x.to_vec();
    if cols == 0 {
        return out;
    }
    if parallel && x.len() > ROWS_PER_TASK * cols {
        out.par_chunks_mut(cols).for_each(|r| fake_quantize_row(simd, spec, r));
    } else {
        out.chunks_mut(cols).for_each(|r| fake_quantize_row(simd, spec, r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::ops::Simd;
    use super::*;

    fn spec(bits: u32, symmetric: bool, numerics: Numerics, range: ActRange) -> ActSpec {
        ActSpec {
            bits,
            symmetric,
            numerics,
            range,
        }
    }

    /// The module-header table written out directly, per element, in f32.
    fn reference(s: &ActSpec, row: &[f32]) -> Vec<f32> {
        let (mn, mx) = match s.range {
            ActRange::Dynamic => (
                row.iter().copied().fold(f32::INFINITY, f32::min),
                row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            ),
            ActRange::Static { min, max } => (min, max),
        };
        let b = s.bits;
        match (s.symmetric, s.numerics) {
            (true, n) => {
                let m = mn.abs().max(mx.abs());
                let (scale, lo, hi) = if n == Numerics::Ember {
                    let q = ((1 << (b - 1)) - 1) as f32;
                    (m / q, -q, q)
                } else {
                    let r = (1u64 << b) as f32;
                    (m * 2.0 / r, -r / 2.0, r / 2.0 - 1.0)
                };
                let safe = if scale == 0.0 { 1.0 } else { scale };
                row.iter()
                    .map(|&x| (x / safe).round_ties_even().clamp(lo, hi) * scale)
                    .collect()
            }
            (false, Numerics::Ember) => {
                let top = ((1u64 << b) - 1) as f32;
                let scale = (mx - mn) / top;
                if scale == 0.0 {
                    return vec![mn; row.len()];
                }
                let z = (-mn / scale).round_ties_even();
                row.iter()
                    .map(|&x| (((x / scale).round_ties_even() + z).clamp(0.0, top) - z) * scale)
                    .collect()
            }
            (false, Numerics::Deepspeed) => {
                let r = (1u64 << b) as f32;
                let scale = (mx - mn) / r;
                if scale == 0.0 {
                    return vec![mn; row.len()];
                }
                let z = (mn / scale).round_ties_even() * scale;
                row.iter()
                    .map(|&x| ((x - z) / scale).round_ties_even().clamp(0.0, r - 1.0) * scale + z)
                    .collect()
            }
        }
    }

    fn specs() -> Vec<ActSpec> {
        let mut v = Vec::new();
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for symmetric in [true, false] {
                for bits in [8, 4, 3] {
                    v.push(spec(bits, symmetric, numerics, ActRange::Dynamic));
                    v.push(spec(
                        bits,
                        symmetric,
                        numerics,
                        ActRange::Static { min: -1.5, max: 2.25 },
                    ));
                }
            }
        }
        v
    }

    fn rows() -> Vec<Vec<f32>> {
        vec![
            (0..37).map(|i| ((i * 29 % 41) as f32 - 17.0) * 0.113).collect(),
            (0..37).map(|i| (i as f32 * 0.37).sin() * 3.0 + 0.5).collect(),
            vec![0.0; 37],
            vec![0.75; 37],
            (0..37).map(|i| if i % 2 == 0 { 1.0 } else { -3.0 }).collect(),
            (0..37).map(|i| i as f32 * 0.25).collect(),
        ]
    }

    #[test]
    fn fake_quantization_equals_the_composer_formulas_exactly() {
        for s in specs() {
            for row in rows() {
                let want = reference(&s, &row);
                for simd in Simd::all() {
                    let got = fake_quantize(simd, false, &s, &row, row.len());
                    // `==` on values: the formulas may differ only in the sign of a zero
                    assert_eq!(got, want, "{s:?} {row:?}");
                }
            }
        }
    }

    #[test]
    fn codes_scale_and_offset_reconstruct_the_fake_quantized_values() {
        for (s, simd) in specs()
            .into_iter()
            .flat_map(|s| Simd::all().into_iter().map(move |l| (s, l)))
        {
            for row in rows() {
                let want = reference(&s, &row);
                let (codes, scales, offsets) = quantize_codes(simd, false, &s, &row, 1, row.len());
                let off = offsets.as_ref().map_or(0.0, |o| o[0]);
                assert_eq!(offsets.is_some(), !s.symmetric);
                for (i, (&c, &w)) in codes.iter().zip(&want).enumerate() {
                    let v = c as f32 * scales[0] + off;
                    assert!(
                        (v - w).abs() <= 1e-6 * (1.0 + w.abs()),
                        "{s:?} row {row:?} [{i}]: {v} vs {w}"
                    );
                    let (lo, hi) = if s.symmetric && s.numerics == Numerics::Ember {
                        (-(1 << (s.bits - 1)) + 1, (1 << (s.bits - 1)) - 1)
                    } else {
                        (-(1 << (s.bits - 1)), (1 << (s.bits - 1)) - 1)
                    };
                    assert!((lo..=hi).contains(&(c as i32)), "{s:?}: code {c}");
                }
            }
        }
    }

    #[test]
    fn codes_written_into_the_kernel_layout_equal_the_plain_codes() {
        use ember_kernels::{KernelConfig, QuantizedActivations};
        let (rows, cols) = (300, 250); // large enough for the kernels' parallel path
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 300.0) * 0.013)
            .collect();
        for s in specs() {
            for simd in Simd::all() {
                let (codes, scales, offsets) = quantize_codes(simd, false, &s, &x, rows, cols);
                let want = QuantizedActivations::from_codes(&codes, rows, cols, &scales).unwrap();
                let (got, kept) = QuantizedActivations::from_rows(rows, cols, &KernelConfig::default(), |m, c| {
                    let rq = quantize_row_codes(simd, &s, &x[m * cols..(m + 1) * cols], c);
                    (rq.scale, rq.offset)
                });
                assert_eq!(got, want, "{s:?} {simd:?}");
                if let Some(o) = offsets {
                    assert_eq!(kept, o, "{s:?} {simd:?}");
                }
            }
        }
    }

    #[test]
    fn parallel_rows_equal_serial_rows() {
        let s = spec(8, false, Numerics::Ember, ActRange::Dynamic);
        let (rows, cols) = (100, 37);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 400.0) * 0.01)
            .collect();
        let a = quantize_codes(Simd::Portable, false, &s, &x, rows, cols);
        for simd in Simd::all() {
            assert_eq!(a, quantize_codes(simd, true, &s, &x, rows, cols), "{simd:?}");
            assert_eq!(
                fake_quantize(simd, true, &s, &x, cols),
                fake_quantize(Simd::Portable, false, &s, &x, cols)
            );
        }
    }
}
