//! Fake quantization on burn tensors: the composed model computes with dequantized values, and
//! gradients pass straight through (`x + (q(x) − x).detach()`, compat-notes §2.6).
//!
//! Weights go through [`crate::numerics`] (the same code clean uses to pack them), so without
//! autodiff the forward weight is *exactly* the dequantized packed weight. Under autodiff the
//! straight-through form is used, whose forward value may differ from q(x) by float rounding of
//! `x + (q − x)` — irrelevant for training, and never used for evaluation or calibration.
//! Activations are quantized on the tensor's own device with tensor ops (per token, or with a
//! calibrated static range).

use burn::tensor::{Tensor, TensorData};
use ember_config::types::{Clip, Numerics, QuantizationType};

use crate::numerics::{self, GroupLayout, Quantized, Scheme};

/// How a weight is fake-quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightQuant {
    pub scheme: Scheme,
    pub layout: GroupLayout,
    pub numerics: Numerics,
    /// How each group's range is chosen (integer schemes).
    pub clip: Clip,
}

impl WeightQuant {
    /// The codes of a row-major `[rows, cols]` weight: what fake quantization computes with and
    /// what clean packs (round to nearest; GPTQ's codes come from `LinearSlots::precompute`).
    pub fn quantize(&self, w: &[f32], rows: usize, cols: usize) -> Quantized {
        numerics::quantize_with(w, rows, cols, self.layout, self.scheme, self.numerics, self.clip)
    }

    /// The fake-quantized weight `[rows, cols]`.
    ///
    /// # Shapes
    /// - `w`: `[rows, cols]` (Linear `[out, in]`, Embedding `[vocab, dim]`)
    pub fn apply(&self, w: Tensor<2>) -> Tensor<2> {
        let [rows, cols] = w.dims();
        let device = w.device();
        let values = w
            .clone()
            .detach()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data reads back as f32");
        let q = numerics::dequantize(&self.quantize(&values, rows, cols));
        let q = Tensor::<2>::from_data(TensorData::new(q, [rows, cols]), &device);
        straight_through(w, q)
    }
}

/// Where an activation quantizer takes its range from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActRange {
    /// Per token (last dimension), computed on every call.
    Dynamic,
    /// One range per tensor, fixed by calibration: `[min, max]`.
    Static { min: f32, max: f32 },
}

/// How an input activation is fake-quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub bits: u32,
    pub kind: QuantizationType,
    pub range: ActRange,
    pub numerics: Numerics,
}

impl ActQuant {
    /// The fake-quantized activation.
    ///
    /// # Shapes
    /// - `x`: `[..., d]`; dynamic ranges are per position of the leading dimensions (per token).
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let q = match (self.kind, self.range) {
            (QuantizationType::Symmetric, ActRange::Dynamic) => {
                let max = x.clone().detach().abs().max_dim(D - 1);
                self.symmetric(x.clone().detach(), max)
            }
            (QuantizationType::Symmetric, ActRange::Static { min, max }) => {
                let r = min.abs().max(max.abs());
                let device = x.device();
                let dims = x.dims();
                let mut shape = dims;
                shape[D - 1] = 1;
                let max = Tensor::<D>::full(shape, r, &device);
                self.symmetric(x.clone().detach(), max)
            }
            (QuantizationType::Asymmetric, ActRange::Dynamic) => {
                let d = x.clone().detach();
                let mn = d.clone().min_dim(D - 1);
                let mx = d.clone().max_dim(D - 1);
                self.asymmetric(d, mn, mx)
            }
            (QuantizationType::Asymmetric, ActRange::Static { min, max }) => {
                let device = x.device();
                let mut shape = x.dims();
                shape[D - 1] = 1;
                let mn = Tensor::<D>::full(shape, min, &device);
                let mx = Tensor::<D>::full(shape, max, &device);
                self.asymmetric(x.clone().detach(), mn, mx)
            }
        };
        straight_through(x, q)
    }

    /// `max` has the input's rank with the last dimension 1.
    fn symmetric<const D: usize>(&self, x: Tensor<D>, max: Tensor<D>) -> Tensor<D> {
        let (scale, lo, hi) = match self.numerics {
            Numerics::Ember => {
                let qmax = ((1i32 << (self.bits - 1)) - 1) as f32;
                (max / qmax, -qmax, qmax)
            }
            Numerics::Deepspeed => {
                let range = (1u64 << self.bits) as f32;
                (max * 2.0 / range, -range / 2.0, range / 2.0 - 1.0)
            }
        };
        // An all-zero token has scale 0: divide by 1 instead, its codes are 0 either way.
        let zero = scale.clone().equal_elem(0.0);
        let safe = scale.clone().mask_fill(zero, 1.0);
        (x / safe).round().clamp(lo, hi) * scale
    }

    fn asymmetric<const D: usize>(&self, x: Tensor<D>, mn: Tensor<D>, mx: Tensor<D>) -> Tensor<D> {
        let top = ((1u64 << self.bits) - 1) as f32;
        match self.numerics {
            Numerics::Ember => {
                let scale = (mx - mn.clone()) / top;
                let zero_scale = scale.clone().equal_elem(0.0);
                let safe = scale.clone().mask_fill(zero_scale.clone(), 1.0);
                let z = (mn.clone().neg() / safe.clone()).round();
                let q = ((x.clone() / safe.clone()).round() + z.clone()).clamp(0.0, top);
                // A constant token dequantizes to itself.
                let deq = (q - z) * safe;
                deq.mask_where(zero_scale.expand(x.dims()), mn.expand(x.dims()))
            }
            Numerics::Deepspeed => {
                let range = (1u64 << self.bits) as f32;
                let scale = (mx - mn.clone()) / range;
                let zero_scale = scale.clone().equal_elem(0.0);
                let safe = scale.clone().mask_fill(zero_scale.clone(), 1.0);
                let z = (mn.clone() / safe.clone()).round() * safe.clone();
                let deq = ((x.clone() - z.clone()) / safe.clone()).round().clamp(0.0, range - 1.0) * safe + z;
                deq.mask_where(zero_scale.expand(x.dims()), mn.expand(x.dims()))
            }
        }
    }
}

/// `x + (q − x).detach()` when `x` tracks gradients; exactly `q` otherwise.
pub fn straight_through<const D: usize>(x: Tensor<D>, q: Tensor<D>) -> Tensor<D> {
    if x.is_require_grad() {
        x.clone() + (q - x).detach()
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn t2(v: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
    }

    fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn weight_fake_quant_equals_the_numerics_exactly_without_autodiff() {
        let device = Device::flex();
        let w: Vec<f32> = (0..24).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.173).collect();
        let spec = WeightQuant {
            scheme: Scheme::Symmetric { bits: 4 },
            layout: GroupLayout::RowGroups(4),
            numerics: Numerics::Ember,
            clip: Clip::None,
        };
        let got = vec_of(spec.apply(t2(&w, [4, 6], &device)));
        let want = numerics::fake_quantize(&w, 4, 6, spec.layout, spec.scheme, spec.numerics);
        assert_eq!(got, want);
        // With the MSE range search, the fake-quantized weight is the dequantized searched codes.
        let mse = WeightQuant {
            clip: Clip::Mse,
            ..spec
        };
        let got = vec_of(mse.apply(t2(&w, [4, 6], &device)));
        assert_eq!(got, numerics::dequantize(&mse.quantize(&w, 4, 6)));
    }

    #[test]
    fn per_token_activation_quant_uses_one_scale_per_row() {
        let device = Device::flex();
        // Row 0: max 1.27 → s = 0.01, 0.005 → 0.5 → 0 (ties to even); row 1 is all zero (no NaN).
        let x = t2(&[1.27, -0.635, 0.005, 0.0, 0.0, 0.0], [2, 3], &device);
        let q = ActQuant {
            bits: 8,
            kind: QuantizationType::Symmetric,
            range: ActRange::Dynamic,
            numerics: Numerics::Ember,
        };
        let got = vec_of(q.apply(x));
        assert!((got[0] - 1.27).abs() < 1e-6);
        assert!((got[1] + 0.64).abs() < 1e-6, "{got:?}"); // −63.5 → −64 (ties to even) · 0.01
        assert_eq!(&got[2..], &[0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn static_asymmetric_activation_clamps_to_the_calibrated_range() {
        let device = Device::flex();
        let x = t2(&[-2.0, 0.0, 0.5, 3.0], [1, 4], &device);
        let q = ActQuant {
            bits: 8,
            kind: QuantizationType::Asymmetric,
            range: ActRange::Static { min: -1.0, max: 1.0 },
            numerics: Numerics::Ember,
        };
        let got = vec_of(q.apply(x));
        assert!((got[0] + 1.0).abs() < 1e-2 && (got[3] - 1.0).abs() < 1e-2, "{got:?}");
        assert!(got.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn straight_through_gradient_of_a_quantized_linear_is_the_float_one() {
        // y = x·q(W)ᵀ, L = Σ y → dL/dW[o, i] = Σ_batch x[b, i] (q is treated as identity), and
        // dL/dx[b, i] = Σ_o q(W)[o, i] (the forward uses the quantized weight).
        let device = Device::flex().autodiff();
        let wv = [0.3f32, -0.7, 0.2, 0.9, 0.05, -0.4];
        let xv = [1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0];
        let w = t2(&wv, [2, 3], &device).require_grad();
        let x = t2(&xv, [2, 3], &device).require_grad();
        let spec = WeightQuant {
            scheme: Scheme::Symmetric { bits: 3 },
            layout: GroupLayout::PerRow,
            numerics: Numerics::Ember,
            clip: Clip::None,
        };
        let qw = spec.apply(w.clone());
        let y = x.clone().matmul(qw.clone().transpose());
        let grads = y.sum().backward();
        let gw = vec_of(w.grad(&grads).unwrap());
        let want_gw: Vec<f32> = (0..2).flat_map(|_| (0..3).map(|i| xv[i] + xv[3 + i])).collect();
        assert_eq!(gw, want_gw);
        let q = numerics::fake_quantize(&wv, 2, 3, spec.layout, spec.scheme, spec.numerics);
        let gx = vec_of(x.grad(&grads).unwrap());
        for b in 0..2 {
            for i in 0..3 {
                assert!((gx[b * 3 + i] - (q[i] + q[3 + i])).abs() < 1e-6);
            }
        }
    }
}
