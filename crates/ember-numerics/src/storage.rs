//! How a quantized weight is stored and which kernel family runs it — decided from the scheme,
//! the numerics, the group layout and the shape alone, never from weight values. `ember plan`
//! (which loads no weights) and the artifact writer, reader and CPU engine all call these
//! functions, so the plan predicts the artifact's bytes and kernels exactly.
//!
//! | stored scheme | code container | per group |
//! |---|---|---|
//! | symmetric 5–8 bits / 3–4 bits | 8 / 4 bits | f32 scale |
//! | asymmetric, Ember numerics | 8 / 4 bits | f32 scale + u8 zero point |
//! | asymmetric, DeepSpeed numerics | 8 / 4 bits | f32 scale + f32 offset |
//! | ternary (also DeepSpeed binary, whose `sign(0) = 0` is a third code) | 2 bits | f32 α |
//! | binary (Ember numerics: `0 → +`) | 1 bit | f32 α |
//! | fp8 e4m3 / e5m2, fp6 e3m2 / fp4 e2m1 | 8 / 4 bits | f32 scale |
//!
//! Each row of codes starts on a byte boundary.

use crate::{FloatFormat, GroupLayout, Numerics, Scheme};

/// A quantized weight's description: everything the storage and kernel rules look at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightSpec {
    pub scheme: Scheme,
    pub numerics: Numerics,
    pub layout: GroupLayout,
}

/// The scheme the artifact stores for `scheme` under `numerics`: DeepSpeed's binary quantizer maps
/// an exact zero to code 0, a third value, so it is stored as ternary (same value formula).
pub fn stored_scheme(scheme: Scheme, numerics: Numerics) -> Scheme {
    match (scheme, numerics) {
        (Scheme::Binary, Numerics::Deepspeed) => Scheme::Ternary,
        (s, _) => s,
    }
}

/// Bits a stored code of `scheme` takes (3 bits in the 4-bit container, 5–7 in the 8-bit one).
pub fn code_bits(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Symmetric { bits } | Scheme::Asymmetric { bits } => {
            if bits <= 4 {
                4
            } else {
                8
            }
        }
        Scheme::Ternary => 2,
        Scheme::Binary => 1,
        Scheme::Float(FloatFormat::E2m1) => 4,
        Scheme::Float(_) => 8,
    }
}

/// Bytes of one packed row of `cols` codes.
pub fn row_bytes(scheme: Scheme, cols: usize) -> usize {
    (cols * code_bits(scheme)).div_ceil(8)
}

/// Bytes of one zero point: u8 codes in Ember numerics, f32 offsets in DeepSpeed's; none for
/// symmetric, ternary, binary and float schemes.
pub fn zero_point_bytes(scheme: Scheme, numerics: Numerics) -> usize {
    match (scheme, numerics) {
        (Scheme::Asymmetric { .. }, Numerics::Ember) => 1,
        (Scheme::Asymmetric { .. }, Numerics::Deepspeed) => 4,
        _ => 0,
    }
}

/// Inclusive range of the codes `numerics` produces for `scheme` (signed for symmetric, ternary
/// and binary; unsigned for asymmetric; bit patterns for float formats).
pub fn code_range(scheme: Scheme, numerics: Numerics) -> (i32, i32) {
    match scheme {
        Scheme::Symmetric { bits } => match numerics {
            Numerics::Ember => {
                let q = (1i32 << (bits - 1)) - 1;
                (-q, q)
            }
            Numerics::Deepspeed => (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1),
        },
        Scheme::Asymmetric { bits } => (0, (1i32 << bits) - 1),
        Scheme::Ternary | Scheme::Binary => (-1, 1),
        Scheme::Float(FloatFormat::E2m1) => (0, 15),
        Scheme::Float(FloatFormat::E3m2) => (0, 63),
        Scheme::Float(_) => (0, 255),
    }
}

impl WeightSpec {
    /// The spec as stored (see [`stored_scheme`]).
    pub fn stored(self) -> WeightSpec {
        WeightSpec {
            scheme: stored_scheme(self.scheme, self.numerics),
            ..self
        }
    }

    /// Bytes the artifact holds for a `[rows, cols]` weight: codes, one f32 scale per group and
    /// the zero points.
    pub fn stored_bytes(self, rows: usize, cols: usize) -> u64 {
        let s = self.stored();
        let groups = s.layout.groups(rows, cols) as u64;
        (rows * row_bytes(s.scheme, cols)) as u64 + groups * (4 + zero_point_bytes(s.scheme, s.numerics) as u64)
    }

    /// The format name tables and the manifest use: `int8`, `uint4`, `ternary`, `fp8-e4m3`, …
    pub fn format_name(self) -> String {
        format_name(self.stored().scheme)
    }
}

/// The name of a stored scheme: `int8`, `int4`, `uint8`, `uint4`, `ternary`, `binary`, `fp8-e4m3`…
pub fn format_name(scheme: Scheme) -> String {
    match scheme {
        Scheme::Symmetric { bits } => format!("int{bits}"),
        Scheme::Asymmetric { bits } => format!("uint{bits}"),
        Scheme::Ternary => "ternary".into(),
        Scheme::Binary => "binary".into(),
        Scheme::Float(f) => f.name().into(),
    }
}

/// The packed integer formats of Ember's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntFormat {
    Int8,
    Int4,
    Ternary,
    Binary,
}

impl IntFormat {
    fn short(self) -> &'static str {
        match self {
            IntFormat::Int8 => "i8",
            IntFormat::Int4 => "i4",
            IntFormat::Ternary => "_ternary",
            IntFormat::Binary => "_binary",
        }
    }
}

/// How the kernel reads scales along K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelGroups {
    /// One scale per output row (for DeepSpeed chunks: the row's chunk).
    PerRow,
    /// One scale per `group_size` inputs of each row (a multiple of 32).
    Inputs(usize),
}

/// What runs a Linear after clean. The family, never the instruction set (chosen at run time).
#[derive(Debug, Clone, PartialEq)]
pub enum LinearKernel {
    /// f32 weights: f32 GEMM (fake-quantized inputs when `act_bits` is set).
    F32 { act_bits: Option<u32> },
    /// Quantized weights no integer kernel holds exactly: dequantized once at load, f32 GEMM.
    Dequantized {
        format: String,
        act_bits: Option<u32>,
        reason: String,
    },
    /// int8 / int4 weights on f32 activations.
    WeightOnly { format: IntFormat, groups: KernelGroups },
    /// Integer activation codes (2–8 bits in int8 lanes) × packed integer weights.
    Integer { format: IntFormat, groups: KernelGroups },
}

impl LinearKernel {
    /// The kernel family's name, as `ember plan`, `ember inspect` and `ember bench` print it.
    pub fn name(&self) -> String {
        let fake = |a: &Option<u32>| a.map_or(String::new(), |b| format!(" (A{b} fake-quant)"));
        match self {
            LinearKernel::F32 { act_bits } => format!("gemm_f32{}", fake(act_bits)),
            LinearKernel::Dequantized { format, act_bits, .. } => {
                format!("gemm_f32 ({format} dequantized){}", fake(act_bits))
            }
            LinearKernel::WeightOnly { format, .. } => format!("gemm_f32_{}", format.short().trim_start_matches('_')),
            LinearKernel::Integer { format, .. } => format!("gemm_i8{}", format.short()),
        }
    }

    /// Why no integer kernel runs a quantized weight (`None` when one does, or the weight is f32).
    pub fn reason(&self) -> Option<&str> {
        match self {
            LinearKernel::Dequantized { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The kernel family of a `[rows, cols]` Linear with weight `weight` (`None`: f32) and input
/// activation quantization to `act_bits` (`None`: f32 inputs).
pub fn linear_kernel(weight: Option<WeightSpec>, rows: usize, cols: usize, act_bits: Option<u32>) -> LinearKernel {
    let Some(spec) = weight.map(WeightSpec::stored) else {
        return LinearKernel::F32 { act_bits };
    };
    let dequantized = |reason: String| LinearKernel::Dequantized {
        format: spec.format_name(),
        act_bits,
        reason,
    };
    let groups = match kernel_groups(spec.layout, rows, cols) {
        Ok(g) => g,
        Err(reason) => return dequantized(reason),
    };
    let format = match integer_format(spec, groups, cols) {
        Ok(f) => f,
        Err(reason) => return dequantized(reason),
    };
    match (act_bits, format) {
        (Some(_), format) => LinearKernel::Integer { format, groups },
        (None, IntFormat::Int8 | IntFormat::Int4) => LinearKernel::WeightOnly { format, groups },
        (None, other) => dequantized(format!(
            "no f32-activation kernel for {} weights; add activation quantization to run gemm_i8{}",
            spec.format_name(),
            other.short()
        )),
    }
}

/// The kernel name of an embedding table: a row lookup in its stored format.
pub fn lookup_kernel(weight: Option<WeightSpec>) -> String {
    match weight {
        None => "lookup_f32".into(),
        Some(w) => format!("lookup_{}", w.format_name()),
    }
}

fn kernel_groups(layout: GroupLayout, rows: usize, cols: usize) -> Result<KernelGroups, String> {
    match layout {
        GroupLayout::PerRow => Ok(KernelGroups::PerRow),
        GroupLayout::RowGroups(g) if g >= cols => Ok(KernelGroups::PerRow),
        GroupLayout::RowGroups(g) if g > 0 && g.is_multiple_of(32) => Ok(KernelGroups::Inputs(g)),
        GroupLayout::RowGroups(g) => Err(format!("group size {g} is not a multiple of 32")),
        GroupLayout::Chunks(n) => {
            let len = (rows * cols) / n.max(1);
            if len > 0 && cols > 0 && len.is_multiple_of(cols) {
                Ok(KernelGroups::PerRow)
            } else {
                Err(format!("{n} DeepSpeed groups do not cover whole rows"))
            }
        }
    }
}

fn integer_format(spec: WeightSpec, groups: KernelGroups, cols: usize) -> Result<IntFormat, String> {
    let int4 = || match groups {
        KernelGroups::Inputs(_) => Ok(IntFormat::Int4),
        KernelGroups::PerRow if cols.is_multiple_of(32) => Ok(IntFormat::Int4),
        KernelGroups::PerRow => Err(format!(
            "int4 kernels need groups of a multiple of 32 inputs, not {cols}"
        )),
    };
    match (spec.scheme, spec.numerics) {
        (Scheme::Float(f), _) => Err(format!("no integer kernel for {}", f.name())),
        (Scheme::Symmetric { bits: 8 }, Numerics::Deepspeed) => {
            Err("DeepSpeed int8 codes reach −128; the int8 kernel holds ±127".into())
        }
        (Scheme::Symmetric { bits }, _) if bits > 4 => Ok(IntFormat::Int8),
        (Scheme::Symmetric { .. }, _) => int4(),
        (Scheme::Asymmetric { .. }, Numerics::Deepspeed) => {
            Err("DeepSpeed asymmetric weights carry float offsets; no integer kernel".into())
        }
        (Scheme::Asymmetric { bits }, _) if bits <= 4 => int4(),
        // Ember's zero point z lies in [0, 2^b − 1], so u − z fits int8's ±127 up to 7 bits.
        (Scheme::Asymmetric { bits }, _) if bits <= 7 => Ok(IntFormat::Int8),
        (Scheme::Asymmetric { .. }, _) => {
            Err("asymmetric 8-bit codes minus their zero point span ±255, beyond int8".into())
        }
        (Scheme::Ternary | Scheme::Binary, _) if groups != KernelGroups::PerRow => {
            Err("ternary/binary kernels take one α per row".into())
        }
        (Scheme::Ternary, _) => Ok(IntFormat::Ternary),
        (Scheme::Binary, _) => Ok(IntFormat::Binary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scheme: Scheme, numerics: Numerics, layout: GroupLayout) -> WeightSpec {
        WeightSpec {
            scheme,
            numerics,
            layout,
        }
    }

    #[test]
    fn stored_bytes_are_codes_scales_and_zero_points() {
        let e = Numerics::Ember;
        // 384×384 int4 g64 asymmetric: 192 bytes a row, 6 groups a row of 4 + 1 bytes.
        let w4 = spec(Scheme::Asymmetric { bits: 4 }, e, GroupLayout::RowGroups(64));
        assert_eq!(w4.stored_bytes(384, 384), 384 * 192 + 384 * 6 * 5);
        let ds = spec(
            Scheme::Asymmetric { bits: 4 },
            Numerics::Deepspeed,
            GroupLayout::Chunks(48),
        );
        assert_eq!(ds.stored_bytes(384, 384), 384 * 192 + 48 * 8);
        // 3 bits in the 4-bit container, a ragged last byte per row.
        let w3 = spec(Scheme::Symmetric { bits: 3 }, e, GroupLayout::PerRow);
        assert_eq!(w3.stored_bytes(2, 5), 2 * 3 + 2 * 4);
        let bin = spec(Scheme::Binary, e, GroupLayout::PerRow);
        assert_eq!(bin.stored_bytes(8, 64), 8 * 8 + 8 * 4);
        // DeepSpeed binary is stored as ternary: 2 bits.
        let dsb = spec(Scheme::Binary, Numerics::Deepspeed, GroupLayout::PerRow);
        assert_eq!(dsb.stored_bytes(8, 64), 8 * 16 + 8 * 4);
        assert_eq!(dsb.format_name(), "ternary");
    }

    #[test]
    fn kernel_follows_the_scheme_not_the_values() {
        let k = |s, n, l, act| linear_kernel(Some(spec(s, n, l)), 384, 1536, act).name();
        let e = Numerics::Ember;
        let d = Numerics::Deepspeed;
        assert_eq!(
            k(Scheme::Symmetric { bits: 8 }, e, GroupLayout::PerRow, Some(8)),
            "gemm_i8i8"
        );
        assert_eq!(
            k(Scheme::Symmetric { bits: 8 }, e, GroupLayout::PerRow, None),
            "gemm_f32_i8"
        );
        assert_eq!(
            k(Scheme::Asymmetric { bits: 4 }, e, GroupLayout::RowGroups(64), Some(8)),
            "gemm_i8i4"
        );
        assert_eq!(k(Scheme::Ternary, e, GroupLayout::PerRow, Some(8)), "gemm_i8_ternary");
        assert_eq!(
            k(Scheme::Binary, d, GroupLayout::Chunks(48), Some(8)),
            "gemm_i8_ternary"
        );
        assert_eq!(
            k(Scheme::Symmetric { bits: 8 }, e, GroupLayout::Chunks(384), Some(8)),
            "gemm_i8i8"
        );
        assert_eq!(
            k(Scheme::Asymmetric { bits: 7 }, e, GroupLayout::PerRow, Some(8)),
            "gemm_i8i8"
        );
        for (s, n, l, act, why) in [
            (Scheme::Symmetric { bits: 8 }, d, GroupLayout::PerRow, Some(8), "−128"),
            (
                Scheme::Symmetric { bits: 8 },
                e,
                GroupLayout::RowGroups(20),
                Some(8),
                "multiple of 32",
            ),
            (
                Scheme::Symmetric { bits: 8 },
                e,
                GroupLayout::Chunks(7),
                Some(8),
                "whole rows",
            ),
            (Scheme::Asymmetric { bits: 8 }, e, GroupLayout::PerRow, Some(8), "±255"),
            (
                Scheme::Asymmetric { bits: 4 },
                d,
                GroupLayout::PerRow,
                Some(8),
                "float offsets",
            ),
            (
                Scheme::Ternary,
                e,
                GroupLayout::PerRow,
                None,
                "add activation quantization",
            ),
            (Scheme::Ternary, e, GroupLayout::RowGroups(64), Some(8), "one α per row"),
            (
                Scheme::Float(FloatFormat::E4m3),
                e,
                GroupLayout::PerRow,
                Some(8),
                "fp8-e4m3",
            ),
        ] {
            let kernel = linear_kernel(Some(spec(s, n, l)), 384, 1536, act);
            assert!(
                kernel.name().starts_with("gemm_f32 ("),
                "{s:?} {l:?}: {}",
                kernel.name()
            );
            assert!(kernel.reason().unwrap().contains(why), "{s:?}: {:?}", kernel.reason());
        }
        assert_eq!(linear_kernel(None, 4, 4, Some(8)).name(), "gemm_f32 (A8 fake-quant)");
    }

    #[test]
    fn code_ranges_follow_the_numerics() {
        assert_eq!(code_range(Scheme::Symmetric { bits: 8 }, Numerics::Ember), (-127, 127));
        assert_eq!(
            code_range(Scheme::Symmetric { bits: 8 }, Numerics::Deepspeed),
            (-128, 127)
        );
        assert_eq!(code_range(Scheme::Symmetric { bits: 4 }, Numerics::Ember), (-7, 7));
        assert_eq!(code_range(Scheme::Asymmetric { bits: 3 }, Numerics::Ember), (0, 7));
    }
}
