//! AVX2 kernels for the low-bit formats with int8 activations — `gemm_i8i4`, `gemm_i8_ternary`,
//! `gemm_i8_binary` (same names as in `gemm/scalar.rs`; split from `avx2.rs` only for size).
//!
//! The unsigned code `u` (int4 nibble, ternary `q+1`, binary `2b`) is `maddubs`'s unsigned operand
//! directly: `Σ u·a` accumulates in i16 for a bounded chunk of k-blocks (|pair| ≤ 2·15·128 = 3840
//! for int4, so 8 `maddubs` fit in i16; ≤ 2·2·128 = 512 for ternary/binary, 32 fit), is widened to
//! i32 once per chunk with `madd`, and `z·Σa` (z = zero point, 8 for symmetric int4, 1 for
//! ternary/binary) is subtracted in i32 per group. Ternary and binary never multiply: `u ∈ {0,1,2}`
//! only selects how many copies of an activation are added. The epilogue matches the reference
//! operation for operation, so results are bit-identical.

use std::arch::x86_64::*;

use super::avx2::{Common, dpbusd, walk_tile};
use crate::config::OutPtr;
use crate::formats::activation::QuantizedActivations;
use crate::formats::{KBLOCK, PANEL_ROWS, UNIT_BYTES};
/// How far ahead of the current unit weights are prefetched (a prefetch never faults, so running
/// past the end of the weights is harmless).
const PREFETCH_BYTES: usize = 2048;

use crate::gemm::Tile;

/// Formats whose unsigned code feeds `maddubs` directly.
const INT4: u8 = 0;
const TERNARY: u8 = 1;
const BINARY: u8 = 2;
const TERNARY3: u8 = 3;

/// `⌈2^16 / 3^j⌉`: `mulhi_epu16(x, R[j]) = ⌊x / 3^j⌋` exactly for every `x ≤ 242` (the largest
/// base-3 byte; checked exhaustively in the tests below).
const RECIP3: [i16; 5] = [0, 21846, 7282, 2428, 810];

/// K-blocks per 32-byte unit.
const fn kb_per_unit(fmt: u8) -> usize {
    match fmt {
        INT4 => 2,
        TERNARY => 4,
        TERNARY3 => 5,
        _ => 8,
    }
}

/// Units per i16 accumulation chunk: at most 8 `maddubs` for int4 (8·3840 ≤ 32767), 32 for
/// ternary and binary (32·512 ≤ 32767), 30 for base-3 ternary.
const fn chunk_units(fmt: u8) -> usize {
    match fmt {
        INT4 => 4,
        TERNARY => 8,
        TERNARY3 => 6,
        _ => 4,
    }
}

/// `⌊x / 3^j⌋` in every 16-bit lane (`x ≤ 242`; 0 for `j ≥ 5`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn div_pow3(x: __m256i, j: usize) -> __m256i {
    match j {
        0 => x,
        1..=4 => _mm256_mulhi_epu16(x, _mm256_set1_epi16(RECIP3[j])),
        _ => _mm256_setzero_si256(),
    }
}

/// Base-3 digit `j` of every 16-bit lane: `⌊x / 3^j⌋ − 3·⌊x / 3^(j+1)⌋`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn base3_digit(x: __m256i, j: usize) -> __m256i {
    let hi = div_pow3(x, j + 1);
    _mm256_sub_epi16(div_pow3(x, j), _mm256_add_epi16(hi, _mm256_add_epi16(hi, hi)))
}

/// K-block `j` of a unit as unsigned byte codes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn decode<const FMT: u8>(raw: __m256i, j: usize) -> __m256i {
    match FMT {
        INT4 => {
            let m = _mm256_set1_epi8(0x0F);
            if j == 0 {
                _mm256_and_si256(raw, m)
            } else {
                _mm256_and_si256(_mm256_srli_epi16::<4>(raw), m)
            }
        }
        TERNARY => {
            let m = _mm256_set1_epi8(0x03);
            let s = match j {
                0 => raw,
                1 => _mm256_srli_epi16::<2>(raw),
                2 => _mm256_srli_epi16::<4>(raw),
                _ => _mm256_srli_epi16::<6>(raw),
            };
            _mm256_and_si256(s, m)
        }
        TERNARY3 => {
            // even and odd bytes in separate 16-bit lanes, digit j of each, bytes re-interleaved
            let even = _mm256_and_si256(raw, _mm256_set1_epi16(0x00FF));
            let odd = _mm256_srli_epi16::<8>(raw);
            _mm256_or_si256(base3_digit(even, j), _mm256_slli_epi16::<8>(base3_digit(odd, j)))
        }
        _ => {
            // bit j of every byte moved to bit 1 (value 2b); the 16-bit shifts never carry a
            // neighbouring byte's bit into bit 1 because the shift is at most 6.
            let m = _mm256_set1_epi8(0x02);
            let s = match j {
                0 => _mm256_add_epi8(raw, raw),
                1 => raw,
                2 => _mm256_srli_epi16::<1>(raw),
                3 => _mm256_srli_epi16::<2>(raw),
                4 => _mm256_srli_epi16::<3>(raw),
                5 => _mm256_srli_epi16::<4>(raw),
                6 => _mm256_srli_epi16::<5>(raw),
                _ => _mm256_srli_epi16::<6>(raw),
            };
            _mm256_and_si256(s, m)
        }
    }
}

/// Group scales as the kernel loads them.
pub(crate) enum ScalesRef<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

/// Per-call state of the unsigned-code kernels.
pub(crate) struct UPrep<'a> {
    c: Common<'a>,
    w: &'a [u8],
    /// Ternary only: the codes are base-3 (five k-blocks per unit).
    base3: bool,
    units: usize,
    units_per_group: usize,
    groups: usize,
    scales: ScalesRef<'a>,
    zeros: Option<&'a [u8]>,
    zconst: i32,
    asums: Vec<i32>,
    asum_groups: usize,
}

/// # Safety
/// AVX2+FMA+F16C; `tile` inside the output, written by this task only.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_ucode<const FMT: u8>(p: &UPrep<'_>, tile: Tile, out: OutPtr, vnni: bool) {
    // SAFETY: forwarded contract; `ucode_micro` reads inside the padded operands; `vnni` is only
    // true for `Isa::Avx512Vnni`, which is only constructed when the CPU supports it.
    if vnni {
        walk_tile!(tile, |m, pp, MR, NV| unsafe {
            ucode_micro::<FMT, MR, NV, true>(p, m, pp, out)
        });
    } else {
        // SAFETY: as above (the AVX2-only instantiation).
        walk_tile!(tile, |m, pp, MR, NV| unsafe {
            ucode_micro::<FMT, MR, NV, false>(p, m, pp, out)
        });
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn ucode_micro<const FMT: u8, const MR: usize, const NV: usize, const VNNI: bool>(
    p: &UPrep<'_>,
    m0: usize,
    p0: usize,
    out: OutPtr,
) {
    let ones = _mm256_set1_epi16(1);
    let kbu = kb_per_unit(FMT);
    let (codes, lda, w) = (p.c.codes.as_ptr(), p.c.lda, p.w.as_ptr());
    let mut facc = [[_mm256_setzero_ps(); NV]; MR];
    for g in 0..p.groups {
        let u0 = g * p.units_per_group;
        let u1 = (u0 + p.units_per_group).min(p.units);
        let mut acc32 = [[_mm256_setzero_si256(); NV]; MR];
        // VNNI with few rows: odd k-blocks go to a second set to hide the `vpdpbusd` latency
        let mut acc32b = [[_mm256_setzero_si256(); NV]; MR];
        let mut u = u0;
        while u < u1 {
            let ue = (u + chunk_units(FMT)).min(u1);
            let mut acc16 = [[_mm256_setzero_si256(); NV]; MR];
            for uu in u..ue {
                let mut raw = [_mm256_setzero_si256(); NV];
                for (v, r) in raw.iter_mut().enumerate() {
                    // SAFETY: panel `p0 + v` has `units` 32-byte units.
                    *r = unsafe {
                        let at = w.add(((p0 + v) * p.units + uu) * UNIT_BYTES);
                        // stream ahead: batch-1 decode reads every weight once, from DRAM
                        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_BYTES) as *const i8);
                        _mm256_loadu_si256(at as *const __m256i)
                    };
                }
                for j in 0..kbu {
                    let mut wd = [_mm256_setzero_si256(); NV];
                    for (d, r) in wd.iter_mut().zip(&raw) {
                        *d = decode::<FMT>(*r, j);
                    }
                    let kofs = (uu * kbu + j) * KBLOCK;
                    for (m, accm) in acc16.iter_mut().enumerate() {
                        // SAFETY: `kofs + 4 <= units · 4 · kbu <= lda` (activation rows padded to 32).
                        let av = unsafe {
                            _mm256_set1_epi32((codes.add((m0 + m) * lda + kofs) as *const i32).read_unaligned())
                        };
                        for (v, a16) in accm.iter_mut().enumerate() {
                            if VNNI && MR <= 2 && j % 2 == 1 {
                                acc32b[m][v] = dpbusd(acc32b[m][v], wd[v], av);
                            } else if VNNI {
                                acc32[m][v] = dpbusd(acc32[m][v], wd[v], av);
                            } else {
                                *a16 = _mm256_add_epi16(*a16, _mm256_maddubs_epi16(wd[v], av));
                            }
                        }
                    }
                }
            }
            if !VNNI {
                for m in 0..MR {
                    for v in 0..NV {
                        acc32[m][v] = _mm256_add_epi32(acc32[m][v], _mm256_madd_epi16(acc16[m][v], ones));
                    }
                }
            }
            u = ue;
        }
        if VNNI && MR <= 2 {
            for (row, row_b) in acc32.iter_mut().zip(&acc32b) {
                for (x, y) in row.iter_mut().zip(row_b) {
                    *x = _mm256_add_epi32(*x, *y);
                }
            }
        }
        for v in 0..NV {
            let idx = g * p.c.srows + (p0 + v) * PANEL_ROWS;
            // SAFETY: scales and zero points are `[groups][srows]`; panel `p0 + v` is inside `srows`.
            let (z, s) = unsafe {
                let z = match p.zeros {
                    Some(zs) => _mm256_cvtepu8_epi32(_mm_loadl_epi64(zs.as_ptr().add(idx) as *const __m128i)),
                    None => _mm256_set1_epi32(p.zconst),
                };
                let s = match p.scales {
                    ScalesRef::F32(s) => _mm256_loadu_ps(s.as_ptr().add(idx)),
                    ScalesRef::F16(s) => _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(idx) as *const __m128i)),
                };
                (z, s)
            };
            for m in 0..MR {
                let asum = _mm256_set1_epi32(p.asums[(m0 + m) * p.asum_groups + g]);
                let d = _mm256_sub_epi32(acc32[m][v], _mm256_mullo_epi32(z, asum));
                facc[m][v] = _mm256_add_ps(facc[m][v], _mm256_mul_ps(_mm256_cvtepi32_ps(d), s));
            }
        }
    }
    // SAFETY: forwarded contract of `run_ucode`.
    unsafe { p.c.finish(&facc, m0, p0, out) };
}

/// `gemm_i8i4`: nibbles straight into `maddubs`, `z·Σa` per group.
pub(crate) mod gemm_i8i4 {
    use super::*;
    use crate::formats::int4::{GroupScales, PackedInt4};

    pub(crate) fn prepare<'a>(
        a: &'a QuantizedActivations,
        w: &'a PackedInt4,
        bias: Option<&[f32]>,
        _vnni: bool,
    ) -> UPrep<'a> {
        use crate::WeightFormat;
        let gs = w.group_size();
        UPrep {
            c: Common::new(a, w.rows(), bias),
            w: w.panel_codes(),
            base3: false,
            units: w.units(),
            units_per_group: gs / (KBLOCK * kb_per_unit(INT4)),
            groups: w.groups(),
            scales: match w.group_scales() {
                GroupScales::F32(s) => ScalesRef::F32(s),
                GroupScales::F16(s) => ScalesRef::F16(s),
            },
            zeros: w.padded_zeros(),
            zconst: 8,
            asums: a.group_sums(gs),
            asum_groups: a.stride().div_ceil(gs),
        }
    }

    /// # Safety
    /// See `run_ucode`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &UPrep<'_>, tile: Tile, out: OutPtr, vnni: bool) {
        // SAFETY: forwarded contract.
        unsafe { run_ucode::<INT4>(p, tile, out, vnni) }
    }
}

/// Shared preparation of the per-row-α formats (one group spanning the whole row, `z = 1`).
fn prepare_alpha<'a>(
    a: &'a QuantizedActivations,
    n: usize,
    w: &'a [u8],
    units: usize,
    alpha: &'a [f32],
    bias: Option<&[f32]>,
) -> UPrep<'a> {
    UPrep {
        c: Common::new(a, n, bias),
        w,
        base3: false,
        units,
        units_per_group: units.max(1),
        groups: 1,
        scales: ScalesRef::F32(alpha),
        zeros: None,
        zconst: 1,
        asums: a.group_sums(a.stride()),
        asum_groups: 1,
    }
}

/// `gemm_i8_ternary`: `Σ (q+1)·a − Σa`, 2-bit or base-3 codes decoded in registers.
pub(crate) mod gemm_i8_ternary {
    use super::*;
    use crate::formats::ternary::PackedTernary;

    pub(crate) fn prepare<'a>(
        a: &'a QuantizedActivations,
        w: &'a PackedTernary,
        bias: Option<&[f32]>,
        _vnni: bool,
    ) -> UPrep<'a> {
        use crate::TernaryPacking;
        use crate::WeightFormat;
        UPrep {
            base3: w.packing() == TernaryPacking::Base3,
            ..prepare_alpha(a, w.rows(), w.panel_data(), w.units(), w.padded_alpha(), bias)
        }
    }

    /// # Safety
    /// See `run_ucode`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &UPrep<'_>, tile: Tile, out: OutPtr, vnni: bool) {
        // SAFETY: forwarded contract.
        unsafe {
            if p.base3 {
                run_ucode::<TERNARY3>(p, tile, out, vnni)
            } else {
                run_ucode::<TERNARY>(p, tile, out, vnni)
            }
        }
    }
}

/// `gemm_i8_binary`: `Σ (2b)·a − Σa`.
pub(crate) mod gemm_i8_binary {
    use super::*;
    use crate::formats::binary::PackedBinary;

    pub(crate) fn prepare<'a>(
        a: &'a QuantizedActivations,
        w: &'a PackedBinary,
        bias: Option<&[f32]>,
        _vnni: bool,
    ) -> UPrep<'a> {
        use crate::WeightFormat;
        prepare_alpha(a, w.rows(), w.panel_bits(), w.units(), w.padded_alpha(), bias)
    }

    /// # Safety
    /// See `run_ucode`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &UPrep<'_>, tile: Tile, out: OutPtr, vnni: bool) {
        // SAFETY: forwarded contract.
        unsafe { run_ucode::<BINARY>(p, tile, out, vnni) }
    }
}

#[cfg(test)]
mod tests {
    use super::RECIP3;

    #[test]
    fn reciprocal_division_is_exact_for_every_base3_byte() {
        for x in 0u32..=242 {
            for (j, &r) in RECIP3.iter().enumerate().skip(1) {
                assert_eq!((x * r as u32) >> 16, x / 3u32.pow(j as u32), "x = {x}, j = {j}");
            }
        }
    }
}
