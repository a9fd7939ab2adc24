//! Instruction-set-specific kernels. Each ISA module carries the same function names as the scalar
//! references in `gemm/scalar.rs`; the public kernels in `gemm/mod.rs` pick one at run time from
//! the [`crate::Isa`] in their [`crate::KernelConfig`] (detected once, cached).

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
