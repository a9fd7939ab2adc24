//! The CPU engine's activation quantizers: [`ember_numerics::ActSpec`]'s definition (its module
//! header has the formulas) with the row's range found by SIMD code, rows in parallel, and codes
//! written straight into the kernels' layout. Tested bit for bit against the numerics crate and
//! against the kernels' own fused int8 quantizer.

use ember_numerics::{ActRange, ActSpec, RowQuant};
use rayon::prelude::*;

/// Rows per parallel task (and the size below which quantization stays on one thread).
const ROWS_PER_TASK: usize = 16;

/// Why the engine cannot run `spec` (codes must fit i8 lanes; a static range must be a range).
pub(crate) fn unsupported(spec: &ActSpec) -> Option<String> {
    spec.problem()
}

#[inline(always)]
fn row_quant(simd: super::ops::Simd, spec: &ActSpec, x: &[f32]) -> RowQuant {
    match spec.range {
        ActRange::Static { min, max } => spec.row_quant(min, max),
        ActRange::Dynamic => {
            let (mn, mx) = super::ops::min_max(simd, x);
            spec.row_quant(mn, mx)
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
        row_quant(simd, spec, x).fake_quantize(x);
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
    let mut params = vec![spec.row_quant(0.0, 0.0); rows];
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
    use ember_numerics::Numerics;

    fn spec(bits: u32, symmetric: bool, numerics: Numerics, range: ActRange) -> ActSpec {
        ActSpec {
            bits,
            symmetric,
            numerics,
            range,
        }
    }

    /// The one definition, row by row, scalar.
    fn reference(s: &ActSpec, row: &[f32]) -> Vec<f32> {
        let mut r = row.to_vec();
        s.fake_quantize_row(&mut r);
        r
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
    fn engine_codes_equal_the_numerics_codes() {
        for s in specs() {
            for row in rows() {
                let mut want = vec![0i8; row.len()];
                let rq = s.quantize_row_codes(&row, &mut want);
                for simd in Simd::all() {
                    let (codes, scales, offsets) = quantize_codes(simd, false, &s, &row, 1, row.len());
                    assert_eq!(
                        (codes.as_slice(), scales[0]),
                        (want.as_slice(), rq.scale),
                        "{s:?} {simd:?}"
                    );
                    assert_eq!(offsets.map(|o| o[0]), (!s.symmetric).then_some(rq.offset));
                }
            }
        }
    }

    #[test]
    fn the_kernels_fused_int8_quantizer_is_the_numerics_definition() {
        use ember_kernels::{KernelConfig, QuantizedActivations};
        // The engine hands symmetric int8 Ember dynamic inputs to the kernels' own quantizer.
        let s = spec(8, true, Numerics::Ember, ActRange::Dynamic);
        let (rows, cols) = (70, 96);
        let mut x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.0031)
            .collect();
        x[5 * cols..6 * cols].iter_mut().for_each(|v| *v = 0.0); // a zero row: scale 0
        let mut codes = vec![0i8; rows * cols];
        let mut scales = Vec::new();
        for (r, c) in x.chunks(cols).zip(codes.chunks_mut(cols)) {
            scales.push(s.quantize_row_codes(r, c).scale);
        }
        let want = QuantizedActivations::from_codes(&codes, rows, cols, &scales).unwrap();
        for cfg in [KernelConfig::default(), KernelConfig::reference()] {
            assert_eq!(QuantizedActivations::quantize(&x, rows, cols, &cfg), want, "{cfg:?}");
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
