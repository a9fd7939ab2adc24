//! Ember's compressible building blocks: each a small burn `Module` that owns its parameters in
//! the HF/PyTorch layout, so weights load without transposition and compression techniques find
//! the layout quantizers and kernels use.

pub mod embedding;
pub mod layer_norm;
pub mod linear;

use burn::module::{Param, ParamId};
use burn::tensor::{Device, Tensor};

/// The placeholder a checkpoint is loaded into: a parameter of `shape` that reads as zeros but
/// allocates nothing until it is read. Loading replaces it, so no zero copy of the model is ever
/// materialized next to the loaded one.
pub(crate) fn placeholder<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::uninitialized(
        ParamId::new(),
        move |device, _require_grad| Tensor::zeros(shape, device),
        device.clone(),
        true,
        shape.into(),
    )
}

pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
