//! AVX2 kernels with int8 activations, same names as the references in `gemm/scalar.rs`: the
//! activation quantizer, `gemm_i8i8`, and (re-exported from `avx2_lowbit.rs`) the int4 / ternary /
//! binary kernels. Weights arrive in the panel layout: one 32-byte k-block = 8 rows × 4 inputs.
//!
//! `gemm_i8i8` has two inner loops, both exact, both bit-identical to the reference:
//!
//! * AVX2, tiles of ≥ 3 rows (`micro16`, `MR` ≤ 4 rows × 1 panel): `vpmovsxbw` widens the
//!   k-block (rows 0–3 and 4–7), the row's 4 activations are broadcast as i16 and `vpmaddwd` forms
//!   i32 pair sums (|a·w + a'·w'| ≤ 2·128·127 = 32512: no saturation is possible). Measured on
//!   this Zen 4: ≈ 10 % faster than the sign trick below, which needs three multiply-port
//!   instructions per 32 products where this needs two.
//! * AVX2, tiles of 1–2 rows (batch-1 decode; `micro::<_, _, false>`, 2 panels): the sign trick
//!   `maddubs(|a| as u8, sign(w, a))` + `madd(·, 1)`; |pair| ≤ 2·128·127 = 32512 < 32767.
//! * AVX-512 VNNI (`micro::<_, _, true>`, 4 rows × 2 panels): the sign trick with `vpdpbusd(acc, |a|,
//!   sign(w, a))` — one instruction per 32 products. `sign(w, a)` is only exact because packed
//!   int8 weights are in [−127, 127]; [`crate::PackedInt8::pack`] refuses −128.
//!
//! Group and final epilogues follow `gemm/scalar.rs` operation for operation (no FMA), so the f32
//! outputs are bit-identical to the references.

use std::arch::x86_64::*;

use crate::config::OutPtr;
use crate::formats::activation::QuantizedActivations;
use crate::formats::{KBLOCK, PANEL_ROWS, UNIT_BYTES};
use crate::gemm::{Tile, padded_bias};

pub(crate) use super::avx2_lowbit::{gemm_i8_binary, gemm_i8_ternary, gemm_i8i4};

/// Per-token dynamic quantization of one row (see `scalar::quantize_row_i8`); bit-identical.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row_i8(x: &[f32], out: &mut [i8]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut vmax = _mm256_setzero_ps();
    let chunks = x.len() / 8;
    for c in 0..chunks {
        // SAFETY: `c * 8 + 8 <= x.len()`.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(c * 8)) };
        vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, v));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let mut max = lanes.iter().fold(0f32, |m, &v| m.max(v));
    for &v in &x[chunks * 8..] {
        max = max.max(v.abs());
    }
    if max == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let s = max / 127.0;
    // SAFETY: same target features as this function.
    unsafe { quantize_row_i8_static(x, s, out) };
    s
}

/// Quantization of one row with a given scale (see `scalar::quantize_row_i8_static`); bit-identical.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row_i8_static(x: &[f32], s: f32, out: &mut [i8]) {
    assert_eq!(x.len(), out.len());
    if s == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return;
    }
    let (vs, lo, hi) = (_mm256_set1_ps(s), _mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    let chunks = x.len() / 8;
    for c in 0..chunks {
        // SAFETY: `c * 8 + 8 <= x.len() == out.len()`; the 8-byte store writes exactly 8 codes.
        unsafe {
            let v = _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(c * 8)), vs);
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let i = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
            let w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256::<1>(i));
            let b = _mm_packs_epi16(w, w);
            _mm_storel_epi64(out.as_mut_ptr().add(c * 8) as *mut __m128i, b);
        }
    }
    for (q, &v) in out[chunks * 8..].iter_mut().zip(&x[chunks * 8..]) {
        *q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
}

/// Store 8 output columns starting at `col0` of row `m`, clipping at `n`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn store_cols(out: OutPtr, m: usize, col0: usize, n: usize, v: __m256) {
    // SAFETY: the caller's tile lies inside the `[rows × n]` output, so `m * ld + col0 .. + min(8,
    // n − col0)` is in bounds and written by this tile only.
    unsafe {
        let dst = out.ptr.add(m * out.ld + col0);
        if col0 + PANEL_ROWS <= n {
            _mm256_storeu_ps(dst, v);
        } else {
            let mut tmp = [0f32; PANEL_ROWS];
            _mm256_storeu_ps(tmp.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n - col0);
        }
    }
}

/// `acc + Σ₄ u8(a)·i8(b)` per i32 lane: `vpdpbusd` (AVX-512 VNNI on 256-bit registers, EVEX
/// encoded), non-saturating, so it is exact for any bytes. Written as inline assembly so the AVX2
/// kernels can use it (behind `Isa::Avx512Vnni`) without a second set of target-feature copies.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    let mut acc = acc;
    // SAFETY: only reached from kernels dispatched as `Isa::Avx512Vnni`, which `Isa::detect` /
    // `KernelConfig::with_isa` only construct when the CPU reports avx512vnni + avx512vl; the
    // instruction reads and writes registers only.
    unsafe {
        std::arch::asm!(
            "{{evex}} vpdpbusd {acc}, {a}, {b}",
            acc = inout(ymm_reg) acc,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// What every tile needs besides the weights' codes: activations, scales, output geometry.
pub(crate) struct Common<'a> {
    pub(crate) codes: &'a [i8],
    pub(crate) lda: usize,
    sa: &'a [f32],
    bias: Option<Vec<f32>>,
    n: usize,
    /// Padded rows of the weight (stride of `[group][row]` vectors).
    pub(crate) srows: usize,
}

impl<'a> Common<'a> {
    pub(crate) fn new(a: &'a QuantizedActivations, n: usize, bias: Option<&[f32]>) -> Self {
        Common {
            codes: a.padded_codes(),
            lda: a.stride(),
            sa: a.scales(),
            bias: padded_bias(bias, n),
            n,
            srows: crate::formats::n_panels(n) * PANEL_ROWS,
        }
    }

    /// `y = facc · sa (+ bias)`, stored (clipped) — the final epilogue of every kernel.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub(crate) unsafe fn finish<const MR: usize, const NV: usize>(
        &self,
        facc: &[[__m256; NV]; MR],
        m0: usize,
        p0: usize,
        out: OutPtr,
    ) {
        for (m, row) in facc.iter().enumerate() {
            let s = _mm256_set1_ps(self.sa[m0 + m]);
            for (v, acc) in row.iter().enumerate() {
                let col0 = (p0 + v) * PANEL_ROWS;
                let mut r = _mm256_mul_ps(*acc, s);
                if let Some(b) = &self.bias {
                    // SAFETY: the padded bias covers every panel's 8 columns.
                    r = _mm256_add_ps(r, unsafe { _mm256_loadu_ps(b.as_ptr().add(col0)) });
                }
                // SAFETY: see `store_cols`; the tile is inside the output.
                unsafe { store_cols(out, m0 + m, col0, self.n, r) };
            }
        }
    }
}

/// Run `$tile::<MR, NV>` over a tile in 4-row × 2-panel blocks (edges with smaller MR / NV).
macro_rules! walk_tile {
    ($t:expr, |$m:ident, $p:ident, $mr:ident, $nv:ident| $call:expr) => {{
        let t: Tile = $t;
        let mut $p = t.p0;
        while $p < t.p1 {
            let nv = (t.p1 - $p).min(2);
            let mut $m = t.m0;
            while $m < t.m1 {
                let mr = (t.m1 - $m).min(4);
                match (mr, nv) {
                    (4, 2) => {
                        const $mr: usize = 4;
                        const $nv: usize = 2;
                        $call
                    }
                    (3, 2) => {
                        const $mr: usize = 3;
                        const $nv: usize = 2;
                        $call
                    }
                    (2, 2) => {
                        const $mr: usize = 2;
                        const $nv: usize = 2;
                        $call
                    }
                    (1, 2) => {
                        const $mr: usize = 1;
                        const $nv: usize = 2;
                        $call
                    }
                    (4, 1) => {
                        const $mr: usize = 4;
                        const $nv: usize = 1;
                        $call
                    }
                    (3, 1) => {
                        const $mr: usize = 3;
                        const $nv: usize = 1;
                        $call
                    }
                    (2, 1) => {
                        const $mr: usize = 2;
                        const $nv: usize = 1;
                        $call
                    }
                    _ => {
                        const $mr: usize = 1;
                        const $nv: usize = 1;
                        $call
                    }
                }
                $m += mr;
            }
            $p += nv;
        }
    }};
}
pub(crate) use walk_tile;

/// `gemm_i8i8`: int8 × int8 with the sign trick.
pub(crate) mod gemm_i8i8 {
    use super::*;
    use crate::formats::int8::PackedInt8;

    /// Per-call state shared by all tiles.
    pub(crate) struct Prep<'a> {
        c: Common<'a>,
        abs: &'a [u8],
        /// VNNI path: activation codes + 128 (u8) and the weights' per-group code sums.
        biased: &'a [u8],
        code_sums: &'a [i32],
        w: &'a [u8],
        units: usize,
        kb_per_group: usize,
        groups: usize,
        scales: &'a [f32],
        /// AVX2 path only: the activation codes widened to i16 (padded rows, same stride).
        wide: Vec<i16>,
    }

    pub(crate) fn prepare<'a>(
        a: &'a QuantizedActivations,
        w: &'a PackedInt8,
        bias: Option<&[f32]>,
        vnni: bool,
    ) -> Prep<'a> {
        use crate::WeightFormat;
        Prep {
            wide: if vnni {
                Vec::new()
            } else {
                a.padded_codes().iter().map(|&q| q as i16).collect()
            },
            c: Common::new(a, w.rows(), bias),
            abs: a.padded_abs(),
            biased: a.padded_biased(),
            code_sums: w.padded_code_sums(),
            w: w.panel_codes(),
            units: w.units(),
            kb_per_group: w.kblocks_per_group(),
            groups: w.groups(),
            scales: w.padded_scales(),
        }
    }

    /// # Safety
    /// AVX2+FMA+F16C must be available; `tile` must lie inside the output behind `out`, and no other
    /// thread may write that tile concurrently.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &Prep<'_>, tile: Tile, out: OutPtr, vnni: bool) {
        // SAFETY: forwarded contract; `micro` reads only inside the padded activations and weights;
        // `vnni` is only true for `Isa::Avx512Vnni`, which is only constructed when supported.
        if vnni {
            walk_tile!(tile, |m, pp, MR, NV| unsafe { micro::<MR, NV, true>(p, m, pp, out) });
        } else if tile.m1 - tile.m0 <= 2 {
            // batch-1/2 decode: the sign-trick kernel over 2 panels keeps more independent work in
            // flight than `micro16` with one or two rows (measured ≈2× faster at M = 1).
            // SAFETY: as above (the AVX2-only instantiation).
            walk_tile!(tile, |m, pp, MR, NV| unsafe { micro::<MR, NV, false>(p, m, pp, out) });
        } else {
            for pp in tile.p0..tile.p1 {
                let mut m = tile.m0;
                while m < tile.m1 {
                    let mr = (tile.m1 - m).min(4);
                    // SAFETY: as above; rows `m..m + mr` and panel `pp` are inside the tile.
                    unsafe {
                        match mr {
                            4 => micro16::<4>(p, m, pp, out),
                            3 => micro16::<3>(p, m, pp, out),
                            2 => micro16::<2>(p, m, pp, out),
                            _ => micro16::<1>(p, m, pp, out),
                        }
                    }
                    m += mr;
                }
            }
        }
    }

    /// AVX2 micro-kernel, `MR` rows × one panel, on i16 operands: `vpmovsxbw` widens a k-block's
    /// weights (rows 0–3 and 4–7 × 4 inputs), the row's 4 activations are broadcast as i16, and
    /// `madd` forms exact i32 pair sums (|pair| ≤ 2·128·127, no saturation possible). Lanes hold
    /// (row, input pair); one `hadd` + permute per group folds them to rows. Two multiply-port ops
    /// per 32 products instead of three (`sign` + `maddubs` + `madd`) for the sign trick.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn micro16<const MR: usize>(p: &Prep<'_>, m0: usize, p0: usize, out: OutPtr) {
        let (wide, lda) = (p.wide.as_ptr(), p.c.lda);
        let fold = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        let mut facc = [[_mm256_setzero_ps(); 1]; MR];
        for g in 0..p.groups {
            let kb0 = g * p.kb_per_group;
            let kb1 = (kb0 + p.kb_per_group).min(p.units);
            let mut lo = [_mm256_setzero_si256(); MR];
            let mut hi = [_mm256_setzero_si256(); MR];
            for kb in kb0..kb1 {
                // SAFETY: panel `p0` has `units` 32-byte k-blocks; `kb < units`.
                let (wlo, whi) = unsafe {
                    let base = p.w.as_ptr().add((p0 * p.units + kb) * UNIT_BYTES);
                    (
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(base as *const __m128i)),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(base.add(16) as *const __m128i)),
                    )
                };
                for m in 0..MR {
                    // SAFETY: `kb * 4 + 4 <= lda` (rows padded to 32), row `m0 + m` exists.
                    let ab = unsafe {
                        _mm256_set1_epi64x((wide.add((m0 + m) * lda + kb * KBLOCK) as *const i64).read_unaligned())
                    };
                    lo[m] = _mm256_add_epi32(lo[m], _mm256_madd_epi16(wlo, ab));
                    hi[m] = _mm256_add_epi32(hi[m], _mm256_madd_epi16(whi, ab));
                }
            }
            // SAFETY: scales are `[groups][srows]`, panel `p0` is inside `srows`.
            let s = unsafe { _mm256_loadu_ps(p.scales.as_ptr().add(g * p.c.srows + p0 * PANEL_ROWS)) };
            for m in 0..MR {
                // [r0 r1 r4 r5 | r2 r3 r6 r7] → rows in order
                let d = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo[m], hi[m]), fold);
                facc[m][0] = _mm256_add_ps(facc[m][0], _mm256_mul_ps(_mm256_cvtepi32_ps(d), s));
            }
        }
        // SAFETY: forwarded contract of `run`.
        unsafe { p.c.finish(&facc, m0, p0, out) };
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn micro<const MR: usize, const NV: usize, const VNNI: bool>(
        p: &Prep<'_>,
        m0: usize,
        p0: usize,
        out: OutPtr,
    ) {
        let mut facc = [[_mm256_setzero_ps(); NV]; MR];
        for g in 0..p.groups {
            let kb0 = g * p.kb_per_group;
            let kb1 = (kb0 + p.kb_per_group).min(p.units);
            let mut acc = [[_mm256_setzero_si256(); NV]; MR];
            let mut kb = kb0;
            if VNNI && MR <= 2 {
                // few rows: a second accumulator set hides the `vpdpbusd` latency chain
                let mut acc_b = [[_mm256_setzero_si256(); NV]; MR];
                while kb + 2 <= kb1 {
                    // SAFETY: forwarded contract; `kb + 1 < kb1 <= units`.
                    unsafe {
                        kblock::<MR, NV, VNNI>(p, m0, p0, kb, &mut acc);
                        kblock::<MR, NV, VNNI>(p, m0, p0, kb + 1, &mut acc_b);
                    }
                    kb += 2;
                }
                for (row, row_b) in acc.iter_mut().zip(&acc_b) {
                    for (x, y) in row.iter_mut().zip(row_b) {
                        *x = _mm256_add_epi32(*x, *y);
                    }
                }
            }
            while kb < kb1 {
                // SAFETY: forwarded contract; `kb < units`.
                unsafe { kblock::<MR, NV, VNNI>(p, m0, p0, kb, &mut acc) };
                kb += 1;
            }
            for v in 0..NV {
                let at = g * p.c.srows + (p0 + v) * PANEL_ROWS;
                if VNNI {
                    // Σ (q + 128)·w − 128·Σ w = Σ q·w.
                    // SAFETY: code sums are `[groups][srows]` like the scales.
                    let sums = unsafe { _mm256_loadu_si256(p.code_sums.as_ptr().add(at) as *const __m256i) };
                    let bias = _mm256_slli_epi32(sums, 7);
                    for accm in acc.iter_mut() {
                        accm[v] = _mm256_sub_epi32(accm[v], bias);
                    }
                }
                // SAFETY: scales are `[groups][srows]`, panel `p0 + v` is inside `srows`.
                let s = unsafe { _mm256_loadu_ps(p.scales.as_ptr().add(at)) };
                for m in 0..MR {
                    facc[m][v] = _mm256_add_ps(facc[m][v], _mm256_mul_ps(_mm256_cvtepi32_ps(acc[m][v]), s));
                }
            }
        }
        // SAFETY: forwarded contract of `run`.
        unsafe { p.c.finish(&facc, m0, p0, out) };
    }

    /// Accumulate k-block `kb` of rows `m0..m0+MR` × panels `p0..p0+NV` into `acc` (i32). With
    /// VNNI: `vpdpbusd(acc, a + 128, w)` (exact, non-saturating; the caller subtracts 128·Σw per
    /// group), one instruction per 4 products. Without: the sign trick,
    /// `maddubs(|a|, sign(w, a))` + `madd(·, 1)` — |a| ≤ 128 as u8, `sign(w, a)` ∈ [−127, 127]
    /// because packed weights never hold −128 (−(−128) would wrap).
    ///
    /// # Safety
    /// AVX2 (+ AVX-512 VNNI/VL when `VNNI`); `kb < units`, rows and panels inside the operands.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn kblock<const MR: usize, const NV: usize, const VNNI: bool>(
        p: &Prep<'_>,
        m0: usize,
        p0: usize,
        kb: usize,
        acc: &mut [[__m256i; NV]; MR],
    ) {
        let (codes, abs, lda) = (p.c.codes.as_ptr(), p.abs.as_ptr(), p.c.lda);
        let mut wv = [_mm256_setzero_si256(); NV];
        for (v, w) in wv.iter_mut().enumerate() {
            // SAFETY: panel `p0 + v` exists (the tile is inside the padded panels) and has
            // `units` 32-byte k-blocks.
            *w = unsafe {
                _mm256_loadu_si256(p.w.as_ptr().add(((p0 + v) * p.units + kb) * UNIT_BYTES) as *const __m256i)
            };
        }
        if VNNI {
            // `vpdpbusd(acc, q + 128, w)`: no sign trick; `micro` subtracts 128·Σw per group.
            let biased = p.biased.as_ptr();
            for (m, accm) in acc.iter_mut().enumerate() {
                let off = (m0 + m) * lda + kb * KBLOCK;
                // SAFETY: as below, same offsets in the same-sized biased buffer.
                let ub = unsafe { _mm256_set1_epi32((biased.add(off) as *const i32).read_unaligned()) };
                for (v, acc_v) in accm.iter_mut().enumerate() {
                    *acc_v = dpbusd(*acc_v, ub, wv[v]);
                }
            }
            return;
        }
        for (m, accm) in acc.iter_mut().enumerate() {
            let off = (m0 + m) * lda + kb * KBLOCK;
            // SAFETY: `kb * 4 + 4 <= units * 4 <= lda` (rows padded to 32), row `m0 + m` exists.
            let (ua, sa) = unsafe {
                (
                    _mm256_set1_epi32((abs.add(off) as *const i32).read_unaligned()),
                    _mm256_set1_epi32((codes.add(off) as *const i32).read_unaligned()),
                )
            };
            for (v, acc_v) in accm.iter_mut().enumerate() {
                let signed = _mm256_sign_epi8(wv[v], sa);
                // |pair| ≤ 2·128·127 = 32512: `maddubs` cannot saturate
                let prod = _mm256_maddubs_epi16(ua, signed);
                *acc_v = _mm256_add_epi32(*acc_v, _mm256_madd_epi16(prod, _mm256_set1_epi16(1)));
            }
        }
    }
}
