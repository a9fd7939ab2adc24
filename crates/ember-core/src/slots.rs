//! The compression slots a compressible block carries (DESIGN §4.1): what happens to its weight
//! and to its input on every forward. Techniques fill the slots when they attach; the block's
//! forward calls [`LinearSlots::weight`] and [`LinearSlots::input`] and knows nothing else.
//!
//! Order inside a linear layer (DESIGN §4.3): weight transforms (user techniques) → weight
//! fake-quant → (masks: later) → input observer (calibration) → input activation quant → matmul.

use std::fmt::Debug;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Tensor;

use crate::fake_quant::{ActSpec, WeightQuant, fake_quantize_activation};
use crate::lifecycle::{ActivationSchedule, WeightSchedule};
use crate::numerics::{self, Quantized};
use crate::observer::{GramObserver, RangeObserver};

/// A weight transformation registered by a user technique (low-rank, custom rounding…).
pub trait WeightTransform: Debug + Send + Sync {
    /// The transformed weight `[out, in]`; gradients should flow (use straight-through tricks).
    fn apply(&self, weight: Tensor<2>) -> Tensor<2>;
}

/// Compression state of a Linear site. Empty by default: the block then computes exactly
/// `x·Wᵀ + b`.
#[derive(Module, Debug, Default)]
pub struct LinearSlots {
    /// User techniques' weight transforms, in attach order.
    #[module(skip)]
    pub transforms: Vec<Arc<dyn WeightTransform>>,
    /// Weight fake quantization (at its final bits: what clean stores).
    #[module(skip)]
    pub weight_quant: Option<WeightQuant>,
    /// When `weight_quant` applies during training and at how many bits (a `schedule_offset`,
    /// MoQ's annealing, stochastic rounding); none: always, at its own bits.
    #[module(skip)]
    pub weight_schedule: Option<WeightSchedule>,
    /// Calibration: records the input's range (no effect on values).
    #[module(skip)]
    pub observer: Option<RangeObserver>,
    /// Calibration for GPTQ rounding: accumulates the input Gram matrix (and, where the model
    /// reports them, per-block mixed inputs); `solve` then quantizes the weight with GPTQ
    /// instead of round-to-nearest.
    #[module(skip)]
    pub gram: Option<GramObserver>,
    /// The codes GPTQ chose (what clean packs and the forward computes with), set by `solve`.
    #[module(skip)]
    pub quantized: Option<Quantized>,
    /// Input activation fake quantization.
    #[module(skip)]
    pub act_quant: Option<ActSpec>,
    /// The step from which `act_quant` applies during training; none: always.
    #[module(skip)]
    pub act_schedule: Option<ActivationSchedule>,
    /// The transformed weight, precomputed by [`LinearSlots::precompute`] for inference.
    #[module(skip)]
    pub frozen: Option<Tensor<2>>,
}

impl LinearSlots {
    /// Whether any slot is filled.
    pub fn is_empty(&self) -> bool {
        self.transforms.is_empty() && self.weight_quant.is_none() && self.observer.is_none() && self.act_quant.is_none()
    }

    /// The weight the matmul uses.
    pub fn weight(&self, w: Tensor<2>) -> Tensor<2> {
        if let Some(f) = &self.frozen {
            return f.clone();
        }
        // A GPTQ-solved weight computes with its codes, frozen or not (slower when not).
        if let Some(q) = &self.quantized {
            return dequantized(q, &w.device());
        }
        let w = self.transforms.iter().fold(w, |w, t| t.apply(w));
        match &self.weight_quant {
            Some(q) => scheduled(q, self.weight_schedule.as_ref(), w),
            None => w,
        }
    }

    /// Precomputes the transformed weight so inference does not redo it on every forward
    /// (post-training models whose weights no longer change). Training must not freeze.
    ///
    /// A weight GPTQ has solved keeps its solution: calling this again does not fall back to
    /// round-to-nearest (which would leave the model computing with other codes than the ones
    /// `quantized` holds for clean).
    pub fn precompute(&mut self, w: Tensor<2>) {
        if self.quantized.is_none() {
            self.frozen = None;
            self.solve(w.clone());
        }
        if let Some(q) = &self.quantized {
            if self.frozen.is_none() {
                self.frozen = Some(dequantized(q, &w.device()));
            }
        } else if !(self.transforms.is_empty() && self.weight_quant.is_none()) {
            self.frozen = Some(self.weight(w.detach()));
        }
    }

    /// Runs GPTQ when calibration left a Gram matrix, keeping its codes in `quantized` (what
    /// clean packs and what the forward computes with) and dropping the matrices; `true` when the
    /// weight is GPTQ's (solved now or before). Nothing is frozen here (see [`Self::precompute`]),
    /// so a model solved only to be cleaned holds no second copy of its weights. Round-to-nearest
    /// weights are left alone: clean recomputes their codes from the weight.
    pub fn solve(&mut self, w: Tensor<2>) -> bool {
        if self.quantized.is_some() {
            return true;
        }
        if let (Some(q), Some(observer)) = (self.weight_quant, self.gram.as_ref())
            && let Some((_, gram)) = observer.gram()
        {
            let w = self.transforms.iter().fold(w.detach(), |w, t| t.apply(w));
            let [rows, cols] = w.dims();
            // Inputs reported per block of output rows (attention heads reading the value
            // projection) are the ones those rows are read with; otherwise the layer's inputs.
            let blocks = observer.take_block_grams();
            let solve = |values: &[f32]| match &blocks {
                Some((_, blocks)) => {
                    numerics::gptq_blocks(values, rows, cols, blocks, q.layout, q.scheme, q.numerics, q.clip)
                }
                None => numerics::gptq(values, rows, cols, &gram, q.layout, q.scheme, q.numerics, q.clip),
            };
            if let Ok(values) = w.into_data().convert::<f32>().try_into_vec::<f32>()
                && let Some(result) = solve(&values)
            {
                self.quantized = Some(result);
                self.frozen = None;
                self.gram = None;
                return true;
            }
        }
        false
    }

    /// The input the matmul uses.
    pub fn input<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if let Some(o) = &self.observer {
            o.observe(&x);
        }
        if let Some(g) = &self.gram {
            g.observe(&x);
        }
        match &self.act_quant {
            Some(q) if self.act_schedule.as_ref().is_none_or(|s| s.active()) => fake_quantize_activation(q, x),
            _ => x,
        }
    }
}

/// `w` fake-quantized by `q` as its schedule says at the clock's step: float before the offset,
/// then at the phase's bits (blended with the float weight while MoQ's float share lasts;
/// stochastic rounding only in a training forward, on the autodiff device).
fn scheduled(q: &WeightQuant, schedule: Option<&WeightSchedule>, w: Tensor<2>) -> Tensor<2> {
    let Some(schedule) = schedule else {
        return q.apply(w);
    };
    match schedule.now() {
        None => w,
        Some(phase) => {
            let stochastic = schedule.stochastic && w.is_autodiff();
            q.with_bits(phase.bits).apply_blended(w, phase.float_share, stochastic)
        }
    }
}

/// The f32 weight `q`'s codes stand for, as a tensor on `device`.
fn dequantized(q: &Quantized, device: &burn::tensor::Device) -> Tensor<2> {
    Tensor::from_data(
        burn::tensor::TensorData::new(numerics::dequantize(q), [q.rows, q.cols]),
        device,
    )
}

/// Compression state of an Embedding site (weight quantization only: DeepSpeed quantizes
/// embeddings per token row and never their "input").
#[derive(Module, Debug, Default)]
pub struct EmbeddingSlots {
    #[module(skip)]
    pub weight_quant: Option<WeightQuant>,
    /// See [`LinearSlots::weight_schedule`].
    #[module(skip)]
    pub weight_schedule: Option<WeightSchedule>,
    /// The quantized table, precomputed by [`EmbeddingSlots::precompute`].
    #[module(skip)]
    pub frozen: Option<Tensor<2>>,
}

impl EmbeddingSlots {
    /// Precomputes the quantized table for inference (see [`LinearSlots::precompute`]).
    pub fn precompute(&mut self, w: Tensor<2>) {
        self.frozen = None;
        if self.weight_quant.is_some() {
            self.frozen = Some(self.weight(w.detach()));
        }
    }

    /// The table the lookup uses.
    pub fn weight(&self, w: Tensor<2>) -> Tensor<2> {
        if let Some(f) = &self.frozen {
            return f.clone();
        }
        match &self.weight_quant {
            Some(q) => scheduled(q, self.weight_schedule.as_ref(), w),
            None => w,
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};
    use ember_config::types::{Clip, Numerics};

    use super::*;
    use crate::numerics::{GroupLayout, Scheme};

    fn tensor(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn a_gptq_solution_survives_a_second_precompute() {
        let device = Device::flex();
        let (rows, cols, n) = (4, 16, 48);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        // Correlated inputs (column j leans on column j − 1), so GPTQ has something to compensate.
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 25.0 + if i % cols > 0 { 0.5 } else { 0.0 })
            .collect();
        let mut slots = LinearSlots {
            weight_quant: Some(WeightQuant {
                scheme: Scheme::Asymmetric { bits: 3 },
                layout: GroupLayout::PerRow,
                numerics: Numerics::Ember,
                clip: Clip::None,
            }),
            gram: Some(GramObserver::new()),
            ..LinearSlots::default()
        };
        slots.input(tensor(x, [n, cols], &device));
        let w = tensor(w, [rows, cols], &device);
        slots.precompute(w.clone());
        let solved = values(slots.frozen.clone().expect("GPTQ froze the weight"));
        let codes = slots.quantized.clone().expect("GPTQ kept its codes");
        assert_eq!(solved, numerics::dequantize(&codes));
        // A second precompute (e.g. `into_inference` after a calibration that precomputed) keeps
        // the solution: the model and clean's codes stay the same.
        slots.precompute(w.clone());
        assert_eq!(values(slots.frozen.clone().unwrap()), solved);
        assert_eq!(slots.quantized, Some(codes.clone()));
        // Without the frozen copy (a model finished for clean) the forward still computes with
        // GPTQ's codes, not round-to-nearest ones.
        slots.frozen = None;
        assert_eq!(values(slots.weight(w.clone())), solved);
        let rtn = values(slots.weight_quant.unwrap().apply(w));
        assert_ne!(rtn, solved, "GPTQ changed nothing: the test proves nothing");
    }

    #[test]
    fn a_scheduled_weight_follows_the_clock_exactly() {
        // MoQ 8 → 5 bits from step 3, period 2: W8 at 3, W7 at 5, W6 at 7, W5 at 11; activations
        // from step 4. At every step the forward weight is the numerics' fake quantization at
        // the phase's bits (bit for bit), the float weight before the offset.
        use crate::lifecycle::{ActivationSchedule, BitSchedule, StepClock, WeightSchedule};
        let device = Device::flex();
        let (rows, cols) = (6, 16);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 53 % 29) as f32 - 14.0) / 9.0).collect();
        let clock = StepClock::new();
        let layout = GroupLayout::RowGroups(8);
        let bits = BitSchedule {
            offset: 3,
            start_bits: 8,
            target_bits: 5,
            period: 2,
            factor: 1,
            mixed_change_ratio: None,
        };
        let slots = LinearSlots {
            weight_quant: Some(WeightQuant {
                scheme: Scheme::Symmetric { bits: 5 },
                layout,
                numerics: Numerics::Ember,
                clip: Clip::None,
            }),
            weight_schedule: Some(WeightSchedule {
                clock: clock.clone(),
                bits,
                stochastic: false,
            }),
            act_quant: Some(ActSpec {
                bits: 8,
                symmetric: true,
                range: crate::fake_quant::ActRange::Dynamic,
                numerics: Numerics::Ember,
            }),
            act_schedule: Some(ActivationSchedule {
                clock: clock.clone(),
                offset: 4,
            }),
            ..LinearSlots::default()
        };
        let expected_bits = [
            None,
            None,
            None,
            Some(8),
            Some(8),
            Some(7),
            Some(7),
            Some(6),
            Some(6),
            Some(6),
            Some(6),
            Some(5),
        ];
        let x = tensor((0..cols).map(|i| i as f32 * 0.37 - 2.0).collect(), [1, cols], &device);
        for (step, want_bits) in expected_bits.iter().enumerate() {
            clock.set(step as u64);
            let got = values(slots.weight(tensor(w.clone(), [rows, cols], &device)));
            let want = match want_bits {
                None => w.clone(),
                Some(b) => {
                    numerics::fake_quantize(&w, rows, cols, layout, Scheme::Symmetric { bits: *b }, Numerics::Ember)
                }
            };
            assert_eq!(got, want, "step {step}");
            let input = values(slots.input(x.clone()));
            assert_eq!(
                input == values(x.clone()),
                step < 4,
                "activations quantized from step 4 (step {step})"
            );
        }
    }

    #[test]
    fn moqs_blend_mixes_the_float_and_the_quantized_weight() {
        use crate::lifecycle::{BitSchedule, StepClock, WeightSchedule};
        let device = Device::flex();
        let w: Vec<f32> = (0..32).map(|i| ((i * 17 % 13) as f32 - 6.0) / 5.0).collect();
        let clock = StepClock::new();
        let quant = WeightQuant {
            scheme: Scheme::Symmetric { bits: 4 },
            layout: GroupLayout::PerRow,
            numerics: Numerics::Ember,
            clip: Clip::None,
        };
        let slots = EmbeddingSlots {
            weight_quant: Some(quant),
            weight_schedule: Some(WeightSchedule {
                clock: clock.clone(),
                bits: BitSchedule {
                    mixed_change_ratio: Some(0.25),
                    ..BitSchedule::fixed(0, 4)
                },
                stochastic: false,
            }),
            frozen: None,
        };
        let q = numerics::fake_quantize(
            &w,
            4,
            8,
            GroupLayout::PerRow,
            Scheme::Symmetric { bits: 4 },
            Numerics::Ember,
        );
        for (step, r) in [(0u64, 1.0f32), (1, 0.75), (2, 0.5), (3, 0.25), (4, 0.0), (9, 0.0)] {
            clock.set(step);
            let got = values(slots.weight(tensor(w.clone(), [4, 8], &device)));
            for ((g, x), q) in got.iter().zip(&w).zip(&q) {
                let want = r * x + (1.0 - r) * q;
                assert!((g - want).abs() <= 1e-6, "step {step}: {g} vs {want}");
            }
        }
        clock.set(4);
        assert_eq!(
            values(slots.weight(tensor(w.clone(), [4, 8], &device))),
            q,
            "settled: exactly the quantized weight"
        );
    }
}
