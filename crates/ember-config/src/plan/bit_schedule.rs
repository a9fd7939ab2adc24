//! When a weight is quantized, and to how many bits, as a closed form of the optimizer step: the
//! one definition the planner prints, validation checks against `training.steps`, and the
//! composed model's slots follow during training.
//!
//! MoQ (compat-notes §2.8): DeepSpeed counts quantize calls (`qsteps`), one after every optimizer
//! step from `schedule_offset` on; the bits drop by one when `qsteps >= q_period`, and then
//! `q_period` doubles (times the eigenvalue factor, 1 without it). With `fp16_mixed_quantize` the
//! forward weight is `r·w + (1 − r)·Q(w)`, where `r` falls by `quantize_change_ratio` per call and
//! returns to 1 at every drop. Ember runs the same schedule inside the fake quantization of the
//! forward (straight-through gradients to the float weight, as DeepSpeed's fp32 master copy gets
//! them), so it works with any optimizer and precision. Ember counts optimizer steps only:
//! DeepSpeed's extra quantize call in every step-0 forward (bug B16) does not exist here, and the
//! forward of step `s` sees the state after `s − offset` calls (full `start_bits` at the offset
//! itself, where DeepSpeed still runs one float step).

use serde::Serialize;

/// A weight's quantization over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BitSchedule {
    /// First optimizer step whose forward is quantized (`schedule_offset`).
    pub offset: u64,
    /// Bits at the offset (`start_bits`; = `target_bits` in forward mode).
    pub start_bits: u32,
    /// Bits after the last drop (`target_bits`).
    pub target_bits: u32,
    /// Quantize calls before the first drop (`quantization_period`; 0: one drop per call).
    pub period: u64,
    /// The period's growth factor besides its doubling (MoQ's eigenvalue factor; 1 without it).
    pub factor: u64,
    /// `fp16_mixed_quantize`: the float share's decrement per call, when enabled.
    pub mixed_change_ratio: Option<f64>,
}

/// The state of a scheduled weight at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub bits: u32,
    /// The float weight's share `r` of the forward weight `r·w + (1 − r)·Q(w)` (0: fully quantized).
    pub float_share: f64,
}

impl BitSchedule {
    /// A weight quantized to `bits` from `offset` on, with nothing else changing.
    pub fn fixed(offset: u64, bits: u32) -> BitSchedule {
        BitSchedule {
            offset,
            start_bits: bits,
            target_bits: bits,
            period: 0,
            factor: 1,
            mixed_change_ratio: None,
        }
    }

    /// Whether anything changes after the offset (bit drops or a float share).
    pub fn anneals(&self) -> bool {
        self.start_bits != self.target_bits || self.mixed_change_ratio.is_some()
    }

    /// The quantize-call counts at which the bits drop, one per bit from start to target.
    pub fn drop_calls(&self) -> Vec<u64> {
        let drops = self.start_bits.saturating_sub(self.target_bits) as usize;
        let mut out = Vec::with_capacity(drops);
        // DeepSpeed checks `qsteps >= q_period` once per call, so a period that is already
        // reached (0) drops at the next call.
        let mut threshold = self.period;
        let mut previous = 0u64;
        for _ in 0..drops {
            let at = threshold.max(previous + 1);
            out.push(at);
            previous = at;
            threshold = threshold.saturating_mul(2).saturating_mul(self.factor.max(1));
        }
        out
    }

    /// `(step, bits from that step on)` for every drop.
    pub fn drops(&self) -> Vec<(u64, u32)> {
        self.drop_calls()
            .into_iter()
            .enumerate()
            .map(|(k, q)| (self.offset.saturating_add(q), self.start_bits - 1 - k as u32))
            .collect()
    }

    /// The state the forward of optimizer step `step` uses; `None` before the offset (float).
    pub fn phase(&self, step: u64) -> Option<Phase> {
        let calls = step.checked_sub(self.offset)?;
        let drop_calls = self.drop_calls();
        let done = drop_calls.iter().take_while(|&&q| q <= calls).count();
        let bits = self.start_bits - done as u32;
        let float_share = match self.mixed_change_ratio {
            None => 0.0,
            Some(ratio) => {
                let since = calls - if done == 0 { 0 } else { drop_calls[done - 1] };
                (1.0 - ratio * since as f64).max(0.0)
            }
        };
        Some(Phase { bits, float_share })
    }

    /// The first step from which the phase is final (target bits, no float share): what a
    /// cleaned model stores is what training ran from this step on. `None`: never (a mixed
    /// blend whose ratio is 0).
    pub fn settled_at(&self) -> Option<u64> {
        let last_drop = self.drop_calls().last().copied().unwrap_or(0);
        let blend = match self.mixed_change_ratio {
            None => 0,
            Some(r) if r > 0.0 && r.is_finite() => {
                // The smallest n with 1 − r·n ≤ 0, as `phase` computes it.
                let mut n = (1.0 / r).ceil() as u64;
                while n > 0 && 1.0 - r * (n - 1) as f64 <= 0.0 {
                    n -= 1;
                }
                while 1.0 - r * n as f64 > 0.0 {
                    n += 1;
                }
                n
            }
            Some(_) => return None,
        };
        Some(self.offset.saturating_add(last_drop).saturating_add(blend))
    }

    /// `W8@0 → 7@50 → 6@100 …` (or `W4 from step 200`).
    pub fn describe(&self) -> String {
        let mut s = format!("W{} from step {}", self.start_bits, self.offset);
        for (step, bits) in self.drops() {
            s.push_str(&format!(", W{bits} at {step}"));
        }
        if let Some(r) = self.mixed_change_ratio {
            match self.settled_at() {
                Some(at) => s.push_str(&format!(", float share −{r} per step (fully quantized at {at})")),
                None => s.push_str(", float share never reaches 0"),
            }
        }
        s
    }
}

/// The first step from which none of `schedules` changes any more (`u64::MAX` when one never
/// settles, 0 for none).
pub fn settled_after<'a>(schedules: impl IntoIterator<Item = &'a BitSchedule>) -> u64 {
    schedules
        .into_iter()
        .map(|s| s.settled_at().unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DeepSpeed's `Quantizer.quantize` bookkeeping (runtime/quantize.py), transcribed: one call
    /// per optimizer step from the offset on; returns the bits and r after each call.
    fn deepspeed(s: &BitSchedule, calls: u64) -> Vec<(u32, f64)> {
        let (mut bits, mut q_period, mut qsteps, mut r) = (s.start_bits, s.period, 0u64, 1.0f64);
        let mut out = Vec::new();
        for _ in 0..calls {
            qsteps += 1;
            if let Some(ratio) = s.mixed_change_ratio {
                r = (r - ratio).max(0.0);
            }
            if bits != s.target_bits && qsteps >= q_period {
                r = 1.0;
                q_period <<= 1;
                q_period *= s.factor;
                bits -= 1;
            }
            out.push((bits, if s.mixed_change_ratio.is_some() { r } else { 0.0 }));
        }
        out
    }

    fn moq(start: u32, target: u32, period: u64) -> BitSchedule {
        BitSchedule {
            offset: 0,
            start_bits: start,
            target_bits: target,
            period,
            factor: 1,
            mixed_change_ratio: None,
        }
    }

    #[test]
    fn the_compat_notes_example_drops_at_50_100_200_400() {
        // start 12 → target 8, period 50 (compat-notes §2.8 [repro]).
        let s = moq(12, 8, 50);
        assert_eq!(s.drop_calls(), [50, 100, 200, 400]);
        assert_eq!(s.drops(), [(50, 11), (100, 10), (200, 9), (400, 8)]);
        assert_eq!(s.phase(49).unwrap().bits, 12);
        assert_eq!(s.phase(50).unwrap().bits, 11);
        assert_eq!(s.phase(399).unwrap().bits, 9);
        assert_eq!(s.phase(10_000).unwrap().bits, 8);
        assert_eq!(s.settled_at(), Some(400));
    }

    #[test]
    fn the_closed_form_matches_deepspeeds_loop() {
        for (start, target, period, factor, mixed, offset) in [
            (8, 4, 50, 1, None, 0),
            (8, 4, 0, 1, None, 7),
            (8, 2, 1, 1, None, 3),
            (12, 8, 5, 2, None, 0),
            (8, 6, 10, 1, Some(0.03), 4),
            (8, 8, 1, 1, Some(0.25), 0),
        ] {
            let s = BitSchedule {
                offset,
                start_bits: start,
                target_bits: target,
                period,
                factor,
                mixed_change_ratio: mixed,
            };
            let calls = 400;
            let reference = deepspeed(&s, calls);
            for step in 0..offset {
                assert_eq!(s.phase(step), None, "{s:?} is float before its offset");
            }
            assert_eq!(s.phase(offset).map(|p| p.bits), Some(start), "{s:?} at the offset");
            for (k, &(bits, r)) in reference.iter().enumerate() {
                let p = s.phase(offset + k as u64 + 1).unwrap();
                assert_eq!(p.bits, bits, "{s:?} after call {}", k + 1);
                assert!(
                    (p.float_share - r).abs() < 1e-9,
                    "{s:?} r after call {}: {} vs {r}",
                    k + 1,
                    p.float_share
                );
            }
            // From `settled_at` on nothing changes, and the step before it differs.
            let settled = s.settled_at().unwrap();
            let last = s.phase(offset + calls).unwrap();
            assert_eq!(
                last,
                Phase {
                    bits: target,
                    float_share: 0.0
                },
                "{s:?}"
            );
            assert_eq!(s.phase(settled), Some(last), "{s:?}");
            if settled > offset {
                assert_ne!(s.phase(settled - 1), Some(last), "{s:?}");
            }
        }
    }

    #[test]
    fn a_blend_that_never_falls_never_settles() {
        let s = BitSchedule {
            mixed_change_ratio: Some(0.0),
            ..moq(8, 4, 1)
        };
        assert_eq!(s.settled_at(), None);
        assert_eq!(BitSchedule::fixed(30, 4).settled_at(), Some(30));
        assert!(!BitSchedule::fixed(30, 4).anneals());
    }
}
