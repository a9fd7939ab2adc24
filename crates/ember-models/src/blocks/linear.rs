//! A dense projection `y = x·Wᵀ + b` with the weight stored `[out, in]` (HF/PyTorch layout).
//!
//! burn's own `Linear` stores `[in, out]`; keeping PyTorch's layout means checkpoints load without
//! transposition (no square weight can load silently transposed) and the quantizers and kernels see
//! the row-major `[out, in]` weight they are written for. The compression slots (weight
//! transforms and fake quantization, input observer and activation quantization) are filled by the
//! composer; empty slots leave the layer exactly `x·Wᵀ + b`.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use ember_core::slots::LinearSlots;

/// A dense layer `y = x·Wᵀ + b`.
#[derive(Module, Debug)]
pub struct Linear {
    /// Weight, shape `[d_out, d_in]`.
    pub weight: Param<Tensor<2>>,
    /// Optional bias, shape `[d_out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Compression state attached by the composer (empty: plain dense layer).
    pub slots: LinearSlots,
}

impl Linear {
    /// A layer with weights drawn uniformly from `±1/√d_in` (PyTorch's default range) and a bias.
    pub fn random(d_in: usize, d_out: usize, device: &Device) -> Linear {
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let dist = Distribution::Uniform(-bound, bound);
        Linear {
            weight: Param::from_tensor(Tensor::random([d_out, d_in], dist, device)),
            bias: Some(Param::from_tensor(Tensor::random([d_out], dist, device))),
            slots: LinearSlots::default(),
        }
    }

    /// A layer with all-zero weight and bias (allocated only if read), the placeholder a
    /// checkpoint is loaded into.
    pub fn zeros(d_in: usize, d_out: usize, device: &Device) -> Linear {
        Linear {
            weight: super::placeholder([d_out, d_in], device),
            bias: Some(super::placeholder([d_out], device)),
            slots: LinearSlots::default(),
        }
    }

    /// Input width `d_in`.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output width `d_out`.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Applies the layer to the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]`
    /// - output: `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let weight_t = self.slots.weight(self.weight.val()).transpose();
        let x = self.slots.input(x);
        burn::tensor::module::linear(x, weight_t, self.bias.as_ref().map(|b| b.val()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn forward_is_x_times_w_transposed_plus_b() {
        let device = Device::flex();
        // W = [[1, 2, 3], [4, 5, 6]] ([out=2, in=3]), b = [10, 20].
        let layer = Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]),
                &device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![10.0f32, 20.0], [2]),
                &device,
            ))),
            slots: LinearSlots::default(),
        };
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, -1.0], [1, 3]), &device);
        let y = layer.forward(x).into_data().try_to_vec::<f32>().unwrap();
        // [1−3+10, 4−6+20]
        assert_eq!(y, vec![8.0, 18.0]);
        assert_eq!((layer.d_in(), layer.d_out()), (3, 2));
    }
}
