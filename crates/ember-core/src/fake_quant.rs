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
use ember_config::types::{Clip, Numerics};

use crate::device_quant::{RoundingNoise, fake_quantize_int};
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

    /// The same quantizer at another bit width (MoQ's phases): integer schemes become the
    /// scheme those bits mean (2 ternary, 1 binary); a floating-point format stays itself.
    pub fn with_bits(self, bits: u32) -> WeightQuant {
        let scheme = match self.scheme {
            Scheme::Float(_) => self.scheme,
            Scheme::Asymmetric { .. } => Scheme::from_plan(bits, true, None),
            _ => Scheme::from_plan(bits, false, None),
        };
        WeightQuant { scheme, ..self }
    }

    /// The fake-quantized weight `[rows, cols]`.
    ///
    /// # Shapes
    /// - `w`: `[rows, cols]` (Linear `[out, in]`, Embedding `[vocab, dim]`)
    pub fn apply(&self, w: Tensor<2>) -> Tensor<2> {
        let q = self.quantized_values(w.clone(), RoundingNoise::Nearest);
        straight_through(w, q)
    }

    /// The forward weight `r·w + (1 − r)·q(w)` for a float share `r` (MoQ's mixed blend; `r` = 0
    /// is [`Self::apply`]), with straight-through gradients; `stochastic` adds U(−½, ½) before
    /// rounding integer codes (MoQ's stochastic rounding).
    pub fn apply_blended(&self, w: Tensor<2>, float_share: f64, stochastic: bool) -> Tensor<2> {
        let noise = if stochastic {
            RoundingNoise::Stochastic
        } else {
            RoundingNoise::Nearest
        };
        let q = self.quantized_values(w.clone(), noise);
        let q = if float_share > 0.0 {
            w.clone().inner().mul_scalar(float_share) + q.mul_scalar(1.0 - float_share)
        } else {
            q
        };
        straight_through(w, q)
    }

    /// `dequantize(quantize(w))` as a plain tensor on `w`'s device: integer codes with tensor ops
    /// there (only per-group ranges visit the host), other schemes and the MSE range search
    /// through the slice quantizer.
    fn quantized_values(&self, w: Tensor<2>, noise: RoundingNoise) -> Tensor<2> {
        let w = w.inner();
        let on_device = match (self.scheme, self.clip) {
            (Scheme::Symmetric { bits }, Clip::None) => Some((bits, false)),
            (Scheme::Asymmetric { bits }, Clip::None) => Some((bits, true)),
            _ => None,
        };
        if let Some((bits, asymmetric)) = on_device
            && let Some(q) = fake_quantize_int(w.clone(), bits, asymmetric, self.layout, self.numerics, noise)
        {
            return q;
        }
        let [rows, cols] = w.dims();
        let device = w.device();
        let values = w
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data reads back as f32");
        let q = numerics::dequantize(&self.quantize(&values, rows, cols));
        Tensor::<2>::from_data(TensorData::new(q, [rows, cols]), &device)
    }
}

pub use crate::numerics::{ActRange, ActSpec};

/// The fake-quantized activation, computed on the tensor's own device with tensor ops. Equal bit
/// for bit to [`ActSpec::fake_quantize_row`], the one definition (tested below).
///
/// # Shapes
/// - `x`: `[..., d]`; dynamic ranges are per position of the leading dimensions (per token).
pub fn fake_quantize_activation<const D: usize>(spec: &ActSpec, x: Tensor<D>) -> Tensor<D> {
    // The values only, off the autodiff backend: quantizing is not part of the graph.
    let d = x.clone().inner();
    let device = d.device();
    let full = |v: f32| {
        let mut shape = x.dims();
        shape[D - 1] = 1;
        Tensor::<D>::full(shape, v, &device)
    };
    let q = match (spec.symmetric, spec.range) {
        (true, ActRange::Dynamic) => symmetric(spec, d.clone(), d.abs().max_dim(D - 1)),
        (true, ActRange::Static { min, max }) => symmetric(spec, d, full(min.abs().max(max.abs()))),
        (false, ActRange::Dynamic) => {
            let (mn, mx) = (d.clone().min_dim(D - 1), d.clone().max_dim(D - 1));
            asymmetric(spec, d, mn, mx)
        }
        (false, ActRange::Static { min, max }) => asymmetric(spec, d, full(min), full(max)),
    };
    straight_through(x, q)
}

/// `max` has the input's rank with the last dimension 1.
fn symmetric<const D: usize>(spec: &ActSpec, x: Tensor<D>, max: Tensor<D>) -> Tensor<D> {
    let (scale, lo, hi) = match spec.numerics {
        Numerics::Ember => {
            let qmax = ((1i32 << (spec.bits - 1)) - 1) as f32;
            (max / qmax, -qmax, qmax)
        }
        Numerics::Deepspeed => {
            let range = (1u64 << spec.bits) as f32;
            (max * 2.0 / range, -range / 2.0, range / 2.0 - 1.0)
        }
    };
    // An all-zero token has scale 0: divide by 1 instead, its codes are 0 either way.
    let zero = scale.clone().equal_elem(0.0);
    let safe = scale.clone().mask_fill(zero, 1.0);
    (x / safe).round().clamp(lo, hi) * scale
}

fn asymmetric<const D: usize>(spec: &ActSpec, x: Tensor<D>, mn: Tensor<D>, mx: Tensor<D>) -> Tensor<D> {
    let top = ((1u64 << spec.bits) - 1) as f32;
    let steps = match spec.numerics {
        Numerics::Ember => top,
        Numerics::Deepspeed => (1u64 << spec.bits) as f32,
    };
    let scale = (mx - mn.clone()) / steps;
    let zero_scale = scale.clone().equal_elem(0.0);
    let safe = scale.mask_fill(zero_scale.clone(), 1.0);
    let deq = match spec.numerics {
        Numerics::Ember => {
            let z = (mn.clone().neg() / safe.clone()).round();
            let q = ((x.clone() / safe.clone()).round() + z.clone()).clamp(0.0, top);
            (q - z) * safe
        }
        Numerics::Deepspeed => {
            let z = (mn.clone() / safe.clone()).round() * safe.clone();
            ((x.clone() - z.clone()) / safe.clone()).round().clamp(0.0, top) * safe + z
        }
    };
    // A constant token dequantizes to itself.
    deq.mask_where(zero_scale.expand(x.dims()), mn.expand(x.dims()))
}

/// `x + (q − x)` with the difference a constant (the straight-through estimator: the forward
/// value is `q`, the gradient passes to `x` as if quantization were the identity) when `x` is
/// part of an autodiff graph — a parameter or anything computed from one, such as an activation;
/// exactly `q` otherwise. The difference is computed off the autodiff backend, so quantizing
/// records no graph node of its own (nodes recorded on detached tensors are never freed by a
/// backward: training grew by tens of megabytes per step).
pub fn straight_through<const D: usize>(x: Tensor<D>, q: Tensor<D>) -> Tensor<D> {
    if !x.is_autodiff() {
        return q;
    }
    let q = q.inner();
    if !x.is_tracked() {
        return q.autodiff();
    }
    let delta = q - x.clone().inner();
    x + delta
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
    fn activation_fake_quant_equals_the_numerics_definition_bit_for_bit() {
        let device = Device::flex();
        let (rows, cols) = (5, 23);
        let mut x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 211) as f32 - 80.0) * 0.0137)
            .collect();
        x[2 * cols..3 * cols].iter_mut().for_each(|v| *v = 0.0); // zero token: scale 0, no NaN
        x[3 * cols..4 * cols].iter_mut().for_each(|v| *v = 0.4); // constant token
        for numerics in [Numerics::Ember, Numerics::Deepspeed] {
            for symmetric in [true, false] {
                for bits in [8, 4, 3] {
                    for range in [ActRange::Dynamic, ActRange::Static { min: -0.6, max: 1.3 }] {
                        let spec = ActSpec {
                            bits,
                            symmetric,
                            numerics,
                            range,
                        };
                        let got = vec_of(fake_quantize_activation(&spec, t2(&x, [rows, cols], &device)));
                        let mut want = x.clone();
                        want.chunks_mut(cols).for_each(|r| spec.fake_quantize_row(r));
                        // `==` on f32: only the sign of a zero may differ
                        assert_eq!(got, want, "{spec:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn per_token_activation_quant_uses_one_scale_per_row() {
        let device = Device::flex();
        // Row 0: max 1.27 → s = 1.27/127, 0.005 → 0.5 codes → 0 (ties to even); row 1 is all zero.
        let x = t2(&[1.27, -0.635, 0.005, 0.0, 0.0, 0.0], [2, 3], &device);
        let spec = ActSpec {
            bits: 8,
            symmetric: true,
            range: ActRange::Dynamic,
            numerics: Numerics::Ember,
        };
        let got = vec_of(fake_quantize_activation(&spec, x));
        let s = 1.27f32 / 127.0;
        // −0.635/s = −63.5 → −64 (ties to even)
        assert_eq!(got, vec![127.0 * s, -64.0 * s, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn static_asymmetric_activation_clamps_to_the_calibrated_range() {
        let device = Device::flex();
        let x = t2(&[-3.0, 0.0, 0.5, 4.0], [1, 4], &device);
        let spec = ActSpec {
            bits: 8,
            symmetric: false,
            range: ActRange::Static { min: -1.0, max: 3.0 },
            numerics: Numerics::Ember,
        };
        let got = vec_of(fake_quantize_activation(&spec, x));
        // s = 4/255, z = round(63.75) = 64: −3 → round(−191.25) + 64 < 0 clamps to u = 0 → −64·s;
        // 0 → 0; 0.5 → round(31.875) = 32 → 32·s; 4 → 255 + 64 clamps to 255 → 191·s.
        let s = 4.0f32 / 255.0;
        assert_eq!(got, vec![-64.0 * s, 0.0, 32.0 * s, 191.0 * s]);
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

    #[test]
    fn the_gradient_passes_through_a_quantized_activation_computed_from_a_parameter() {
        // An activation is not a leaf: a = 2·p, L = Σ q(a)·c → dL/dp = 2·c (straight through).
        let device = Device::flex().autodiff();
        let p = t2(&[0.3, -1.2, 0.7, 2.5], [1, 4], &device).require_grad();
        let c = t2(&[1.0, -2.0, 0.5, 3.0], [1, 4], &device);
        let spec = ActSpec {
            bits: 8,
            symmetric: true,
            range: ActRange::Dynamic,
            numerics: Numerics::Ember,
        };
        let a = p.clone().mul_scalar(2.0);
        let q = fake_quantize_activation(&spec, a.clone());
        // The forward value is the quantized one.
        let exact = fake_quantize_activation(&spec, a.clone().inner());
        assert_eq!(vec_of(q.clone().inner()), vec_of(exact));
        let grads = (q * c).sum().backward();
        assert_eq!(vec_of(p.grad(&grads).unwrap()), vec![2.0, -4.0, 1.0, 6.0]);
    }
}
