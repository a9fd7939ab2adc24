//! int8 activations: `x[m,k] ≈ s[m] · q[m,k]`, `q ∈ [−127, 127]` (8 bits per value + one f32
//! scale per row). Dynamic per-token symmetric: `s = max_k |x[m,k]| / 127`,
//! `q = clamp(round_half_even(x / s), −127, 127)` (an all-zero row gets `s = 0`, `q = 0`); or a
//! static per-tensor scale from calibration. Other quantizers (asymmetric per-token, whose zero
//! offset the caller corrects with the weights' row sums) fill the rows through
//! [`QuantizedActivations::from_rows`].
//!
//! Layout: row-major, every row zero-padded to [`super::act_stride`], plus `|q|` as u8
//! (the unsigned operand of the i8×i8 `maddubs` sign trick) and `q + 128` as u8 (the unsigned
//! operand of VNNI's `vpdpbusd`, corrected by 128·Σw), both computed once per quantization.

use super::{FormatError, act_stride, check_len};
use crate::config::{Isa, KernelConfig};
use crate::gemm::scalar;

/// Below this many values quantization stays on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// A quantized activation matrix `[rows × cols]`, ready for every integer kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActivations {
    rows: usize,
    cols: usize,
    stride: usize,
    codes: Vec<i8>,
    abs: Vec<u8>,
    biased: Vec<u8>,
    scales: Vec<f32>,
}

/// `|q|` and `q + 128` of a row of codes (the kernels' two unsigned views of them).
fn derive_unsigned(codes: &[i8], abs: &mut [u8], biased: &mut [u8]) {
    for ((a, b), &q) in abs.iter_mut().zip(biased.iter_mut()).zip(codes) {
        *a = q.unsigned_abs();
        *b = (q as u8) ^ 0x80;
    }
}

impl QuantizedActivations {
    /// Dynamic per-token symmetric quantization of row-major `x` `[rows × cols]` (finite values).
    ///
    /// # Panics
    /// If `x.len() != rows * cols`.
    pub fn quantize(x: &[f32], rows: usize, cols: usize, cfg: &KernelConfig) -> Self {
        Self::build(x, rows, cols, None, cfg)
    }

    /// Quantization with a static per-tensor scale (from calibration); values beyond `127·scale`
    /// saturate. A zero scale yields zero codes.
    ///
    /// # Panics
    /// If `x.len() != rows * cols`.
    pub fn quantize_static(x: &[f32], rows: usize, cols: usize, scale: f32, cfg: &KernelConfig) -> Self {
        Self::build(x, rows, cols, Some(scale), cfg)
    }

    fn build(x: &[f32], rows: usize, cols: usize, fixed: Option<f32>, cfg: &KernelConfig) -> Self {
        assert_eq!(x.len(), rows * cols, "activations must be rows × cols");
        Self::from_rows(rows, cols, cfg, |m, dst| {
            (quantize_row(cfg.isa, &x[m * cols..(m + 1) * cols], dst, fixed), ())
        })
        .0
    }

    /// Activations from a caller's own row quantizer (e.g. asymmetric per-token): `fill(m, codes)`
    /// writes row `m`'s `cols` codes (any i8, −128 included) straight into the kernels' padded
    /// layout and returns the row's scale and a value the caller keeps per row (e.g. its zero
    /// offset), returned in row order. Rows run in parallel as in [`Self::quantize`]; there is no
    /// intermediate copy (what [`Self::from_codes`] costs).
    pub fn from_rows<T: Send + Default + Clone>(
        rows: usize,
        cols: usize,
        cfg: &KernelConfig,
        fill: impl Fn(usize, &mut [i8]) -> (f32, T) + Sync,
    ) -> (Self, Vec<T>) {
        let stride = act_stride(cols);
        let mut codes = vec![0i8; rows * stride];
        let mut abs = vec![0u8; rows * stride];
        let mut biased = vec![0u8; rows * stride];
        let mut scales = vec![0f32; rows];
        let mut kept = vec![T::default(); rows];
        type Row<'r, T> = (
            usize,
            ((((&'r mut [i8], &'r mut [u8]), &'r mut [u8]), &'r mut f32), &'r mut T),
        );
        let work = |(m, ((((dst, dabs), dbiased), s), t)): Row<'_, T>| {
            (*s, *t) = fill(m, &mut dst[..cols]);
            derive_unsigned(dst, dabs, dbiased);
        };
        if rows * cols >= PARALLEL_MIN_VALUES && cfg.is_parallel() {
            use rayon::prelude::*;
            let rows_iter = codes
                .par_chunks_mut(stride)
                .zip(abs.par_chunks_mut(stride))
                .zip(biased.par_chunks_mut(stride))
                .zip(scales.par_iter_mut())
                .zip(kept.par_iter_mut());
            cfg.install(|| rows_iter.enumerate().for_each(work));
        } else {
            let rows_iter = codes
                .chunks_mut(stride)
                .zip(abs.chunks_mut(stride))
                .zip(biased.chunks_mut(stride))
                .zip(scales.iter_mut())
                .zip(kept.iter_mut());
            rows_iter.enumerate().for_each(work);
        }
        let acts = QuantizedActivations {
            rows,
            cols,
            stride,
            codes,
            abs,
            biased,
            scales,
        };
        (acts, kept)
    }

    /// Wrap already-quantized codes `[rows × cols]` (any i8, −128 included) with per-row scales.
    ///
    /// # Errors
    /// Wrong slice lengths.
    pub fn from_codes(codes: &[i8], rows: usize, cols: usize, scales: &[f32]) -> Result<Self, FormatError> {
        check_len("codes", rows * cols, codes.len())?;
        check_len("scales", rows, scales.len())?;
        let stride = act_stride(cols);
        let mut padded = vec![0i8; rows * stride];
        for m in 0..rows {
            padded[m * stride..m * stride + cols].copy_from_slice(&codes[m * cols..(m + 1) * cols]);
        }
        let (mut abs, mut biased) = (vec![0u8; padded.len()], vec![0u8; padded.len()]);
        derive_unsigned(&padded, &mut abs, &mut biased);
        Ok(QuantizedActivations {
            rows,
            cols,
            stride,
            codes: padded,
            abs,
            biased,
            scales: scales.to_vec(),
        })
    }

    /// Rows M.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns K.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Per-row scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// Codes of row `m` (unpadded, `cols` long).
    pub fn row(&self, m: usize) -> &[i8] {
        &self.codes[m * self.stride..m * self.stride + self.cols]
    }
    /// The dequantized activations `[rows × cols]` (validation only).
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.rows)
            .flat_map(|m| self.row(m).iter().map(move |&q| q as f32 * self.scales[m]))
            .collect()
    }

    /// Padded row stride (kernels only).
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }
    pub(crate) fn padded_codes(&self) -> &[i8] {
        &self.codes
    }
    pub(crate) fn padded_abs(&self) -> &[u8] {
        &self.abs
    }
    /// `q + 128` as u8 (padding: 128), the unsigned operand of `vpdpbusd`.
    pub(crate) fn padded_biased(&self) -> &[u8] {
        &self.biased
    }

    /// `Σ_k q[m,k]` over consecutive groups of `group` inputs, `[rows × ceil(stride/group)]`.
    pub(crate) fn group_sums(&self, group: usize) -> Vec<i32> {
        let groups = self.stride.div_ceil(group);
        let mut out = vec![0i32; self.rows * groups];
        for m in 0..self.rows {
            let row = &self.codes[m * self.stride..(m + 1) * self.stride];
            for (g, chunk) in row.chunks(group).enumerate() {
                out[m * groups + g] = chunk.iter().map(|&q| q as i32).sum();
            }
        }
        out
    }
}

fn quantize_row(isa: Isa, x: &[f32], out: &mut [i8], fixed: Option<f32>) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni => {
            // SAFETY: a `KernelConfig` only holds `Isa::Avx2` when the CPU supports AVX2+FMA+F16C
            // (checked by `Isa::detect` / `KernelConfig::with_isa`); slices are bounds-carrying.
            unsafe {
                match fixed {
                    Some(s) => {
                        crate::arch::x86_64::avx2::quantize_row_i8_static(x, s, out);
                        s
                    }
                    None => crate::arch::x86_64::avx2::quantize_row_i8(x, out),
                }
            }
        }
        _ => match fixed {
            Some(s) => {
                scalar::quantize_row_i8_static(x, s, out);
                s
            }
            None => scalar::quantize_row_i8(x, out),
        },
    }
}

/// Fused per-token quantization of row-major `x` `[m × k]` into `out_codes` `[m × k]` and
/// `out_scales` `[m]` (dynamic symmetric, see the module header), on the detected ISA.
///
/// # Panics
/// If a slice length does not match `m`, `k`.
pub fn quantize_rows_i8(x: &[f32], m: usize, k: usize, out_codes: &mut [i8], out_scales: &mut [f32]) {
    quantize_rows_i8_with(&KernelConfig::default(), x, m, k, out_codes, out_scales);
}

/// [`quantize_rows_i8`] on an explicit configuration (tests compare ISAs with it).
///
/// # Panics
/// If a slice length does not match `m`, `k`.
pub fn quantize_rows_i8_with(
    cfg: &KernelConfig,
    x: &[f32],
    m: usize,
    k: usize,
    out_codes: &mut [i8],
    out_scales: &mut [f32],
) {
    assert_eq!(x.len(), m * k, "x must be m × k");
    assert_eq!(out_codes.len(), m * k, "out_codes must be m × k");
    assert_eq!(out_scales.len(), m, "out_scales must have m entries");
    for r in 0..m {
        out_scales[r] = quantize_row(
            cfg.isa,
            &x[r * k..(r + 1) * k],
            &mut out_codes[r * k..(r + 1) * k],
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_quantization_hits_127_and_rounds_half_to_even() {
        let cfg = KernelConfig::reference();
        let q = QuantizedActivations::quantize(&[127.0, 0.5, 1.5, -2.5, 0.0], 1, 5, &cfg);
        assert_eq!(q.row(0), &[127, 0, 2, -2, 0]);
        assert_eq!(q.scales(), &[1.0]);
        let z = QuantizedActivations::quantize(&[0.0; 3], 1, 3, &cfg);
        assert_eq!((z.row(0), z.scales()[0]), (&[0i8, 0, 0][..], 0.0));
        assert_eq!(z.stride(), super::super::ACT_K_ALIGN);
    }

    #[test]
    fn static_scale_saturates() {
        let q = QuantizedActivations::quantize_static(&[1000.0, -1000.0, 3.0], 1, 3, 1.0, &KernelConfig::reference());
        assert_eq!(q.row(0), &[127, -127, 3]);
    }
}
