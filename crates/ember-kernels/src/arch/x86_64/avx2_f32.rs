//! AVX2 weight-only kernels (f32 activations × int8 / int4 weights), same names as the references
//! in `gemm/scalar.rs`. Meant for small M (batch-1 decode), where the weights' memory traffic
//! dominates: weights stay packed in memory and are converted to f32 one register (8 rows × 1 k)
//! at a time — never as a whole matrix.
//!
//! From one 32-byte k-block (8 rows × 4 inputs) input `t` of every row is isolated with 32-bit
//! shifts (int8, sign-extending) or one in-place mask (int4, activations pre-scaled by the matching
//! power of two), converted, and FMA'd against the broadcast activation; the int4 zero point is
//! applied once per group as `z·Σa`. With one activation row, four
//! independent accumulators per panel hide the FMA latency. Sums run in a different order than the
//! scalar reference, so tests compare these kernels with a tolerance.

use std::arch::x86_64::*;

use super::avx2::walk_tile;
use super::avx2_lowbit::ScalesRef;
use crate::config::OutPtr;
use crate::formats::{KBLOCK, PANEL_ROWS, UNIT_BYTES};
/// How far ahead of the current unit weights are prefetched (a prefetch never faults, so running
/// past the end of the weights is harmless).
const PREFETCH_BYTES: usize = 2048;

use crate::gemm::{PaddedF32, Tile, pad_f32, padded_bias};

const I8: u8 = 0;
const I4: u8 = 1;

/// Per-call state shared by all tiles.
pub(crate) struct WPrep<'a> {
    a: PaddedF32,
    n: usize,
    srows: usize,
    bias: Option<Vec<f32>>,
    w: &'a [u8],
    units: usize,
    units_per_group: usize,
    groups: usize,
    scales: ScalesRef<'a>,
    zeros: Option<&'a [u8]>,
    zconst: i32,
    /// int4 only: `Σa` per (row, group) and groups per activation row.
    asums: Vec<f32>,
    asum_groups: usize,
}

/// Input `t` of k-block `j` of a unit, as i32 lanes (one per row). int8: the signed byte is moved
/// to the top and shifted down (exact `q`). int4: the nibble is masked *in place*, giving
/// `u · 2^e` with `e = int4_exponent(j, t)`; the activations were pre-scaled by `2^−e` (exact), so
/// the product is unchanged and one shift per input is saved.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn extract<const FMT: u8>(raw: __m256i, j: usize, t: usize) -> __m256i {
    if FMT == I8 {
        match t {
            0 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(raw)),
            1 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(raw)),
            2 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<8>(raw)),
            _ => _mm256_srai_epi32::<24>(raw),
        }
    } else if (j, t) == (1, 3) {
        // the top nibble would land on the sign bit: shift it down instead (exponent 0)
        _mm256_srli_epi32::<28>(raw)
    } else {
        _mm256_and_si256(raw, _mm256_set1_epi32(0x0F << int4_exponent(j, t)))
    }
}

/// Bit position of the nibble of input `t`, k-block `j` inside an i32 lane (0 for the top nibble,
/// which `extract` shifts down).
pub(crate) const fn int4_exponent(j: usize, t: usize) -> i32 {
    if j == 1 && t == 3 { 0 } else { (8 * t + 4 * j) as i32 }
}

/// f32 activations for the int4 kernel: padded rows, each input pre-scaled by `2^−e` for the
/// in-place nibble extraction, plus the per-group sums `Σa` for the zero-point correction.
fn prescale_int4(a: &[f32], m: usize, k: usize, group: usize) -> (PaddedF32, Vec<f32>, usize) {
    let mut p = pad_f32(a, m, k);
    let groups = p.stride.div_ceil(group);
    let mut sums = vec![0f32; m * groups];
    for i in 0..m {
        let row = &mut p.data[i * p.stride..(i + 1) * p.stride];
        for (g, chunk) in row.chunks(group).enumerate() {
            sums[i * groups + g] = chunk.iter().sum();
        }
        for (kk, v) in row.iter_mut().enumerate() {
            let (j, t) = ((kk / KBLOCK) % 2, kk % KBLOCK);
            *v *= f32::from_bits(((127 - int4_exponent(j, t)) as u32) << 23);
        }
    }
    (p, sums, groups)
}

/// # Safety
/// AVX2+FMA+F16C; `tile` inside the output, written by this task only.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_wo<const FMT: u8>(p: &WPrep<'_>, tile: Tile, out: OutPtr) {
    // SAFETY: forwarded contract; `micro` reads inside the padded operands.
    walk_tile!(tile, |m, pp, MR, NV| unsafe { micro::<FMT, MR, NV>(p, m, pp, out) });
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn micro<const FMT: u8, const MR: usize, const NV: usize>(p: &WPrep<'_>, m0: usize, p0: usize, out: OutPtr) {
    let kbu = if FMT == I8 { 1 } else { 2 };
    // Independent accumulators per (row, panel): 4 chains for one row, 2 for two, else 1.
    let chains = if MR == 1 {
        4
    } else if MR == 2 {
        2
    } else {
        1
    };
    let (a, lda, w) = (p.a.data.as_ptr(), p.a.stride, p.w.as_ptr());
    let mut facc = [[_mm256_setzero_ps(); NV]; MR];
    for g in 0..p.groups {
        let u0 = g * p.units_per_group;
        let u1 = (u0 + p.units_per_group).min(p.units);
        let mut acc = [[[_mm256_setzero_ps(); 4]; NV]; MR];
        for uu in u0..u1 {
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
                for t in 0..KBLOCK {
                    let mut wf = [_mm256_setzero_ps(); NV];
                    for v in 0..NV {
                        wf[v] = _mm256_cvtepi32_ps(extract::<FMT>(raw[v], j, t));
                    }
                    let k = (uu * kbu + j) * KBLOCK + t;
                    for (m, accm) in acc.iter_mut().enumerate() {
                        // SAFETY: `k < units · kbu · 4 <= lda` (rows padded to 32), row `m0 + m` exists.
                        let ab = _mm256_set1_ps(unsafe { *a.add((m0 + m) * lda + k) });
                        for (v, accv) in accm.iter_mut().enumerate() {
                            let c = &mut accv[t % chains];
                            *c = _mm256_fmadd_ps(ab, wf[v], *c);
                        }
                    }
                }
            }
        }
        for v in 0..NV {
            let idx = g * p.srows + (p0 + v) * PANEL_ROWS;
            // SAFETY: scales are `[groups][srows]`; panel `p0 + v` is inside `srows`.
            let s = unsafe {
                match p.scales {
                    ScalesRef::F32(s) => _mm256_loadu_ps(s.as_ptr().add(idx)),
                    ScalesRef::F16(s) => _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().add(idx) as *const __m128i)),
                }
            };
            let z = match p.zeros {
                // SAFETY: zero points are `[groups][srows]`; panel `p0 + v` is inside `srows`.
                Some(zs) => unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(zs.as_ptr().add(idx) as *const __m128i)) },
                None => _mm256_set1_epi32(p.zconst),
            };
            let z = _mm256_cvtepi32_ps(z);
            for m in 0..MR {
                let mut sum = acc[m][v][1..chains]
                    .iter()
                    .fold(acc[m][v][0], |s, &c| _mm256_add_ps(s, c));
                if FMT == I4 {
                    let asum = _mm256_set1_ps(p.asums[(m0 + m) * p.asum_groups + g]);
                    sum = _mm256_sub_ps(sum, _mm256_mul_ps(z, asum));
                }
                facc[m][v] = _mm256_fmadd_ps(sum, s, facc[m][v]);
            }
        }
    }
    for (m, row) in facc.iter().enumerate() {
        for (v, accv) in row.iter().enumerate() {
            let col0 = (p0 + v) * PANEL_ROWS;
            let mut r = *accv;
            if let Some(b) = &p.bias {
                // SAFETY: the padded bias covers every panel's 8 columns.
                r = _mm256_add_ps(r, unsafe { _mm256_loadu_ps(b.as_ptr().add(col0)) });
            }
            let dst_full = col0 + PANEL_ROWS <= p.n;
            // SAFETY: the tile lies inside the `[m × n]` output and only this task writes it.
            unsafe {
                let dst = out.ptr.add((m0 + m) * out.ld + col0);
                if dst_full {
                    _mm256_storeu_ps(dst, r);
                } else {
                    let mut tmp = [0f32; PANEL_ROWS];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), r);
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, p.n - col0);
                }
            }
        }
    }
}

/// `gemm_f32_i8`: f32 activations × int8 weights.
pub(crate) mod gemm_f32_i8 {
    use super::*;
    use crate::formats::int8::PackedInt8;

    pub(crate) fn prepare<'a>(a: &[f32], m: usize, w: &'a PackedInt8, bias: Option<&[f32]>) -> WPrep<'a> {
        use crate::WeightFormat;
        WPrep {
            a: pad_f32(a, m, w.cols()),
            n: w.rows(),
            srows: w.padded_rows(),
            bias: padded_bias(bias, w.rows()),
            w: w.panel_codes(),
            units: w.units(),
            units_per_group: w.kblocks_per_group(),
            groups: w.groups(),
            scales: ScalesRef::F32(w.padded_scales()),
            zeros: None,
            zconst: 0,
            asums: Vec::new(),
            asum_groups: 0,
        }
    }

    /// # Safety
    /// See `run_wo`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &WPrep<'_>, tile: Tile, out: OutPtr) {
        // SAFETY: forwarded contract.
        unsafe { run_wo::<I8>(p, tile, out) }
    }
}

/// `gemm_f32_i4`: f32 activations × int4 weights.
pub(crate) mod gemm_f32_i4 {
    use super::*;
    use crate::formats::int4::{GroupScales, PackedInt4};

    pub(crate) fn prepare<'a>(a: &[f32], m: usize, w: &'a PackedInt4, bias: Option<&[f32]>) -> WPrep<'a> {
        use crate::WeightFormat;
        let (a, asums, asum_groups) = prescale_int4(a, m, w.cols(), w.group_size());
        WPrep {
            a,
            n: w.rows(),
            srows: w.padded_rows(),
            bias: padded_bias(bias, w.rows()),
            w: w.panel_codes(),
            units: w.units(),
            units_per_group: w.group_size() / (2 * KBLOCK),
            groups: w.groups(),
            scales: match w.group_scales() {
                GroupScales::F32(s) => ScalesRef::F32(s),
                GroupScales::F16(s) => ScalesRef::F16(s),
            },
            zeros: w.padded_zeros(),
            zconst: 8,
            asums,
            asum_groups,
        }
    }

    /// # Safety
    /// See `run_wo`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run(p: &WPrep<'_>, tile: Tile, out: OutPtr) {
        // SAFETY: forwarded contract.
        unsafe { run_wo::<I4>(p, tile, out) }
    }
}
