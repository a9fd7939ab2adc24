//! int8 weights, symmetric: `w[n,k] = s[n,g] · q[n,k]`, `q ∈ [−127, 127]`, `g = k / group_size`
//! (one group per row when `group_size` is `None`). 8 bits per weight + 32 bits per scale.
//!
//! Codes are restricted to ±127 (never −128): the AVX2 kernel moves the activation's sign onto the
//! weight with `_mm256_sign_epi8`, and −(−128) does not fit in an i8. [`PackedInt8::pack`] refuses
//! −128 rather than silently clamping it.
//!
//! Layout: the crate's panel layout (see [`crate::formats`]) with 8-bit codes — one k-block of one
//! panel is 32 bytes, rows × 4 inputs; scales are `[group][row]`, padded to whole panels.

use super::{FormatError, PanelGeom, WeightFormat, check_group, check_len, pad_group_major, quantize_symmetric};

/// int8 weights in the panel layout with per-row (or per-row-per-group) f32 scales.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedInt8 {
    rows: usize,
    cols: usize,
    group_size: Option<usize>,
    geom: PanelGeom,
    codes: Vec<u8>,
    scales: Vec<f32>,
    /// `Σ q[n,k]` over each scale group, `[group][padded row]`: VNNI multiplies `q` by the
    /// activation code plus 128 and takes 128 times this back off.
    code_sums: Vec<i32>,
}

impl PackedInt8 {
    /// Largest magnitude a code may have (symmetric range).
    pub const MAX_CODE: i8 = 127;

    /// Pack row-major codes `[rows × cols]` with row-major scales `[rows × groups]`
    /// (`groups = 1` when `group_size` is `None`, else `ceil(cols / group_size)`).
    ///
    /// # Errors
    /// Wrong slice lengths, a code equal to −128, or a group size that is not a multiple of 32.
    pub fn pack(
        codes: &[i8],
        rows: usize,
        cols: usize,
        scales: &[f32],
        group_size: Option<usize>,
    ) -> Result<Self, FormatError> {
        if let Some(g) = group_size {
            check_group("int8", g)?;
        }
        let groups = group_size.map_or(1, |g| cols.div_ceil(g));
        check_len("codes", rows * cols, codes.len())?;
        check_len("scales", rows * groups, scales.len())?;
        if let Some(index) = codes.iter().position(|&q| q == i8::MIN) {
            return Err(FormatError::CodeOutOfRange {
                format: "int8",
                index,
                value: -128,
                min: -127,
                max: 127,
            });
        }
        let geom = PanelGeom::new(cols, 8);
        let packed = geom.pack(rows, cols, 0, |n, k| codes[n * cols + k] as u8);
        let width = group_size.unwrap_or(cols.max(1));
        let padded_rows = super::n_panels(rows) * super::PANEL_ROWS;
        let mut code_sums = vec![0i32; groups * padded_rows];
        for n in 0..rows {
            for (k, &q) in codes[n * cols..(n + 1) * cols].iter().enumerate() {
                code_sums[(k / width) * padded_rows + n] += q as i32;
            }
        }
        Ok(PackedInt8 {
            rows,
            cols,
            group_size,
            geom,
            codes: packed,
            scales: pad_group_major(scales, rows, groups, 0.0, true),
            code_sums,
        })
    }

    /// Quantize f32 weights `[rows × cols]` with Ember's symmetric numerics (DESIGN §5).
    pub fn quantize(w: &[f32], rows: usize, cols: usize, group_size: Option<usize>) -> Result<Self, FormatError> {
        check_len("weights", rows * cols, w.len())?;
        let g = group_size.unwrap_or(cols.max(1));
        let groups = group_size.map_or(1, |g| cols.div_ceil(g));
        let mut codes = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows * groups];
        for n in 0..rows {
            for gi in 0..groups {
                let r = n * cols + gi * g..n * cols + ((gi + 1) * g).min(cols);
                scales[n * groups + gi] = quantize_symmetric(&w[r.clone()], 127, &mut codes[r]);
            }
        }
        Self::pack(&codes, rows, cols, &scales, group_size)
    }

    /// The codes back, row-major `[rows × cols]` (exactly what was packed).
    pub fn unpack(&self) -> Vec<i8> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for n in 0..self.rows {
            out.extend((0..self.cols).map(|k| self.geom.get(&self.codes, n, k) as i8));
        }
        out
    }

    /// Group size along K, `None` for one scale per row.
    pub fn group_size(&self) -> Option<usize> {
        self.group_size
    }

    /// Number of scale groups per row.
    pub fn groups(&self) -> usize {
        self.group_size.map_or(1, |g| self.cols.div_ceil(g))
    }

    /// Scale of row `n`, group `g`.
    pub fn scale(&self, n: usize, g: usize) -> f32 {
        self.scales[g * self.padded_rows() + n]
    }

    pub(crate) fn padded_rows(&self) -> usize {
        super::n_panels(self.rows) * super::PANEL_ROWS
    }

    /// Panel-layout codes (kernels only).
    pub(crate) fn panel_codes(&self) -> &[u8] {
        &self.codes
    }

    /// `[group][padded row]` scales (kernels only).
    pub(crate) fn padded_scales(&self) -> &[f32] {
        &self.scales
    }

    /// Per-group code sums, `[group][padded row]` (see the field).
    pub(crate) fn padded_code_sums(&self) -> &[i32] {
        &self.code_sums
    }

    /// K-blocks per scale group (all of a row's k-blocks when ungrouped).
    pub(crate) fn kblocks_per_group(&self) -> usize {
        self.group_size.map_or(self.geom.units, |g| g / super::KBLOCK)
    }

    /// 32-byte units (= k-blocks, for 8-bit codes) per panel.
    pub(crate) fn units(&self) -> usize {
        self.geom.units
    }
}

impl WeightFormat for PackedInt8 {
    const NAME: &'static str = "int8";
    const CODE_BITS: f64 = 8.0;
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn dequantize(&self) -> Vec<f32> {
        let g = self.group_size.unwrap_or(self.cols.max(1));
        let q = self.unpack();
        (0..self.rows * self.cols)
            .map(|i| q[i] as f32 * self.scale(i / self.cols, (i % self.cols) / g))
            .collect()
    }
    fn storage_bytes(&self) -> usize {
        self.codes.len() + self.scales.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_128_is_refused_with_a_remedy() {
        let e = PackedInt8::pack(&[1, -128], 1, 2, &[1.0], None).unwrap_err();
        assert!(matches!(
            e,
            FormatError::CodeOutOfRange {
                index: 1,
                value: -128,
                ..
            }
        ));
        assert!(e.to_string().contains("±127"));
    }

    #[test]
    fn quantize_is_symmetric_and_zero_rows_stay_zero() {
        let w = [0.0, 0.0, 0.0, 1.0, -2.0, 0.5];
        let p = PackedInt8::quantize(&w, 2, 3, None).unwrap();
        assert_eq!(p.unpack(), vec![0, 0, 0, 64, -127, 32]);
        assert_eq!(p.scale(0, 0), 0.0);
        let d = p.dequantize();
        assert!(d.iter().zip(&w).all(|(a, b)| (a - b).abs() <= 2.0 / 127.0));
    }
}
