//! Packed weight and activation formats.
//!
//! Every weight format stores `rows × cols` weights (`rows` = output features N, `cols` = input
//! features K, the PyTorch `Linear` layout) in one shared **panel layout** the kernels read
//! directly:
//!
//! * rows are grouped in panels of [`PANEL_ROWS`] = 8 (the last panel is padded with zero weights);
//! * along K a panel is cut in *k-blocks* of [`KBLOCK`] = 4 consecutive inputs; one k-block of one
//!   panel is 8 rows × 4 bytes = 32 bytes = one AVX2 register, row-major inside (`row * 4 + t`);
//! * a format with `b` bits per code stores `8 / b` k-blocks in one 32-byte *unit* (k-block `j` of
//!   the unit in bits `j*b .. (j+1)*b` of every byte), so one load + shift + mask yields a k-block.
//!
//! Scales, zero points and α are stored padded to whole panels (pad rows have scale 0), group-major
//! (`[group][row]`) so the kernels load 8 consecutive rows with one instruction.
//!
//! Activations ([`activation::QuantizedActivations`]) are stored row-major with each row padded
//! with zeros to [`act_stride`] (a multiple of [`ACT_K_ALIGN`] that also covers the 20-input
//! base-3 ternary unit); zero activations make any padded weight harmless.

pub mod activation;
pub mod binary;
pub mod int4;
pub mod int8;
pub mod ternary;

use std::fmt;

/// Output rows per panel (one AVX2 register holds one i32/f32 lane per row).
pub const PANEL_ROWS: usize = 8;
/// Inputs per k-block (one `maddubs`+`madd` pair reduces 4 products into one i32 lane).
pub const KBLOCK: usize = 4;
/// Bytes of one unpacked k-block of one panel (one AVX2 register).
pub const UNIT_BYTES: usize = 32;
const _: () = assert!(
    PANEL_ROWS * KBLOCK == UNIT_BYTES,
    "a k-block must fill one AVX2 register"
);
/// Activation rows are zero-padded to a multiple of this (the widest weight unit: binary, 32 k).
pub const ACT_K_ALIGN: usize = 32;
const _: () = assert!(
    ACT_K_ALIGN.is_multiple_of(KBLOCK * 8),
    "activation padding must cover a binary unit"
);

/// Padded activation row length for `cols` inputs: covers whole 32-input units (binary) and whole
/// 20-input units (base-3 ternary), so every kernel reads only inside the row.
pub const fn act_stride(cols: usize) -> usize {
    let a = round_up(if cols == 0 { 1 } else { cols }, ACT_K_ALIGN);
    let b = round_up(cols, 20);
    if a > b { a } else { b }
}

/// What every packed weight format offers, whatever its bit width.
///
/// Adding a format = one module with a struct implementing this trait, its pack/unpack, one scalar
/// reference kernel in `gemm/scalar.rs`, one AVX2 kernel under the same name in `arch/x86_64/`
/// (`avx2_lowbit.rs`, re-exported by `avx2.rs`), and one row in the test table
/// (`tests/common/mod.rs`).
pub trait WeightFormat {
    /// Short name used in tables and errors.
    const NAME: &'static str;
    /// Bits per weight of the codes alone (scales, zero points and α excluded).
    const CODE_BITS: f64;
    /// Output features N.
    fn rows(&self) -> usize;
    /// Input features K.
    fn cols(&self) -> usize;
    /// The dequantized weights as f32, row-major `[rows × cols]` (validation only, never the hot path).
    fn dequantize(&self) -> Vec<f32>;
    /// Bytes of storage: codes, scales, zero points, including panel padding.
    fn storage_bytes(&self) -> usize;
    /// Effective bits per weight including scales and padding.
    fn bits_per_weight(&self) -> f64 {
        self.storage_bytes() as f64 * 8.0 / (self.rows() * self.cols()).max(1) as f64
    }
}

/// Errors from packing: each names the cause and the remedy.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatError {
    /// A slice has the wrong length for the stated shape.
    Shape {
        /// Which argument.
        what: &'static str,
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        actual: usize,
    },
    /// A code lies outside the range the format (and its kernels) can represent exactly.
    CodeOutOfRange {
        /// Format name.
        format: &'static str,
        /// Flat row-major index of the offending code.
        index: usize,
        /// The offending value.
        value: i32,
        /// Inclusive allowed range.
        min: i32,
        /// Inclusive allowed range.
        max: i32,
    },
    /// The group size is not one the format supports.
    GroupSize {
        /// Format name.
        format: &'static str,
        /// The requested size.
        group_size: usize,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Shape { what, expected, actual } => write!(
                f,
                "`{what}` has {actual} elements but the shape needs {expected}; pass a row-major \
                 slice of exactly rows × cols (or rows × groups) elements"
            ),
            FormatError::CodeOutOfRange {
                format,
                index,
                value,
                min,
                max,
            } => write!(
                f,
                "{format} code {value} at index {index} is outside [{min}, {max}]; quantize with \
                 the format's symmetric range (int8 uses ±127: −128 would overflow the AVX2 \
                 sign trick) or clamp before packing"
            ),
            FormatError::GroupSize { format, group_size } => write!(
                f,
                "{format} does not support group size {group_size}; use a positive multiple of 32 \
                 (32, 64 or 128 are the usual choices)"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// `x` rounded up to a multiple of `m`.
pub(crate) const fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Number of 8-row panels covering `rows`.
pub(crate) const fn n_panels(rows: usize) -> usize {
    rows.div_ceil(PANEL_ROWS)
}

pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), FormatError> {
    if expected == actual {
        Ok(())
    } else {
        Err(FormatError::Shape { what, expected, actual })
    }
}

pub(crate) fn check_group(format: &'static str, group_size: usize) -> Result<(), FormatError> {
    if group_size > 0 && group_size.is_multiple_of(32) {
        Ok(())
    } else {
        Err(FormatError::GroupSize { format, group_size })
    }
}

/// Geometry of a panel-layout code array with `bits`-bit codes: where code `(n, k)` lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PanelGeom {
    /// Bits per code (8, 4, 2 or 1).
    pub bits: usize,
    /// 32-byte units per panel (along K).
    pub units: usize,
}

impl PanelGeom {
    pub fn new(cols: usize, bits: usize) -> Self {
        let k_per_unit = KBLOCK * (8 / bits);
        PanelGeom {
            bits,
            units: cols.div_ceil(k_per_unit),
        }
    }
    /// K values per 32-byte unit.
    pub fn k_per_unit(self) -> usize {
        KBLOCK * (8 / self.bits)
    }
    /// Padded K covered by the units.
    pub fn padded_cols(self) -> usize {
        self.units * self.k_per_unit()
    }
    /// Total bytes for `rows` rows.
    pub fn bytes(self, rows: usize) -> usize {
        n_panels(rows) * self.units * UNIT_BYTES
    }
    /// (byte index, bit shift) of code `(n, k)`.
    pub fn locate(self, n: usize, k: usize) -> (usize, usize) {
        let (p, r) = (n / PANEL_ROWS, n % PANEL_ROWS);
        let unit = k / self.k_per_unit();
        let j = (k / KBLOCK) % (8 / self.bits);
        let t = k % KBLOCK;
        ((p * self.units + unit) * UNIT_BYTES + r * KBLOCK + t, j * self.bits)
    }
    /// Pack row-major unsigned codes (each `< 2^bits`) into the panel layout; padding is `pad`.
    pub fn pack(self, rows: usize, cols: usize, pad: u8, code: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut out = vec![0u8; self.bytes(rows)];
        for n in 0..n_panels(rows) * PANEL_ROWS {
            for k in 0..self.padded_cols() {
                let c = if n < rows && k < cols { code(n, k) } else { pad };
                let (i, s) = self.locate(n, k);
                out[i] |= c << s;
            }
        }
        out
    }
    /// Read code `(n, k)` back.
    pub fn get(self, data: &[u8], n: usize, k: usize) -> u8 {
        let (i, s) = self.locate(n, k);
        (data[i] >> s) & ((1u16 << self.bits) - 1) as u8
    }
}

/// Ember symmetric quantization of one group (DESIGN §5): `s = max|x| / qmax`,
/// `q = clamp(round_half_even(x / s), −qmax, qmax)`. An all-zero group gets scale 0 and codes 0
/// (never NaN). Returns the scale.
pub(crate) fn quantize_symmetric(xs: &[f32], qmax: i32, out: &mut [i8]) -> f32 {
    let max = xs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let s = max / qmax as f32;
    for (q, x) in out.iter_mut().zip(xs) {
        *q = (x / s).round_ties_even().clamp(-(qmax as f32), qmax as f32) as i8;
    }
    s
}

/// Pad a per-row (or `[group][row]`) vector to whole panels with `pad`.
pub(crate) fn pad_group_major<T: Copy>(v: &[T], rows: usize, groups: usize, pad: T, row_major: bool) -> Vec<T> {
    let rp = n_panels(rows) * PANEL_ROWS;
    let mut out = vec![pad; rp * groups];
    for n in 0..rows {
        for g in 0..groups {
            out[g * rp + n] = if row_major { v[n * groups + g] } else { v[g * rows + n] };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_geometry_round_trips_every_bit_width() {
        for bits in [1usize, 2, 4, 8] {
            for (rows, cols) in [(1, 1), (9, 33), (17, 70), (8, 128)] {
                let g = PanelGeom::new(cols, bits);
                let mask = ((1u16 << bits) - 1) as u8;
                let code = |n: usize, k: usize| ((n * 31 + k * 7) as u8) & mask;
                let data = g.pack(rows, cols, 0, code);
                assert_eq!(data.len(), g.bytes(rows));
                for n in 0..rows {
                    for k in 0..cols {
                        assert_eq!(g.get(&data, n, k), code(n, k), "bits {bits} ({n},{k})");
                    }
                }
            }
        }
    }

    #[test]
    fn errors_teach_the_remedy() {
        let e = FormatError::GroupSize {
            format: "int4",
            group_size: 48,
        };
        assert!(e.to_string().contains("multiple of 32"));
    }
}
