//! [`PackedWeights`]: any packed format behind one type, with the call a runtime makes per linear
//! layer — quantize the activations per token, run the format's integer kernel, fuse the bias.
//!
//! ```
//! use ember_kernels::{KernelConfig, PackedTernary, PackedWeights, TernaryPacking};
//!
//! let (m, k, n) = (2, 40, 3);
//! let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
//! let layer = PackedWeights::from(PackedTernary::quantize(&w, n, k, TernaryPacking::TwoBit).unwrap());
//! let x = vec![0.5f32; m * k];
//! let mut y = vec![0f32; m * n];
//! layer.linear(&x, m, Some(&[1.0, 2.0, 3.0]), &mut y, &KernelConfig::default());
//! assert_eq!(layer.rows(), n);
//! ```

use crate::config::KernelConfig;
use crate::formats::WeightFormat;
use crate::formats::activation::QuantizedActivations;
use crate::formats::binary::PackedBinary;
use crate::formats::int4::PackedInt4;
use crate::formats::int8::PackedInt8;
use crate::formats::ternary::PackedTernary;
use crate::gemm;

/// A packed weight matrix `[rows × cols]` of any format.
#[derive(Clone, Debug, PartialEq)]
pub enum PackedWeights {
    /// int8, per-row or per-group scales.
    Int8(PackedInt8),
    /// int4, per-group scales, optional zero points.
    Int4(PackedInt4),
    /// Ternary, per-row α.
    Ternary(PackedTernary),
    /// Binary, per-row α.
    Binary(PackedBinary),
}

macro_rules! each {
    ($self:expr, $w:ident => $e:expr) => {
        match $self {
            PackedWeights::Int8($w) => $e,
            PackedWeights::Int4($w) => $e,
            PackedWeights::Ternary($w) => $e,
            PackedWeights::Binary($w) => $e,
        }
    };
}

impl PackedWeights {
    /// Output features N.
    pub fn rows(&self) -> usize {
        each!(self, w => w.rows())
    }

    /// Input features K.
    pub fn cols(&self) -> usize {
        each!(self, w => w.cols())
    }

    /// The format's name (`int8`, `int4`, `ternary`, `binary`).
    pub fn format_name(&self) -> &'static str {
        match self {
            PackedWeights::Int8(_) => PackedInt8::NAME,
            PackedWeights::Int4(_) => PackedInt4::NAME,
            PackedWeights::Ternary(_) => PackedTernary::NAME,
            PackedWeights::Binary(_) => PackedBinary::NAME,
        }
    }

    /// The signed integer codes, row-major (what the kernels multiply).
    pub fn unpack(&self) -> Vec<i8> {
        each!(self, w => w.unpack())
    }

    /// The dequantized weights, row-major (validation only).
    pub fn dequantize(&self) -> Vec<f32> {
        each!(self, w => w.dequantize())
    }

    /// Bytes of storage including scales and padding.
    pub fn storage_bytes(&self) -> usize {
        each!(self, w => w.storage_bytes())
    }

    /// `y[m × rows] = x[m × cols] · wᵀ (+ bias)`: quantizes `x` per token (dynamic symmetric int8)
    /// and runs the format's integer kernel.
    ///
    /// # Panics
    /// On shape mismatches (see the kernels in [`crate::gemm`]).
    pub fn linear(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32], cfg: &KernelConfig) {
        let a = QuantizedActivations::quantize(x, m, self.cols(), cfg);
        self.linear_quantized(&a, bias, y, cfg);
    }

    /// [`Self::linear`] on activations quantized once and shared (e.g. by the Q, K, V projections).
    ///
    /// # Panics
    /// On shape mismatches (see the kernels in [`crate::gemm`]).
    pub fn linear_quantized(&self, a: &QuantizedActivations, bias: Option<&[f32]>, y: &mut [f32], cfg: &KernelConfig) {
        match self {
            PackedWeights::Int8(w) => gemm::gemm_i8i8(a, w, bias, y, cfg),
            PackedWeights::Int4(w) => gemm::gemm_i8i4(a, w, bias, y, cfg),
            PackedWeights::Ternary(w) => gemm::gemm_i8_ternary(a, w, bias, y, cfg),
            PackedWeights::Binary(w) => gemm::gemm_i8_binary(a, w, bias, y, cfg),
        }
    }

    /// Weight-only product on f32 activations (int8 and int4 only; for small M). Returns `false`,
    /// leaving `y` untouched, for formats without a weight-only kernel.
    ///
    /// # Panics
    /// On shape mismatches (see the kernels in [`crate::gemm`]).
    pub fn linear_weight_only(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
        cfg: &KernelConfig,
    ) -> bool {
        match self {
            PackedWeights::Int8(w) => gemm::gemm_f32_i8(x, m, w, bias, y, cfg),
            PackedWeights::Int4(w) => gemm::gemm_f32_i4(x, m, w, bias, y, cfg),
            _ => return false,
        }
        true
    }
}

impl From<PackedInt8> for PackedWeights {
    fn from(w: PackedInt8) -> Self {
        PackedWeights::Int8(w)
    }
}
impl From<PackedInt4> for PackedWeights {
    fn from(w: PackedInt4) -> Self {
        PackedWeights::Int4(w)
    }
}
impl From<PackedTernary> for PackedWeights {
    fn from(w: PackedTernary) -> Self {
        PackedWeights::Ternary(w)
    }
}
impl From<PackedBinary> for PackedWeights {
    fn from(w: PackedBinary) -> Self {
        PackedWeights::Binary(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_equals_quantize_then_kernel() {
        let (m, k, n) = (3, 70, 9);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 17) as f32 - 8.0) / 8.0).collect();
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 7) as f32 - 3.0) / 3.0).collect();
        let cfg = KernelConfig::reference();
        let layer = PackedWeights::from(PackedInt8::quantize(&w, n, k, None).unwrap());
        let (mut y1, mut y2) = (vec![0f32; m * n], vec![0f32; m * n]);
        layer.linear(&x, m, None, &mut y1, &cfg);
        let a = QuantizedActivations::quantize(&x, m, k, &cfg);
        let PackedWeights::Int8(w8) = &layer else {
            unreachable!()
        };
        gemm::gemm_i8i8(&a, w8, None, &mut y2, &cfg);
        assert_eq!(y1, y2);
        assert_eq!((layer.rows(), layer.cols(), layer.format_name()), (n, k, "int8"));
        assert!(
            !PackedWeights::from(PackedBinary::quantize(&w, n, k).unwrap())
                .linear_weight_only(&x, m, None, &mut y1, &cfg)
        );
    }
}
