//! The learning rate at each optimizer step, a closed form of the step (a resumed run continues
//! it exactly): Ember's linear warmup from 0 to the peak over `warmup` steps, then constant,
//! linear decay to 0 or cosine decay to 0 at `total` steps; or one of DeepSpeed's schedulers
//! (`WarmupLR`, `WarmupDecayLR`, `WarmupCosineLR`) reproduced exactly.

use ember_config::types::{DsScheduler, DsSchedulerKind, LrSchedule, WarmupType};

/// A learning-rate schedule over `total` optimizer steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub kind: LrSchedule,
    /// DeepSpeed's scheduler: when set, it gives the rate (`peak` is then the optimizer's lr,
    /// what `WarmupCosineLR` scales).
    pub deepspeed: Option<DsScheduler>,
}

impl Schedule {
    /// The rate of step `step` (0-based: the first update uses `lr(0)`). Ember's warmup ramps
    /// `peak·(step+1)/(warmup+1)`, so no step runs at rate 0 (as `transformers`'
    /// linear warmup does from step 1); after `total` steps the rate is 0 for decaying schedules.
    pub fn lr(&self, step: u64) -> f64 {
        if let Some(ds) = &self.deepspeed {
            return deepspeed_lr(ds, self.peak, step);
        }
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

/// The rate DeepSpeed's scheduler gives optimizer step `step` (lr_schedules.py): its engine
/// steps the scheduler after each optimizer step, so step k runs at the scheduler's value for
/// iteration `last_batch_iteration + k` (the first at the value set at construction, iteration
/// −1: `warmup_min_lr`, or 0 for WarmupCosineLR). `optimizer_lr` is what WarmupCosineLR scales.
pub fn deepspeed_lr(s: &DsScheduler, optimizer_lr: f64, step: u64) -> f64 {
    let lbi = s.last_batch_iteration() + step as i64;
    let w = s.warmup_steps();
    let warmup_gamma = |i: i64| -> f64 {
        match s.warmup_type() {
            WarmupType::Log => ((i + 1) as f64).ln() * (1.0 / (w as f64).ln()),
            WarmupType::Linear => i as f64 / w as f64,
        }
    };
    match s.kind {
        DsSchedulerKind::WarmupLr | DsSchedulerKind::WarmupDecayLr => {
            let (min, max) = (s.warmup_min_lr(), s.warmup_max_lr());
            if lbi < 0 {
                return min;
            }
            let gamma = if lbi < w as i64 {
                warmup_gamma(lbi)
            } else if s.kind == DsSchedulerKind::WarmupLr {
                1.0
            } else {
                let t = s.params.total_num_steps.unwrap_or(0) as f64;
                ((t - lbi as f64) / (t - w as f64).max(1.0)).max(0.0)
            };
            min + (max - min) * gamma
        }
        DsSchedulerKind::WarmupCosineLr => {
            if lbi < 0 {
                return 0.0;
            }
            let ratio = if lbi < w as i64 {
                let wmr = s.warmup_min_ratio();
                wmr + warmup_gamma(lbi) * (1.0 - wmr)
            } else {
                let cmr = s.cos_min_ratio();
                let done = (lbi - w as i64 + 1) as f64;
                let span = s.params.total_num_steps.unwrap_or(0) as f64 - w as f64;
                (cmr + (1.0 - cmr) * (1.0 + (std::f64::consts::PI * done / span).cos()) / 2.0).max(0.0)
            };
            optimizer_lr * ratio
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
            deepspeed: None,
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

    fn ds(kind: DsSchedulerKind, params: serde_json::Value) -> DsScheduler {
        serde_json::from_value(serde_json::json!({ "type": kind, "params": params })).unwrap()
    }

    #[test]
    fn deepspeeds_warmup_lr_runs_its_first_two_steps_at_the_minimum() {
        // min 0, max 1e-3, 1000 warmup steps, log (DeepSpeed's defaults but the max): the engine
        // steps the scheduler after each optimizer step, so steps 0 and 1 both run at 0, step 2
        // at 1e-3·ln 2/ln 1000, step 1000 at the max (compat: lr_schedules.py).
        let s = ds(DsSchedulerKind::WarmupLr, serde_json::json!({"warmup_max_lr": 1e-3}));
        assert_eq!(deepspeed_lr(&s, 5.0, 0), 0.0);
        assert_eq!(deepspeed_lr(&s, 5.0, 1), 0.0);
        assert!((deepspeed_lr(&s, 5.0, 2) - 1e-3 * 2f64.ln() / 1000f64.ln()).abs() < 1e-18);
        assert!((deepspeed_lr(&s, 5.0, 1000) - 1e-3).abs() < 1e-15);
        assert_eq!(deepspeed_lr(&s, 5.0, 5000), 1e-3);
        // Linear warmup: step 2 runs at 1e-6, step 1000 at 0.999e-3, 1001 on at the max.
        let lin = ds(
            DsSchedulerKind::WarmupLr,
            serde_json::json!({"warmup_max_lr": 1e-3, "warmup_type": "linear"}),
        );
        assert!((deepspeed_lr(&lin, 5.0, 2) - 1e-6).abs() < 1e-18);
        assert!((deepspeed_lr(&lin, 5.0, 1000) - 0.999e-3).abs() < 1e-15);
        assert_eq!(deepspeed_lr(&lin, 5.0, 1001), 1e-3);
        // A warmup of 0 or 1 steps acts as 2.
        let short = ds(
            DsSchedulerKind::WarmupLr,
            serde_json::json!({"warmup_num_steps": 0, "warmup_min_lr": 0.1, "warmup_max_lr": 0.2}),
        );
        assert_eq!(deepspeed_lr(&short, 5.0, 1), 0.1);
        assert!((deepspeed_lr(&short, 5.0, 2) - (0.1 + 0.1 * 2f64.ln() / 2f64.ln())).abs() < 1e-15);
    }

    #[test]
    fn deepspeeds_decay_ends_at_the_minimum_and_its_cosine_does_not_clamp() {
        let d = ds(
            DsSchedulerKind::WarmupDecayLr,
            serde_json::json!({"warmup_min_lr": 1e-5, "warmup_max_lr": 1e-3, "warmup_num_steps": 10, "total_num_steps": 110, "warmup_type": "linear"}),
        );
        // Iteration 10 (step 11) is the top; iteration 60 halfway down; 110 and after the minimum.
        assert!((deepspeed_lr(&d, 0.0, 11) - 1e-3).abs() < 1e-15);
        assert!((deepspeed_lr(&d, 0.0, 61) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-15);
        assert_eq!(deepspeed_lr(&d, 0.0, 111), 1e-5);
        assert_eq!(deepspeed_lr(&d, 0.0, 500), 1e-5);
        let c = ds(
            DsSchedulerKind::WarmupCosineLr,
            serde_json::json!({"warmup_num_steps": 10, "total_num_steps": 110, "warmup_min_ratio": 0.1, "warmup_type": "linear"}),
        );
        let lr = 2e-3;
        assert_eq!(deepspeed_lr(&c, lr, 0), 0.0, "construction sets 0");
        assert!((deepspeed_lr(&c, lr, 1) - lr * 0.1).abs() < 1e-18);
        // Iteration i ≥ 10: ratio = cmr + (1 − cmr)·(1 + cos(π·(i − 9)/100))/2; at 109 it is cmr.
        let cmr = 0.0001;
        let want = |i: f64| lr * (cmr + (1.0 - cmr) * (1.0 + (std::f64::consts::PI * (i - 9.0) / 100.0).cos()) / 2.0);
        assert!((deepspeed_lr(&c, lr, 11) - want(10.0)).abs() < 1e-15);
        assert!((deepspeed_lr(&c, lr, 110) - lr * cmr).abs() < 1e-15);
        // Past the total the cosine rises again (DeepSpeed does not clamp it).
        assert!(deepspeed_lr(&c, lr, 160) > deepspeed_lr(&c, lr, 110));
    }
}
