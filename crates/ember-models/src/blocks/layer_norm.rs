//! Layer normalization over the last dimension, with HF's parameter names (`weight`, `bias`)
//! and the epsilon from the model's config (BERT: 1e-12).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// `y = (x − mean) / √(var + eps) · weight + bias`, statistics over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale (γ), shape `[dim]`.
    pub weight: Param<Tensor<1>>,
    /// Shift (β), shape `[dim]`.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance; from `layer_norm_eps` in `config.json`.
    pub eps: f64,
}

impl LayerNorm {
    /// The identity normalization (weight 1, bias 0).
    pub fn new(dim: usize, eps: f64, device: &Device) -> LayerNorm {
        LayerNorm {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            bias: Param::from_tensor(Tensor::zeros([dim], device)),
            eps,
        }
    }

    /// Normalizes the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., dim]`
    /// - output: `[..., dim]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::layer_norm(x, self.weight.val(), Some(self.bias.val()), self.eps)
    }
}
