//! `ember-kernels`: packed low-bit weight formats and fast CPU integer GEMM kernels.
//!
//! No tensor framework: plain slices in, plain slices out. Weights are `[N × K]` row-major (the
//! PyTorch `Linear` layout), activations `[M × K]`, outputs `[M × N]` f32:
//!
//! ```text
//! y[m,n] = Σ_k a[m,k] · w[n,k] · scale_a[m] · scale_w[n, k/group] (+ bias[n])
//! ```
//!
//! # Principal types
//!
//! | type | formula | bits / weight |
//! |---|---|---|
//! | [`PackedInt8`] | `s[n,g] · q`, `q ∈ [−127, 127]` | 8 |
//! | [`PackedInt4`] | `s[n,g] · (u − z[n,g])`, `u ∈ [0, 15]`, groups of 32/64/128 | 4 |
//! | [`PackedTernary`] | `α[n] · q`, `q ∈ {−1, 0, 1}` (2-bit or base-3 packing) | 2 / 1.6 |
//! | [`PackedBinary`] | `α[n] · q`, `q ∈ {−1, +1}` | 1 |
//! | [`QuantizedActivations`] | `s[m] · q`, per-token dynamic or static scale | 8 |
//!
//! Kernels (all take a [`KernelConfig`]: instruction set + threads):
//! [`gemm_i8i8`], [`gemm_i8i4`], [`gemm_i8_ternary`], [`gemm_i8_binary`] (int8 activations, exact
//! i32 accumulation) and the weight-only [`gemm_f32_i8`], [`gemm_f32_i4`] (f32 activations, for
//! small M). [`quantize_rows_i8`] is the fused per-token activation quantizer. [`PackedWeights`]
//! wraps any format with the per-layer call a runtime makes (`linear`: quantize, multiply, bias).
//!
//! # Dispatch and threads
//!
//! [`Isa::detect`] tests the CPU once (cached in a `OnceLock`); [`KernelConfig::default`] uses it
//! with rayon's global pool. Every kernel has a scalar reference ([`gemm::scalar`], always
//! compiled) and an AVX2 version with the same name in `arch/x86_64/`; integer kernels agree bit
//! for bit. [`Isa::Avx512Vnni`] runs the same AVX2 kernels with AVX-512 VNNI's `vpdpbusd` (on
//! 256-bit registers) as the integer inner product where the CPU has it (this project's Zen 4
//! machines do, although DESIGN §10 says "no VNNI"); the i8×i8 kernel then multiplies the
//! activation codes plus 128 (unsigned) by the weights and takes 128·Σw off per scale group,
//! instead of AVX2's sign trick. Never `target-cpu=native`.
//! [`Threads::Count`] runs on a dedicated, cached pool of that many threads; work is split over
//! output tiles of [`gemm::TILE_ROWS`] rows × [`gemm::TILE_PANELS`]·8 columns, and calls below
//! [`gemm::PARALLEL_MIN_MACS`] stay on the calling thread.
//!
//! # Adding a format (follow `formats/ternary.rs`, the smallest complete one)
//!
//! 1. `src/formats/<name>.rs`: a header comment with the formula and bits per weight; a struct
//!    holding codes in the shared panel layout ([`formats`] explains it: 8 rows × 4 inputs per
//!    32-byte k-block, `8/b` k-blocks per unit) built with `PanelGeom::pack`; `pack` / `quantize`
//!    / `unpack`, and `impl WeightFormat`.
//! 2. `src/gemm/scalar.rs`: a reference kernel — usually one line calling `integer_gemm` with the
//!    unpacked signed codes and a scale closure.
//! 3. `src/arch/x86_64/avx2_lowbit.rs`: a module with the same name, `prepare` + `run` (re-export
//!    it from `avx2.rs`). If the format's code can be made unsigned (`u = q + z`, `u ≤ 15`), add a
//!    `decode` arm and a `chunk_units` bound and reuse `run_ucode`, as ternary does.
//! 4. `src/gemm/mod.rs`: one `integer_kernel!` line; `tests/common/mod.rs`: one row in `FORMATS`.
//!
//! # Example
//!
//! ```
//! use ember_kernels::{KernelConfig, PackedInt8, QuantizedActivations, gemm_i8i8};
//!
//! let (m, k, n) = (2, 3, 2);
//! let x = [1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0]; // activations [m × k]
//! let w = [0.5f32, 0.0, -0.5, 1.0, 1.0, 1.0]; // weights [n × k] (PyTorch layout)
//! let cfg = KernelConfig::default();
//! let wq = PackedInt8::quantize(&w, n, k, None).unwrap();
//! let xq = QuantizedActivations::quantize(&x, m, k, &cfg);
//! let mut y = vec![0f32; m * n];
//! gemm_i8i8(&xq, &wq, Some(&[0.0, 1.0]), &mut y, &cfg);
//! let expect = [-1.0f32, 7.0, -1.0, 1.0];
//! assert!(y.iter().zip(expect).all(|(a, b)| (a - b).abs() < 0.05), "{y:?}");
//! ```

#![warn(missing_docs)]

mod arch;
pub mod config;
pub mod formats;
pub mod gemm;
mod linear;

pub use config::{Isa, KernelConfig, Threads};
pub use formats::activation::{QuantizedActivations, quantize_rows_i8, quantize_rows_i8_with};
pub use formats::binary::PackedBinary;
pub use formats::int4::{PackedInt4, ScaleDtype};
pub use formats::int8::PackedInt8;
pub use formats::ternary::{PackedTernary, TernaryPacking};
pub use formats::{FormatError, WeightFormat};
pub use gemm::{gemm_f32_i4, gemm_f32_i8, gemm_i8_binary, gemm_i8_ternary, gemm_i8i4, gemm_i8i8};
pub use linear::PackedWeights;
