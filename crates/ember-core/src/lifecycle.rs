//! Techniques that change during training: the step clock a composition's slots share, and the
//! schedules they follow on it.
//!
//! One composition has one [`StepClock`]; every scheduled slot holds a handle to it (slots are
//! cloned along with the model when it moves to the autodiff device, and the handle with them).
//! The training loop sets the clock to the optimizer step before each forward, so a slot's
//! behaviour is a closed form of the step ([`BitSchedule::phase`]): a resumed run needs no
//! technique state besides the step, and a model cleaned after training (the clock at
//! `training.steps`) stores the settled phase, the one its last steps trained with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use ember_config::plan::{BitSchedule, Phase};

/// The optimizer step a composition's forward runs at, shared by its scheduled slots.
#[derive(Debug, Clone, Default)]
pub struct StepClock {
    step: Arc<AtomicU64>,
    float: Arc<AtomicBool>,
}

impl StepClock {
    pub fn new() -> StepClock {
        StepClock::default()
    }

    /// Moves the clock to `step` (the number of optimizer steps done).
    pub fn set(&self, step: u64) {
        self.step.store(step, Ordering::Relaxed);
    }

    pub fn step(&self) -> u64 {
        self.step.load(Ordering::Relaxed)
    }

    /// While set, scheduled weights compute in float whatever the step (MoQ's eigenvalue
    /// estimate: the Hessian of the float loss, which quantization's flat steps would hide from
    /// finite differences).
    pub fn set_float(&self, float: bool) {
        self.float.store(float, Ordering::Relaxed);
    }

    pub fn is_float(&self) -> bool {
        self.float.load(Ordering::Relaxed)
    }
}

/// A weight's quantization schedule on a clock.
#[derive(Debug, Clone)]
pub struct WeightSchedule {
    pub clock: StepClock,
    pub bits: BitSchedule,
    /// MoQ's `rounding: stochastic`: integer codes rounded with U(−½, ½) noise in training
    /// forwards (clean rounds to nearest).
    pub stochastic: bool,
}

impl WeightSchedule {
    /// The phase now; `None`: float (before the offset, or while the clock is held in float).
    pub fn now(&self) -> Option<Phase> {
        if self.clock.is_float() {
            return None;
        }
        self.bits.phase(self.clock.step())
    }
}

/// The step from which an input is quantized, on a clock.
#[derive(Debug, Clone)]
pub struct ActivationSchedule {
    pub clock: StepClock,
    pub offset: u64,
}

impl ActivationSchedule {
    pub fn active(&self) -> bool {
        self.clock.step() >= self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_clock() {
        let clock = StepClock::new();
        let w = WeightSchedule {
            clock: clock.clone(),
            bits: BitSchedule {
                offset: 2,
                start_bits: 8,
                target_bits: 6,
                period: 3,
                factor: 1,
                mixed_change_ratio: None,
            },
            stochastic: false,
        };
        let a = ActivationSchedule {
            clock: clock.clone(),
            offset: 4,
        };
        let moved = w.clone();
        assert_eq!(moved.now(), None);
        assert!(!a.active());
        clock.set(5);
        assert_eq!(moved.now().map(|p| p.bits), Some(7));
        assert!(a.active());
        clock.set(8);
        assert_eq!(w.now().map(|p| p.bits), Some(6));
        clock.set_float(true);
        assert_eq!(moved.now(), None, "held in float");
        clock.set_float(false);
        assert_eq!(moved.now().map(|p| p.bits), Some(6));
    }
}
