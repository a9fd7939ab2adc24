//! What a quantized number is, apart from its bits: which formulas (`Numerics`), which
//! minifloat grid (`FloatFormat`), how a group's range is chosen (`Clip`). The config language
//! parses these (features `serde` and `schema`) and the artifact stores their serde forms; every
//! other crate reads them from here.

#[cfg(feature = "schema")]
use schemars::JsonSchema;
#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Which quantizer formulas run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub enum Numerics {
    /// Correct formulas: symmetric scale max/(2^(b−1)−1), asymmetric range /(2^b−1), epsilon guards.
    #[default]
    Ember,
    /// DeepSpeed's formulas bit for bit (clipped symmetric scale, asymmetric /2^b).
    Deepspeed,
}

/// How a weight group's quantization range is chosen (Ember extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub enum Clip {
    /// The group's full range: max |x| (symmetric) or min…max (asymmetric).
    #[default]
    None,
    /// The range scaled by the clip ratio in 1.00, 0.99, …, 0.50 that minimizes the group's
    /// squared rounding error (ties keep the wider range).
    Mse,
}

/// A floating-point weight format (Ember extension): the value grid, scaled per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub enum FloatFormat {
    /// fp8 with 4 exponent and 3 mantissa bits (max 448).
    E4m3,
    /// fp8 with 5 exponent and 2 mantissa bits (max 57344).
    E5m2,
    /// fp6 with 3 exponent and 2 mantissa bits (max 28).
    E3m2,
    /// fp4 with 2 exponent and 1 mantissa bit (max 6).
    E2m1,
}

impl FloatFormat {
    /// Bits per stored code.
    pub fn bits(self) -> u32 {
        match self {
            FloatFormat::E4m3 | FloatFormat::E5m2 => 8,
            FloatFormat::E3m2 => 6,
            FloatFormat::E2m1 => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FloatFormat::E4m3 => "fp8-e4m3",
            FloatFormat::E5m2 => "fp8-e5m2",
            FloatFormat::E3m2 => "fp6-e3m2",
            FloatFormat::E2m1 => "fp4-e2m1",
        }
    }
}
