//! x86-64 kernels: AVX2 + FMA (+ F16C for f16 scales), optionally with AVX-512 VNNI's `vpdpbusd`
//! on 256-bit registers. `avx2` holds the activation quantizer and `gemm_i8i8` (and re-exports the
//! low-bit kernels under the same names as `gemm/scalar.rs`), `avx2_lowbit` the int4 / ternary /
//! binary kernels, `avx2_f32` the weight-only (f32 activation) kernels.

pub(crate) mod avx2;
pub(crate) mod avx2_f32;
pub(crate) mod avx2_lowbit;
