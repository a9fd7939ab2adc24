//! Ember's compressible building blocks: each a small burn `Module` that owns its parameters in
//! the HF/PyTorch layout, so weights load without transposition and compression techniques find
//! the layout quantizers and kernels use.

pub mod embedding;
pub mod layer_norm;
pub mod linear;

pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
