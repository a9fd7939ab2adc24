//! From storage form to the kernels' panel formats: which [`QuantTensor`]s an integer kernel can
//! run exactly, and the repacking. A tensor no kernel can represent exactly (fp formats, DeepSpeed
//! int8 codes of −128, asymmetric int8 with a wide zero offset, scale groups that are not whole
//! rows or multiples of 32 inputs) is reported with the reason; the engine then runs that module
//! in f32 and says so (`inspect` and `bench` print the kernel of every module).

use ember_config::types::Numerics;
use ember_kernels::{PackedBinary, PackedInt4, PackedInt8, PackedTernary, PackedWeights, ScaleDtype, TernaryPacking};
use ember_numerics::{GroupLayout, Scheme};

use crate::quant_tensor::{QuantTensor, Zeros};

/// Scales as the kernels want them: row-major `[rows, groups]`, with the group size along K
/// (`None` = one scale per row).
struct KernelScales {
    scales: Vec<f32>,
    zeros: Option<Vec<f32>>,
    group_size: Option<usize>,
}

fn kernel_scales(q: &QuantTensor) -> Result<KernelScales, String> {
    let zeros_of = |g: usize| match &q.zeros {
        Zeros::None => None,
        Zeros::U8(z) => Some(z[g] as f32),
        Zeros::F32(z) => Some(z[g]),
    };
    let per_row = |group_of_row: &dyn Fn(usize) -> usize| {
        let scales = (0..q.rows).map(|r| q.scales[group_of_row(r)]).collect();
        let zeros = match q.zeros {
            Zeros::None => None,
            _ => Some((0..q.rows).map(|r| zeros_of(group_of_row(r)).unwrap_or(0.0)).collect()),
        };
        KernelScales {
            scales,
            zeros,
            group_size: None,
        }
    };
    match q.layout {
        GroupLayout::PerRow => Ok(per_row(&|r| r)),
        GroupLayout::RowGroups(g) if g >= q.cols => Ok(per_row(&|r| r)),
        GroupLayout::RowGroups(g) if g.is_multiple_of(32) => Ok(KernelScales {
            scales: q.scales.clone(),
            zeros: match q.zeros {
                Zeros::None => None,
                _ => Some((0..q.scales.len()).map(|i| zeros_of(i).unwrap_or(0.0)).collect()),
            },
            group_size: Some(g),
        }),
        GroupLayout::RowGroups(g) => Err(format!("group size {g} is not a multiple of 32")),
        GroupLayout::Chunks(n) => {
            let len = (q.rows * q.cols) / n.max(1);
            if len > 0 && len.is_multiple_of(q.cols) {
                let rows_per_group = len / q.cols;
                Ok(per_row(&|r| r / rows_per_group))
            } else {
                Err(format!("{n} DeepSpeed groups do not cover whole rows"))
            }
        }
    }
}

/// The kernel format that runs `q` exactly (its dequantized values are bit for bit
/// `q.dequantize()`), or why there is none.
pub fn to_kernel(q: &QuantTensor) -> Result<PackedWeights, String> {
    let ks = kernel_scales(q)?;
    let codes = q.to_quantized().codes;
    let err = |e: ember_kernels::FormatError| e.to_string();
    match q.scheme {
        Scheme::Symmetric { bits } if bits > 4 => {
            if codes.contains(&-128) {
                return Err("an int8 code is −128 (DeepSpeed numerics); the int8 kernel needs ±127".into());
            }
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedInt8::pack(&c, q.rows, q.cols, &ks.scales, ks.group_size)
                .map(PackedWeights::Int8)
                .map_err(err)
        }
        Scheme::Symmetric { .. } => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            let g = int4_group(q, ks.group_size)?;
            PackedInt4::pack_symmetric(&c, q.rows, q.cols, &ks.scales, g, ScaleDtype::F32)
                .map(PackedWeights::Int4)
                .map_err(err)
        }
        Scheme::Asymmetric { bits } => {
            if q.numerics != Numerics::Ember {
                return Err("DeepSpeed asymmetric weights carry float offsets; no integer kernel".into());
            }
            let zeros = ks.zeros.clone().unwrap_or_default();
            let cols_per_group = ks.group_size.unwrap_or(q.cols);
            let zero_at =
                |i: usize| zeros[(i / q.cols) * q.cols.div_ceil(cols_per_group) + (i % q.cols) / cols_per_group];
            if bits <= 4 {
                let g = int4_group(q, ks.group_size)?;
                let u: Vec<u8> = codes.iter().map(|&v| v as u8).collect();
                let z: Vec<u8> = zeros.iter().map(|&z| z as u8).collect();
                return PackedInt4::pack_asymmetric(&u, q.rows, q.cols, &ks.scales, &z, g, ScaleDtype::F32)
                    .map(PackedWeights::Int4)
                    .map_err(err);
            }
            // u − z fits int8's ±127 only when the group's range is not too lopsided.
            let mut c = Vec::with_capacity(codes.len());
            for (i, &u) in codes.iter().enumerate() {
                let v = u - zero_at(i) as i32;
                if !(-127..=127).contains(&v) {
                    return Err(format!("asymmetric code − zero point = {v} does not fit int8's ±127"));
                }
                c.push(v as i8);
            }
            PackedInt8::pack(&c, q.rows, q.cols, &ks.scales, ks.group_size)
                .map(PackedWeights::Int8)
                .map_err(err)
        }
        Scheme::Ternary | Scheme::Binary if ks.group_size.is_some() => {
            Err("ternary/binary kernels take one α per row".into())
        }
        Scheme::Ternary => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedTernary::pack(&c, q.rows, q.cols, &ks.scales, TernaryPacking::TwoBit)
                .map(PackedWeights::Ternary)
                .map_err(err)
        }
        Scheme::Binary => {
            let c: Vec<i8> = codes.iter().map(|&v| v as i8).collect();
            PackedBinary::pack(&c, q.rows, q.cols, &ks.scales)
                .map(PackedWeights::Binary)
                .map_err(err)
        }
        Scheme::Float(_) => Err(format!("no integer kernel for {}", q.format_name())),
    }
}

/// int4 kernels need a group size that is a multiple of 32; one scale per row is a group of
/// `cols` when `cols` is such a multiple.
fn int4_group(q: &QuantTensor, group_size: Option<usize>) -> Result<usize, String> {
    let g = group_size.unwrap_or(q.cols);
    if g > 0 && g.is_multiple_of(32) {
        Ok(g)
    } else {
        Err(format!("int4 kernels need groups of a multiple of 32 inputs, not {g}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_numerics::quantize;

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
        let fp8 = q(
            Scheme::Float(ember_config::types::FloatFormat::E4m3),
            GroupLayout::PerRow,
            Numerics::Ember,
        );
        assert!(to_kernel(&fp8).unwrap_err().contains("fp8"));
        let g20 = q(
            Scheme::Symmetric { bits: 8 },
            GroupLayout::RowGroups(20),
            Numerics::Ember,
        );
        assert!(to_kernel(&g20).unwrap_err().contains("multiple of 32"));
        let ds = q(Scheme::Asymmetric { bits: 4 }, GroupLayout::PerRow, Numerics::Deepspeed);
        assert!(to_kernel(&ds).is_err());
    }
}
