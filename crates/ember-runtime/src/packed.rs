//! From storage form to the kernels' panel formats. Which kernel runs a tensor is decided by
//! [`ember_numerics::linear_kernel`] from its scheme, numerics, layout and shape (the rule
//! `ember plan` uses, so the plan names the kernel the engine runs); this module only repacks the
//! codes into the chosen format. A tensor the rule sends to an integer kernel always packs:
//! [`QuantTensor::validate`] has already checked that every code and zero point is one the
//! numerics produce.

use ember_kernels::{PackedBinary, PackedInt4, PackedInt8, PackedTernary, PackedWeights, ScaleDtype, TernaryPacking};
use ember_numerics::{IntFormat, KernelGroups, LinearKernel, Scheme, linear_kernel};

use crate::quant_tensor::{QuantTensor, Zeros};

/// Scales as the kernels want them: row-major `[rows, groups]`, with the group size along K
/// (`None` = one scale per row).
struct KernelScales {
    scales: Vec<f32>,
    zeros: Option<Vec<f32>>,
    group_size: Option<usize>,
}

fn kernel_scales(q: &QuantTensor, groups: KernelGroups) -> KernelScales {
    let zeros_of = |g: usize| match &q.zeros {
        Zeros::None => 0.0,
        Zeros::U8(z) => z[g] as f32,
        Zeros::F32(z) => z[g],
    };
    let has_zeros = !matches!(q.zeros, Zeros::None);
    match groups {
        // One scale per row: the group of the row's first element (its only group, or for
        // DeepSpeed chunks of whole rows, the chunk holding the row).
        KernelGroups::PerRow => KernelScales {
            scales: (0..q.rows).map(|r| q.scales[q.group_of(r, 0)]).collect(),
            zeros: has_zeros.then(|| (0..q.rows).map(|r| zeros_of(q.group_of(r, 0))).collect()),
            group_size: None,
        },
        KernelGroups::Inputs(g) => KernelScales {
            scales: q.scales.clone(),
            zeros: has_zeros.then(|| (0..q.scales.len()).map(zeros_of).collect()),
            group_size: Some(g),
        },
    }
}

/// The integer format and scale groups the storage rule chooses for `q` with integer inputs, or
/// why it runs dequantized.
pub fn integer_kernel(q: &QuantTensor) -> Result<(IntFormat, KernelGroups), String> {
    match linear_kernel(Some(q.spec()), q.rows, q.cols, Some(8)) {
        LinearKernel::Integer { format, groups } => Ok((format, groups)),
        other => Err(other.reason().unwrap_or("no integer kernel").to_string()),
    }
}

/// The kernel format that runs `q` exactly (its dequantized values are bit for bit
/// `q.dequantize()`), or why there is none.
pub fn to_kernel(q: &QuantTensor) -> Result<PackedWeights, String> {
    let (format, groups) = integer_kernel(q)?;
    pack(q, format, groups)
}

/// Repacks `q` into `format` with `groups` (as chosen by [`linear_kernel`]).
pub fn pack(q: &QuantTensor, format: IntFormat, groups: KernelGroups) -> Result<PackedWeights, String> {
    let ks = kernel_scales(q, groups);
    let codes = q.to_quantized().codes;
    let err = |e: ember_kernels::FormatError| e.to_string();
    let int4_group = ks.group_size.unwrap_or(q.cols);
    match (format, q.scheme) {
        (IntFormat::Int8, Scheme::Symmetric { .. }) => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedInt8::pack(&c, q.rows, q.cols, &ks.scales, ks.group_size)
                .map(PackedWeights::Int8)
                .map_err(err)
        }
        (IntFormat::Int8, Scheme::Asymmetric { .. }) => {
            // Ember zero points are codes in [0, 2^b − 1]: for b ≤ 7, u − z fits ±127.
            let zeros = ks.zeros.clone().unwrap_or_default();
            let cols_per_group = ks.group_size.unwrap_or(q.cols);
            let per_row = q.cols.div_ceil(cols_per_group);
            let c: Vec<i8> = codes
                .iter()
                .enumerate()
                .map(|(i, &u)| {
                    (i32::from(u) - zeros[(i / q.cols) * per_row + (i % q.cols) / cols_per_group] as i32) as i8
                })
                .collect();
            PackedInt8::pack(&c, q.rows, q.cols, &ks.scales, ks.group_size)
                .map(PackedWeights::Int8)
                .map_err(err)
        }
        (IntFormat::Int4, Scheme::Symmetric { .. }) => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedInt4::pack_symmetric(&c, q.rows, q.cols, &ks.scales, int4_group, ScaleDtype::F32)
                .map(PackedWeights::Int4)
                .map_err(err)
        }
        (IntFormat::Int4, Scheme::Asymmetric { .. }) => {
            let u: Vec<u8> = codes.iter().map(|&v| v as u8).collect();
            let z: Vec<u8> = ks.zeros.unwrap_or_default().iter().map(|&z| z as u8).collect();
            PackedInt4::pack_asymmetric(&u, q.rows, q.cols, &ks.scales, &z, int4_group, ScaleDtype::F32)
                .map(PackedWeights::Int4)
                .map_err(err)
        }
        (IntFormat::Ternary, Scheme::Ternary) => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedTernary::pack(&c, q.rows, q.cols, &ks.scales, TernaryPacking::TwoBit)
                .map(PackedWeights::Ternary)
                .map_err(err)
        }
        (IntFormat::Binary, Scheme::Binary) => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedBinary::pack(&c, q.rows, q.cols, &ks.scales)
                .map(PackedWeights::Binary)
                .map_err(err)
        }
        (format, scheme) => Err(format!("{scheme:?} does not pack as {format:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_numerics::{FloatFormat, GroupLayout, Numerics, quantize};

    fn weights(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32))
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The kernel format holds exactly the values the artifact stores.
    #[test]
    fn kernel_formats_dequantize_bit_for_bit() {
        let (rows, cols) = (12, 96);
        let w = weights(rows * cols);
        let cases = [
            (Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow),
            (Scheme::Symmetric { bits: 8 }, GroupLayout::RowGroups(32)),
            (Scheme::Symmetric { bits: 8 }, GroupLayout::Chunks(4)),
            (Scheme::Symmetric { bits: 6 }, GroupLayout::RowGroups(4096)),
            (Scheme::Symmetric { bits: 4 }, GroupLayout::RowGroups(32)),
            (Scheme::Symmetric { bits: 4 }, GroupLayout::PerRow),
            (Scheme::Asymmetric { bits: 4 }, GroupLayout::RowGroups(32)),
            (Scheme::Asymmetric { bits: 4 }, GroupLayout::PerRow),
            (Scheme::Asymmetric { bits: 7 }, GroupLayout::RowGroups(32)),
            (Scheme::Ternary, GroupLayout::PerRow),
            (Scheme::Binary, GroupLayout::Chunks(12)),
        ];
        for (scheme, layout) in cases {
            let q = QuantTensor::from_quantized(&quantize(&w, rows, cols, layout, scheme, Numerics::Ember)).unwrap();
            let k = to_kernel(&q).unwrap_or_else(|e| panic!("{scheme:?} {layout:?}: {e}"));
            assert_eq!(bits(&k.dequantize()), bits(&q.dequantize()), "{scheme:?} {layout:?}");
        }
    }

    #[test]
    fn tensors_without_an_exact_kernel_say_why() {
        let (rows, cols) = (4, 40);
        let w = weights(rows * cols);
        let q = |scheme, layout, n| QuantTensor::from_quantized(&quantize(&w, rows, cols, layout, scheme, n)).unwrap();
        let fp8 = q(Scheme::Float(FloatFormat::E4m3), GroupLayout::PerRow, Numerics::Ember);
        assert!(to_kernel(&fp8).unwrap_err().contains("fp8"));
        let g20 = q(
            Scheme::Symmetric { bits: 8 },
            GroupLayout::RowGroups(20),
            Numerics::Ember,
        );
        assert!(to_kernel(&g20).unwrap_err().contains("multiple of 32"));
        let ds = q(Scheme::Asymmetric { bits: 4 }, GroupLayout::PerRow, Numerics::Deepspeed);
        assert!(to_kernel(&ds).is_err());
        // DeepSpeed int8 runs dequantized whether or not a code is −128: decided by the scheme.
        let ds8 = q(Scheme::Symmetric { bits: 8 }, GroupLayout::PerRow, Numerics::Deepspeed);
        assert!(to_kernel(&ds8).unwrap_err().contains("−128"));
    }
}
