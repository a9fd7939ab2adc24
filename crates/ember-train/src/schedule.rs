//! The learning rate at each optimizer step: linear warmup from 0 to the peak over
//! `warmup` steps, then constant, linear decay to 0 or cosine decay to 0 at `total` steps.

use ember_config::types::LrSchedule;

/// A learning-rate schedule over `total` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub kind: LrSchedule,
}

impl Schedule {
    /// The rate of step `step` (0-based: the first update uses `lr(0)`). Warmup ramps
    /// `peak·(step+1)/(warmup+1)`, so no step runs at rate 0 (as `transformers`'
    /// linear warmup does from step 1); after `total` steps the rate is 0 for decaying schedules.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / (self.warmup + 1) as f64;
        }
        let decay_steps = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / decay_steps).min(1.0);
        match self.kind {
            LrSchedule::Constant => self.peak,
            LrSchedule::Linear => self.peak * (1.0 - progress),
            LrSchedule::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: LrSchedule) -> Schedule {
        Schedule {
            peak: 1e-3,
            warmup: 4,
            total: 14,
            kind,
        }
    }

    #[test]
    fn warmup_then_decay_follow_their_closed_forms() {
        for kind in [LrSchedule::Constant, LrSchedule::Linear, LrSchedule::Cosine] {
            let s = s(kind);
            // Warmup: 1/5, 2/5, 3/5, 4/5 of the peak; then the peak at the start of the decay.
            for step in 0..4 {
                assert_eq!(s.lr(step), 1e-3 * (step + 1) as f64 / 5.0, "{kind:?}");
            }
            assert_eq!(s.lr(4), 1e-3, "{kind:?}");
        }
        // Decay over 10 steps: halfway at step 9.
        assert!((s(LrSchedule::Linear).lr(9) - 0.5e-3).abs() < 1e-15);
        assert!((s(LrSchedule::Cosine).lr(9) - 0.5e-3).abs() < 1e-15);
        // A quarter of the way: linear 3/4, cosine (1 + cos(π/4))/2.
        let quarter = 4 + 10 / 4;
        let p = (quarter - 4) as f64 / 10.0;
        assert!((s(LrSchedule::Linear).lr(quarter) - 1e-3 * (1.0 - p)).abs() < 1e-15);
        let cosine = 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        assert!((s(LrSchedule::Cosine).lr(quarter) - cosine).abs() < 1e-15);
        // The end, and past it.
        for step in [14, 20] {
            assert_eq!(s(LrSchedule::Linear).lr(step), 0.0);
            assert!(s(LrSchedule::Cosine).lr(step).abs() < 1e-18);
            assert_eq!(s(LrSchedule::Constant).lr(step), 1e-3);
        }
        // No warmup: the first step runs at the peak.
        let no_warmup = Schedule {
            warmup: 0,
            ..s(LrSchedule::Linear)
        };
        assert_eq!(no_warmup.lr(0), 1e-3);
    }
}
