//! Ember's composer core: quantizer numerics, fake quantization with straight-through gradients,
//! the compression slots compressible blocks carry, the technique trait and registry, the
//! composer and calibration.
//!
//! # Brief overview
//! - [`numerics::quantize`] / [`numerics::dequantize`]: weights to codes and scales (and back) in
//!   Ember or DeepSpeed numerics — the single definition clean's packing also uses.
//! - [`slots::LinearSlots`] / [`slots::EmbeddingSlots`]: what a block does to its weight and input.
//! - [`Technique`] + [`Registry`]: one trait for built-in and user techniques, explicit registration.
//! - [`Composer`]: `Composer::new(Registry::with_builtins()).compose(model, &config)` plans and
//!   attaches; [`Composed::calibrate`] fixes static activation ranges.

pub mod builtin;
pub mod composer;
mod device_quant;
mod error;
pub mod fake_quant;
pub mod lifecycle;
pub use ember_numerics as numerics;
pub mod observer;
pub mod registry;
pub mod reparam;
pub mod slots;
pub mod technique;

pub use composer::{Composed, Composer, CompressibleModel};
pub use error::CoreError;
pub use registry::Registry;
pub use technique::{AttachContext, SiteSlots, Technique};
