//! int4 weights, two per byte, grouped along K:
//! `w[n,k] = s[n,g] · (u[n,k] − z[n,g])`, `u ∈ [0, 15]`, `g = k / group_size` (32, 64, 128, …).
//! Symmetric: `z = 8` and the signed code is `q = u − 8 ∈ [−8, 7]` (Ember numerics use ±7);
//! asymmetric: a per-group zero point `z ∈ [0, 15]`. 4 bits per weight + a 16- or 32-bit scale
//! (+ 8 bits of zero point when asymmetric) per group.
//!
//! Layout: panel layout with 4-bit codes — one 32-byte unit holds two k-blocks of one 8-row panel,
//! k-block `2i` in the low nibbles and `2i+1` in the high nibbles; scales and zero points are
//! `[group][row]`, padded to whole panels. The kernels feed the unsigned nibbles straight into
//! `maddubs` (|u·a| ≤ 15·128) and subtract `z · Σa` per group afterwards.

use half::f16;

use super::{FormatError, PanelGeom, WeightFormat, check_group, check_len, pad_group_major};

/// Storage type of the group scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleDtype {
    /// 32-bit scales.
    F32,
    /// 16-bit scales (rounded to nearest f16 at pack time).
    F16,
}

/// Group scales in their storage type, `[group][padded row]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GroupScales {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// int4 weights in the panel layout with per-group scales and optional zero points.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedInt4 {
    rows: usize,
    cols: usize,
    group_size: usize,
    geom: PanelGeom,
    codes: Vec<u8>,
    scales: GroupScales,
    zeros: Option<Vec<u8>>,
}

impl PackedInt4 {
    /// Pack signed codes `q ∈ [−8, 7]` (`[rows × cols]`) with row-major scales `[rows × groups]`.
    ///
    /// # Errors
    /// Wrong lengths, codes out of range, or a group size that is not a multiple of 32.
    pub fn pack_symmetric(
        codes: &[i8],
        rows: usize,
        cols: usize,
        scales: &[f32],
        group_size: usize,
        dtype: ScaleDtype,
    ) -> Result<Self, FormatError> {
        check_len("codes", rows * cols, codes.len())?;
        if let Some(index) = codes.iter().position(|q| !(-8..=7).contains(q)) {
            let value = codes[index] as i32;
            return Err(FormatError::CodeOutOfRange {
                format: "int4",
                index,
                value,
                min: -8,
                max: 7,
            });
        }
        let u: Vec<u8> = codes.iter().map(|&q| (q + 8) as u8).collect();
        Self::build(&u, rows, cols, scales, None, group_size, dtype)
    }

    /// Pack unsigned codes `u ∈ [0, 15]` with row-major scales and zero points `[rows × groups]`.
    ///
    /// # Errors
    /// Wrong lengths, codes or zero points out of range, or an unsupported group size.
    pub fn pack_asymmetric(
        codes: &[u8],
        rows: usize,
        cols: usize,
        scales: &[f32],
        zeros: &[u8],
        group_size: usize,
        dtype: ScaleDtype,
    ) -> Result<Self, FormatError> {
        check_len("codes", rows * cols, codes.len())?;
        for v in [codes, zeros] {
            if let Some(index) = v.iter().position(|&u| u > 15) {
                let value = v[index] as i32;
                return Err(FormatError::CodeOutOfRange {
                    format: "int4",
                    index,
                    value,
                    min: 0,
                    max: 15,
                });
            }
        }
        Self::build(codes, rows, cols, scales, Some(zeros), group_size, dtype)
    }

    fn build(
        u: &[u8],
        rows: usize,
        cols: usize,
        scales: &[f32],
        zeros: Option<&[u8]>,
        group_size: usize,
        dtype: ScaleDtype,
    ) -> Result<Self, FormatError> {
        check_group("int4", group_size)?;
        let groups = cols.div_ceil(group_size);
        check_len("scales", rows * groups, scales.len())?;
        if let Some(z) = zeros {
            check_len("zero points", rows * groups, z.len())?;
        }
        let geom = PanelGeom::new(cols, 4);
        let codes = geom.pack(rows, cols, 0, |n, k| u[n * cols + k]);
        let padded = pad_group_major(scales, rows, groups, 0.0, true);
        let scales = match dtype {
            ScaleDtype::F32 => GroupScales::F32(padded),
            ScaleDtype::F16 => GroupScales::F16(padded.iter().map(|&s| f16::from_f32(s)).collect()),
        };
        let zeros = zeros.map(|z| pad_group_major(z, rows, groups, 0, true));
        Ok(PackedInt4 {
            rows,
            cols,
            group_size,
            geom,
            codes,
            scales,
            zeros,
        })
    }

    /// Quantize f32 weights `[rows × cols]`. Symmetric: `s = max|x|/7`, `q = clamp(round(x/s), ±7)`;
    /// asymmetric: range widened to include 0, `s = (max − min)/15`, `z = round(−min/s)`,
    /// `u = clamp(round(x/s) + z, 0, 15)` (DESIGN §5). With f16 scales the scale is rounded first.
    pub fn quantize(
        w: &[f32],
        rows: usize,
        cols: usize,
        group_size: usize,
        asymmetric: bool,
        dtype: ScaleDtype,
    ) -> Result<Self, FormatError> {
        check_len("weights", rows * cols, w.len())?;
        check_group("int4", group_size)?;
        let groups = cols.div_ceil(group_size);
        let round_scale = |s: f32| match dtype {
            ScaleDtype::F32 => s,
            ScaleDtype::F16 => f16::from_f32(s).to_f32(),
        };
        let mut u = vec![0u8; rows * cols];
        let mut scales = vec![0f32; rows * groups];
        let mut zeros = vec![0u8; rows * groups];
        for n in 0..rows {
            for g in 0..groups {
                let r = n * cols + g * group_size..n * cols + ((g + 1) * group_size).min(cols);
                let xs = &w[r.clone()];
                let (lo, hi) = xs.iter().fold((0f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
                let (s, z) = if asymmetric {
                    let s = round_scale((hi - lo) / 15.0);
                    (
                        s,
                        if s > 0.0 {
                            (-lo / s).round_ties_even().clamp(0.0, 15.0)
                        } else {
                            0.0
                        },
                    )
                } else {
                    (round_scale(hi.max(-lo) / 7.0), 8.0)
                };
                let (qmin, qmax) = if asymmetric { (0.0, 15.0) } else { (1.0, 15.0) };
                for (dst, &x) in u[r].iter_mut().zip(xs) {
                    let q = if s > 0.0 { (x / s).round_ties_even() + z } else { z };
                    *dst = q.clamp(qmin, qmax) as u8;
                }
                scales[n * groups + g] = s;
                zeros[n * groups + g] = z as u8;
            }
        }
        let zeros = asymmetric.then_some(&zeros[..]);
        Self::build(&u, rows, cols, &scales, zeros, group_size, dtype)
    }

    /// Raw unsigned codes `u ∈ [0, 15]`, row-major (round-trips `pack_asymmetric`'s input).
    pub fn unpack_codes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for n in 0..self.rows {
            out.extend((0..self.cols).map(|k| self.geom.get(&self.codes, n, k)));
        }
        out
    }

    /// Signed integer weights `u − z`, row-major (round-trips `pack_symmetric`'s input).
    pub fn unpack(&self) -> Vec<i8> {
        let u = self.unpack_codes();
        let g = self.group_size;
        (0..u.len())
            .map(|i| u[i] as i8 - self.zero_point(i / self.cols, (i % self.cols) / g) as i8)
            .collect()
    }

    /// Group size along K.
    pub fn group_size(&self) -> usize {
        self.group_size
    }

    /// Number of groups per row.
    pub fn groups(&self) -> usize {
        self.cols.div_ceil(self.group_size)
    }

    /// Whether zero points are stored (asymmetric).
    pub fn is_asymmetric(&self) -> bool {
        self.zeros.is_some()
    }

    /// Scale of row `n`, group `g` (as f32).
    pub fn scale(&self, n: usize, g: usize) -> f32 {
        let i = g * self.padded_rows() + n;
        match &self.scales {
            GroupScales::F32(s) => s[i],
            GroupScales::F16(s) => s[i].to_f32(),
        }
    }

    /// Zero point of row `n`, group `g` (8 when symmetric).
    pub fn zero_point(&self, n: usize, g: usize) -> u8 {
        self.zeros.as_ref().map_or(8, |z| z[g * self.padded_rows() + n])
    }

    pub(crate) fn padded_rows(&self) -> usize {
        super::n_panels(self.rows) * super::PANEL_ROWS
    }
    pub(crate) fn panel_codes(&self) -> &[u8] {
        &self.codes
    }
    pub(crate) fn group_scales(&self) -> &GroupScales {
        &self.scales
    }
    pub(crate) fn padded_zeros(&self) -> Option<&[u8]> {
        self.zeros.as_deref()
    }
    /// 32-byte units (two k-blocks each) per panel.
    pub(crate) fn units(&self) -> usize {
        self.geom.units
    }
}

impl WeightFormat for PackedInt4 {
    const NAME: &'static str = "int4";
    const CODE_BITS: f64 = 4.0;
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn dequantize(&self) -> Vec<f32> {
        let q = self.unpack();
        (0..q.len())
            .map(|i| q[i] as f32 * self.scale(i / self.cols, (i % self.cols) / self.group_size))
            .collect()
    }
    fn storage_bytes(&self) -> usize {
        let s = match &self.scales {
            GroupScales::F32(s) => s.len() * 4,
            GroupScales::F16(s) => s.len() * 2,
        };
        self.codes.len() + s + self.zeros.as_ref().map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_codes_round_trip_and_range_is_enforced() {
        let codes: Vec<i8> = (0..2 * 40).map(|i| (i % 16) as i8 - 8).collect();
        let p = PackedInt4::pack_symmetric(&codes, 2, 40, &[1.0; 4], 32, ScaleDtype::F16).unwrap();
        assert_eq!(p.unpack(), codes);
        let bad = PackedInt4::pack_symmetric(&[9], 1, 1, &[1.0], 32, ScaleDtype::F32);
        assert!(matches!(bad, Err(FormatError::CodeOutOfRange { value: 9, .. })));
        assert!(PackedInt4::pack_symmetric(&[0], 1, 1, &[1.0], 48, ScaleDtype::F32).is_err());
    }

    #[test]
    fn asymmetric_constant_group_quantizes_to_itself() {
        let w = vec![3.0f32; 32];
        let p = PackedInt4::quantize(&w, 1, 32, 32, true, ScaleDtype::F32).unwrap();
        assert!(p.dequantize().iter().all(|&x| (x - 3.0).abs() < 1e-6));
        let z = PackedInt4::quantize(&[0.0; 32], 1, 32, 32, false, ScaleDtype::F32).unwrap();
        assert!(z.dequantize().iter().all(|&x| x == 0.0));
    }
}
