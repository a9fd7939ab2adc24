//! `ember-runtime`: the compressed model as plain data ([`CompressedModel`]), its packed storage
//! ([`QuantTensor`]), the conversion into `ember-kernels` formats ([`packed`]), and the CPU engine.
//!
//! No tensor framework here: `clean` (in `ember-models`) turns a composed burn model into a
//! [`CompressedModel`]; this crate stores and runs it.

pub mod artifact;
mod check;
pub mod cpu;
pub mod error;
pub mod model;
pub mod names;
pub mod output;
pub mod packed;
pub mod quant_tensor;

pub use cpu::{Engine, EngineOptions, ModuleKernel, Output};
pub use error::{Result, RuntimeError};
pub use model::{
    ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, Embeddings, Layer, LayerArch, LayerNormParams,
    Meta, Pooling, Weight,
};
pub use quant_tensor::{QuantTensor, Zeros};
