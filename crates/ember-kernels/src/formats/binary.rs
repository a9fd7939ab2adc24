//! Binary weights: `w[n,k] = α[n] · q[n,k]`, `q ∈ {−1, +1}`, one bit per weight (`b = 1` ⇔ +1).
//! 1 bit per weight + 32 bits of α per row.
//!
//! Layout: panel layout with 1-bit codes — one 32-byte unit holds eight k-blocks of one 8-row
//! panel, k-block `j` in bit `j` of every byte. The kernels are multiply-free in the arithmetic
//! sense: `Σ q·a = 2·Σ_{b=1} a − Σ a`, computed as `Σ (2b)·a − Σ a` where `2b ∈ {0, 2}` only
//! selects how many copies of `a` are added.

use super::{FormatError, PanelGeom, WeightFormat, check_len, pad_group_major};

/// Binary (sign) weights with a per-row α.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedBinary {
    rows: usize,
    cols: usize,
    geom: PanelGeom,
    bits: Vec<u8>,
    alpha: Vec<f32>,
}

impl PackedBinary {
    /// Pack row-major signs `q ∈ {−1, +1}` with one α per row.
    ///
    /// # Errors
    /// Wrong lengths or a code other than ±1.
    pub fn pack(signs: &[i8], rows: usize, cols: usize, alpha: &[f32]) -> Result<Self, FormatError> {
        check_len("signs", rows * cols, signs.len())?;
        check_len("alpha", rows, alpha.len())?;
        if let Some(index) = signs.iter().position(|&q| q != 1 && q != -1) {
            let value = signs[index] as i32;
            return Err(FormatError::CodeOutOfRange {
                format: "binary",
                index,
                value,
                min: -1,
                max: 1,
            });
        }
        let geom = PanelGeom::new(cols, 1);
        let bits = geom.pack(rows, cols, 0, |n, k| u8::from(signs[n * cols + k] > 0));
        Ok(PackedBinary {
            rows,
            cols,
            geom,
            bits,
            alpha: pad_group_major(alpha, rows, 1, 0.0, true),
        })
    }

    /// Quantize f32 weights (DESIGN §5): `α = mean|x|` per row, `q = sign(x)` (`+1` for `x ≥ 0`).
    pub fn quantize(w: &[f32], rows: usize, cols: usize) -> Result<Self, FormatError> {
        check_len("weights", rows * cols, w.len())?;
        let signs: Vec<i8> = w.iter().map(|&x| if x >= 0.0 { 1 } else { -1 }).collect();
        let alpha: Vec<f32> = (0..rows)
            .map(|n| w[n * cols..(n + 1) * cols].iter().map(|x| x.abs()).sum::<f32>() / cols.max(1) as f32)
            .collect();
        Self::pack(&signs, rows, cols, &alpha)
    }

    /// The signs back, row-major `±1`.
    pub fn unpack(&self) -> Vec<i8> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for n in 0..self.rows {
            out.extend((0..self.cols).map(|k| 2 * self.geom.get(&self.bits, n, k) as i8 - 1));
        }
        out
    }

    /// α of row `n`.
    pub fn alpha(&self, n: usize) -> f32 {
        self.alpha[n]
    }

    pub(crate) fn padded_alpha(&self) -> &[f32] {
        &self.alpha
    }
    pub(crate) fn panel_bits(&self) -> &[u8] {
        &self.bits
    }
    /// 32-byte units (eight k-blocks each) per panel.
    pub(crate) fn units(&self) -> usize {
        self.geom.units
    }
}

impl WeightFormat for PackedBinary {
    const NAME: &'static str = "binary";
    const CODE_BITS: f64 = 1.0;
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
        self.bits.len() + self.alpha.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_round_trip_and_zero_is_refused() {
        let s: Vec<i8> = (0..2 * 45).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect();
        let p = PackedBinary::pack(&s, 2, 45, &[0.5, 2.0]).unwrap();
        assert_eq!(p.unpack(), s);
        assert!(PackedBinary::pack(&[0], 1, 1, &[1.0]).is_err());
        let big = PackedBinary::pack(&vec![1; 8 * 256], 8, 256, &[1.0; 8]).unwrap();
        assert_eq!(big.bits_per_weight(), 1.125); // 1 bit + 32-bit α over 256 weights
    }
}
