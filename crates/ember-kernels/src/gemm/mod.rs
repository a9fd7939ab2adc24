//! The public GEMM kernels: argument checks, ISA dispatch and multithreading over output tiles.
//!
//! Every kernel computes `y[m,n] = Σ_k a[m,k] · w[n,k]` with the weights in the PyTorch `Linear`
//! layout (`[N × K]`), activations `[M × K]` and output `[M × N]`, all row-major, with the scales
//! and the optional bias fused. The scalar references live in [`scalar`]; the AVX2 kernels (same
//! names) in `arch/x86_64/` (`avx2.rs`, `avx2_lowbit.rs`, `avx2_f32.rs`). Output tiles are
//! [`TILE_ROWS`] rows × [`TILE_PANELS`] panels of 8 columns; tiles run on the threads of the
//! [`KernelConfig`].

pub mod scalar;

use crate::config::{Isa, KernelConfig, OutPtr};
use crate::formats::activation::QuantizedActivations;
use crate::formats::binary::PackedBinary;
use crate::formats::int4::PackedInt4;
use crate::formats::int8::PackedInt8;
use crate::formats::ternary::PackedTernary;
use crate::formats::{PANEL_ROWS, WeightFormat, n_panels, round_up};

/// Activation rows per tile task.
pub const TILE_ROWS: usize = 64;
/// 8-column weight panels per tile task.
pub const TILE_PANELS: usize = 4;

/// A tile: activation rows `m0..m1`, weight panels `p0..p1`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub m0: usize,
    pub m1: usize,
    pub p0: usize,
    pub p1: usize,
}

/// Below this many multiply-accumulates a call runs on the calling thread: waking a pool costs
/// tens of microseconds, more than a whole batch-1 768×768 product (see the bench table).
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// Split `[m × n]` into tiles and run `kernel` on each, on the configured threads.
fn run_tiles<F: Fn(Tile, OutPtr) + Sync + Send>(
    cfg: &KernelConfig,
    (m, k, n): (usize, usize, usize),
    y: &mut [f32],
    kernel: F,
) {
    let single;
    let cfg = if m * k * n < PARALLEL_MIN_MACS {
        single = KernelConfig {
            threads: crate::Threads::Single,
            ..*cfg
        };
        &single
    } else {
        cfg
    };
    let np = n_panels(n);
    let (tm, tp) = (m.div_ceil(TILE_ROWS), np.div_ceil(TILE_PANELS));
    let out = OutPtr {
        ptr: y.as_mut_ptr(),
        ld: n,
    };
    cfg.for_each_task(tm * tp, |t| {
        let (i, j) = (t % tm, t / tm);
        let tile = Tile {
            m0: i * TILE_ROWS,
            m1: ((i + 1) * TILE_ROWS).min(m),
            p0: j * TILE_PANELS,
            p1: ((j + 1) * TILE_PANELS).min(np),
        };
        kernel(tile, out);
    });
}

fn check_shapes(what: &str, m: usize, k: usize, n: usize, wk: usize, bias: Option<&[f32]>, y: &[f32]) {
    assert_eq!(k, wk, "{what}: activations have {k} columns but the weights have {wk}");
    assert_eq!(y.len(), m * n, "{what}: output must be m × n = {m} × {n}");
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "{what}: bias must have n = {n} entries");
    }
}

/// The bias padded to whole panels (the kernels load 8 columns at a time).
pub(crate) fn padded_bias(bias: Option<&[f32]>, n: usize) -> Option<Vec<f32>> {
    bias.map(|b| {
        let mut v = vec![0f32; n_panels(n) * PANEL_ROWS];
        v[..n].copy_from_slice(b);
        v
    })
}

macro_rules! integer_kernel {
    ($(#[$doc:meta])* $name:ident, $w:ty) => {
        $(#[$doc])*
        ///
        /// # Panics
        /// If `a.cols() != w.cols()`, `y.len() != a.rows() * w.rows()` or the bias is not `w.rows()` long.
        pub fn $name(a: &QuantizedActivations, w: &$w, bias: Option<&[f32]>, y: &mut [f32], cfg: &KernelConfig) {
            let (m, n) = (a.rows(), w.rows());
            check_shapes(stringify!($name), m, a.cols(), n, w.cols(), bias, y);
            match cfg.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx512Vnni => {
                    let vnni = cfg.isa == Isa::Avx512Vnni;
                    let prep = crate::arch::x86_64::avx2::$name::prepare(a, w, bias, vnni);
                    run_tiles(cfg, (m, a.cols(), n), y, |tile, out| {
                        // SAFETY: `Isa::Avx2` is only constructed when the CPU supports AVX2+FMA+F16C;
                        // tiles are disjoint and lie inside `y` (checked to be m × n above).
                        unsafe { crate::arch::x86_64::avx2::$name::run(&prep, tile, out, vnni) }
                    });
                }
                _ => scalar::$name(a, w, bias, y),
            }
        }
    };
}

integer_kernel!(
    /// int8 activations × int8 weights → i32 sums → f32, scales and bias fused (AVX2: `maddubs`
    /// with the sign trick; weights are ±127 by construction of [`PackedInt8`]).
    gemm_i8i8,
    PackedInt8
);
integer_kernel!(
    /// int8 activations × int4 weights (nibbles unpacked in registers, i32 per group, then the
    /// group scale), zero points and bias fused.
    gemm_i8i4,
    PackedInt4
);
integer_kernel!(
    /// int8 activations × ternary weights, multiply-free (`Σ q·a = Σ (q+1)·a − Σ a`).
    gemm_i8_ternary,
    PackedTernary
);
integer_kernel!(
    /// int8 activations × binary weights, multiply-free (`Σ q·a = 2·Σ_{b=1} a − Σ a`).
    gemm_i8_binary,
    PackedBinary
);

/// f32 activations padded per row to a multiple of 32 columns (weight-only kernels read whole units).
pub(crate) struct PaddedF32 {
    pub data: Vec<f32>,
    pub stride: usize,
}

pub(crate) fn pad_f32(a: &[f32], m: usize, k: usize) -> PaddedF32 {
    let stride = round_up(k.max(1), crate::formats::ACT_K_ALIGN);
    let mut data = vec![0f32; m * stride];
    for i in 0..m {
        data[i * stride..i * stride + k].copy_from_slice(&a[i * k..(i + 1) * k]);
    }
    PaddedF32 { data, stride }
}

macro_rules! weight_only_kernel {
    ($(#[$doc:meta])* $name:ident, $w:ty) => {
        $(#[$doc])*
        ///
        /// # Panics
        /// If `a.len() != m * w.cols()`, `y.len() != m * w.rows()` or the bias is not `w.rows()` long.
        pub fn $name(a: &[f32], m: usize, w: &$w, bias: Option<&[f32]>, y: &mut [f32], cfg: &KernelConfig) {
            let (k, n) = (w.cols(), w.rows());
            assert_eq!(a.len(), m * k, "{}: activations must be m × k = {m} × {k}", stringify!($name));
            check_shapes(stringify!($name), m, k, n, k, bias, y);
            match cfg.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx512Vnni => {
                    let prep = crate::arch::x86_64::avx2_f32::$name::prepare(a, m, w, bias);
                    run_tiles(cfg, (m, k, n), y, |tile, out| {
                        // SAFETY: as for the integer kernels: AVX2+FMA+F16C verified, disjoint tiles.
                        unsafe { crate::arch::x86_64::avx2_f32::$name::run(&prep, tile, out) }
                    });
                }
                _ => scalar::$name(a, m, w, bias, y),
            }
        }
    };
}

weight_only_kernel!(
    /// f32 activations × int8 weights (weight-only quantization, for small M): weights are
    /// converted to f32 a register at a time, never as a whole matrix.
    gemm_f32_i8,
    PackedInt8
);
weight_only_kernel!(
    /// f32 activations × int4 weights (weight-only quantization, for small M / batch-1 decode).
    gemm_f32_i4,
    PackedInt4
);
