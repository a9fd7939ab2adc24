//! The format table every integration test iterates, plus seeded data generators.
//!
//! Adding a format = one row in [`FORMATS`] (and one arm in [`Weights`]).
#![allow(dead_code)]

use ember_kernels::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How weight / activation codes are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Uniform over the format's whole code range.
    Random,
    /// Only the extreme codes (±127, −8/7, 0/15, ±1), with every third row all zero.
    Extreme,
    /// Worst case for every 16-bit intermediate: whole rows of one extreme code (even weight rows
    /// the maximum, odd rows the minimum) against whole rows of −128 or 127 activations, so no
    /// product cancels another.
    Saturate,
}

/// A packed weight matrix of any format (the crate's own wrapper).
pub use ember_kernels::PackedWeights as Weights;

/// Draws random packed weights `[n × k]` in a mode; returns them and the signed codes they must
/// unpack to.
pub type RandomWeights = fn(&mut StdRng, usize, usize, Mode) -> (Weights, Vec<i8>);

/// One row of the format table.
pub struct FormatCase {
    pub name: &'static str,
    /// Random packed weights `[n × k]` drawn in `mode`; returns the packed weights and the signed
    /// integer codes they must unpack to.
    pub random: RandomWeights,
    /// Error budget (relative Frobenius error of `y` vs the unquantized f32 GEMM, Gaussian data).
    pub quant_budget: f32,
}

fn scales(rng: &mut StdRng, count: usize) -> Vec<f32> {
    (0..count).map(|_| rng.random_range(0.001f32..0.1)).collect()
}

fn codes(rng: &mut StdRng, n: usize, k: usize, mode: Mode, range: (i8, i8)) -> Vec<i8> {
    (0..n * k)
        .map(|i| match mode {
            Mode::Random => rng.random_range(range.0..=range.1),
            Mode::Extreme if (i / k) % 3 == 2 => 0,
            Mode::Extreme => {
                if rng.random_bool(0.5) {
                    range.0
                } else {
                    range.1
                }
            }
            Mode::Saturate if (i / k).is_multiple_of(2) => range.1,
            Mode::Saturate => range.0,
        })
        .collect()
}

fn int8(group: Option<usize>) -> impl Fn(&mut StdRng, usize, usize, Mode) -> (Weights, Vec<i8>) {
    move |rng, n, k, mode| {
        let q = codes(rng, n, k, mode, (-127, 127));
        let s = scales(rng, n * group.map_or(1, |g| k.div_ceil(g)));
        (Weights::Int8(PackedInt8::pack(&q, n, k, &s, group).unwrap()), q)
    }
}

fn int4(group: usize, asym: bool, dtype: ScaleDtype) -> impl Fn(&mut StdRng, usize, usize, Mode) -> (Weights, Vec<i8>) {
    move |rng, n, k, mode| {
        let groups = k.div_ceil(group);
        let s = scales(rng, n * groups);
        if asym {
            let u: Vec<u8> = codes(rng, n, k, mode, (0, 15)).iter().map(|&c| c as u8).collect();
            let z: Vec<u8> = (0..n * groups).map(|_| rng.random_range(0..=15)).collect();
            let p = PackedInt4::pack_asymmetric(&u, n, k, &s, &z, group, dtype).unwrap();
            assert_eq!(p.unpack_codes(), u, "int4 asymmetric raw codes must round-trip");
            let q = (0..n * k)
                .map(|i| u[i] as i8 - z[(i / k) * groups + (i % k) / group] as i8)
                .collect();
            (Weights::Int4(p), q)
        } else {
            let q = codes(rng, n, k, mode, (-8, 7));
            (
                Weights::Int4(PackedInt4::pack_symmetric(&q, n, k, &s, group, dtype).unwrap()),
                q,
            )
        }
    }
}

fn ternary(packing: TernaryPacking) -> impl Fn(&mut StdRng, usize, usize, Mode) -> (Weights, Vec<i8>) {
    move |rng, n, k, mode| {
        let q = codes(rng, n, k, mode, (-1, 1));
        let a = scales(rng, n);
        (Weights::Ternary(PackedTernary::pack(&q, n, k, &a, packing).unwrap()), q)
    }
}

fn binary(rng: &mut StdRng, n: usize, k: usize, mode: Mode) -> (Weights, Vec<i8>) {
    let q: Vec<i8> = match mode {
        Mode::Saturate => codes(rng, n, k, mode, (-1, 1)),
        _ => (0..n * k).map(|_| if rng.random_bool(0.5) { 1 } else { -1 }).collect(),
    };
    let a = scales(rng, n);
    (Weights::Binary(PackedBinary::pack(&q, n, k, &a).unwrap()), q)
}

macro_rules! case {
    ($name:literal, $budget:expr, $f:expr) => {
        FormatCase {
            name: $name,
            random: |rng, n, k, mode| ($f)(rng, n, k, mode),
            quant_budget: $budget,
        }
    };
}

/// Budgets: the relative Frobenius error measured on N(0,1) data, 16×384×48, seed 2024
/// (`cargo test -p ember-kernels --test error_budget -- --nocapture` prints it: int8 0.010/0.009,
/// int4 0.096/0.110/0.106, ternary 0.438, binary 0.634) with a ≈1.4–1.5× margin; the int8
/// activation quantization is included.
pub const FORMATS: &[FormatCase] = &[
    case!("int8/row", 0.016, int8(None)),
    case!("int8/g32", 0.016, int8(Some(32))),
    case!("int4/sym/g32/f16", 0.145, int4(32, false, ScaleDtype::F16)),
    case!("int4/sym/g64/f32", 0.165, int4(64, false, ScaleDtype::F32)),
    case!("int4/asym/g128/f16", 0.16, int4(128, true, ScaleDtype::F16)),
    case!("ternary/2bit", 0.65, ternary(TernaryPacking::TwoBit)),
    case!("ternary/base3", 0.65, ternary(TernaryPacking::Base3)),
    case!("binary", 0.9, binary),
];

/// Builds a format's weights from f32 with its own quantizer (for the error budget).
pub fn quantize_like(name: &str, w: &[f32], n: usize, k: usize) -> Weights {
    match name {
        "int8/row" => Weights::Int8(PackedInt8::quantize(w, n, k, None).unwrap()),
        "int8/g32" => Weights::Int8(PackedInt8::quantize(w, n, k, Some(32)).unwrap()),
        "int4/sym/g32/f16" => Weights::Int4(PackedInt4::quantize(w, n, k, 32, false, ScaleDtype::F16).unwrap()),
        "int4/sym/g64/f32" => Weights::Int4(PackedInt4::quantize(w, n, k, 64, false, ScaleDtype::F32).unwrap()),
        "int4/asym/g128/f16" => Weights::Int4(PackedInt4::quantize(w, n, k, 128, true, ScaleDtype::F16).unwrap()),
        "ternary/2bit" => Weights::Ternary(PackedTernary::quantize(w, n, k, TernaryPacking::TwoBit).unwrap()),
        "ternary/base3" => Weights::Ternary(PackedTernary::quantize(w, n, k, TernaryPacking::Base3).unwrap()),
        "binary" => Weights::Binary(PackedBinary::quantize(w, n, k).unwrap()),
        other => panic!("unknown format {other}"),
    }
}

/// Odd shapes `(m, k, n)`: 1×1, 1×K, M across tiles and micro-tiles, K and N off every width.
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 37, 5),
    (1, 300, 24),
    (2, 64, 8),
    (3, 33, 9),
    (5, 129, 17),
    (7, 100, 31),
    (4, 256, 40),
    (66, 96, 23),
    (9, 1000, 16),
];

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Activation codes `[m × k]`: random over [−128, 127], or extremes (±127, −128) with zero rows.
pub fn activations(rng: &mut StdRng, m: usize, k: usize, mode: Mode) -> QuantizedActivations {
    let q: Vec<i8> = (0..m * k)
        .map(|i| match mode {
            Mode::Random => rng.random_range(-128..=127),
            Mode::Extreme if (i / k) % 4 == 1 => 0,
            Mode::Extreme => [127, -127, -128][rng.random_range(0..3)],
            Mode::Saturate => {
                if (i / k).is_multiple_of(2) {
                    -128
                } else {
                    127
                }
            }
        })
        .collect();
    let s: Vec<f32> = (0..m).map(|_| rng.random_range(0.001f32..0.05)).collect();
    QuantizedActivations::from_codes(&q, m, k, &s).unwrap()
}

pub fn gaussian(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

/// Plain f32 reference GEMM `y = a · wᵀ (+ bias)` in f64 accumulation.
pub fn f32_gemm(a: &[f32], w: &[f32], m: usize, k: usize, n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let d: f64 = (0..k).map(|t| a[i * k + t] as f64 * w[j * k + t] as f64).sum();
            y[i * n + j] = d as f32 + bias.map_or(0.0, |b| b[j]);
        }
    }
    y
}

/// `Σ_k |a|·|w|` per output: the natural scale of a dot product's rounding error.
pub fn abs_gemm(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let aa: Vec<f32> = a.iter().map(|x| x.abs()).collect();
    let ww: Vec<f32> = w.iter().map(|x| x.abs()).collect();
    f32_gemm(&aa, &ww, m, k, n, None)
}

/// The AVX2 configurations under test (empty where the CPU lacks AVX2: the test then only checks
/// the reference against itself and says so).
pub fn simd_configs() -> Vec<KernelConfig> {
    let mut out = Vec::new();
    for isa in [Isa::Avx2, Isa::Avx512Vnni] {
        if isa.is_supported() {
            out.push(KernelConfig::with_isa(isa, Threads::Single));
            out.push(KernelConfig::with_isa(isa, Threads::Count(2)));
        } else {
            eprintln!("{isa:?} not supported on this CPU: its kernels are not exercised here");
        }
    }
    out
}
