//! Ternary weights: `w[n,k] = α[n] · q[n,k]`, `q ∈ {−1, 0, 1}`, stored as `u = q + 1 ∈ {0, 1, 2}`.
//! Two packings, both in the panel layout: [`TernaryPacking::TwoBit`] (2 bits per weight, four
//! k-blocks per 32-byte unit, k-block `j` in bits `2j..2j+2`) and [`TernaryPacking::Base3`]
//! (1.6 bits per weight: five k-blocks per 32-byte unit, `byte = Σ_j u_j·3^j` with `u_j` the code
//! of k-block `j`, so a unit covers 20 inputs). Plus 32 bits of α per row.
//!
//! The kernels are multiply-free in the arithmetic sense: `Σ q·a = Σ u·a − Σ a` where `u` only
//! selects 0, 1 or 2 copies of `a`. Both packings are decoded in registers (base-3 digits with
//! `mulhi` by reciprocals of 3^j); the benchmark table says which is faster.

use super::{FormatError, PanelGeom, WeightFormat, check_len, pad_group_major};

/// How ternary codes are packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TernaryPacking {
    /// 2 bits per weight in the panel layout (what the kernels read directly).
    TwoBit,
    /// 5 weights per byte in base 3, panel layout (denser, slower to decode).
    Base3,
}

/// Ternary weights with a per-row α.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedTernary {
    rows: usize,
    cols: usize,
    packing: TernaryPacking,
    data: Vec<u8>,
    alpha: Vec<f32>,
}

const POW3: [u8; 5] = [1, 3, 9, 27, 81];
/// Inputs per 32-byte base-3 unit (five k-blocks).
pub(crate) const BASE3_K_PER_UNIT: usize = 5 * super::KBLOCK;

/// (byte index, digit) of code `(n, k)` in the base-3 panel layout with `units` units per panel.
fn base3_locate(units: usize, n: usize, k: usize) -> (usize, usize) {
    let (p, r) = (n / super::PANEL_ROWS, n % super::PANEL_ROWS);
    let (unit, j, t) = (
        k / BASE3_K_PER_UNIT,
        (k % BASE3_K_PER_UNIT) / super::KBLOCK,
        k % super::KBLOCK,
    );
    ((p * units + unit) * super::UNIT_BYTES + r * super::KBLOCK + t, j)
}

impl PackedTernary {
    /// Pack row-major codes `q ∈ {−1, 0, 1}` with one α per row.
    ///
    /// # Errors
    /// Wrong lengths or a code outside {−1, 0, 1}.
    pub fn pack(
        codes: &[i8],
        rows: usize,
        cols: usize,
        alpha: &[f32],
        packing: TernaryPacking,
    ) -> Result<Self, FormatError> {
        check_len("codes", rows * cols, codes.len())?;
        check_len("alpha", rows, alpha.len())?;
        if let Some(index) = codes.iter().position(|q| !(-1..=1).contains(q)) {
            let value = codes[index] as i32;
            return Err(FormatError::CodeOutOfRange {
                format: "ternary",
                index,
                value,
                min: -1,
                max: 1,
            });
        }
        let u = |n: usize, k: usize| (codes[n * cols + k] + 1) as u8;
        let data = match packing {
            TernaryPacking::TwoBit => PanelGeom::new(cols, 2).pack(rows, cols, 1, u),
            TernaryPacking::Base3 => {
                let units = cols.div_ceil(BASE3_K_PER_UNIT);
                let mut d = vec![0u8; super::n_panels(rows) * units * super::UNIT_BYTES];
                for n in 0..super::n_panels(rows) * super::PANEL_ROWS {
                    for k in 0..units * BASE3_K_PER_UNIT {
                        // padding codes are 1 (zero weight); max byte Σ 2·3^j = 242
                        let c = if n < rows && k < cols { u(n, k) } else { 1 };
                        let (i, j) = base3_locate(units, n, k);
                        d[i] += c * POW3[j];
                    }
                }
                d
            }
        };
        let alpha = pad_group_major(alpha, rows, 1, 0.0, true);
        Ok(PackedTernary {
            rows,
            cols,
            packing,
            data,
            alpha,
        })
    }

    /// Quantize f32 weights (DESIGN §5): `Δ = 0.7·mean|x|` per row, `q = sign(x)` where `|x| > Δ`
    /// else 0, `α = mean |x|` over `|x| > Δ` (0 for an all-zero row).
    pub fn quantize(w: &[f32], rows: usize, cols: usize, packing: TernaryPacking) -> Result<Self, FormatError> {
        check_len("weights", rows * cols, w.len())?;
        let mut codes = vec![0i8; rows * cols];
        let mut alpha = vec![0f32; rows];
        for n in 0..rows {
            let row = &w[n * cols..(n + 1) * cols];
            let delta = 0.7 * row.iter().map(|x| x.abs()).sum::<f32>() / cols.max(1) as f32;
            let (mut sum, mut cnt) = (0f32, 0usize);
            for (q, &x) in codes[n * cols..(n + 1) * cols].iter_mut().zip(row) {
                if x.abs() > delta {
                    *q = if x > 0.0 { 1 } else { -1 };
                    sum += x.abs();
                    cnt += 1;
                }
            }
            alpha[n] = if cnt > 0 { sum / cnt as f32 } else { 0.0 };
        }
        Self::pack(&codes, rows, cols, &alpha, packing)
    }

    /// The codes back, row-major `q ∈ {−1, 0, 1}`.
    pub fn unpack(&self) -> Vec<i8> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        match self.packing {
            TernaryPacking::TwoBit => {
                let g = PanelGeom::new(self.cols, 2);
                for n in 0..self.rows {
                    out.extend((0..self.cols).map(|k| g.get(&self.data, n, k) as i8 - 1));
                }
            }
            TernaryPacking::Base3 => {
                let units = self.units();
                for n in 0..self.rows {
                    out.extend((0..self.cols).map(|k| {
                        let (i, j) = base3_locate(units, n, k);
                        ((self.data[i] / POW3[j]) % 3) as i8 - 1
                    }));
                }
            }
        }
        out
    }

    /// The packing in use.
    pub fn packing(&self) -> TernaryPacking {
        self.packing
    }

    /// α of row `n`.
    pub fn alpha(&self, n: usize) -> f32 {
        self.alpha[n]
    }

    /// α padded to whole panels (kernels only).
    pub(crate) fn padded_alpha(&self) -> &[f32] {
        &self.alpha
    }

    /// 32-byte units per panel: four k-blocks each (2-bit) or five (base-3).
    pub(crate) fn units(&self) -> usize {
        match self.packing {
            TernaryPacking::TwoBit => PanelGeom::new(self.cols, 2).units,
            TernaryPacking::Base3 => self.cols.div_ceil(BASE3_K_PER_UNIT),
        }
    }

    /// Packed codes in the panel layout of the packing (kernels only).
    pub(crate) fn panel_data(&self) -> &[u8] {
        &self.data
    }
}

impl WeightFormat for PackedTernary {
    const NAME: &'static str = "ternary";
    const CODE_BITS: f64 = 2.0;
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn dequantize(&self) -> Vec<f32> {
        let q = self.unpack();
        (0..q.len()).map(|i| q[i] as f32 * self.alpha[i / self.cols]).collect()
    }
    fn storage_bytes(&self) -> usize {
        self.data.len() + self.alpha.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base3_is_denser_and_round_trips() {
        let codes: Vec<i8> = (0..9 * 137).map(|i| (i * 7 % 3) as i8 - 1).collect();
        let a = PackedTernary::pack(&codes, 9, 137, &[1.0; 9], TernaryPacking::TwoBit).unwrap();
        let b = PackedTernary::pack(&codes, 9, 137, &[1.0; 9], TernaryPacking::Base3).unwrap();
        assert_eq!(a.unpack(), codes);
        assert_eq!(b.unpack(), codes);
        assert!(b.data.len() < a.data.len());
    }

    #[test]
    fn quantize_follows_the_threshold_rule() {
        let p = PackedTernary::quantize(&[1.0, -1.0, 0.1, 0.0], 1, 4, TernaryPacking::TwoBit).unwrap();
        assert_eq!(p.unpack(), vec![1, -1, 0, 0]);
        assert_eq!(p.alpha(0), 1.0);
    }
}
